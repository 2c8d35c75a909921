import Curl
import Foundation
import Testing

@testable import SitroomZoom

/// The live room (issue 18) through signed Zoom webhooks in the spool, as sitroom-intake writes them: who joined,
/// who is missing, a meeting ended in Zoom while the incident is open, events of other meetings ignored.
@Suite("the live room, from Zoom's meeting events", .serialized)
struct LiveRoomTests {
    static let secret = "whsec-live"

    /// A signed webhook file of a meeting event (the body as Zoom sends it: `event`, `event_ts`, `payload` with
    /// `account_id` and `object`).
    func meetingEvent(_ event: String, meeting: Int64, object: String, at timestamp: Int) -> String {
        let body =
            #"{"event":"\#(event)","event_ts":\#(timestamp)000,"payload":{"account_id":"AcctE2E","object":{"id":\#(meeting),"uuid":"uuid-\#(meeting)==","host_id":"h1","topic":"Situation Room","type":2,\#(object)}}}"#
        let signature = ZoomWebhookFile.signature(
            secret: Self.secret,
            timestamp: String(timestamp),
            body: Array(body.utf8)
        )
        return
            "content-type: application/json\r\nx-zm-request-timestamp: \(timestamp)\r\nx-zm-signature: \(signature)\r\n\r\n\(body)"
    }

    func participant(_ action: String, name: String, email: String, uuid: String, time: String) -> String {
        let field = action == "joined" ? "join_time" : "leave_time"
        return
            #""participant":{"user_id":"1677\#(uuid.count)","user_name":"\#(name)","participant_uuid":"\#(uuid)","\#(field)":"\#(time)","email":"\#(email)"}"#
    }

    @Test(
        "joins, a guest, a leave, duplicates and other meetings' events: room show and rooms say who is in; ended in Zoom keeps the room open"
    )
    func liveRoomThroughWebhooks() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.write("etc/secrets/webhook.secret", "\(Self.secret)\n", mode: 0o600)
            try sandbox.writeIntegration(extra: "webhook_secret_file: ../secrets/webhook.secret")
            try await sandbox.startDaemon()
            try sandbox.submit("l1.yaml", incidentEvent(id: "evt-l1", stage: "situation_room", incident: "INC-L"))
            let ready = try await sandbox.waitForRoom("INC-L", state: "ready")
            let meeting = try #require((ready["meeting_id"] as? NSNumber)?.int64Value)
            #expect(ready["meeting"] is NSNull)

