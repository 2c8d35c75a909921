import Foundation
import Testing

/// The faults a breaker found (issue 15), against a running sitroomd: reader slots left by killed processes, reply
/// directories left by killed clients, a half line left in the control FIFO.
@Suite("faults a breaker found", .serialized)
struct FaultTests {
    /// Keeps the environment open until killed (so a later opener cannot reset the reader table).
    static let hold = """
        import lmdb, sys, time
        env = lmdb.open(sys.argv[1], max_readers=126, max_dbs=16)
        print("holding", flush=True)
        time.sleep(600)  # waits-on-purpose: holds its reader slots until the test kills it
        """
    /// Takes reader slots until the table is full, then dies with SIGKILL: its slots stay taken.
    static let fillAndDie = """
        import lmdb, os, signal, sys
        env = lmdb.open(sys.argv[1], max_readers=126, max_dbs=16)
        txns = []
        try:
            while True:
                txns.append(env.begin())
        except lmdb.ReadersFullError:
            pass
        print(len(txns), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """

    func python(_ script: String, _ arguments: [String], logs: String, name: String) throws -> Child {
        // `python3` from PATH, as the other Python fixtures: the one scripts/install-deps installed py-lmdb for.
        try Child("/usr/bin/env", ["python3", "-c", script] + arguments, logs: logs, name: name)
    }

