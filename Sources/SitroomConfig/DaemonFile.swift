import SitroomCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `etc/sitroom.yaml` (SPEC §3).
enum DaemonFile {
    /// Reads the daemon settings; `nil` when the file has errors. `integrations` are the names of the files
    /// under `etc/integrations/`, which `conference.integrations` and `rules` must name.
    static func read(
        file: String,
        root: YAMLDocument.Result,
        integrations: Set<String>,
        diag: Diagnostics,
        sites: inout ConfigSites
    ) -> DaemonSettings? {
        let top: YAMLMapping
        switch root {
        case .failed: return nil
        case .empty: top = YAMLMapping(empty: "", diag: diag)
        case .node(let node):
            guard let mapping = YAMLValue(node: node, path: "", diag: diag).mapping() else { return nil }
            top = mapping
        }
        let before = diag.count
        let directory = FileReading.directory(of: file)
        let defaults = DaemonSettings()

        let conferenceMapping = top.mapping("conference")
        let conference = readConference(conferenceMapping, integrations: integrations)
        if !conference.integrations.isEmpty, let value = conferenceMapping.value("integrations") {
            sites.conferenceIntegrations = value.position
        }
        let reopenHoldDown = top.value("reopen_hold_down")?.duration() ?? defaults.reopenHoldDown
        let notify = readNotify(top.mapping("notify"), directory: directory)
        let feeds = readFeeds(top.mapping("feeds"))

        let spoolMapping = top.mapping("spool")
        let spoolDefaults = SpoolSettings()
        let spool = SpoolSettings(
            maxFileSize: spoolMapping.value("max_file_size")?.size(in: 1...(1 << 30)) ?? spoolDefaults.maxFileSize,
            keepCur: spoolMapping.value("keep_cur")?.duration() ?? spoolDefaults.keepCur,
            keepRejected: spoolMapping.value("keep_rejected")?.duration() ?? spoolDefaults.keepRejected,
            tmpStaleAfter: spoolMapping.value("tmp_stale_after")?.duration(in: 1...Double.greatestFiniteMagnitude)
                ?? spoolDefaults.tmpStaleAfter
        )
        spoolMapping.finish()

        let store = top.mapping("store")
        let mapSize = store.value("map_size")?.size(in: (1 << 20)...(1 << 40)) ?? defaults.storeMapSize
        let atLeastAMinute = 60...Double.greatestFiniteMagnitude
        let retention = RetentionSettings(
            keepEndedRooms: store.value("keep_ended_rooms")?.duration(in: atLeastAMinute)
                ?? defaults.retention.keepEndedRooms,
            keepAudit: store.value("keep_audit")?.duration(in: atLeastAMinute) ?? defaults.retention.keepAudit
        )
        store.finish()

        let control = top.mapping("control")
        var group: String?
        if let value = control.value("group"), let name = value.string() {
            if groupExists(name) {
                group = name
            } else {
                value.fail("no group named '\(name)' on this system")
            }
        }
        control.finish()
        top.finish()

        guard diag.count == before else { return nil }
        return DaemonSettings(
            conference: conference,
            reopenHoldDown: reopenHoldDown,
            notify: notify,
            feeds: feeds,
            spool: spool,
            storeMapSize: mapSize,
            controlGroup: group,
            retention: retention
        )
    }

    private static func groupExists(_ name: String) -> Bool {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        return status == 0 && result != nil
    }

    // MARK: - conference

