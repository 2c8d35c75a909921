import Foundation
import SitroomCore
import Testing

@testable import SitroomConfig

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ValidConfiguration {
    @Test func fullEtcLoadsWithDefaultsApplied() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            let config = try ConfigLoader.load(etcDirectory: fixture.etc)
            #expect(config.etcDirectory == fixture.etc)

            // sitroom.yaml: given values and defaults.
            let daemon = config.daemon
            #expect(daemon.conference.component == .video)
            #expect(daemon.conference.integrations == ["zoom-main"])
            #expect(
                daemon.conference.rules == [
                    ConferenceRule(match: ["team": "payments-sre"], integrations: ["zoom-backup"])
                ]
            )
            #expect(daemon.conference.followUp == [.email, .sms])
            #expect(daemon.reopenHoldDown == 900)
            #expect(daemon.notify.channels == [.email, .sms])
            #expect(daemon.notify.admins == [Admin(name: "Ops Admin", email: "ops-admin@example.org")])
            #expect(daemon.notify.email == .maildir(from: "sitroom <sitroom@example.org>"))
            #expect(daemon.notify.sms == .file)
            #expect(daemon.notify.retry == RetrySettings(first: 30, max: 3600, giveUpAfter: 172_800))
            #expect(daemon.notify.chatWebhookURL == nil)
            #expect(daemon.feeds == FeedSettings())
            #expect(daemon.spool == SpoolSettings())
            #expect(daemon.storeMapSize == 1 << 30)
            #expect(daemon.controlGroup == nil)

            // integrations: defaults for zoom-main, every key for zoom-backup.
            #expect(config.integrations.keys.sorted() == ["zoom-backup", "zoom-main"])
            let main = try #require(config.integrations["zoom-main"])
            #expect(main.file == fixture.etc + "/integrations/zoom-main.yaml")
            #expect(main.kind == .zoomS2S)
            #expect(main.apiURL == "https://api.zoom.us/v2")
            #expect(main.oauthURL == "https://zoom.us/oauth")
            #expect(main.accountID == "AbCdEf123")
            #expect(main.clientID == "abc123")
            #expect(main.clientSecretFile == root + "/secrets/zoom-main.secret")
            #expect(main.webhookSecretFile == nil)
            #expect(main.redirectURI == nil)
            #expect(main.mediumPerSecond == 20)
            #expect(main.hosts == [HostConfig(id: "bridge-1", user: "bridge-1@example.com")])
            #expect(main.meeting == MeetingSettings())
            #expect(main.priority == 10)

            let backup = try #require(config.integrations["zoom-backup"])
            #expect(backup.kind == .zoomOAuth)
            #expect(backup.apiURL == "http://127.0.0.1:9000/v2")
            #expect(backup.redirectURI == "http://127.0.0.1:8080/zoom/callback")
            #expect(backup.clientSecretFile == root + "/secrets/zoom-backup.secret")
            #expect(backup.webhookSecretFile == root + "/secrets/zoom-backup.webhook")
            #expect(backup.mediumPerSecond == 60)
            #expect(
                backup.hosts == [
                    HostConfig(id: "b1", user: "b1@example.com", concurrentMeetings: 2, dailyCreateLimit: 50),
                    HostConfig(id: "b2", user: "b2@example.com"),
                ]
            )
            #expect(
                backup.meeting
                    == MeetingSettings(
                        topic: "War room {{incident.id}}: {{incident.title}}",
                        waitingRoom: true,
                        passcode: .none,
                        autoRecording: .cloud,
                        onResolve: .end
                    )
            )
            #expect(backup.priority == 20)

            #expect(
                config.roster.teams == [
                    "payments-sre": [
                        Participant(name: "Ada", email: "ada@example.com", role: .commander),
                        Participant(name: "Bob", phone: "+15005550006"),
                    ]
                ]
            )
            #expect(config.templates.keys.sorted() == ["room-ready.email", "room-ready.sms"])
            #expect(config.templates["room-ready.sms"] == "{{incident.title}}: {{room.join_url}}\n")
        }
    }

    @Test func everySitroomKeyIsRead() throws {
        let text = """
            conference:
              component: meeting
              follow_up: [sms]
              integrations: [zoom-backup, zoom-main]
              rules:
                - match: { team: payments-sre, severity: critical }
                  integrations: [zoom-backup]
                - match: {}
                  integrations: [zoom-main]
            reopen_hold_down: 2h
            notify:
              channels: [email]
              admins:
                - { name: Ops, email: ops@example.org, phone: "+4915112345678" }
                - { name: Pager, phone: "+15005550006" }
              email:
                transport: smtp
                from: sitroom@example.org
                url: smtps://smtp.example.org:465
                username: sitroom
                password_file: ../secrets/smtp
              sms:
                transport: http
                url: https://api.example-sms.test/2010-04-01/Accounts/AC1/Messages.json
                from: "+15005550006"
                username: AC1
                password_file: /ROOT/secrets/sms
              retry: { first: 10s, max: 30m, give_up_after: 1d }
              chat: { webhook_url: "https://hooks.example.org/services/T0/B0/x" }
            feeds:
              alertmanager: { situation_room_when: { severity: page, env: prod } }
              pagerduty: { situation_room_when: { urgency: high } }
            spool: { max_file_size: 512KiB, keep_cur: 7d, keep_rejected: 14d, tmp_stale_after: 6h }
            store: { map_size: 2GiB }
            control: { group: root }

            """
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root, overrides: ["sitroom.yaml": text])
            let daemon = try ConfigLoader.load(etcDirectory: fixture.etc).daemon
            #expect(daemon.conference.component == .meeting)
            #expect(daemon.conference.followUp == [.sms])
            #expect(daemon.conference.integrations == ["zoom-backup", "zoom-main"])
            #expect(
                daemon.conference.rules == [
                    ConferenceRule(
                        match: ["team": "payments-sre", "severity": "critical"],
                        integrations: ["zoom-backup"]
                    ),
                    ConferenceRule(match: [:], integrations: ["zoom-main"]),
                ]
            )
            #expect(daemon.reopenHoldDown == 7200)
            #expect(daemon.notify.channels == [.email])
            #expect(
                daemon.notify.admins == [
                    Admin(name: "Ops", email: "ops@example.org", phone: "+4915112345678"),
                    Admin(name: "Pager", phone: "+15005550006"),
                ]
            )
            #expect(
                daemon.notify.email
                    == .smtp(
                        SMTPSettings(
                            from: "sitroom@example.org",
                            url: "smtps://smtp.example.org:465",
                            username: "sitroom",
                            passwordFile: root + "/secrets/smtp"
                        )
                    )
            )
            #expect(
                daemon.notify.sms
                    == .http(
                        url: "https://api.example-sms.test/2010-04-01/Accounts/AC1/Messages.json",
                        from: "+15005550006",
                        username: "AC1",
                        passwordFile: root + "/secrets/sms"
                    )
            )
            #expect(daemon.notify.retry == RetrySettings(first: 10, max: 1800, giveUpAfter: 86_400))
            #expect(daemon.notify.chatWebhookURL == "https://hooks.example.org/services/T0/B0/x")
            #expect(daemon.feeds.alertmanagerSituationRoomWhen == ["severity": "page", "env": "prod"])
            #expect(daemon.feeds.pagerdutySituationRoomWhen == ["urgency": "high"])
            #expect(
                daemon.spool
                    == SpoolSettings(
                        maxFileSize: 512 << 10,
                        keepCur: 7 * 86_400,
                        keepRejected: 14 * 86_400,
                        tmpStaleAfter: 21_600
                    )
            )
            #expect(daemon.storeMapSize == 2 << 30)
            #expect(daemon.controlGroup == "root")
        }
    }

    @Test func emptySitroomYAMLMeansAllDefaultsAndRosterAndTemplatesAreOptional() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(
                root: root,
                overrides: [
                    "sitroom.yaml": "# nothing yet\n", "roster.yaml": nil,
                    "templates/room-ready.email.mustache": nil, "templates/room-ready.sms.mustache": nil,
                ]
            )
            let config = try ConfigLoader.load(etcDirectory: fixture.etc)
            #expect(config.daemon == DaemonSettings())
            #expect(config.roster == Roster())
            #expect(config.templates.isEmpty)
        }
    }

    @Test func ignoresDotfilesBackupsAndOtherSuffixes() throws {
        try withTemporaryDirectory { root in
            let garbage = "this: is: not: yaml: [\n"
            let fixture = try EtcFixture(
                root: root,
                overrides: [
                    "integrations/.zoom-main.yaml.swp": garbage, "integrations/zoom-main.yaml~": garbage,
                    "integrations/#zoom-main.yaml#": garbage, "integrations/.hidden.yaml": garbage,
                    "integrations/README.md": garbage, "integrations/zoom-main.yaml.bak": garbage,
                    "templates/room-ready.email.mustache~": garbage, "templates/.room-ended.sms.mustache": garbage,
                ]
            )
            let config = try ConfigLoader.load(etcDirectory: fixture.etc)
            #expect(config.integrations.keys.sorted() == ["zoom-backup", "zoom-main"])
            #expect(config.templates.keys.sorted() == ["room-ready.email", "room-ready.sms"])
        }
    }

    @Test func relativeEtcDirectoryIsMadeAbsolute() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            let previous = FileManager.default.currentDirectoryPath
            defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
            _ = FileManager.default.changeCurrentDirectoryPath(root)
            let config = try ConfigLoader.load(etcDirectory: "etc")
            #expect(config.etcDirectory == fixture.etc)
            #expect(config.integrations["zoom-main"]?.clientSecretFile == root + "/secrets/zoom-main.secret")
        }
    }
}

