import Curl
import Foundation
import Testing

/// Zoom as real Zoom answers it (issue 14), end to end: sitroomd and zoom-sim as processes, each answer turned on
/// through zoom-sim's `/_sim/faults`; what the rooms, hosts and integrations do is read back through `sitroomctl`.
@Suite("Zoom's answers end to end", .serialized)
struct ZoomAnswerTests {
    /// The simulator's configuration with more users (`- { ... }` lines) and apps besides the sandbox's.
    func writeSim(
        _ sandbox: Sandbox,
        hosts: Int = 2,
        users: [String] = [],
        apps: [String] = [],
        more: String = ""
    ) throws {
        var userLines = (1...hosts).map { "  - { id: u-bridge-\($0), email: bridge-\($0)@example.com, type: 2 }" }
        userLines += users.map { "  - \($0)" }
        let appLines =
            [
                "  - { client_id: e2e-client, client_secret_file: etc/secrets/zoom.secret, account_id: AcctE2E, kind: s2s }",
                "  - { client_id: e2e-user-app, client_secret_file: etc/secrets/zoom.secret, account_id: AcctE2E, kind: oauth }",
            ] + apps.map { "  - \($0)" }
        try sandbox.write(
            "sim.yaml",
            "apps:\n" + appLines.joined(separator: "\n") + "\nusers:\n" + userLines.joined(separator: "\n")
                + "\nlimits: { daily_create_limit: 100, medium_per_second: 0 }\n" + more
        )
    }

    /// Replaces `old` with `new` in a file of the sandbox.
    func edit(_ sandbox: Sandbox, _ relative: String, _ old: String, _ new: String) throws {
        let text = sandbox.read(relative)
        #expect(text.contains(old), "\(relative) lacks \(old)")
        try sandbox.write(relative, text.replacingOccurrences(of: old, with: new))
    }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    func poolStates(_ sandbox: Sandbox, _ integration: String = "zoom-main") async throws -> [String: String] {
        let pool = try await sandbox.ctl(["pool", integration, "--json"])
        let hosts = try #require(try json(pool.out) as? [[String: Any]])
        return Dictionary(
            uniqueKeysWithValues: hosts.map { ($0["host"] as? String ?? "", $0["state"] as? String ?? "") }
        )
    }

    func createRequests(_ sandbox: Sandbox) async throws -> [[String: Any]] {
        let requests = try #require(try await sandbox.simGET("/_sim/requests") as? [[String: Any]])
        return requests.filter {
            ($0["method"] as? String) == "POST" && ($0["path"] as? String)?.hasSuffix("/meetings") == true
        }
    }

    /// Participants without a commander, so no alternative host is asked for.
    static let responders =
        "  - { name: Grace Hopper, email: grace@example.com, phone: \"+15005550102\", role: responder }"

    func adminMails(_ sandbox: Sandbox, containing text: String) -> [String] {
        sandbox.files("var/mail/new").filter {
            let mail = sandbox.mail($0)
            return mail.contains("ops-admin@example.org") && mail.contains(text)
        }
    }