    @Test("sitroomd starts over a reader table full of dead processes' slots, says so, and makes rooms")
    func staleReadersAtStart() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon?.waitForExit() == 0)

            let store = "\(sandbox.root)/var/lib/sitroom"
            let holder = try python(Self.hold, [store], logs: "\(sandbox.root)/logs", name: "holder")
            defer { holder.stop() }
            _ = try await waitFor("the holder has the store open") { holder.stdout.contains("holding") ? true : nil }
            let filler = try python(Self.fillAndDie, [store], logs: "\(sandbox.root)/logs", name: "filler")
            _ = try await filler.waitForExit()
            #expect(filler.process.terminationReason == .uncaughtSignal)
            #expect(Int(filler.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == 126, "\(filler.stdout)")

            try await sandbox.startDaemon()
            #expect(sandbox.daemonLogs().contains("stale LMDB readers cleared"), "\(sandbox.daemonLogs())")
            let status = try await sandbox.ctl(["status"])
            #expect(status.out.contains("126 stale cleared since start"), "\(status.out)")
            try sandbox.submit("s.yaml", incidentEvent(id: "evt-s", stage: "situation_room", incident: "INC-S"))
            try await sandbox.waitForRoom("INC-S", state: "ready")

            // While it runs: another process dies with the whole table taken; the daemon goes on (its reads reuse
            // their slots, or free dead ones when they find the table full): a resolve is applied, the meeting ended.
            let again = try python(Self.fillAndDie, [store], logs: "\(sandbox.root)/logs", name: "filler2")
            _ = try await again.waitForExit()
            try sandbox.submit(
                "s2.yaml",
                incidentEvent(id: "evt-s2", stage: "resolved", incident: "INC-S", at: "2026-11-29T12:30:00Z")
            )
            try await sandbox.waitForRoom("INC-S", state: "ended")
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(try await sandbox.ctl(["status", "--json"]).out.utf8))
                    as? [String: Any]
            )
            let readers = try #require(json["store"] as? [String: Any])
            #expect((readers["reader_slots"] as? Int) == 126)
            // Its own pooled read transactions keep their slots, so the dead ones may stay until the minute's check:
            // the table shows them meanwhile.
            #expect(((readers["readers_in_use"] as? Int) ?? 0) > 0)
        }
    }

    @Test("reply directories of killed sitroomctl clients are removed; a waiting client's is kept")
    func replyDirectories() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            let run = "\(sandbox.root)/var/run"
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            // Two reply directories, two minutes old: one abandoned (no reader), one whose client still waits.
            var old = [timespec(tv_sec: time(nil) - 120, tv_nsec: 0), timespec(tv_sec: time(nil) - 120, tv_nsec: 0)]
            for name in ["sitroomctl.dead01", "sitroomctl.live01"] {
                try FileManager.default.createDirectory(atPath: "\(run)/\(name)", withIntermediateDirectories: false)
                #expect(mkfifo("\(run)/\(name)/reply", 0o600) == 0)
                #expect(utimensat(AT_FDCWD, "\(run)/\(name)", &old, 0) == 0)
            }
            let reader = open("\(run)/sitroomctl.live01/reply", O_RDONLY | O_NONBLOCK)
            #expect(reader >= 0)
            defer { close(reader) }

            try await sandbox.startDaemon()
            _ = try await waitFor("the abandoned directory removed") {
                FileManager.default.fileExists(atPath: "\(run)/sitroomctl.dead01") ? nil : true
            }
            #expect(FileManager.default.fileExists(atPath: "\(run)/sitroomctl.live01/reply"))
            #expect(sandbox.daemonLogs().contains("removed reply directories of killed sitroomctl clients"))
        }
    }

    @Test("a half command line left in the FIFO is never joined to the next client's command, and is logged")
    func fifoFragment() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            let fifo = "\(sandbox.root)/var/run/sitroom.ctl"

            try sandbox.submit("h.yaml", incidentEvent(id: "evt-h", stage: "situation_room", incident: "INC-H"))
            try await sandbox.waitForRoom("INC-H", state: "ready")

            // A writer leaves "room end INC-H" without a newline and keeps the FIFO open (so no end-of-file flushes
            // it); sitroomd has read it before the next client writes.
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            #expect(writer >= 0)
            let fragment = Array("room end INC-H".utf8)
            _ = fragment.withUnsafeBytes { Glibc.write(writer, $0.baseAddress, $0.count) }
            _ = try await waitFor("sitroomd read the half line") { () -> Bool? in
                var queued: Int32 = 0
                _ = ioctl(writer, UInt(FIONREAD), &queued)
                return queued == 0 ? true : nil
            }
            let status = try await sandbox.ctl(["status"])
            #expect(status.code == 0, "\(status.err)")
            #expect(status.out.hasPrefix("sitroomd "))
            close(writer)
            _ = try await waitFor("the fragment logged") {
                sandbox.daemonLogs().contains("half line of an earlier write completed by a later one") ? true : nil
            }
            // It was never run: the room is still ready.
            #expect(try await sandbox.room("INC-H")?["state"] as? String == "ready")

            // The same with both writes in the pipe before sitroomd reads (stopped meanwhile): one read brings the
            // half line and sitroomctl's command; the separator's NUL still keeps the half line from running.
            let daemon = try #require(sandbox.daemon)
            daemon.signal(SIGSTOP)
            let second = open(fifo, O_WRONLY | O_NONBLOCK)
            #expect(second >= 0)
            _ = fragment.withUnsafeBytes { Glibc.write(second, $0.baseAddress, $0.count) }
            async let answer = sandbox.ctl(["rooms"], timeout: 30)
            _ = try await waitFor("sitroomctl's command in the FIFO behind the half line") { () -> Bool? in
                var queued: Int32 = 0
                _ = ioctl(second, UInt(FIONREAD), &queued)
                return queued > Int32(fragment.count) ? true : nil
            }
            daemon.signal(SIGCONT)
            let rooms = try await answer
            #expect(rooms.code == 0, "\(rooms.err)")
            close(second)
            // (Rejected as ended by the separator when both writes came in one read; as completed by a later write
            // when the stop came after the daemon had read the half line: either way, logged and never run.)
            _ = try await waitFor("the second half line logged") { () -> Bool? in
                let rejected = sandbox.daemonLogs().split(separator: "\n").filter {
                    $0.contains("control line rejected") && $0.contains("half line")
                }
                return rejected.count >= 2 ? true : nil
            }
            #expect(try await sandbox.room("INC-H")?["state"] as? String == "ready")
            #expect(!sandbox.daemonLogs().contains("command=\"room end"))

            // A writer that leaves a half line and closes alone: discarded at end-of-file, and logged.
            let lone = open(fifo, O_WRONLY | O_NONBLOCK)
            _ = Array("rel".utf8).withUnsafeBytes { Glibc.write(lone, $0.baseAddress, $0.count) }
            close(lone)
            _ = try await waitFor("the unterminated line logged") {
                sandbox.daemonLogs().contains("final line without a newline (discarded)") ? true : nil
            }
            #expect(try await sandbox.ctl(["status"]).code == 0)
        }
    }

    @Test(
        "a create answered with an unusable link: no room with it, the meeting Zoom made is deleted; retry and resolve leave none live"
    )
    func unusableJoinURL() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"join_url_create_reply","join_url":"https://","count":1}"#
                ) < 300
            )
            try sandbox.submit("u.yaml", incidentEvent(id: "evt-u", stage: "situation_room", incident: "INC-U"))
            let failed = try await sandbox.waitForRoom("INC-U", state: "failed")
            let reason = failed["reason"] as? String ?? ""
            #expect(reason.contains("unusable join_url"), "\(reason)")
            #expect(reason.contains("sitroom deleted meeting"), "\(reason)")
            let roomID = try #require(failed["room_id"] as? String)
            let first = try await sandbox.simMeetings(room: roomID)
            #expect(first.count == 1)
            #expect(first.allSatisfy { !($0["deleted_at"] is NSNull) && $0["deleted_at"] != nil }, "\(first)")
            // Nobody was sent a link.
            #expect(sandbox.files("var/mail/new").allSatisfy { !sandbox.mail($0).contains("Join:") })

            #expect(try await sandbox.ctl(["room", "retry", "INC-U"]).code == 0)
            let ready = try await sandbox.waitForRoom("INC-U", state: "ready")
            let joinURL = try #require(ready["join_url"] as? String)
            #expect(joinURL.contains("/j/"))
            try sandbox.submit(
                "u2.yaml",
                incidentEvent(id: "evt-u2", stage: "resolved", incident: "INC-U", at: "2026-11-29T12:30:00Z")
            )
            try await sandbox.waitForRoom("INC-U", state: "ended")
            let all = try await waitFor("every meeting of the room deleted") { () -> [[String: Any]]? in
                let meetings = try await sandbox.simMeetings(room: roomID)
                return meetings.count == 2
                    && meetings.allSatisfy({ !($0["deleted_at"] is NSNull) && $0["deleted_at"] != nil })
                    ? meetings : nil
            }
            #expect(all.count == 2)
        }
    }

    @Test(
        "an unusable create answer whose meeting cannot be deleted for a while: retried, swept on its own host, never left live"
    )
    func unusableJoinURLDeleteFails() async throws {
        let sandbox = try Sandbox(hosts: 2)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 2)
            try await sandbox.startDaemon()
            // One failing DELETE: sitroomd's own retry of the delete removes the meeting at once.
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"join_url_create_reply","join_url":"https://","count":1}"#
                ) < 300
            )
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"status","status":500,"method":"DELETE","path_prefix":"/v2/meetings/","count":1}"#
                )
                    < 300
            )
            try sandbox.submit("c.yaml", incidentEvent(id: "evt-c", stage: "situation_room", incident: "INC-C"))
            let once = try await sandbox.waitForRoom("INC-C", state: "failed")
            #expect((once["reason"] as? String ?? "").contains("sitroom deleted meeting"), "\(once)")
            #expect(
                try await sandbox.simMeetings(room: try #require(once["room_id"] as? String)).allSatisfy {
                    $0["deleted_at"] is String
                }
            )

            // Four failing DELETEs (every immediate try, then the first sweep): the room fails saying the delete
            // failed; `room retry` makes a new room (perhaps on the other host) while the old one's host is swept
            // until the stray meeting is gone.
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"join_url_create_reply","join_url":"https://","count":1}"#
                ) < 300
            )
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"status","status":500,"method":"DELETE","path_prefix":"/v2/meetings/","count":4}"#
                )
                    < 300
            )
            try sandbox.submit("d.yaml", incidentEvent(id: "evt-d", stage: "situation_room", incident: "INC-D"))
            let failed = try await sandbox.waitForRoom("INC-D", state: "failed")
            let oldRoom = try #require(failed["room_id"] as? String)
            #expect((failed["reason"] as? String ?? "").contains("failed: Zoom API error 500"), "\(failed)")
            let retry = try await sandbox.ctl(["room", "retry", "INC-D"])
            #expect(retry.code == 0, "\(retry.err)")
            #expect(retry.out.contains("swept"), "\(retry.out)")
            let ready = try await sandbox.waitForRoom("INC-D", state: "ready")
            let newRoom = try #require(ready["room_id"] as? String)
            #expect(newRoom != oldRoom)
            _ = try await waitFor("the stray meeting deleted", timeout: 60) { () -> Bool? in
                let meetings = try await sandbox.simMeetings(room: oldRoom)
                return meetings.count == 1 && meetings.allSatisfy({ $0["deleted_at"] is String }) ? true : nil
            }
            #expect(sandbox.daemonLogs().contains("cannot sweep a failed room's host for its meeting, retrying"))
            try sandbox.submit(
                "d2.yaml",
                incidentEvent(id: "evt-d2", stage: "resolved", incident: "INC-D", at: "2026-11-29T12:30:00Z")
            )
            try await sandbox.waitForRoom("INC-D", state: "ended")
            _ = try await waitFor("the new room's meeting ended") { () -> Bool? in
                let meetings = try await sandbox.simMeetings(room: newRoom)
                return meetings.count == 1
                    && meetings.allSatisfy({ ($0["status"] as? String) == "ended" || $0["deleted_at"] is String })
                    ? true : nil
            }

            // An outage of Zoom's meeting endpoints (8 failures of any method: more sweep tries than a room's create
            // gets), `room retry` at once: the old
            // room's sweep outlasts it, and no meeting of either room is left live.
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"join_url_create_reply","join_url":"https://","count":1}"#
                ) < 300
            )
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"status","status":500,"path_prefix":"/v2/meetings/","count":8}"#
                )
                    < 300
            )
            try sandbox.submit("e.yaml", incidentEvent(id: "evt-e", stage: "situation_room", incident: "INC-E"))
            let failedE = try await sandbox.waitForRoom("INC-E", state: "failed")
            let oldE = try #require(failedE["room_id"] as? String)
            #expect(try await sandbox.ctl(["room", "retry", "INC-E"]).code == 0)
            let readyE = try await sandbox.waitForRoom("INC-E", state: "ready", timeout: 60)
            _ = try await waitFor("the stray of the outage deleted", timeout: 90) { () -> Bool? in
                let meetings = try await sandbox.simMeetings(room: oldE)
                return meetings.count == 1 && meetings.allSatisfy({ $0["deleted_at"] is String }) ? true : nil
            }
            #expect(!sandbox.daemonLogs().contains("gave up sweeping"))
            #expect(readyE["room_id"] as? String != oldE)
        }
    }

    @Test("a firing and its resolve found together in new/ at start (any stamps): the room ends, no meeting stays live")
    func resolveAndFiringAtStart() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon?.waitForExit() == 0)
            let format = ISO8601DateFormatter()
            let now = format.string(from: Date())
            // Resolved by hand an hour "before" a firing stamped now; and a firing ten years ahead resolved now.
            try sandbox.submit(
                "a1.yaml",
                incidentEvent(id: "evt-a1", stage: "situation_room", incident: "INC-A", at: now)
            )
            try sandbox.submit(
                "a2.yaml",
                incidentEvent(
                    id: "evt-a2",
                    stage: "resolved",
                    incident: "INC-A",
                    at: format.string(from: Date().addingTimeInterval(-3_600))
                )
            )
            try sandbox.submit(
                "b1.yaml",
                incidentEvent(
                    id: "evt-b1",
                    stage: "situation_room",
                    incident: "INC-B",
                    at: format.string(from: Date().addingTimeInterval(10 * 365 * 86_400))
                )
            )
            try sandbox.submit("b2.yaml", incidentEvent(id: "evt-b2", stage: "resolved", incident: "INC-B", at: now))
            try await sandbox.startDaemon()
            // Both incidents end resolved; the room the firing made in the same batch is dropped before any Zoom call.
            let listed = try await waitFor("both incidents listed") { () -> [[String: Any]]? in
                let out = try await sandbox.ctl(["incidents", "all", "--json"]).out
                let list = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [[String: Any]] ?? []
                return list.count == 2 ? list : nil
            }
            for incident in listed {
                #expect(incident["stage"] as? String == "resolved", "\(incident)")
                #expect(incident["room_id"] is NSNull || incident["state"] as? String == "ended", "\(incident)")
            }
            let lines = sandbox.daemonLogs().split(separator: "\n").filter { $0.contains("msg=\"event applied\"") }
            #expect(lines.count == 4, "\(lines)")
            // The same pair in two batches (a backlog cut by the batch limits): the far-ahead firing after the resolve
            // cannot be placed after it, so it is ignored and the incident stays resolved.
            try sandbox.submit("c1.yaml", incidentEvent(id: "evt-c1", stage: "resolved", incident: "INC-C", at: now))
            _ = try await waitFor("the resolve applied") { sandbox.daemonLogs().contains("evt-c1") ? true : nil }
            try sandbox.submit(
                "c2.yaml",
                incidentEvent(
                    id: "evt-c2",
                    stage: "situation_room",
                    incident: "INC-C",
                    at: format.string(from: Date().addingTimeInterval(10 * 365 * 86_400))
                )
            )
            _ = try await waitFor("the firing ignored") {
                sandbox.daemonLogs().contains("cannot be placed after the resolve") ? true : nil
            }
            #expect(try await sandbox.room("INC-C") == nil)
            let all = try await sandbox.simGET("/_sim/meetings")
            let meetings = (all as? [[String: Any]]) ?? ((all as? [String: Any])?["meetings"] as? [[String: Any]]) ?? []
            #expect(
                meetings.allSatisfy { ($0["status"] as? String) == "ended" || !($0["deleted_at"] is NSNull) },
                "\(meetings)"
            )
        }
    }

    @Test(
        "a participant who cannot be told costs nobody the room: the reachable are told, the others listed, admins told once"
    )
    func unreachableParticipants() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            let people = """
                  - { name: Ada Lovelace, email: ada@example.com, role: commander }
                  - { name: Deploy Bot, role: responder }
                  - { name: Mal Formed, email: "not-an-address", phone: "+15005550104" }
                """
            try sandbox.submit(
                "p.yaml",
                incidentEvent(id: "evt-p", stage: "situation_room", incident: "INC-P", participants: people)
            )
            let room = try await sandbox.waitForRoom("INC-P", state: "ready")
            let joinURL = try #require(room["join_url"] as? String)
            // Ada by email, Mal by SMS; the admins once, by email (the sandbox's admin has only an email).
            let mails = try await waitFor("Ada's mail and the admins' notice") { () -> [String]? in
                let names = sandbox.files("var/mail/new")
                return names.count == 2 ? names.map { sandbox.mail($0) } : nil
            }
            #expect(mails.contains { $0.contains("To: Ada Lovelace <ada@example.com>") && $0.contains(joinURL) })
            let admin = try #require(mails.first { $0.contains("ops-admin@example.org") })
            #expect(admin.contains("Deploy Bot: no email and no phone"), "\(admin)")
            #expect(
                admin.contains("Mal Formed: email 'not-an-address' is not a valid address (told by SMS only)"),
                "\(admin)"
            )
            let sms = try await waitFor("Mal's SMS") { () -> [String]? in
                let names = sandbox.files("var/sms/new")
                return names.count == 1 ? names : nil
            }
            #expect(sandbox.read("var/sms/new/\(sms[0])").contains("To: +15005550104"))

            let shown = try await sandbox.ctl(["room", "show", "INC-P"])
            #expect(shown.out.contains("not told     Deploy Bot: no email and no phone"), "\(shown.out)")
            let json = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try await sandbox.ctl(["room", "show", "INC-P", "--json"]).out.utf8)
                )
                    as? [String: Any]
            )
            let unreachable = try #require(json["unreachable"] as? [[String: String]])
            #expect(unreachable.map { $0["name"] } == ["Deploy Bot", "Mal Formed"])
            #expect(sandbox.daemonLogs().contains("participants who cannot be told"))

            // An update naming one more person: that person alone is told; the admins are not told again.
            try sandbox.submit(
                "p2.yaml",
                incidentEvent(
                    id: "evt-p2",
                    stage: "updated",
                    incident: "INC-P",
                    at: "2026-11-29T12:05:00Z",
                    participants: "      - { name: Grace Hopper, email: grace@example.com }\n"
                )
            )
            _ = try await waitFor("Grace's mail") { sandbox.files("var/mail/new").count == 3 ? true : nil }
            _ = try await waitFor("an empty outbox") { () -> Bool? in
                let status = try await sandbox.ctl(["status"]).out
                return status.contains("outbox: 0 pending") ? true : nil
            }
            #expect(sandbox.files("var/mail/new").count == 3)
        }
    }

    @Test(
        "a sender's clock ten years ahead cannot keep a meeting alive: the resolve stamped now ends it; the log says what each event did"
    )
    func clockAhead() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            let format = ISO8601DateFormatter()
            let ahead = format.string(from: Date().addingTimeInterval(10 * 365 * 86_400))
            let now = format.string(from: Date())
            try sandbox.submit(
                "f.yaml",
                incidentEvent(id: "evt-f", stage: "situation_room", incident: "INC-F", at: ahead)
            )
            let room = try await sandbox.waitForRoom("INC-F", state: "ready")
            let roomID = try #require(room["room_id"] as? String)
            _ = try await waitFor("the clock note") {
                sandbox.daemonLogs().contains("is ahead of sitroomd's clock: taken as") ? true : nil
            }
            // A second situation_room stamped earlier than the (clamped) first only merges participants.
            let earlier = format.string(from: Date().addingTimeInterval(-3_600))
            try sandbox.submit(
                "f1.yaml",
                incidentEvent(id: "evt-f1", stage: "situation_room", incident: "INC-F", at: earlier)
            )
            _ = try await waitFor("the stale note") {
                sandbox.daemonLogs().contains("stale: ignored") ? true : nil
            }
            try sandbox.submit("f2.yaml", incidentEvent(id: "evt-f2", stage: "resolved", incident: "INC-F", at: now))
            try await sandbox.waitForRoom("INC-F", state: "ended")
            let meetings = try await sandbox.simMeetings(room: roomID)
            #expect(meetings.count == 1)
            #expect(
                meetings.allSatisfy { ($0["status"] as? String) == "ended" || !($0["deleted_at"] is NSNull) },
                "\(meetings)"
            )
            let lines = sandbox.daemonLogs().split(separator: "\n").filter { $0.contains("msg=\"event applied\"") }
            #expect(lines.contains { $0.contains("evt-f") && $0.contains("room \(roomID) opened") }, "\(lines)")
            #expect(lines.contains { $0.contains("evt-f2") && $0.contains("asked to end") }, "\(lines)")
            let status = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(try await sandbox.ctl(["room", "show", "INC-F", "--json"]).out.utf8)
                )
                    as? [String: Any]
            )
            #expect(status["stage"] as? String == "resolved")

            // The far-ahead event counted as stamped when it arrived, so the sender's own next event, stamped a
            // little ahead (within the tolerance), is not stale: the incident reopens.
            let soon = format.string(from: Date().addingTimeInterval(30))
            try sandbox.submit("f3.yaml", incidentEvent(id: "evt-f3", stage: "reopened", incident: "INC-F", at: soon))
            let reopened = try await sandbox.waitForRoom("INC-F", state: "ready")
            #expect(reopened["stage"] as? String == "reopened", "\(reopened)")
        }
    }
}