/// One test per strict YAML rule (SPEC §3), each asserting the message and its file:line:col.
@Suite struct StrictYAML {
    static let mainFile = "ROOT/etc/integrations/zoom-main.yaml"

    @Test func unknownKeyIsAnError() throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "colour: blue\n")
        #expect(
            errors == [
                "\(Self.mainFile):8:1: colour: unknown key (expected kind, api_url, oauth_url, account_id, client_id, client_secret_file, webhook_secret_file, rate_limit, hosts, meeting, priority, request_timeout, events)"
            ]
        )
    }

    @Test func unknownNestedKeyIsAnError() throws {
        let errors = try loadErrors(
            "integrations/zoom-main.yaml",
            EtcFixture.zoomMain + "meeting:\n  waitingroom: true\n"
        )
        #expect(errors.count == 1)
        #expect(
            errors.first?.hasPrefix("\(Self.mainFile):9:3: meeting.waitingroom: unknown key (expected topic,") == true
        )
    }

    @Test func duplicateKeyIsAnErrorAtTheSecondOccurrence() throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "client_id: again\n")
        #expect(errors == ["\(Self.mainFile):8:1: duplicate key 'client_id' (first at line 3)"])
    }

    @Test func duplicateKeyInNestedBlockMappingIsFoundAtItsColumn() throws {
        let text =
            EtcFixture.zoomMain + """
                meeting:
                  topic: "A {{incident.title}}"
                  waiting_room: true
                  topic: "B"

                """
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(errors == ["\(Self.mainFile):11:3: duplicate key 'topic' (first at line 9)"])
        let hosts = EtcFixture.zoomMain + "    id: again\n"
        #expect(
            try loadErrors("integrations/zoom-main.yaml", hosts) == [
                "\(Self.mainFile):8:5: duplicate key 'id' (first at line 6)"
            ]
        )
    }

    @Test func duplicateKeyInFlowMappingIsAnError() throws {
        let errors = try loadErrors(
            "sitroom.yaml",
            "notify:\n  retry: { first: 10s, max: 1h, first: 20s }\n"
        )
        #expect(errors == ["ROOT/etc/sitroom.yaml:2:33: duplicate key 'first' (first at line 2)"])
    }

    @Test func anchorsAndAliasesAreRejected() throws {
        let text = """
            kind: zoom-s2s
            account_id: &acct AbCdEf123
            client_id: *acct
            client_secret_file: ../../secrets/zoom-main.secret
            hosts:
              - id: bridge-1
                user: bridge-1@example.com

            """
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(
            errors == [
                "\(Self.mainFile):2:13: anchors and aliases are not allowed (&acct); write the value out",
                "\(Self.mainFile):3:12: anchors and aliases are not allowed (*acct)",
            ]
        )
    }

    @Test func anchoredMappingAndMergeKeyAreRejected() throws {
        let text = """
            defaults: &d { waiting_room: true }
            meeting:
              <<: *d

            """
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + text)
        #expect(errors.contains("\(Self.mainFile):8:11: anchors and aliases are not allowed (&d); write the value out"))
        #expect(errors.contains("\(Self.mainFile):10:7: anchors and aliases are not allowed (*d)"))
    }

    @Test func undefinedAliasIsRejected() throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "priority: *nope\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("\(Self.mainFile):8:11: anchors and aliases are not allowed") == true)
    }

    @Test func filesOverOneMiBAreRejected() throws {
        let big = EtcFixture.zoomMain + "# " + String(repeating: "x", count: 1 << 20) + "\n"
        let errors = try loadErrors("integrations/zoom-main.yaml", big)
        #expect(errors == ["\(Self.mainFile):0:0: file is \(big.utf8.count) bytes, larger than the limit of 1 MiB"])
    }

    @Test func invalidUTF8IsRejected() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            var bytes = Array("conference:\n  component: vid".utf8)
            bytes += [0xC3, 0x28]
            bytes += Array("eo\n".utf8)
            try Data(bytes).write(to: URL(fileURLWithPath: fixture.etc + "/sitroom.yaml"))
            #expect(fixture.errors() == ["ROOT/etc/sitroom.yaml:2:17: invalid UTF-8 (byte 0xc3)"])
        }
    }

    @Test func syntaxErrorNamesLineAndColumn() throws {
        let errors = try loadErrors("sitroom.yaml", "conference:\n  component: [video\nnotify: {}\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("ROOT/etc/sitroom.yaml:3:") == true)
        #expect(errors.first?.contains("invalid YAML:") == true)
    }

    /// Values YAML 1.1 would coerce, where a string is expected (`client_id`, line 3, column 12).
    @Test(arguments: [
        ("yes", "a boolean"), ("no", "a boolean"), ("NO", "a boolean"), ("On", "a boolean"), ("off", "a boolean"),
        ("y", "a boolean"), ("N", "a boolean"), ("true", "a boolean"), ("010", "an integer"), ("0755", "an integer"),
        ("1_000", "an integer"), ("42", "an integer"), ("0x1F", "an integer"), ("22:30", "a sexagesimal integer"),
        ("1.5", "a float"), ("1e3", "a float"), (".inf", "a float"), ("2024-05-01", "a timestamp"),
    ])
    func coercibleStringIsAnError(value: String, kind: String) throws {
        let text = EtcFixture.zoomMain.replacingOccurrences(of: "client_id: abc123", with: "client_id: \(value)")
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(
            errors == [
                "\(Self.mainFile):3:12: client_id: must be a string, but \(value) is read as \(kind) by YAML; quote it (\"\(value)\")"
            ]
        )
    }

    @Test(arguments: ["\"yes\"", "'010'", "!!str 22:30", "\"42\""])
    func quotedOrTaggedStringIsAccepted(value: String) throws {
        let text = EtcFixture.zoomMain.replacingOccurrences(of: "client_id: abc123", with: "client_id: \(value)")
        #expect(try loadErrors("integrations/zoom-main.yaml", text) == [])
    }

    @Test(arguments: ["yes", "True", "on", "NO", "off", "\"true\"", "1"])
    func booleansAreOnlyTrueOrFalse(value: String) throws {
        let errors = try loadErrors(
            "integrations/zoom-main.yaml",
            EtcFixture.zoomMain + "meeting:\n  waiting_room: \(value)\n"
        )
        #expect(errors == ["\(Self.mainFile):9:17: meeting.waiting_room: must be true or false, not \(value)"])
    }

    /// Where a number is expected, YAML 1.1's octal, sexagesimal and boolean readings are refused too.
    @Test(arguments: ["010", "0755", "1_000", "+5", "0x10", "1.0", "12abc", "22:30", "off"])
    func integersArePlainDecimal(value: String) throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "priority: \(value)\n")
        #expect(
            errors == [
                "\(Self.mainFile):8:11: priority: must be a plain decimal integer (no leading zeros, underscores or signs), not \(value)"
            ]
        )
    }

    @Test func quotedIntegerIsAnError() throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "priority: \"5\"\n")
        #expect(errors == ["\(Self.mainFile):8:11: priority: must be a number, not the quoted string \"5\""])
    }

    @Test func wrongShapeIsAnError() throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "meeting: [a, b]\n")
        #expect(errors == ["\(Self.mainFile):8:10: meeting: must be a mapping (key: value), not a list"])
    }

    @Test func rootMustBeAMapping() throws {
        let errors = try loadErrors("sitroom.yaml", "- a\n- b\n")
        #expect(errors == ["ROOT/etc/sitroom.yaml:1:1: must be a mapping (key: value), not a list"])
    }

    @Test func multipleDocumentsAreAnError() throws {
        let errors = try loadErrors("sitroom.yaml", "reopen_hold_down: 1m\n---\nreopen_hold_down: 2m\n")
        #expect(errors.count == 1)
        #expect(errors.first?.contains("expected a single document") == true)
    }

    @Test(arguments: [
        ("30s", 30.0), ("5m", 300), ("2h", 7200), ("2d", 172_800), ("0s", 0),
    ])
    func durations(text: String, seconds: Double) throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root, overrides: ["sitroom.yaml": "reopen_hold_down: \(text)\n"])
            #expect(try ConfigLoader.load(etcDirectory: fixture.etc).daemon.reopenHoldDown == seconds)
        }
    }

    @Test(arguments: ["900", "15", "1.5h", "15 m", "1w", "15min", "-5m"])
    func badDurations(text: String) throws {
        let errors = try loadErrors("sitroom.yaml", "reopen_hold_down: \(text)\n")
        #expect(
            errors == [
                "ROOT/etc/sitroom.yaml:1:19: reopen_hold_down: must be a duration like 30s, 5m, 2h or 2d, not '\(text)'"
            ]
        )
    }

    @Test(arguments: [("1MiB", 1 << 20), ("4096KiB", 4 << 20), ("1GiB", 1 << 30), ("2097152", 2 << 20)])
    func sizes(text: String, bytes: Int) throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root, overrides: ["sitroom.yaml": "store: { map_size: \(text) }\n"])
            #expect(try ConfigLoader.load(etcDirectory: fixture.etc).daemon.storeMapSize == bytes)
        }
    }

    @Test(arguments: ["1MB", "1 MiB", "1.5GiB", "lots"])
    func badSizes(text: String) throws {
        let errors = try loadErrors("sitroom.yaml", "store:\n  map_size: \(text)\n")
        #expect(
            errors == [
                "ROOT/etc/sitroom.yaml:2:13: store.map_size: must be a size like 512KiB, 1MiB, 1GiB or a number of bytes, not '\(text)'"
            ]
        )
    }
}

