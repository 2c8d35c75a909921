import Foundation
import SitroomCore

/// `etc/integrations/NAME.yaml` (SPEC §3).
enum IntegrationFile {
    static let defaultAPIURL = "https://api.zoom.us/v2"
    static let defaultOAuthURL = "https://zoom.us/oauth"

    /// Integration and host names end up in control commands (`pool drain NAME HOST`): no spaces.
    static func isIdentifier(_ text: String) -> Bool {
        func isAlphanumeric(_ b: UInt8) -> Bool {
            isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
                || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
        }
        let bytes = Array(text.utf8)
        guard let first = bytes.first, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || "._@+-".utf8.contains($0) }
    }

    /// Reads one integration; `nil` when the file has errors (all reported to `diag`).
    /// - Parameter sites: where each host's `user` is, for the loader's warnings (``ConfigSites``).
    static func read(
        name: String,
        file: String,
        root: YAMLDocument.Result,
        diag: Diagnostics,
        sites: inout ConfigSites
    ) -> IntegrationConfig? {
        if !isIdentifier(name) {
            diag.report(
                "integration name '\(name)' (the file name) must be letters, digits, '.', '_', '-', '@' or '+'",
                at: .unknown
            )
        }
        let top: YAMLMapping
        switch root {
        case .failed: return nil
        case .empty:
            diag.report(
                "the file is empty; an integration needs kind, client_id, client_secret_file and hosts",
                at: .start
            )
            return nil
        case .node(let node):
            guard let mapping = YAMLValue(node: node, path: "", diag: diag).mapping() else { return nil }
            top = mapping
        }
        let before = diag.count
        let directory = FileReading.directory(of: file)

        let kind = top.required("kind")?.enumeration(IntegrationKind.self, noun: "kind")
        let apiURL = top.value("api_url")?.url(schemes: ["https", "http"], trimSlash: true) ?? defaultAPIURL
        let oauthURL = top.value("oauth_url")?.url(schemes: ["https", "http"], trimSlash: true) ?? defaultOAuthURL
        var accountID: String?
        var redirectURI: String?
        switch kind {
        case .zoomS2S:
            accountID = top.string("account_id", required: true)
            top.forbid("redirect_uri", because: "only used by kind zoom-oauth")
        case .zoomOAuth:
            redirectURI = top.required("redirect_uri")?.url(schemes: ["https", "http"])
            top.forbid("account_id", because: "only used by kind zoom-s2s (a zoom-oauth app is authorized per host)")
        case nil:
            accountID = top.string("account_id")
            redirectURI = top.value("redirect_uri")?.url(schemes: ["https", "http"])
        }
        let clientID = top.string("client_id", required: true)
        let clientSecretFile = top.required("client_secret_file")?.secretFile(relativeTo: directory)
        let webhookSecretFile = top.value("webhook_secret_file")?.secretFile(relativeTo: directory)

        let rateLimit = top.mapping("rate_limit")
        let mediumPerSecond = rateLimit.value("medium_per_second")?.int(in: 1...10_000) ?? 20
        rateLimit.finish()

        let hosts = readHosts(top.required("hosts"), diag: diag, users: &sites.hostUsers[name, default: [:]])
        let meeting = readMeeting(top.mapping("meeting"), diag: diag)
        let priority = top.value("priority")?.int(in: -1_000_000...1_000_000) ?? 10
        let requestTimeout = top.value("request_timeout")?.duration(in: 1...300) ?? 30
        var refreshIdleAfter = IntegrationConfig.defaultRefreshIdleAfter
        if kind == .zoomS2S {
            top.forbid(
                "refresh_idle_after",
                because: "only used by kind zoom-oauth (a zoom-s2s app has no refresh token)"
            )
        } else if let value = top.value("refresh_idle_after")?.duration(in: 1...(60 * 86_400)) {
            // At most 60 days: well inside the 90 days a refresh token may live.
            refreshIdleAfter = value
        }
        let events = readEvents(top.mapping("events"), webhookSecretFile: webhookSecretFile, kind: kind)
        top.finish()

        guard diag.count == before, let kind, let clientID, let clientSecretFile, let hosts else { return nil }
        var config = IntegrationConfig(
            name: name,
            file: file,
            kind: kind,
            apiURL: apiURL,
            oauthURL: oauthURL,
            accountID: accountID,
            clientID: clientID,
            clientSecretFile: clientSecretFile,
            webhookSecretFile: webhookSecretFile,
            redirectURI: redirectURI,
            mediumPerSecond: mediumPerSecond,
            hosts: hosts,
            meeting: meeting,
            priority: priority,
            requestTimeout: requestTimeout,
            refreshIdleAfter: refreshIdleAfter
        )
        config.events = events
        return config
    }

    /// `events: { websocket: { subscription_id: ID, url: wss://... }, webhook: true }`.
    private static func readEvents(
        _ mapping: YAMLMapping,
        webhookSecretFile: String?,
        kind: IntegrationKind?
    ) -> MeetingEventSources {
        var sources = MeetingEventSources()
        if let value = mapping.value("websocket"), kind == .zoomOAuth {
            // Zoom's WebSocket subscriptions take an account-level (account_credentials) token.
            value.fail("needs kind zoom-s2s (a WebSocket event subscription connects with the account's token)")
        } else if let value = mapping.value("websocket"), let socket = value.mapping() {
            let id = socket.string("subscription_id", required: true)
            var url = MeetingEventSources.defaultWebSocketURL
            if let value = socket.value("url"), let text = value.url(schemes: ["wss", "ws"], trimSlash: true) {
                let parts = URLComponents(string: text)
                let host = parts?.host?.lowercased() ?? ""
                if parts?.query != nil || parts?.fragment != nil {
                    value.fail("must have no query or fragment (sitroomd adds subscriptionId and access_token)")
                } else if parts?.scheme?.lowercased() == "ws",
                    !["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
                {
                    value.fail(
                        "ws:// would send the account's token in clear text; use wss:// (ws:// only for a simulator on loopback)"
                    )
                } else {
                    url = text
                }
            }
            socket.finish()
            if let id { sources.websocket = .init(subscriptionID: id, url: url) }
        }
        if let value = mapping.value("webhook"), let on = value.bool() {
            if on && webhookSecretFile == nil {
                value.fail("needs webhook_secret_file (the app's Secret Token verifies every event)")
            }
            sources.webhook = on
        }
        mapping.finish()
        return sources
    }

    private static func readHosts(
        _ value: YAMLValue?,
        diag: Diagnostics,
        users: inout [String: Position]
    ) -> [HostConfig]? {
        guard let value, let items = value.list() else { return nil }
        guard !items.isEmpty else {
            value.fail("must list at least one host")
            return nil
        }
        var hosts: [HostConfig] = []
        var idLines: [String: Int] = [:]
        var userLines: [String: Int] = [:]
        var ok = true
        for item in items {
            guard let entry = item.mapping() else {
                ok = false
                continue
            }
            let idValue = entry.required("id")
            var id = idValue?.string()
            if let text = id, let idValue {
                if !isIdentifier(text) {
                    idValue.fail(
                        "'\(text)' must be letters, digits, '.', '_', '-', '@' or '+' (it is used in commands)"
                    )
                    id = nil
                } else if let line = idLines[text] {
                    idValue.fail("duplicate host id '\(text)' (first at line \(line))")
                    id = nil
                } else {
                    idLines[text] = idValue.position.line
                }
            }
            let userValue = entry.required("user")
            var user = userValue?.string()
            if let text = user, let userValue {
                if let line = userLines[text.lowercased()] {
                    userValue.fail("Zoom user '\(text)' is already a host of this pool (line \(line))")
                    user = nil
                } else {
                    userLines[text.lowercased()] = userValue.position.line
                    users[text.lowercased()] = userValue.position
                }
            }
            let concurrent = entry.value("concurrent_meetings")?.int(in: 1...1000) ?? 1
            let daily = entry.value("daily_create_limit")?.int(in: 1...1_000_000) ?? 100
            entry.finish()
            guard let id, let user else {
                ok = false
                continue
            }
            hosts.append(HostConfig(id: id, user: user, concurrentMeetings: concurrent, dailyCreateLimit: daily))
        }
        return ok ? hosts : nil
    }

    private static func readMeeting(_ meeting: YAMLMapping, diag: Diagnostics) -> MeetingSettings {
        let defaults = MeetingSettings()
        var topic = defaults.topic
        if let value = meeting.value("topic"), let text = value.string() {
            // The topic is rendered when the meeting is created: no person or admin is known then.
            TemplateCheck.check(
                text,
                prefix: "\(value.path): ",
                base: value.position,
                roots: ["incident", "room", "integration"],
                diag: diag
            )
            topic = text
        }
        let settings = MeetingSettings(
            topic: topic,
            waitingRoom: meeting.value("waiting_room")?.bool() ?? defaults.waitingRoom,
            joinBeforeHost: meeting.value("join_before_host")?.bool() ?? defaults.joinBeforeHost,
            passcode: meeting.value("passcode")?.enumeration(MeetingSettings.Passcode.self, noun: "passcode")
                ?? defaults.passcode,
            autoRecording: meeting.value("auto_recording")?.enumeration(
                MeetingSettings.AutoRecording.self,
                noun: "auto_recording"
            ) ?? defaults.autoRecording,
            commanderAsAlternativeHost: meeting.value("commander_as_alternative_host")?.bool()
                ?? defaults.commanderAsAlternativeHost,
            onResolve: meeting.value("on_resolve")?.enumeration(MeetingSettings.OnResolve.self, noun: "on_resolve")
                ?? defaults.onResolve,
            // 6 to 10: Zoom's maximum is 10, and a shorter passcode fails accounts that require 6 or more.
            passcodeLength: meeting.value("passcode_length")?.int(in: 6...10) ?? defaults.passcodeLength
        )
        meeting.finish()
        return settings
    }
}