            let now = Int(Date().timeIntervalSince1970)
            let format = ISO8601DateFormatter()
            func time(_ offset: Int) -> String {
                format.string(from: Date(timeIntervalSince1970: Double(now + offset)))
            }
            let files = [
                (
                    "e1",
                    meetingEvent("meeting.started", meeting: meeting, object: #""start_time":"\#(time(0))""#, at: now)
                ),
                (
                    "e2",
                    meetingEvent(
                        "meeting.participant_joined",
                        meeting: meeting,
                        object: participant(
                            "joined",
                            name: "Ada L",
                            email: "ADA@example.com",
                            uuid: "pa",
                            time: time(5)
                        ),
                        at: now
                    )
                ),
                (
                    "e3",
                    meetingEvent(
                        "meeting.participant_joined",
                        meeting: meeting,
                        object: participant("joined", name: "Dial-in 1", email: "", uuid: "pg", time: time(6)),
                        at: now
                    )
                ),
                // The same join again (Zoom retries), and a join to a meeting sitroom did not make.
                (
                    "e4",
                    meetingEvent(
                        "meeting.participant_joined",
                        meeting: meeting,
                        object: participant(
                            "joined",
                            name: "Ada L",
                            email: "ADA@example.com",
                            uuid: "pa",
                            time: time(5)
                        ),
                        at: now
                    )
                ),
                (
                    "e5",
                    meetingEvent(
                        "meeting.participant_joined",
                        meeting: 99_999_999_999,
                        object: participant(
                            "joined",
                            name: "Grace",
                            email: "grace@example.com",
                            uuid: "px",
                            time: time(7)
                        ),
                        at: now
                    )
                ),
            ]
            for (name, text) in files { try sandbox.submit("\(name).webhook", text) }
            let shown = try await waitFor("Ada and the guest in the meeting") { () -> [String: Any]? in
                let room = try await sandbox.room("INC-L")
                return (room?["others_present"] as? [Any])?.count == 1 ? room : nil
            }
            #expect((shown["meeting"] as? [String: Any])?["status"] as? String == "started")
            #expect(shown["present"] as? Int == 1)
            let attendance = try #require(shown["attendance"] as? [[String: Any]])
            #expect(attendance.map { $0["standing"] as? String } == ["joined", "not_yet"], "\(attendance)")
            let table = try await sandbox.ctl(["rooms"]).out
            #expect(table.contains("PRESENT"), "\(table)")
            #expect(table.contains("1/2 +1"), "\(table)")
            let text = try await sandbox.ctl(["room", "show", "INC-L"]).out
            #expect(text.contains("Grace Hopper <grace@example.com>: not yet"), "\(text)")
            #expect(text.contains("Ada Lovelace <ada@example.com>: joined"), "\(text)")
            #expect(sandbox.daemonLogs().contains("Zoom meeting event of no open room"))

            // Ada leaves; then the host ends the meeting in Zoom: the room stays open, and says so.
            try sandbox.submit(
                "e6.webhook",
                meetingEvent(
                    "meeting.participant_left",
                    meeting: meeting,
                    object: participant("left", name: "Ada L", email: "ada@example.com", uuid: "pa", time: time(20)),
                    at: now
                )
            )
            try sandbox.submit(
                "e7.webhook",
                meetingEvent("meeting.ended", meeting: meeting, object: #""end_time":"\#(time(30))""#, at: now)
            )
            let ended = try await waitFor("the meeting ended in Zoom") { () -> [String: Any]? in
                let room = try await sandbox.room("INC-L")
                return (room?["meeting"] as? [String: Any])?["status"] as? String == "ended" ? room : nil
            }
            #expect(ended["state"] as? String == "ready")
            #expect(ended["present"] as? Int == 0)
            #expect((ended["attendance"] as? [[String: Any]])?.first?["standing"] as? String == "left")
            #expect(
                sandbox.files("var/spool/incidents/rejected").isEmpty,
                "\(sandbox.files("var/spool/incidents/rejected"))"
            )

            // Resolving still ends and deletes the meeting.
            try sandbox.submit(
                "l2.yaml",
                incidentEvent(id: "evt-l2", stage: "resolved", incident: "INC-L", at: "2026-11-29T13:00:00Z")
            )
            try await sandbox.waitForRoom("INC-L", state: "ended")

            // A forged meeting event is refused with the reason, like any forged webhook.
            var forged = meetingEvent(
                "meeting.started",
                meeting: meeting,
                object: #""start_time":"\#(time(0))""#,
                at: now
            )
            forged = forged.replacingOccurrences(of: "Situation Room", with: "Situation Roon")
            try sandbox.submit("forged.webhook", forged)
            let reason = try await waitFor("the forged event rejected") { () -> String? in
                sandbox.files("var/spool/incidents/rejected").first { $0.hasSuffix(".error") }
                    .map { sandbox.read("var/spool/incidents/rejected/\($0)") }
            }
            #expect(reason.contains("does not match"), "\(reason)")
        }
    }

    func join(_ sandbox: Sandbox, _ meeting: Int64, _ body: String) async throws {
        #expect(try await sandbox.simPOST("/_sim/meetings/\(meeting)/participants", body) < 300)
    }

    func websockets(_ sandbox: Sandbox) async throws -> [String: Any] {
        try #require(try await sandbox.simGET("/_sim/websockets") as? [String: Any])
    }

    @Test(
        "over Zoom's WebSocket event subscription: joins show; a dropped connection comes back and the room is right again"
    )
    func liveRoomThroughWebSocket() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(
                extra:
                    "events: { websocket: { subscription_id: SUB-E2E, url: \"ws://127.0.0.1:\(sandbox.simPort)/ws\" } }"
            )
            try await sandbox.startDaemon()
            _ = try await waitFor("the subscription connected") { () -> Bool? in
                (try await websockets(sandbox))["open"] as? Int == 1 ? true : nil
            }
            try sandbox.submit("w1.yaml", incidentEvent(id: "evt-ws1", stage: "situation_room", incident: "INC-WS"))
            let ready = try await sandbox.waitForRoom("INC-WS", state: "ready")
            let meeting = try #require((ready["meeting_id"] as? NSNumber)?.int64Value)

            try await join(sandbox, meeting, #"{"action":"join","email":"Ada@Example.com","name":"Ada"}"#)
            try await join(sandbox, meeting, #"{"action":"join","guest":true,"name":"Visitor"}"#)
            let shown = try await waitFor("Ada and a guest in the room") { () -> [String: Any]? in
                let room = try await sandbox.room("INC-WS")
                return room?["present"] as? Int == 1 && (room?["others_present"] as? [Any])?.count == 1 ? room : nil
            }
            #expect((shown["meeting"] as? [String: Any])?["status"] as? String == "started")

            // The connection drops while Grace joins and Ada leaves (Zoom replays nothing): after reconnecting,
            // sitroomd asks Zoom (the meeting's status, and who is in it) and the room is right again.
            #expect(try await sandbox.simPOST("/_sim/websockets/drop", "{}") < 300)
            try await join(sandbox, meeting, #"{"action":"join","email":"grace@example.com","name":"Grace"}"#)
            try await join(sandbox, meeting, #"{"action":"leave","email":"ada@example.com"}"#)
            let after = try await waitFor("Grace in, Ada out after the reconnection", timeout: 30) {
                () -> [[String: Any]]? in
                let room = try await sandbox.room("INC-WS")
                let attendance = room?["attendance"] as? [[String: Any]] ?? []
                return attendance.map({ $0["standing"] as? String }) == ["left", "joined"] ? attendance : nil
            }
            #expect(after.count == 2)
            // Grace's own leave later carries her real participant key: it is applied to her.
            try await join(sandbox, meeting, #"{"action":"leave","email":"grace@example.com"}"#)
            _ = try await waitFor("Grace left") { () -> Bool? in
                let attendance = try await sandbox.room("INC-WS")?["attendance"] as? [[String: Any]] ?? []
                return attendance.map({ $0["standing"] as? String }) == ["left", "left"] ? true : nil
            }

            // It drops again; meanwhile the host ends the meeting in Zoom (nobody hears it). After reconnecting,
            // the room shows the meeting ended.
            #expect(try await sandbox.simPOST("/_sim/websockets/drop", "{}") < 300)
            #expect(try await sandbox.simPOST("/_sim/meetings/\(meeting)/end", "{}") < 300)
            let ended = try await waitFor("the room right again after the reconnection", timeout: 30) {
                () -> [String: Any]? in
                let room = try await sandbox.room("INC-WS")
                return (room?["meeting"] as? [String: Any])?["status"] as? String == "ended" ? room : nil
            }
            #expect(ended["state"] as? String == "ready")
            #expect((try await websockets(sandbox))["opened"] as? Int ?? 0 >= 3)
            #expect(sandbox.daemonLogs().contains("meeting state reconciled with Zoom"))
            let metrics = try await waitFor("the reconnect counted") { () -> [String: Double]? in
                let samples = try? Metrics.parse("\(sandbox.root)/var/metrics/sitroom.prom")
                return samples?["sitroom_zoom_event_subscription_reconnects_total{integration=\"zoom-main\"}"] == 2
                    ? samples : nil
            }
            #expect((metrics["sitroom_meeting_joins_total"] ?? 0) >= 1, "\(metrics)")
            #expect(metrics["sitroom_zoom_event_subscription_connected{integration=\"zoom-main\"}"] == 1)
            let status = try await sandbox.ctl(["status"]).out
            #expect(status.contains("zoom events (websocket): zoom-main connected"), "\(status)")

            // The link starts the meeting again: Ada rejoins, and the room shows it running with her in.
            try await join(sandbox, meeting, #"{"action":"join","email":"ada@example.com"}"#)
            _ = try await waitFor("Ada back, the meeting started again") { () -> Bool? in
                try await sandbox.room("INC-WS")?["present"] as? Int == 1 ? true : nil
            }

            // app_deauthorized over the subscription does what the webhook does: the integration needs an admin,
            // the room becomes unavailable.
            #expect(try await sandbox.simPOST("/_sim/apps/e2e-client/deauthorize", "{}") < 300)
            let unavailable = try await sandbox.waitForRoom("INC-WS", state: "unavailable")
            #expect((unavailable["reason"] as? String ?? "").contains("re-integrate Zoom"))
            #expect(try await sandbox.ctl(["integrations"]).out.contains("needs_reauthorization"))
        }
    }

    @Test(
        "a nudge due while sitroomd was down waits for the subscription's reconciliation: who joined meanwhile gets none"
    )
    func nudgeAfterRestart() async throws {
        let sandbox = try Sandbox(notify: "nudge: { after: 2s }")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(
                extra:
                    "events: { websocket: { subscription_id: SUB-E2E, url: \"ws://127.0.0.1:\(sandbox.simPort)/ws\" } }"
            )
            try await sandbox.startDaemon()
            let participants = """
                  - { name: Ada Lovelace, email: ada@example.com, role: commander }
                  - { name: Grace Hopper, email: grace@example.com, role: responder }
                """
            try sandbox.submit(
                "r1.yaml",
                incidentEvent(id: "evt-r1", stage: "situation_room", incident: "INC-R", participants: participants)
            )
            let ready = try await sandbox.waitForRoom("INC-R", state: "ready")
            let readySeen = Date()
            let meeting = try #require((ready["meeting_id"] as? NSNumber)?.int64Value)
            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            // Grace joins while sitroomd is down; both nudges fall due meanwhile.
            try await join(sandbox, meeting, #"{"action":"join","email":"grace@example.com","name":"Grace"}"#)
            // The event waited for is the nudges' due time passing (2 s after the room was ready, seen by then).
            _ = try await waitFor("the nudges' due time to pass", timeout: 10) { () -> Bool? in
                Date() > readySeen.addingTimeInterval(2.5) ? true : nil
            }
            try await sandbox.startDaemon()
            let mails = try await waitFor("Ada's nudge", timeout: 30) { () -> [String]? in
                let nudges = sandbox.files("var/mail/new").filter { sandbox.mail($0).contains("not joined") }
                return nudges.isEmpty ? nil : nudges
            }
            #expect(mails.count == 1)
            #expect(mails.allSatisfy { sandbox.mail($0).contains("ada@example.com") })
            let outbox = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try await sandbox.ctl(["outbox", "all", "--json"]).out.utf8)
                )
                    as? [[String: Any]]
            )
            let graces = outbox.filter {
                $0["kind"] as? String == "nudge" && ($0["recipient"] as? String ?? "").contains("grace")
            }
            #expect(graces.count == 1 && graces.allSatisfy { $0["state"] as? String == "withdrawn" }, "\(graces)")
        }
    }

    @Test("the nudge: the participant who never joins gets exactly one, on each channel; the one who joined none")
    func nudge() async throws {
        let sandbox = try Sandbox(notify: "nudge: { after: 3s }")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.write("etc/secrets/webhook.secret", "\(Self.secret)\n", mode: 0o600)
            try sandbox.writeIntegration(
                extra: "webhook_secret_file: ../secrets/webhook.secret\nevents: { webhook: true }"
            )
            try await sandbox.startDaemon()
            let participants = """
                  - { name: Ada Lovelace, email: ada@example.com, phone: "+15005550101", role: commander }
                  - { name: Grace Hopper, email: grace@example.com, phone: "+15005550102", role: responder }
                """
            try sandbox.submit(
                "n1.yaml",
                incidentEvent(id: "evt-n1", stage: "situation_room", incident: "INC-N", participants: participants)
            )
            let ready = try await sandbox.waitForRoom("INC-N", state: "ready")
            let meeting = try #require((ready["meeting_id"] as? NSNumber)?.int64Value)
            let now = Int(Date().timeIntervalSince1970)
            let joinTime = ISO8601DateFormatter().string(from: Date())
            try sandbox.submit(
                "j1.webhook",
                meetingEvent(
                    "meeting.participant_joined",
                    meeting: meeting,
                    object: participant("joined", name: "Ada", email: "ada@example.com", uuid: "pa", time: joinTime),
                    at: now
                )
            )
            _ = try await waitFor("Ada in the meeting") { () -> Bool? in
                try await sandbox.room("INC-N")?["present"] as? Int == 1 ? true : nil
            }
            func nudges(_ directory: String, _ needle: String) -> [String] {
                sandbox.files(directory).filter {
                    let text = directory.contains("mail") ? sandbox.mail($0) : sandbox.read("\(directory)/\($0)")
                    return text.contains(needle) && text.contains("not joined")
                }
            }
            do {
                _ = try await waitFor("Grace's nudges by email and SMS", timeout: 30) { () -> Bool? in
                    nudges("var/mail/new", "grace@example.com").count == 1
                        && nudges("var/sms/new", "+15005550102").count == 1
                        ? true : nil
                }
            } catch {
                Issue.record("outbox: \(try await sandbox.ctl(["outbox", "all"]).out)")
                throw error
            }
            // Ada's were withdrawn when she joined (never tried): the outbox says so, and nothing went to her.
            let outbox = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try await sandbox.ctl(["outbox", "all", "--json"]).out.utf8)
                )
                    as? [[String: Any]]
            )
            let kinds = outbox.filter { $0["kind"] as? String == "nudge" }
            let adas = kinds.filter {
                ($0["recipient"] as? String ?? "").contains("ada") || ($0["recipient"] as? String) == "+15005550101"
            }
            #expect(adas.count == 2 && adas.allSatisfy { $0["state"] as? String == "withdrawn" }, "\(kinds)")
            #expect(nudges("var/mail/new", "ada@example.com").isEmpty)
            #expect(nudges("var/sms/new", "+15005550101").isEmpty)
            // Never twice: planning again (an update) queues nothing more.
            try sandbox.submit(
                "n2.yaml",
                incidentEvent(
                    id: "evt-n2",
                    stage: "updated",
                    incident: "INC-N",
                    at: "2026-11-29T12:10:00Z",
                    participants: participants
                )
            )
            _ = try await waitFor("the update applied") { sandbox.daemonLogs().contains("evt-n2") ? true : nil }
            let again = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try await sandbox.ctl(["outbox", "all", "--json"]).out.utf8)
                )
                    as? [[String: Any]]
            )
            #expect(again.filter { $0["kind"] as? String == "nudge" }.count == 4)
        }
    }
}