/// integrations/NAME.yaml rules.
@Suite struct IntegrationRules {
    static let mainFile = "ROOT/etc/integrations/zoom-main.yaml"

    @Test(arguments: [
        ("kind", "kind: zoom-s2s\n"), ("client_id", "client_id: abc123\n"),
        ("client_secret_file", "client_secret_file: ../../secrets/zoom-main.secret\n"),
        ("account_id", "account_id: AbCdEf123\n"),
    ])
    func requiredKeys(key: String, line: String) throws {
        let text = EtcFixture.zoomMain.replacingOccurrences(of: line, with: "")
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(errors == ["\(Self.mainFile):1:1: \(key): required field is missing"])
    }

    @Test func hostsAreRequiredAndNonEmpty() throws {
        let withoutHosts =
            "kind: zoom-s2s\naccount_id: A\nclient_id: c\nclient_secret_file: ../../secrets/zoom-main.secret\n"
        #expect(
            try loadErrors("integrations/zoom-main.yaml", withoutHosts)
                == ["\(Self.mainFile):1:1: hosts: required field is missing"]
        )
        #expect(
            try loadErrors("integrations/zoom-main.yaml", withoutHosts + "hosts: []\n")
                == ["\(Self.mainFile):5:8: hosts: must list at least one host"]
        )
    }

    @Test func redirectURIIsRequiredForZoomOAuth() throws {
        let text = EtcFixture.zoomBackup.replacingOccurrences(
            of: "redirect_uri: http://127.0.0.1:8080/zoom/callback\n",
            with: ""
        )
        let errors = try loadErrors("integrations/zoom-backup.yaml", text)
        #expect(errors == ["ROOT/etc/integrations/zoom-backup.yaml:1:1: redirect_uri: required field is missing"])
    }

    @Test func keysOfTheOtherKindAreErrors() throws {
        let errors = try loadErrors(
            "integrations/zoom-main.yaml",
            EtcFixture.zoomMain + "redirect_uri: https://x.example.org/cb\n"
        )
        #expect(errors == ["\(Self.mainFile):8:1: redirect_uri: only used by kind zoom-oauth"])
    }

    @Test func unknownKind() throws {
        let text = EtcFixture.zoomMain.replacingOccurrences(of: "kind: zoom-s2s", with: "kind: zoom-jwt")
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(errors == ["\(Self.mainFile):1:7: kind: unknown kind 'zoom-jwt' (expected zoom-s2s, zoom-oauth)"])
    }

    @Test(arguments: [
        ("ftp://api.zoom.us/v2", "'ftp://api.zoom.us/v2' must use https or http, not ftp"),
        ("api.zoom.us/v2", "'api.zoom.us/v2' is not a URL (expected https or http)"),
        ("https:///v2", "'https:///v2' has no host"),
        ("https://u:pw@api.zoom.us/v2", "must not carry a password; put it in a password_file"),
    ])
    func badURLs(url: String, message: String) throws {
        let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "api_url: \(url)\n")
        #expect(errors == ["\(Self.mainFile):8:10: api_url: \(message)"])
    }

    @Test func duplicateHostIDs() throws {
        let text = EtcFixture.zoomMain + "  - id: bridge-1\n    user: other@example.com\n"
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(errors == ["\(Self.mainFile):8:9: hosts[1].id: duplicate host id 'bridge-1' (first at line 6)"])
    }

    @Test func hostNeedsAUser() throws {
        let text = EtcFixture.zoomMain + "  - id: bridge-2\n"
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(errors == ["\(Self.mainFile):8:5: hosts[1].user: required field is missing"])
    }

    @Test func hostLimitsMustBePositive() throws {
        let text = EtcFixture.zoomMain + "    concurrent_meetings: 0\n"
        let errors = try loadErrors("integrations/zoom-main.yaml", text)
        #expect(errors == ["\(Self.mainFile):8:26: hosts[0].concurrent_meetings: must be between 1 and 1000, not 0"])
    }

    @Test func secretFileReadableByOthersIsRefused() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            chmod(root + "/secrets/zoom-main.secret", 0o644)
            #expect(
                fixture.errors() == [
                    "\(Self.mainFile):4:21: client_secret_file: ROOT/secrets/zoom-main.secret is readable by group or others (mode 0644); chmod 600 it"
                ]
            )
        }
    }

    @Test func secretFileWritableByGroupIsRefused() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            chmod(root + "/secrets/zoom-backup.webhook", 0o620)
            #expect(
                fixture.errors() == [
                    "ROOT/etc/integrations/zoom-backup.yaml:4:22: webhook_secret_file: ROOT/secrets/zoom-backup.webhook is accessible by group or others (mode 0620); chmod 600 it"
                ]
            )
        }
    }

    @Test func missingSecretFileAndDirectoryAsSecret() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            try FileManager.default.removeItem(atPath: root + "/secrets/zoom-main.secret")
            try FileManager.default.createDirectory(
                atPath: root + "/secrets/zoom-main.secret",
                withIntermediateDirectories: false
            )
            chmod(root + "/secrets/zoom-main.secret", 0o700)
            try FileManager.default.removeItem(atPath: root + "/secrets/zoom-backup.secret")
            #expect(
                fixture.errors() == [
                    "ROOT/etc/integrations/zoom-backup.yaml:3:21: client_secret_file: ROOT/secrets/zoom-backup.secret does not exist",
                    "\(Self.mainFile):4:21: client_secret_file: ROOT/secrets/zoom-main.secret is not a regular file",
                ]
            )
        }
    }

    @Test func secretContentsNeverAppearInErrors() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            chmod(root + "/secrets/zoom-main.secret", 0o666)
            let errors = fixture.errors()
            #expect(errors.count == 1)
            #expect(!errors.joined().contains("s3cret"))
        }
    }

    @Test func secretFileBehindASymlinkIsChecked() throws {
        // Kubernetes mounts secrets as symlinks into ..data/: the target's mode counts.
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            try write("x\n", to: root + "/secrets/..data/real", mode: 0o600)
            try FileManager.default.removeItem(atPath: root + "/secrets/zoom-main.secret")
            try FileManager.default.createSymbolicLink(
                atPath: root + "/secrets/zoom-main.secret",
                withDestinationPath: "..data/real"
            )
            #expect(fixture.errors() == [])
        }
    }

    @Test func badIntegrationFileName() throws {
        let errors = try loadErrors("integrations/zoom main.yaml", EtcFixture.zoomMain)
        #expect(
            errors == [
                "ROOT/etc/integrations/zoom main.yaml:0:0: integration name 'zoom main' (the file name) must be letters, digits, '.', '_', '-', '@' or '+'"
            ]
        )
    }

    @Test func meetingTopicIsCheckedAsATemplate() throws {
        let errors = try loadErrors(
            "integrations/zoom-main.yaml",
            EtcFixture.zoomMain + "meeting:\n  topic: \"Room {{incident.name}}\"\n"
        )
        #expect(
            errors == [
                "\(Self.mainFile):9:10: meeting.topic: unknown variable 'incident.name' (incident has id, title, severity, team, stage)"
            ]
        )
    }

    @Test func meetingTopicCannotNamePeople() throws {
        let errors = try loadErrors(
            "integrations/zoom-main.yaml",
            EtcFixture.zoomMain + "meeting:\n  topic: \"Room for {{person.name}}\"\n"
        )
        #expect(
            errors == [
                "\(Self.mainFile):9:10: meeting.topic: unknown variable 'person.name' (expected incident, room, integration, e.g. incident.title)"
            ]
        )
    }

    @Test(arguments: [
        ("passcode: always", "10:13: meeting.passcode: unknown passcode 'always' (expected random, none)"),
        (
            "auto_recording: yes",
            "10:19: meeting.auto_recording: unknown auto_recording 'yes' (expected none, local, cloud)"
        ),
        ("on_resolve: delete", "10:15: meeting.on_resolve: unknown on_resolve 'delete' (expected end_and_delete, end)"),
    ])
    func meetingEnumerations(line: String, message: String) throws {
        let errors = try loadErrors(
            "integrations/zoom-main.yaml",
            EtcFixture.zoomMain + "priority: 1\nmeeting:\n  \(line)\n"
        )
        #expect(errors == ["\(Self.mainFile):\(message)"])
    }

    @Test func passcodeLengthAndIdleRefresh() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(
                root: root,
                overrides: [
                    "integrations/zoom-main.yaml": EtcFixture.zoomMain + "meeting: { passcode_length: 8 }\n",
                    "integrations/zoom-backup.yaml": EtcFixture.zoomBackup + "refresh_idle_after: 7d\n",
                ]
            )
            let config = try ConfigLoader.load(etcDirectory: fixture.etc)
            #expect(config.integrations["zoom-main"]?.meeting.passcodeLength == 8)
            #expect(config.integrations["zoom-main"]?.refreshIdleAfter == Double(30 * 86_400))  // the default
            #expect(config.integrations["zoom-backup"]?.meeting.passcodeLength == 10)  // the default: Zoom's maximum
            #expect(config.integrations["zoom-backup"]?.refreshIdleAfter == Double(7 * 86_400))
        }
        for (line, fragment) in [
            ("meeting: { passcode_length: 11 }", "meeting.passcode_length"),
            ("meeting: { passcode_length: 5 }", "meeting.passcode_length"),
        ] {
            let errors = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + line + "\n")
            #expect(errors.count == 1 && errors[0].contains(fragment), "\(errors)")
        }
        // A refresh token may live only 90 days: at most 60d; and zoom-s2s has none to refresh.
        let long = try loadErrors("integrations/zoom-backup.yaml", EtcFixture.zoomBackup + "refresh_idle_after: 61d\n")
        #expect(long.count == 1 && long[0].contains("refresh_idle_after"), "\(long)")
        let s2s = try loadErrors("integrations/zoom-main.yaml", EtcFixture.zoomMain + "refresh_idle_after: 7d\n")
        #expect(
            s2s == [
                "\(Self.mainFile):8:1: refresh_idle_after: only used by kind zoom-oauth (a zoom-s2s app has no refresh token)"
            ]
        )
    }
}