    @Test(
        "a code-300 validation error fails only its room, with Zoom's errors[]; no host is out of quota and the next incident gets a room"
    )
    func validationErrorIsNotAQuota() async throws {
        let sandbox = try Sandbox(hosts: 2)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try edit(
                sandbox,
                "etc/integrations/zoom-main.yaml",
                "passcode: random",
                "passcode: random, passcode_length: 8"
            )
            try await sandbox.startDaemon()
            // The account's admin requires passcodes of 10 characters: Zoom refuses sitroom's 8 with a validation error.
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"passcode_policy","min_length":10,"require_special":true}"#
                ) < 300
            )

            try sandbox.submit("v1.yaml", incidentEvent(id: "evt-v1", stage: "situation_room", incident: "INC-V1"))
            let failed = try await sandbox.waitForRoom("INC-V1", state: "failed")
            let reason = failed["reason"] as? String ?? ""
            #expect(reason.contains("Zoom API error 300"), "\(reason)")
            #expect(reason.contains("password: Passcode does not meet the account's requirements"), "\(reason)")
            let advice = failed["advice"] as? String ?? ""
            #expect(
                advice.contains("meeting.passcode_length") && advice.contains("`sitroomctl room retry INC-V1`"),
                "\(advice)"
            )
            let show = try await sandbox.ctl(["room", "show", "INC-V1"])
            #expect(show.out.contains("what to do"), "\(show.out)")
            // One create was refused; no host was marked, and nothing says quota.
            #expect(try await createRequests(sandbox).count == 1)
            #expect(try await poolStates(sandbox) == ["bridge-1": "healthy", "bridge-2": "healthy"])
            let status = try await sandbox.ctl(["status"])
            #expect(!status.out.contains("out of quota") && !status.out.contains("quota of"), "\(status.out)")
            _ = try await waitFor("the admins told what to do") { () -> Bool? in
                adminMails(sandbox, containing: "What to do: Zoom refused a field").isEmpty ? nil : true
            }

            // The admin fixes the setting: the next incident gets a room, and the failed one a retry.
            try edit(sandbox, "etc/integrations/zoom-main.yaml", "passcode_length: 8", "passcode_length: 10")
            #expect(try await sandbox.ctl(["reload"]).code == 0)
            try sandbox.submit("v2.yaml", incidentEvent(id: "evt-v2", stage: "situation_room", incident: "INC-V2"))
            let ready = try await sandbox.waitForRoom("INC-V2", state: "ready")
            let passcode = ready["passcode"] as? String ?? ""
            #expect(passcode.count == 10 && passcode.contains { "@-_*".contains($0) }, "\(passcode)")
            #expect(try await sandbox.ctl(["room", "retry", "INC-V1"]).code == 0)
            let retried = try await sandbox.waitForRoom("INC-V1", state: "ready")
            #expect(retried["advice"] is NSNull)
        }
    }

    @Test(
        "only the daily-limit answers take a host out: 300 with its message, 429 with X-RateLimit-Type and an RFC 3339 Retry-After"
    )
    func dailyLimitAnswers() async throws {
        let sandbox = try Sandbox(hosts: 3)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 3)
            try await sandbox.startDaemon()
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"daily_limit","user":"bridge-1@example.com","answer":"300"}"#
                ) < 300
            )
            #expect(
                try await sandbox.simPOST("/_sim/faults", #"{"kind":"daily_limit","user":"bridge-2@example.com"}"#)
                    < 300
            )

            try sandbox.submit(
                "d1.yaml",
                incidentEvent(id: "evt-d1", stage: "situation_room", incident: "INC-D1", participants: Self.responders)
            )
            let room = try await sandbox.waitForRoom("INC-D1", state: "ready")
            #expect(room["host"] as? String == "bridge-3@example.com")
            #expect(
                try await poolStates(sandbox) == [
                    "bridge-1": "out of quota", "bridge-2": "out of quota", "bridge-3": "busy",
                ]
            )
            let status = try await sandbox.ctl(["status"])
            #expect(
                status.out.contains("zoom-main/bridge-1 is out of its daily create quota until 00:00 UTC"),
                "\(status.out)"
            )
            // Each refused create was tried once; the hosts are not tried again today.
            let creates = try await createRequests(sandbox).compactMap { $0["status"] as? Int }
            #expect(creates.sorted() == [201, 400, 429], "\(creates)")
        }
    }

    @Test(
        "a missing scope: the integration is missing_scope naming it, the admins are told once, rooms fail over; adding the scope and re-authorizing brings it back"
    )
    func missingScopeFailsOver() async throws {
        let sandbox = try Sandbox(hosts: 2, integrations: ["zoom-main", "zoom-backup"])
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try writeSim(
                sandbox,
                apps: [
                    "{ client_id: e2e-backup, client_secret_file: etc/secrets/zoom.secret, account_id: AcctE2E, kind: s2s }"
                ]
            )
            try await sandbox.startSim()
            try sandbox.writeIntegration(name: "zoom-main", hostNumbers: [1])
            try sandbox.writeIntegration(name: "zoom-backup", hostNumbers: [2])
            try edit(sandbox, "etc/integrations/zoom-backup.yaml", "client_id: e2e-client", "client_id: e2e-backup")
            try await sandbox.startDaemon()
            // zoom-main's app may read meetings and users, but nobody added a scope to create them.
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"scopes","client_id":"e2e-client","scopes":["meeting:read:admin","meeting:update:status:admin","meeting:delete:meeting:admin","user:read:admin"]}"#
                ) < 300
            )

            try sandbox.submit(
                "s1.yaml",
                incidentEvent(id: "evt-s1", stage: "situation_room", incident: "INC-S1", participants: Self.responders)
            )
            let first = try await sandbox.waitForRoom("INC-S1", state: "ready")
            #expect(first["integration"] as? String == "zoom-backup")
            let show = try await sandbox.ctl(["integration", "show", "zoom-main", "--json"])
            let main = try #require(try json(show.out) as? [String: Any])
            #expect(main["state"] as? String == "missing_scope")
            #expect((main["missing_scopes"] as? [String])?.contains("meeting:write:meeting:admin") == true, "\(main)")
            #expect((main["advice"] as? String ?? "").contains("Scopes tab"), "\(main)")
            let text = try await sandbox.ctl(["integration", "show", "zoom-main"])
            #expect(text.out.contains("missing      meeting:write:meeting, meeting:write:meeting:admin"), "\(text.out)")
            let status = try await sandbox.ctl(["status"])
            #expect(status.out.contains("zoom-main (missing_scope): add the scope"), "\(status.out)")
            _ = try await waitFor("the admins told which scope") { () -> Bool? in
                adminMails(sandbox, containing: "meeting:write:meeting:admin").isEmpty ? nil : true
            }

            // The next room goes straight to zoom-backup: zoom-main is not asked again, the admins not told again.
            try sandbox.submit(
                "s1-end.yaml",
                incidentEvent(id: "evt-s1e", stage: "resolved", incident: "INC-S1", at: "2026-11-29T12:10:00Z")
            )
            try await sandbox.waitForRoom("INC-S1", state: "ended")
            try sandbox.submit(
                "s2.yaml",
                incidentEvent(id: "evt-s2", stage: "situation_room", incident: "INC-S2", participants: Self.responders)
            )
            let second = try await sandbox.waitForRoom("INC-S2", state: "ready")
            #expect(second["integration"] as? String == "zoom-backup")
            let refused = try await createRequests(sandbox).filter { $0["status"] as? Int == 400 }
            #expect(refused.count == 1)
            #expect(adminMails(sandbox, containing: "needs an admin").count == 1)

            // The admin adds the scope in Zoom and re-authorizes: zoom-main takes rooms again.
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"scopes","client_id":"e2e-client","scopes":["meeting:read:admin","meeting:write:admin","user:read:admin"]}"#
                ) < 300
            )
            #expect(try await sandbox.ctl(["integration", "reauthorize", "zoom-main"]).code == 0)
            try sandbox.submit(
                "s3.yaml",
                incidentEvent(id: "evt-s3", stage: "situation_room", incident: "INC-S3", participants: Self.responders)
            )
            let third = try await sandbox.waitForRoom("INC-S3", state: "ready")
            #expect(third["integration"] as? String == "zoom-main")
        }
    }

    @Test(
        "a 2,500-character title gets a meeting: topic and agenda cut to Zoom's limits at a character, the marker first"
    )
    func longTitle() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            let words = "Zahlungsdienst gestört 🇩🇪 café "
            let title = String(String(repeating: words, count: 2500 / words.count + 1).prefix(2500))
            #expect(title.count == 2500)
            try sandbox.submit(
                "t1.yaml",
                incidentEvent(id: "evt-t1", stage: "situation_room", incident: "INC-T1", title: "\"\(title)\"")
            )
            let room = try await sandbox.waitForRoom("INC-T1", state: "ready")
            let meetings = try await sandbox.simMeetings(room: room["room_id"] as? String ?? "")
            #expect(meetings.count == 1)
            let topic = meetings.first?["topic"] as? String ?? ""
            let agenda = meetings.first?["agenda"] as? String ?? ""
            #expect(
                topic.hasPrefix("Situation Room: Zahlungsdienst") && topic.utf16.count <= 200 && topic.utf16.count > 190
            )
            #expect(agenda.hasPrefix("sitroom:room=\(room["room_id"] as? String ?? "")\n"))
            #expect(agenda.utf16.count <= 2000 && agenda.utf16.count > 1990)
            // No flag was cut in half: every regional indicator still has its pair.
            for text in [topic, agenda] {
                #expect(text.unicodeScalars.filter { (0x1F1E6...0x1F1FF).contains($0.value) }.count % 2 == 0)
            }
        }
    }

    @Test(
        "two commanders become semicolon-separated alternative hosts; when Zoom refuses them the room is made without them and says so"
    )
    func alternativeHosts() async throws {
        let sandbox = try Sandbox(hosts: 2)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try writeSim(
                sandbox,
                users: [
                    "{ id: u-ada, email: ada@example.com, type: 2 }",
                    "{ id: u-alan, email: alan@example.com, type: 2 }",
                    "{ id: u-bob, email: bob@example.com, type: 1 }",
                ]
            )
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()

            let two = """
                  - { name: Ada Lovelace, email: ada@example.com, role: commander }
                  - { name: Alan Turing, email: alan@example.com, role: commander }
                  - { name: Grace Hopper, email: grace@example.com, role: responder }
                """
            try sandbox.submit(
                "a1.yaml",
                incidentEvent(id: "evt-a1", stage: "situation_room", incident: "INC-A1", participants: two)
            )
            let room = try await sandbox.waitForRoom("INC-A1", state: "ready")
            let meeting = try #require(try await sandbox.simMeetings(room: room["room_id"] as? String ?? "").first)
            #expect(
                (meeting["settings"] as? [String: Any])?["alternative_hosts"] as? String
                    == "ada@example.com;alan@example.com"
            )
            #expect(room["note"] is NSNull)

            // Bob has a basic (unlicensed) user: Zoom refuses him, the room is made without alternative hosts.
            let unlicensed = """
                  - { name: Ada Lovelace, email: ada@example.com, role: commander }
                  - { name: Bob, email: bob@example.com, role: commander }
                """
            try sandbox.submit(
                "a2.yaml",
                incidentEvent(id: "evt-a2", stage: "situation_room", incident: "INC-A2", participants: unlicensed)
            )
            let second = try await sandbox.waitForRoom("INC-A2", state: "ready")
            let note = second["note"] as? String ?? ""
            #expect(
                note.contains("made without its alternative hosts") && note.contains("settings.alternative_hosts"),
                "\(note)"
            )
            let made = try await sandbox.simMeetings(room: second["room_id"] as? String ?? "")
            #expect(made.count == 1)
            #expect((made.first?["settings"] as? [String: Any])?["alternative_hosts"] as? String == "")
            let show = try await sandbox.ctl(["room", "show", "INC-A2"])
            #expect(show.out.contains("note         made without its alternative hosts"), "\(show.out)")
            // Neither host was blamed.
            #expect(try await poolStates(sandbox).values.allSatisfy { $0 == "healthy" || $0 == "busy" })
        }
    }

    @Test("delete's 3007 (the meeting has ended) counts as done: the room ends without a complaint")
    func deleteOfEndedMeeting() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            #expect(try await sandbox.simPOST("/_sim/faults", #"{"kind":"refuse_delete_ended"}"#) < 300)
            try sandbox.submit("e1.yaml", incidentEvent(id: "evt-e1", stage: "situation_room", incident: "INC-E1"))
            try await sandbox.waitForRoom("INC-E1", state: "ready")
            try sandbox.submit(
                "e1-end.yaml",
                incidentEvent(id: "evt-e1e", stage: "resolved", incident: "INC-E1", at: "2026-11-29T12:10:00Z")
            )
            let ended = try await sandbox.waitForRoom("INC-E1", state: "ended")
            #expect(ended["reason"] is NSNull, "\(ended)")
            let requests = try #require(try await sandbox.simGET("/_sim/requests") as? [[String: Any]])
            let deletes = requests.filter { $0["method"] as? String == "DELETE" }
            #expect(deletes.count == 1 && deletes.first?["status"] as? Int == 400)
            // The host is free again: the next incident gets it.
            try sandbox.submit("e2.yaml", incidentEvent(id: "evt-e2", stage: "situation_room", incident: "INC-E2"))
            try await sandbox.waitForRoom("INC-E2", state: "ready")
        }
    }

    @Test("an idle zoom-oauth host is refreshed before its refresh token could expire, so it is never stranded")
    func idleHostIsRefreshed() async throws {
        let sandbox = try Sandbox(hosts: 1, integrations: ["zoom-user"])
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            // Refresh tokens live 8 s here, access tokens 30 s (under sitroom's 60 s margin, so every use refreshes).
            try writeSim(sandbox, hosts: 1, more: "token_expires_in: 30\nrefresh_token_lifetime: 8\n")
            try await sandbox.startSim()
            try sandbox.writeIntegration(name: "zoom-user", hosts: 1, oauth: true, extra: "refresh_idle_after: 2s")
            try await sandbox.startDaemon()
            let started = try await sandbox.ctl(["integration", "authorize", "zoom-user", "bridge-1"])
            let url = try #require(started.out.split(separator: "\n").first { $0.hasPrefix("http") }.map(String.init))
            let approval = try await sandbox.http.send(.init(method: .get, url: url + "&sim_user=bridge-1@example.com"))
            let location = try #require(approval.headers["location"])
            let code = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
            // A wrong code: Zoom's invalid_grant, and sitroomctl says what to do.
            let wrong = try await sandbox.ctl(
                ["integration", "authorize", "zoom-user", "bridge-1", "--code", "-"],
                stdin: "bogus\n"
            )
            #expect(wrong.code == 1)
            #expect(
                (wrong.out + wrong.err).contains(
                    "what to do: the code is valid 5 minutes and once: run `sitroomctl integration authorize zoom-user bridge-1` again"
                ),
                "\(wrong.out) \(wrong.err)"
            )
            let done = try await sandbox.ctl(
                ["integration", "authorize", "zoom-user", "bridge-1", "--code", "-"],
                stdin: code + "\n"
            )
            #expect(done.code == 0, "\(done.err)")
            let authorizedAt = Date()

            // No room for a while: sitroom refreshes the idle host by itself, again and again.
            let refreshes = try await waitFor("three idle refreshes", timeout: 40) { () -> Int? in
                let tokens = try #require(try await sandbox.simGET("/_sim/tokens") as? [String: Any])
                let count = (tokens["requests"] as? [String: Any])?["refresh_token"] as? Int ?? 0
                return count >= 3 ? count : nil
            }
            #expect(refreshes >= 3)
            #expect(Date().timeIntervalSince(authorizedAt) > 8, "the first refresh token has outlived its lifetime")
            #expect(sandbox.daemonLogs().contains("idle host token pair refreshed"))

            // Long after the first refresh token expired, the host still takes a room.
            try sandbox.submit("i1.yaml", incidentEvent(id: "evt-i1", stage: "situation_room", incident: "INC-I1"))
            let room = try await sandbox.waitForRoom("INC-I1", state: "ready")
            #expect(room["host"] as? String == "bridge-1@example.com")
            let show = try await sandbox.ctl(["integration", "show", "zoom-user"])
            #expect(!show.out.contains("needs_reauthorization"), "\(show.out)")
        }
    }
}
