import Foundation
import Testing

/// The pool against zoom-sim: hosts never oversubscribed, waiting rooms served oldest first, failover.
@Suite("pool end to end", .serialized)
struct PoolTests {
    /// Renames five events into new/ back to back (the feed's view of "at once").
    func submitFive(_ sandbox: Sandbox) throws {
        let spool = "\(sandbox.root)/var/spool/incidents"
        for index in 1...5 {
            let text = incidentEvent(
                id: "evt-p\(index)",
                stage: "situation_room",
                incident: "INC-P\(index)",
                title: "Outage \(index)",
                participants: "  - { name: Ada Lovelace, email: ada@example.com }"
            )
            try text.write(toFile: "\(spool)/tmp/p\(index).yaml", atomically: false, encoding: .utf8)
        }
        for index in 1...5 { rename("\(spool)/tmp/p\(index).yaml", "\(spool)/new/p\(index).yaml") }
    }

    /// incident → room, for the five incidents, from one `rooms all --json` (one consistent snapshot).
    func states(_ sandbox: Sandbox) async throws -> [String: [String: Any]] {
        let reply = try await sandbox.ctl(["rooms", "all", "--json"])
        let list = (try? JSONSerialization.jsonObject(with: Data(reply.out.utf8)) as? [[String: Any]]) ?? []
        var rooms: [String: [String: Any]] = [:]
        for room in list {
            guard let incident = room["incident"] as? String, incident.hasPrefix("INC-P") else { continue }
            // The incident's current room is its newest.
            if let known = rooms[incident],
                (known["created_at"] as? String ?? "") > (room["created_at"] as? String ?? "")
            {
                continue
            }
            rooms[incident] = room
        }
        return rooms
    }

    func settled(_ sandbox: Sandbox, ready: Int, waiting: Int) async throws -> [String: [String: Any]] {
        try await waitFor("\(ready) ready and \(waiting) waiting rooms") {
            let rooms = try await states(sandbox)
            let counts = rooms.values.reduce(into: [String: Int]()) {
                $0[$1["state"] as? String ?? "", default: 0] += 1
            }
            return counts["ready", default: 0] == ready && counts["waiting", default: 0] == waiting ? rooms : nil
        }
    }

    func oldestFirst(_ rooms: [String: [String: Any]], state: String) -> [String] {
        rooms.filter { $0.value["state"] as? String == state }
            .sorted {
                ($0.value["created_at"] as? String ?? "", $0.key) < ($1.value["created_at"] as? String ?? "", $1.key)
            }
            .map(\.key)
    }

    func noHostOversubscribed(_ sandbox: Sandbox) async throws {
        let users = try #require(try await sandbox.simGET("/_sim/users") as? [[String: Any]])
        for user in users {
            #expect((user["max_live_seen"] as? Int ?? 0) <= 1, "\(user["email"] ?? "?") had two live meetings")
            #expect(user["oversubscribed"] as? Bool != true)
        }
    }

