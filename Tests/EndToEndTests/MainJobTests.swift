import Foundation
import Testing

/// The main job end to end on real parts: zoom-sim and sitroomd as processes in a temporary root, real
/// LMDB, real inotify, real FIFOs, real HTTP on 127.0.0.1.
@Suite("main job end to end", .serialized)
struct MainJobTests {
    @Test("a situation-room incident becomes a Zoom room, everyone gets the link, resolve ends the meeting")
    func incidentToRoomToNoticesToEnd() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()

            try sandbox.submit("inc-1.yaml", incidentEvent(id: "evt-1", stage: "situation_room", incident: "INC-1"))
            let room = try await sandbox.waitForRoom("INC-1", state: "ready")
            let roomID = try #require(room["room_id"] as? String)
            let joinURL = try #require(room["join_url"] as? String)
            #expect(room["integration"] as? String == "zoom-main")
            #expect((room["host"] as? String)?.hasPrefix("bridge-") == true)
            #expect(room["meeting_id"] is NSNumber)

            // Exactly one meeting in zoom-sim for this room, and its join_url is the room's.
            let meetings = try await sandbox.simMeetings(room: roomID)
            #expect(meetings.count == 1)
            #expect(meetings.first?["join_url"] as? String == joinURL)
            #expect(meetings.first?["password"] as? String == room["passcode"] as? String)

            // The spool file left new/ for cur/ once applied.
            #expect(sandbox.files("var/spool/incidents/new").isEmpty)
            #expect(sandbox.files("var/spool/incidents/cur") == ["inc-1.yaml"])