/// sitroom.yaml rules.
@Suite struct SitroomRules {
    static let file = "ROOT/etc/sitroom.yaml"

    @Test func integrationWithoutAFileIsAnErrorAtItsLine() throws {
        let text = """
            conference:
              integrations: [zoom-main, zoom-gone]
              rules:
                - match: { severity: critical }
                  integrations:
                    - zoom-missing

            """
        let errors = try loadErrors("sitroom.yaml", text)
        #expect(
            errors == [
                "\(Self.file):2:29: conference.integrations[1]: no integration named 'zoom-gone' (no file integrations/zoom-gone.yaml; have: zoom-backup, zoom-main)",
                "\(Self.file):6:11: conference.rules[0].integrations[0]: no integration named 'zoom-missing' (no file integrations/zoom-missing.yaml; have: zoom-backup, zoom-main)",
            ]
        )
    }

    @Test func ruleMatchKeysAreTeamAndSeverity() throws {
        let text = "conference:\n  rules:\n    - match: { urgency: high }\n      integrations: [zoom-main]\n"
        let errors = try loadErrors("sitroom.yaml", text)
        #expect(
            errors == ["\(Self.file):3:16: conference.rules[0].match.urgency: unknown key (expected team, severity)"]
        )
    }

    @Test(arguments: [
        ("ops@", "'ops@' is not a valid email address"),
        ("ops@example", "'ops@example' is not a valid email address"),
        ("ops@@example.org", "'ops@@example.org' is not a valid email address"),
        ("\"ops admin@example.org\"", "'ops admin@example.org' is not a valid email address"),
        ("ops@example..org", "'ops@example..org' is not a valid email address"),
    ])
    func adminEmailsAreValidated(email: String, message: String) throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  admins:\n    - name: Ops\n      email: \(email)\n")
        #expect(errors == ["\(Self.file):4:14: notify.admins[0].email: \(message)"])
    }

    @Test func localhostEmailIsAccepted() throws {
        #expect(try loadErrors("sitroom.yaml", "notify:\n  admins: [{ name: Root, email: root@localhost }]\n") == [])
    }

    @Test(arguments: [
        "\"+0123456789\"", "\"+1234567\"", "\"+1234567890123456\"", "\"0049151123456\"", "\"+49 151 123456\"",
    ])
    func phonesAreE164(phone: String) throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  admins:\n    - name: Ops\n      phone: \(phone)\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("\(Self.file):4:14: notify.admins[0].phone: ") == true)
        #expect(errors.first?.contains("is not an E.164 phone number") == true)
    }

    @Test func unquotedPhoneMustBeQuoted() throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  admins:\n    - name: Ops\n      phone: +15005550006\n")
        #expect(
            errors == [
                "\(Self.file):4:14: notify.admins[0].phone: must be a string, but +15005550006 is read as an integer by YAML; quote it (\"+15005550006\")"
            ]
        )
    }

    @Test func adminNeedsAContact() throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  admins:\n    - name: Ops\n")
        #expect(errors == ["\(Self.file):3:7: notify.admins[0]: needs an email or a phone to be reached"])
    }

    @Test func smtpNeedsAURLAndMaildirRefusesSMTPKeys() throws {
        let smtp = try loadErrors("sitroom.yaml", "notify:\n  email:\n    transport: smtp\n")
        #expect(smtp == ["\(Self.file):2:3: notify.email.url: required field is missing"])
        let maildir = try loadErrors("sitroom.yaml", "notify:\n  email:\n    url: smtp://mail.example.org\n")
        #expect(maildir == ["\(Self.file):3:5: notify.email.url: only used by transport smtp"])
    }

    @Test func passwordFileIsASecret() throws {
        try withTemporaryDirectory { root in
            let text =
                "notify:\n  email: { transport: smtp, url: \"smtp://mail.example.org:587\", password_file: ../secrets/smtp }\n"
            let fixture = try EtcFixture(root: root, overrides: ["sitroom.yaml": text])
            chmod(root + "/secrets/smtp", 0o640)
            #expect(
                fixture.errors() == [
                    "\(Self.file):2:80: notify.email.password_file: ROOT/secrets/smtp is readable by group or others (mode 0640); chmod 600 it"
                ]
            )
        }
    }

    @Test func httpSMSNeedsItsKeys() throws {
        let errors = try loadErrors(
            "sitroom.yaml",
            "notify:\n  sms:\n    transport: http\n    url: https://sms.example.org/send\n"
        )
        #expect(
            errors == [
                "\(Self.file):2:3: notify.sms.from: required field is missing",
                "\(Self.file):2:3: notify.sms.username: required field is missing",
                "\(Self.file):2:3: notify.sms.password_file: required field is missing",
            ]
        )
    }

    @Test func badFromMailbox() throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  email: { from: \"sitroom <nobody>\" }\n")
        #expect(
            errors == [
                "\(Self.file):2:18: notify.email.from: 'sitroom <nobody>' is not a mailbox (expected addr@example.org or \"Name <addr@example.org>\")"
            ]
        )
    }

    @Test func unknownChannel() throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  channels: [email, pager]\n")
        #expect(errors == ["\(Self.file):2:21: notify.channels[1]: unknown channel 'pager' (expected email, sms)"])
    }

    @Test func retryMaxShorterThanFirst() throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  retry: { first: 2h, max: 1h }\n")
        #expect(errors == ["\(Self.file):2:28: notify.retry.max: must not be shorter than retry.first"])
    }

    @Test func unknownControlGroup() throws {
        let errors = try loadErrors("sitroom.yaml", "control: { group: no-such-group-sitroom }\n")
        #expect(errors == ["\(Self.file):1:19: control.group: no group named 'no-such-group-sitroom' on this system"])
    }

    @Test func controlGroupNullIsNoGroup() throws {
        #expect(try loadErrors("sitroom.yaml", "control: { group: null }\n") == [])
    }

    @Test func chatNeedsAWebhookURL() throws {
        let errors = try loadErrors("sitroom.yaml", "notify:\n  chat: { webhook_url: \"ftp://x.example.org\" }\n")
        #expect(
            errors == [
                "\(Self.file):2:24: notify.chat.webhook_url: 'ftp://x.example.org' must use https or http, not ftp"
            ]
        )
    }

    @Test func feedConditionsAreStrings() throws {
        let errors = try loadErrors("sitroom.yaml", "feeds:\n  alertmanager: { situation_room_when: { page: yes } }\n")
        #expect(
            errors == [
                "\(Self.file):2:48: feeds.alertmanager.situation_room_when.page: must be a string, but yes is read as a boolean by YAML; quote it (\"yes\")"
            ]
        )
    }

    @Test func missingSitroomYAML() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            try FileManager.default.removeItem(atPath: fixture.etc + "/sitroom.yaml")
            #expect(fixture.errors() == ["ROOT/etc/sitroom.yaml:0:0: cannot open: No such file or directory"])
        }
    }
}