    private static func readConference(_ mapping: YAMLMapping, integrations known: Set<String>) -> ConferenceSettings {
        let defaults = ConferenceSettings()
        let component =
            mapping.value("component")?.enumeration(ConferenceSettings.Component.self, noun: "component")
            ?? defaults.component
        let followUp =
            mapping.value("follow_up")?.enumerationList(NotifyChannel.self, noun: "channel") ?? defaults.followUp
        let integrations = mapping.value("integrations").flatMap { integrationNames($0, known: known) } ?? []
        var rules: [ConferenceRule] = []
        if let items = mapping.value("rules")?.list() {
            for item in items {
                guard let rule = item.mapping() else { continue }
                var match: [String: String] = [:]
                if let matchValue = rule.required("match"), let matchMapping = matchValue.mapping() {
                    for key in ["team", "severity"] {
                        if let value = matchMapping.string(key) { match[key] = value }
                    }
                    matchMapping.finish()
                }
                var names: [String] = []
                if let value = rule.required("integrations") {
                    names = integrationNames(value, known: known) ?? []
                    if names.isEmpty, value.list()?.isEmpty == true { value.fail("must name at least one integration") }
                }
                rule.finish()
                rules.append(ConferenceRule(match: match, integrations: names))
            }
        }
        let waitingAlertAfter =
            mapping.value("waiting_alert_after")?.duration(in: 1...Double.greatestFiniteMagnitude)
            ?? defaults.waitingAlertAfter
        let followUpDelay = mapping.value("follow_up_delay")?.duration(in: 0...86_400) ?? defaults.followUpDelay
        var invitationDuration = defaults.invitationDuration
        if let value = mapping.value("invitation_duration"), let seconds = value.duration(in: 60...7 * 86_400) {
            if seconds.truncatingRemainder(dividingBy: 60) == 0 {
                invitationDuration = seconds
            } else {
                value.fail("must be whole minutes (RFC 5545 DURATION), such as 45m or 2h")
            }
        }
        mapping.finish()
        return ConferenceSettings(
            component: component,
            followUp: followUp,
            integrations: integrations,
            rules: rules,
            waitingAlertAfter: waitingAlertAfter,
            followUpDelay: followUpDelay,
            invitationDuration: invitationDuration
        )
    }

    /// A list of integration names, each of which must have a file under `etc/integrations/`.
    private static func integrationNames(_ value: YAMLValue, known: Set<String>) -> [String]? {
        guard let items = value.list() else { return nil }
        var names: [String] = []
        for item in items {
            guard let name = item.string() else { continue }
            if !known.contains(name) {
                let available = known.sorted().joined(separator: ", ")
                item.fail(
                    "no integration named '\(name)' (no file integrations/\(name).yaml; have: \(available.isEmpty ? "none" : available))"
                )
            } else if names.contains(name) {
                item.fail("'\(name)' is listed twice")
            } else {
                names.append(name)
            }
        }
        return names
    }

    // MARK: - notify

    private static func readNotify(_ mapping: YAMLMapping, directory: String) -> NotifySettings {
        let defaults = NotifySettings()
        let channels =
            mapping.value("channels")?.enumerationList(NotifyChannel.self, noun: "channel") ?? defaults.channels
        var admins: [Admin] = []
        if let items = mapping.value("admins")?.list() {
            for item in items {
                guard let entry = item.mapping() else { continue }
                let contact = Contacts.read(entry, roles: false)
                entry.finish()
                if let contact { admins.append(Admin(name: contact.name, email: contact.email, phone: contact.phone)) }
            }
        }
        let email = readEmail(mapping.mapping("email"), directory: directory, defaults: defaults.email)
        let sms = readSMS(mapping.mapping("sms"), directory: directory)

        let retryMapping = mapping.mapping("retry")
        let retryDefaults = RetrySettings()
        let positive = 1...Double.greatestFiniteMagnitude
        let first = retryMapping.value("first")?.duration(in: positive) ?? retryDefaults.first
        let maxValue = retryMapping.value("max")
        let max = maxValue?.duration(in: positive) ?? retryDefaults.max
        if max < first {
            if let maxValue {
                maxValue.fail("must not be shorter than retry.first")
            } else {
                retryMapping.value("first")?.fail("must not be longer than retry.max (\(Int(max))s)")
            }
        }
        let giveUp = retryMapping.value("give_up_after")?.duration(in: positive) ?? retryDefaults.giveUpAfter
        retryMapping.finish()

        let chat = mapping.mapping("chat")
        let chatURL: String?
        if mapping.contains("chat") {
            chatURL = chat.required("webhook_url")?.url(schemes: ["https", "http"])
        } else {
            chatURL = nil
        }
        chat.finish()
        let nudge = mapping.mapping("nudge")
        let nudgeAfter = nudge.value("after")?.duration(in: 0...86_400) ?? NotifySettings.defaultNudgeAfter
        nudge.finish()
        mapping.finish()
        var settings = NotifySettings(
            channels: channels,
            admins: admins,
            email: email,
            sms: sms,
            retry: RetrySettings(first: first, max: max, giveUpAfter: giveUp),
            chatWebhookURL: chatURL
        )
        settings.nudgeAfter = nudgeAfter
        return settings
    }