    @Test(
        "2 hosts, 5 new incidents in one batch stamped out of their ids' order: the two stamped first get the hosts; a host freed by a batch that also opens an incident goes to the oldest waiting room"
    )
    func batchOrderNotIDOrder() async throws {
        let sandbox = try Sandbox(hosts: 2)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 2)
            try await sandbox.startDaemon()
            let daemon = try #require(sandbox.daemon)
            // Stopped, so the five files are read as one batch when it goes on.
            daemon.signal(SIGSTOP)
            let stamps = [
                ("ZULU", "10:00"), ("YANKEE", "10:01"), ("XRAY", "10:02"), ("ALPHA", "10:05"), ("BRAVO", "10:04"),
            ]
            for (name, time) in stamps {
                try sandbox.submit(
                    "q-\(name).yaml",
                    incidentEvent(
                        id: "evt-q-\(name)",
                        stage: "situation_room",
                        incident: "INC-P\(name)",
                        at: "2026-11-29T\(time):00Z"
                    )
                )
            }
            daemon.signal(SIGCONT)
            var rooms = try await settled(sandbox, ready: 2, waiting: 3)
            #expect(
                Set(oldestFirst(rooms, state: "ready")) == ["INC-PZULU", "INC-PYANKEE"],
                "\(rooms.mapValues { $0["state"] ?? "" })"
            )
            #expect(oldestFirst(rooms, state: "waiting") == ["INC-PXRAY", "INC-PBRAVO", "INC-PALPHA"])

            // One batch frees a host (ZULU resolved) and opens a new incident: the oldest waiting room takes the host.
            daemon.signal(SIGSTOP)
            try sandbox.submit(
                "q-zulu-r.yaml",
                incidentEvent(id: "evt-q-zulu-r", stage: "resolved", incident: "INC-PZULU", at: "2026-11-29T10:06:00Z")
            )
            try sandbox.submit(
                "q-new.yaml",
                incidentEvent(
                    id: "evt-q-new",
                    stage: "situation_room",
                    incident: "INC-PNEW",
                    at: "2026-11-29T10:06:00Z"
                )
            )
            daemon.signal(SIGCONT)
            rooms = try await settled(sandbox, ready: 2, waiting: 3)
            #expect(rooms["INC-PXRAY"]?["state"] as? String == "ready", "\(rooms.mapValues { $0["state"] ?? "" })")
            #expect(oldestFirst(rooms, state: "waiting") == ["INC-PBRAVO", "INC-PALPHA", "INC-PNEW"])
            try await noHostOversubscribed(sandbox)
        }
    }

    @Test(
        "3 hosts of 1 meeting, 5 incidents at once: 3 ready, 2 waiting (3/3 busy), served oldest first; a restart changes nothing"
    )
    func fiveIncidentsThreeHosts() async throws {
        let sandbox = try Sandbox(hosts: 3)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 3)
            try await sandbox.startDaemon()
            try submitFive(sandbox)

            var rooms = try await settled(sandbox, ready: 3, waiting: 2)
            for incident in oldestFirst(rooms, state: "waiting") {
                let reason = rooms[incident]?["reason"] as? String ?? ""
                #expect(reason.contains("3/3 meetings open"), "\(incident): \(reason)")
            }
            let ready = Set(oldestFirst(rooms, state: "ready"))
            let waiting = oldestFirst(rooms, state: "waiting")
            // The three oldest rooms got the hosts.
            let all = rooms.sorted {
                ($0.value["created_at"] as? String ?? "", $0.key) < ($1.value["created_at"] as? String ?? "", $1.key)
            }
            #expect(ready.count == 3)
            #expect(Set(all.prefix(3).map(\.key)) == ready, "the three oldest rooms take the three hosts")
            try await noHostOversubscribed(sandbox)
            let status = try await sandbox.ctl(["pool", "zoom-main"])
            #expect(status.code == 0)
            #expect(status.out.contains("1/1"))

            // A restart in the middle: same rooms, same states, same hosts.
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon?.waitForExit() == 0)
            try await sandbox.startDaemon()
            let afterRestart = try await settled(sandbox, ready: 3, waiting: 2)
            for (incident, room) in rooms {
                #expect(afterRestart[incident]?["room_id"] as? String == room["room_id"] as? String)
                #expect(afterRestart[incident]?["state"] as? String == room["state"] as? String)
                #expect(afterRestart[incident]?["host"] as? String == room["host"] as? String)
            }
            let poolJSON = try await sandbox.ctl(["pool", "zoom-main", "--json"])
            let hosts = try #require(
                try JSONSerialization.jsonObject(with: Data(poolJSON.out.utf8)) as? [[String: Any]]
            )
            #expect(hosts.map { $0["open_rooms"] as? Int } == [1, 1, 1])

            // Resolving one ready incident serves the oldest waiting room, and only it.
            let first = oldestFirst(rooms, state: "ready")[0]
            try sandbox.submit(
                "r1.yaml",
                incidentEvent(id: "evt-r1", stage: "resolved", incident: first, at: "2026-11-29T13:00:00Z")
            )
            rooms = try await settled(sandbox, ready: 3, waiting: 1)
            #expect(rooms[waiting[0]]?["state"] as? String == "ready")
            #expect(rooms[waiting[1]]?["state"] as? String == "waiting")
            #expect(rooms[first]?["state"] as? String == "ended")

            let second = oldestFirst(rooms, state: "ready")[0]
            try sandbox.submit(
                "r2.yaml",
                incidentEvent(id: "evt-r2", stage: "resolved", incident: second, at: "2026-11-29T13:00:00Z")
            )
            rooms = try await settled(sandbox, ready: 3, waiting: 0)
            #expect(rooms[waiting[1]]?["state"] as? String == "ready")
            try await noHostOversubscribed(sandbox)
            // Exactly one meeting per room, five rooms.
            let meetings = try #require(try await sandbox.simGET("/_sim/meetings") as? [[String: Any]])
            #expect(meetings.count == 5)
        }
    }

    @Test("a host at its daily create limit is skipped; a second integration takes over when the first has none")
    func dailyLimitAndFailover() async throws {
        let sandbox = try Sandbox(hosts: 2, integrations: ["zoom-main", "zoom-backup"])
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(name: "zoom-main", hostNumbers: [1])
            try sandbox.writeIntegration(name: "zoom-backup", hostNumbers: [2])
            try await sandbox.startDaemon()
            #expect(
                try await sandbox.simPOST("/_sim/faults", #"{"kind":"daily_limit","user":"bridge-1@example.com"}"#)
                    < 300
            )

            try sandbox.submit("q1.yaml", incidentEvent(id: "evt-q1", stage: "situation_room", incident: "INC-Q1"))
            let room = try await sandbox.waitForRoom("INC-Q1", state: "ready")
            #expect(room["integration"] as? String == "zoom-backup")
            #expect(room["host"] as? String == "bridge-2@example.com")

            let pool = try await sandbox.ctl(["pool", "zoom-main", "--json"])
            let hosts = try #require(try JSONSerialization.jsonObject(with: Data(pool.out.utf8)) as? [[String: Any]])
            #expect(hosts.first?["state"] as? String == "out of quota")
            #expect((hosts.first?["detail"] as? String)?.contains("00:00 UTC") == true)

            // bridge-1 stays skipped: the next incident waits for bridge-2 rather than trying bridge-1 again.
            try sandbox.submit("q2.yaml", incidentEvent(id: "evt-q2", stage: "situation_room", incident: "INC-Q2"))
            let waiting = try await sandbox.waitForRoom("INC-Q2", state: "waiting")
            let reason = waiting["reason"] as? String ?? ""
            #expect(reason.contains("daily create quota of bridge-1 used up until 00:00 UTC"), "\(reason)")
            #expect(reason.contains("all 1 hosts of zoom-backup busy: 1/1 meetings open"), "\(reason)")
            let requests = try #require(try await sandbox.simGET("/_sim/requests") as? [[String: Any]])
            let creates = requests.filter {
                ($0["method"] as? String) == "POST" && ($0["path"] as? String)?.hasSuffix("/meetings") == true
            }
            #expect(creates.filter { ($0["path"] as? String)?.contains("bridge-1") == true }.count == 1)
        }
    }

    @Test("a drained host takes no new rooms and keeps its open one; resume serves the waiting room")
    func drainAndResume() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            #expect(try await sandbox.ctl(["pool", "drain", "zoom-main", "bridge-1"]).code == 0)
            // Kept across restarts (docs/control.md): a reload or a start used to delete it with the other
            // per-host records it took for integrations no longer configured.
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon!.waitForExit() == 0)
            try await sandbox.startDaemon()
            #expect(try await sandbox.ctl(["pool", "drain", "zoom-main", "bridge-1"]).out.contains("already drained"))
            try sandbox.submit("d1.yaml", incidentEvent(id: "evt-d1", stage: "situation_room", incident: "INC-D1"))
            let waiting = try await sandbox.waitForRoom("INC-D1", state: "waiting")
            #expect((waiting["reason"] as? String ?? "").contains("drained"))
            #expect(try await sandbox.ctl(["pool", "resume", "zoom-main", "bridge-nope"]).code == 1)
            let unknown = try await sandbox.ctl(["pool", "drain", "zoom-nope", "bridge-1"])
            #expect(unknown.code == 1 && unknown.err.contains("no integration named zoom-nope"), "\(unknown.err)")
            #expect(try await sandbox.ctl(["pool", "resume", "zoom-main", "bridge-1"]).code == 0)
            try await sandbox.waitForRoom("INC-D1", state: "ready")
        }
    }

    @Test("a room that waits longer than conference.waiting_alert_after pages the admins, once")
    func waitingTooLongPagesAdmins() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            let settings = sandbox.read("etc/sitroom.yaml")
                .replacingOccurrences(of: "conference: {", with: "conference: { waiting_alert_after: 1s,")
            try sandbox.write("etc/sitroom.yaml", settings)
            try await sandbox.startDaemon()
            try sandbox.submit("a1.yaml", incidentEvent(id: "evt-a1", stage: "situation_room", incident: "INC-A1"))
            try await sandbox.waitForRoom("INC-A1", state: "ready")
            try sandbox.submit("a2.yaml", incidentEvent(id: "evt-a2", stage: "situation_room", incident: "INC-A2"))
            try await sandbox.waitForRoom("INC-A2", state: "waiting")
            func pages() -> [String] {
                sandbox.files("var/mail/new").filter {
                    let mail = sandbox.mail($0)
                    return mail.contains("ops-admin@example.org") && mail.contains("is waiting for a Zoom host")
                }
            }
            // The rooms timer looks every 5 s: the page comes after at most one more tick.
            _ = try await waitFor("the admins to be paged", timeout: 20) { pages().count == 1 ? true : nil }
            // Another tick later there is still one page (the notice is keyed by room, admin, kind, channel).
            let ticks = sandbox.daemon?.stderr.components(separatedBy: "admin-waiting").count ?? 0
            _ = try await waitFor("another rooms tick", timeout: 20) { () -> Bool? in
                let log = sandbox.daemon?.stderr ?? ""
                return log.components(separatedBy: "room waiting").count >= 1 && ticks >= 1 ? true : nil
            }
            #expect(pages().count == 1)
        }
    }
}