@Suite struct RosterRules {
    static let file = "ROOT/etc/roster.yaml"

    @Test func memberNeedsNameAndContact() throws {
        let errors = try loadErrors(
            "roster.yaml",
            "teams:\n  sre:\n    - { email: a@example.org }\n    - { name: B }\n"
        )
        #expect(
            errors == [
                "\(Self.file):3:7: teams.sre[0].name: required field is missing",
                "\(Self.file):4:7: teams.sre[1]: needs an email or a phone to be reached",
            ]
        )
    }

    @Test func teamNamesAreStrings() throws {
        let errors = try loadErrors("roster.yaml", "teams:\n  no:\n    - { name: A, email: a@example.org }\n")
        #expect(
            errors == [
                "\(Self.file):2:3: teams.no: must be a string, but no is read as a boolean by YAML; quote it (\"no\")"
            ]
        )
    }

    @Test func unknownRoleAndDuplicatePerson() throws {
        let text = """
            teams:
              sre:
                - { name: A, email: a@example.org, role: boss }
                - { name: B, email: b@example.org }
                - { name: B again, email: B@Example.org }

            """
        let errors = try loadErrors("roster.yaml", text)
        #expect(
            errors == [
                "\(Self.file):3:46: teams.sre[0].role: unknown role 'boss' (expected commander, responder)",
                "\(Self.file):5:7: teams.sre[2]: the same person as the member at line 4",
            ]
        )
    }

    @Test func unknownTopLevelKey() throws {
        let errors = try loadErrors("roster.yaml", "team:\n  sre: []\n")
        #expect(errors == ["\(Self.file):1:1: team: unknown key (expected teams)"])
    }
}