    private static func readEmail(_ mapping: YAMLMapping, directory: String, defaults: EmailTransport) -> EmailTransport
    {
        enum Transport: String, CaseIterable { case maildir, smtp }
        let transport = mapping.value("transport")?.enumeration(Transport.self, noun: "transport") ?? .maildir
        var from = defaults.from
        if let value = mapping.value("from"), let text = value.string() {
            if Scalars.isMailbox(text) {
                from = text
            } else {
                value.fail("'\(text)' is not a mailbox (expected addr@example.org or \"Name <addr@example.org>\")")
            }
        }
        let result: EmailTransport
        switch transport {
        case .maildir:
            for key in ["url", "username", "password_file", "starttls", "ca_file", "timeout"] {
                mapping.forbid(key, because: "only used by transport smtp")
            }
            result = .maildir(from: from)
        case .smtp:
            let url = mapping.required("url")?.url(schemes: ["smtp", "smtps"]) ?? ""
            let username = mapping.string("username")
            let passwordFile = mapping.value("password_file")?.secretFile(relativeTo: directory)
            let startTLS =
                mapping.value("starttls")?.enumeration(
                    SMTPSettings.StartTLS.self,
                    noun: "starttls",
                    aliases: ["disabled": .never]
                ) ?? .required
            var caFile: String? = nil
            if let value = mapping.value("ca_file"), let path = value.path(relativeTo: directory) {
                if access(path, R_OK) == 0 { caFile = path } else { value.fail("\(path) cannot be read") }
            }
            let timeout = mapping.value("timeout")?.duration(in: 1...3600) ?? 60
            result = .smtp(
                SMTPSettings(
                    from: from,
                    url: url,
                    username: username,
                    passwordFile: passwordFile,
                    startTLS: startTLS,
                    caFile: caFile,
                    timeout: timeout
                )
            )
        }
        mapping.finish()
        return result
    }

    private static func readSMS(_ mapping: YAMLMapping, directory: String) -> SMSTransport {
        enum Transport: String, CaseIterable { case file, http }
        let transport = mapping.value("transport")?.enumeration(Transport.self, noun: "transport") ?? .file
        let result: SMSTransport
        switch transport {
        case .file:
            for key in ["url", "from", "username", "password_file"] {
                mapping.forbid(key, because: "only used by transport http")
            }
            result = .file
        case .http:
            let url = mapping.required("url")?.url(schemes: ["https", "http"])
            let from = mapping.required("from")?.phone()
            let username = mapping.string("username", required: true)
            let passwordFile = mapping.required("password_file")?.secretFile(relativeTo: directory)
            result = .http(url: url ?? "", from: from ?? "", username: username ?? "", passwordFile: passwordFile ?? "")
        }
        mapping.finish()
        return result
    }

    // MARK: - feeds

    private static func readFeeds(_ mapping: YAMLMapping) -> FeedSettings {
        let defaults = FeedSettings()
        func when(_ feed: String, _ fallback: [String: String]) -> [String: String] {
            let section = mapping.mapping(feed)
            let result = section.value("situation_room_when")?.stringMap() ?? fallback
            section.finish()
            return result
        }
        let alertmanager = when("alertmanager", defaults.alertmanagerSituationRoomWhen)
        let pagerduty = when("pagerduty", defaults.pagerdutySituationRoomWhen)
        mapping.finish()
        return FeedSettings(alertmanagerSituationRoomWhen: alertmanager, pagerdutySituationRoomWhen: pagerduty)
    }
}

/// People in admin lists, the roster and events: `name`, `email?`, `phone?` (and `role?`); at least one of
/// email and phone.
enum Contacts {
    struct Contact {
        var name: String
        var email: String?
        var phone: String?
        var role: ParticipantRole?
    }

    static func read(_ entry: YAMLMapping, roles: Bool) -> Contact? {
        let name = entry.string("name", required: true)
        let emailValue = entry.value("email")
        let email = emailValue?.email()
        let phoneValue = entry.value("phone")
        let phone = phoneValue?.phone()
        var role: ParticipantRole?
        if roles { role = entry.value("role")?.enumeration(ParticipantRole.self, noun: "role") }
        if emailValue == nil && phoneValue == nil {
            entry.diag.report(
                "\(entry.path): needs an email or a phone to be reached",
                at: entry.position
            )
        }
        guard let name, email != nil || phone != nil else { return nil }
        if (emailValue != nil && email == nil) || (phoneValue != nil && phone == nil) { return nil }
        return Contact(name: name, email: email, phone: phone, role: role)
    }
}