            // Two emails (Ada, Grace) with the link, one SMS (only Ada has a phone).
            let mails = try await waitFor("two emails in var/mail/new") {
                let names = sandbox.files("var/mail/new")
                return names.count == 2 ? names : nil
            }
            let bodies = mails.map { sandbox.mail($0) }
            #expect(bodies.allSatisfy { $0.contains(joinURL) })
            #expect(bodies.contains { $0.contains("To: Ada Lovelace <ada@example.com>") })
            #expect(bodies.contains { $0.contains("To: Grace Hopper <grace@example.com>") })
            #expect(
                bodies.allSatisfy {
                    $0.contains("Message-ID: <") && $0.contains("Subject: [critical] Situation room: ")
                }
            )
            let texts = try await waitFor("one SMS in var/sms/new") {
                let names = sandbox.files("var/sms/new")
                return names.count == 1 ? names : nil
            }
            let sms = sandbox.read("var/sms/new/\(texts[0])")
            #expect(sms.contains("To: +15005550101"))
            #expect(sms.contains(joinURL))

            // A duplicate of the same event changes nothing and still leaves new/.
            try sandbox.submit(
                "inc-1-again.yaml",
                incidentEvent(id: "evt-1", stage: "situation_room", incident: "INC-1")
            )
            _ = try await waitFor("the duplicate to reach cur/") {
                sandbox.files("var/spool/incidents/cur").count == 2 ? true : nil
            }
            #expect(try await sandbox.simMeetings(room: roomID).count == 1)

            // Resolve: the meeting is ended (and deleted, per on_resolve), the room ended.
            try sandbox.submit(
                "inc-1-resolved.yaml",
                incidentEvent(id: "evt-2", stage: "resolved", incident: "INC-1", at: "2026-11-29T12:30:00Z")
            )
            try await sandbox.waitForRoom("INC-1", state: "ended")
            let ended = try await sandbox.simMeetings(room: roomID)
            #expect(ended.count == 1)
            #expect(["ended", "deleted"].contains(ended.first?["status"] as? String ?? ""))
            let requests = try await sandbox.simGET("/_sim/requests")
            let paths =
                ((requests as? [[String: Any]]) ?? ((requests as? [String: Any])?["requests"] as? [[String: Any]]) ?? [])
                .map { "\($0["method"] as? String ?? "") \($0["path"] as? String ?? "")" }
            let meetingID = try #require((room["meeting_id"] as? NSNumber)?.int64Value)
            #expect(paths.contains("PUT /v2/meetings/\(meetingID)/status"))
            #expect(paths.contains("DELETE /v2/meetings/\(meetingID)"))
        }
    }

    @Test("SIGKILL while zoom-sim holds the create reply, then a restart: one meeting, room ready")
    func crashMidCreateMakesNoSecondMeeting() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            #expect(try await sandbox.simPOST("/_sim/faults", #"{"kind":"hold_create_reply","count":1}"#) < 300)

            try sandbox.submit("inc-7.yaml", incidentEvent(id: "evt-7", stage: "situation_room", incident: "INC-7"))
            // Zoom has made the meeting; sitroomd waits for a reply that never comes.
            let held = try await waitFor("zoom-sim to create the held meeting") { () -> [[String: Any]]? in
                let all = try await sandbox.simGET("/_sim/meetings")
                let list = (all as? [[String: Any]]) ?? ((all as? [String: Any])?["meetings"] as? [[String: Any]]) ?? []
                return list.isEmpty ? nil : list
            }
            #expect(held.count == 1)
            let provisioning = try #require(try await sandbox.room("INC-7"))
            #expect(provisioning["state"] as? String == "provisioning")
            let roomID = try #require(provisioning["room_id"] as? String)

            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            try await sandbox.startDaemon()

            let room = try await sandbox.waitForRoom("INC-7", state: "ready")
            #expect(room["room_id"] as? String == roomID)
            let meetings = try await sandbox.simMeetings(room: roomID)
            #expect(meetings.count == 1)
            #expect(meetings.first?["join_url"] as? String == room["join_url"] as? String)
            let all = try await sandbox.simGET("/_sim/meetings")
            let list = (all as? [[String: Any]]) ?? ((all as? [String: Any])?["meetings"] as? [[String: Any]]) ?? []
            #expect(list.count == 1)
            // Everyone still gets the link, once.
            _ = try await waitFor("two emails") { sandbox.files("var/mail/new").count == 2 ? true : nil }
        }
    }

    @Test("malformed spool files land in rejected/ with a reason naming the field; the next good file is processed")
    func malformedFilesAreRejected() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()

            try sandbox.submit("bad-yaml.yaml", "event_id: [unclosed\nstage: situation_room\n")
            try sandbox.submit(
                "no-id.yaml",
                """
                event_id: evt-x
                occurred_at: "2026-11-29T12:00:00Z"
                stage: situation_room
                incident: { title: Missing id }

                """
            )
            try sandbox.submit(
                "bad-stage.yaml",
                incidentEvent(id: "evt-y", stage: "exploded", incident: "INC-Y")
            )
            try sandbox.submit("good.yaml", incidentEvent(id: "evt-good", stage: "situation_room", incident: "INC-G"))

            try await sandbox.waitForRoom("INC-G", state: "ready")
            let rejected = try await waitFor("three rejections with reasons") { () -> [String]? in
                let names = sandbox.files("var/spool/incidents/rejected")
                return names.count == 6 ? names : nil
            }
            #expect(
                rejected == [
                    "bad-stage.yaml", "bad-stage.yaml.error", "bad-yaml.yaml", "bad-yaml.yaml.error", "no-id.yaml",
                    "no-id.yaml.error",
                ]
            )
            #expect(sandbox.read("var/spool/incidents/rejected/no-id.yaml.error").contains("incident.id"))
            #expect(sandbox.read("var/spool/incidents/rejected/bad-stage.yaml.error").contains("stage"))
            #expect(sandbox.read("var/spool/incidents/rejected/bad-stage.yaml.error").contains("exploded"))
            let syntax = sandbox.read("var/spool/incidents/rejected/bad-yaml.yaml.error")
            #expect(syntax.contains("bad-yaml.yaml:"))
            #expect(sandbox.files("var/spool/incidents/new").isEmpty)
        }
    }

    @Test("Zoom refusing the credentials fails the room with Zoom's reason; the daemon keeps serving")
    func refusedCredentialsFailTheRoom() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.write("etc/secrets/wrong.secret", "not-the-secret\n", mode: 0o600)
            try sandbox.writeIntegration(secretFile: "../secrets/wrong.secret")
            try await sandbox.startDaemon()

            try sandbox.submit("inc-9.yaml", incidentEvent(id: "evt-9", stage: "situation_room", incident: "INC-9"))
            let room = try await sandbox.waitForRoom("INC-9", state: "failed")
            let reason = try #require(room["reason"] as? String)
            #expect(reason.contains("re-integrate Zoom"))
            #expect(reason.contains("needs re-authorization"))
            let status = try await sandbox.ctl(["status"])
            #expect(status.code == 0)
            #expect(status.out.contains("needs_reauthorization"))
            // Admins are told to re-integrate, and that the room failed.
            for subject in ["needs re-authorization", "situation room failed"] {
                _ = try await waitFor("the admin notice: \(subject)") { () -> Bool? in
                    sandbox.files("var/mail/new").contains {
                        let mail = sandbox.mail($0)
                        return mail.contains("ops-admin@example.org") && mail.contains(subject)
                    } ? true : nil
                }
            }
            #expect(try await sandbox.simMeetings(room: room["room_id"] as? String ?? "").isEmpty)
        }
    }

    @Test("sitroomctl against a stopped daemon says so and exits 69 at once")
    func ctlWithoutDaemon() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        let started = Date()
        let result = try await sandbox.ctl(["status"])
        #expect(result.code == 69)
        #expect(result.err.contains("not running"))
        #expect(Date().timeIntervalSince(started) < 5)
    }
}