@Suite struct TemplateRulesTests {
    static func file(_ name: String) -> String { "ROOT/etc/templates/\(name)" }

    @Test(arguments: ["room-ready.mustache", "room-open.email.mustache", "room-ready.fax.mustache", "a.b.c.mustache"])
    func badNames(name: String) throws {
        let errors = try loadErrors("templates/\(name)", "hello\n")
        #expect(errors.count == 1)
        #expect(
            errors.first?.hasPrefix("\(Self.file(name)):0:0: template file must be named <kind>.<channel>.mustache")
                == true
        )
    }

    @Test func everyKindAndChannelIsAccepted() throws {
        var templates: [String: String?] = [:]
        for kind in TemplateRules.kinds {
            for channel in TemplateRules.channels {
                templates["templates/\(kind).\(channel).mustache"] =
                    channel == "email"
                    ? "Subject: {{incident.title}}\n\n{{admin.name}} {{integration.name}}\n" : "{{room.state}}\n"
            }
        }
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root, overrides: templates)
            let config = try ConfigLoader.load(etcDirectory: fixture.etc)
            #expect(config.templates.count == TemplateRules.kinds.count * TemplateRules.channels.count)
        }
    }

    @Test func compileErrorHasItsLine() throws {
        let errors = try loadErrors(
            "templates/room-ended.sms.mustache",
            "Ended:\n{{#incident}}\n{{title}}\n{{/room}}\n"
        )
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("\(Self.file("room-ended.sms.mustache")):4:") == true)
        #expect(errors.first?.contains("template does not compile") == true)
    }

    @Test func unclosedSectionDoesNotCompile() throws {
        let errors = try loadErrors("templates/room-ended.sms.mustache", "{{#incident}}\n{{title}}\n")
        #expect(errors.count == 1)
        #expect(errors.first?.contains("template does not compile") == true)
    }

    @Test(arguments: [
        ("{{incident.name}}", "1:1: unknown variable 'incident.name' (incident has id, title, severity, team, stage)"),
        (
            "x\n  {{ meeting.url }}",
            "2:3: unknown variable 'meeting.url' (expected incident, room, person, integration, admin, e.g. incident.title)"
        ),
        (
            "{{#people}}{{/people}}",
            "1:1: unknown variable 'people' (expected incident, room, person, integration, admin, e.g. incident.title)"
        ),
        (
            "{{{room.link}}}",
            "1:1: unknown variable 'room.link' (room has id, state, reason, advice, note, join_url, meeting_id, passcode, host, integration, closed_by_operator)"
        ),
        (
            "{{^room.passcode}}none{{/room.passcode}} {{title}}",
            "1:42: unknown variable 'title' (expected incident, room, person, integration, admin, e.g. incident.title)"
        ),
        ("{{> footer}}", "1:1: partials and blocks are not supported ('> footer')"),
        // An object printed whole would print its Swift type's name.
        (
            "Room: {{incident}}",
            "1:7: 'incident' is an object, not a value: name one of its fields (incident.id, incident.title, incident.severity, incident.team, incident.stage)"
        ),
        ("{{.}}", "1:1: '.' outside a field's section would print a whole object: name a field (e.g. incident.title)"),
        (
            "{{#room}}{{.}}{{/room}}",
            "1:10: '.' outside a field's section would print a whole object: name a field (e.g. incident.title)"
        ),
        // An inverted section renders when its value is absent and sets no context: `.` there is the one outside.
        (
            "{{^incident.severity}}[{{.}}]{{/incident.severity}}",
            "1:24: '.' outside a field's section would print a whole object: name a field (e.g. incident.title)"
        ),
    ])
    func unknownVariables(text: String, message: String) throws {
        let errors = try loadErrors("templates/room-ready.sms.mustache", text)
        #expect(errors == ["\(Self.file("room-ready.sms.mustache")):\(message)"])
    }

    @Test func knownVariablesSectionsAndComments() throws {
        let text = """
            {{! a comment }}{{#person}}{{name}} {{email}}{{/person}}
            {{#room.passcode}}passcode {{.}}{{/room.passcode}}{{^room.passcode}}no passcode{{/room.passcode}}
            {{&room.join_url}} {{ incident.stage }} {{room.meeting_id}} {{admin.email}}

            """
        #expect(try loadErrors("templates/room-ready.sms.mustache", text) == [])
    }

    @Test func emailTemplateNeedsSubjectThenBlankLine() throws {
        let name = "room-ended.email.mustache"
        #expect(
            try loadErrors("templates/\(name)", "Hello {{person.name}}\n")
                == ["\(Self.file(name)):1:1: an email template must begin with a 'Subject: ...' line"]
        )
        #expect(
            try loadErrors("templates/\(name)", "Subject: \nbody\n")
                == ["\(Self.file(name)):1:1: an email template must begin with a 'Subject: ...' line"]
        )
        #expect(
            try loadErrors("templates/\(name)", "Subject: Room ended\nbody\n")
                == ["\(Self.file(name)):2:1: the Subject line must be followed by a blank line, then the body"]
        )
        // CR LF line ends (a file saved on Windows) are line ends too.
        #expect(try loadErrors("templates/\(name)", "Subject: Room ended\r\n\r\nbody\r\n") == [])
        #expect(
            try loadErrors("templates/\(name)", "Subject: Room ended\r\nbody\r\n")
                == ["\(Self.file(name)):2:1: the Subject line must be followed by a blank line, then the body"]
        )
    }
}

@Suite struct AllOrNothing {
    @Test func errorsOfEveryFileAreListedInFileOrder() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(
                root: root,
                overrides: [
                    "sitroom.yaml": "reopen_hold_down: soon\n",
                    "integrations/zoom-backup.yaml": EtcFixture.zoomBackup.replacingOccurrences(
                        of: "priority: 20",
                        with: "priority: high"
                    ),
                    "roster.yaml": "teams: { sre: [ { name: A } ] }\n",
                    "templates/room-failed.chat.mustache": "{{oops}}",
                ]
            )
            #expect(
                fixture.errors() == [
                    "ROOT/etc/sitroom.yaml:1:19: reopen_hold_down: must be a duration like 30s, 5m, 2h or 2d, not 'soon'",
                    "ROOT/etc/integrations/zoom-backup.yaml:17:11: priority: must be a plain decimal integer (no leading zeros, underscores or signs), not high",
                    "ROOT/etc/roster.yaml:1:17: teams.sre[0]: needs an email or a phone to be reached",
                    "ROOT/etc/templates/room-failed.chat.mustache:1:1: unknown variable 'oops' (expected incident, room, person, integration, admin, e.g. incident.title)",
                ]
            )
        }
    }

    @Test func oneInvalidFileOfTwoFailsTheWholeLoad() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(
                root: root,
                overrides: ["integrations/zoom-backup.yaml": "kind: zoom-oauth\nbogus: 1\n"]
            )
            #expect(throws: ConfigErrors.self) { try ConfigLoader.load(etcDirectory: fixture.etc) }
            let errors = fixture.errors()
            #expect(errors.allSatisfy { $0.hasPrefix("ROOT/etc/integrations/zoom-backup.yaml:") })
            #expect(
                errors.contains(
                    "ROOT/etc/integrations/zoom-backup.yaml:2:1: bogus: unknown key (expected kind, api_url, oauth_url, redirect_uri, client_id, client_secret_file, webhook_secret_file, rate_limit, hosts, meeting, priority, request_timeout, refresh_idle_after, events)"
                )
            )
            #expect(errors.contains("ROOT/etc/integrations/zoom-backup.yaml:1:1: client_id: required field is missing"))
        }
    }

    @Test func descriptionIsOneErrorPerLine() throws {
        let errors = ConfigErrors(errors: [
            ConfigError(file: "/a.yaml", line: 1, column: 2, message: "x"),
            ConfigError(file: "/b.yaml", line: 0, column: 0, message: "y"),
        ])
        #expect(errors.description == "/a.yaml:1:2: x\n/b.yaml:0:0: y")
    }
}
