import Foundation
import Testing

/// Attacks on the group commit of room writes and on notice batching: SIGKILL during bursts, resolves and
/// integration removals while rooms await their commits, a mail directory that cannot be written.
@Suite("group commit and notice batches under attack", .serialized)
struct GroupCommitChaosTests {
    /// Renames `count` situation-room events into new/ back to back (a burst as the feed sends it).
    func burst(_ sandbox: Sandbox, from first: Int, count: Int, at time: String) throws {
        let spool = "\(sandbox.root)/var/spool/incidents"
        for index in first..<(first + count) {
            try incidentEvent(
                id: "g\(index)-open",
                stage: "situation_room",
                incident: "INC-G\(index)",
                title: "Outage \(index)",
                at: time,
                participants: Self.people(index)
            ).write(toFile: "\(spool)/tmp/g\(index).yaml", atomically: false, encoding: .utf8)
        }
        for index in first..<(first + count) {
            guard rename("\(spool)/tmp/g\(index).yaml", "\(spool)/new/g\(index).yaml") == 0 else {
                throw TimedOut(what: "rename g\(index).yaml")
            }
        }
    }

    static func people(_ index: Int) -> String {
        """
              - { name: Lead \(index), email: lead\(index)@example.com, phone: "+1500555\(String(format: "%04d", index))", role: commander }
              - { name: Helper \(index), email: helper\(index)@example.com, role: responder }
        """
    }

    /// incident → its current room, from one `rooms all --json`.
    func rooms(_ sandbox: Sandbox) async throws -> [String: [String: Any]] {
        let reply = try await sandbox.ctl(["rooms", "all", "--json"])
        let list = (try? JSONSerialization.jsonObject(with: Data(reply.out.utf8)) as? [[String: Any]]) ?? []
        var rooms: [String: [String: Any]] = [:]
        for room in list {
            guard let incident = room["incident"] as? String else { continue }
            if let known = rooms[incident],
                (known["created_at"] as? String ?? "") > (room["created_at"] as? String ?? "")
            {
                continue
            }
            rooms[incident] = room
        }
        return rooms
    }

    /// Every incident's email to each of its people carries the link, exactly once; the lead has one SMS.
    func expectToldOnce(_ sandbox: Sandbox, _ index: Int, joinURL: String) async throws {
        try await sandbox.expectToldOnce(
            emails: ["lead\(index)@example.com", "helper\(index)@example.com"],
            phone: "+1500555\(String(format: "%04d", index))",
            joinURL: joinURL
        )
    }

    func expectNoneDead(_ sandbox: Sandbox) async throws {
        let dead = try await sandbox.ctl(["outbox", "dead", "--json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(dead.out.utf8)) as? [Any])
        #expect(list.isEmpty, "dead notices: \(dead.out)")
    }

    /// The daily creates sitroomd counts per host of `integrations` are never fewer than the creates zoom-sim saw.
    func expectCreatesCounted(_ sandbox: Sandbox, integrations: [String]) async throws {
        let users = try #require(try await sandbox.simGET("/_sim/users") as? [[String: Any]])
        var counted: [String: Int] = [:]
        for name in integrations {
            let pool = try await sandbox.ctl(["pool", name, "--json"])
            let hosts = try #require(try JSONSerialization.jsonObject(with: Data(pool.out.utf8)) as? [[String: Any]])
            for host in hosts {
                counted[host["user"] as? String ?? "", default: 0] += host["creates_today"] as? Int ?? 0
            }
        }
        for user in users where counted[user["email"] as? String ?? ""] != nil {
            let email = user["email"] as? String ?? ""
            let seen = user["creates_today"] as? Int ?? 0
            #expect(
                counted[email, default: 0] >= seen,
                "\(email): sitroomd counts \(counted[email, default: 0]), zoom-sim saw \(seen)"
            )
        }
    }

    @Test(
        "SIGKILL at random moments during bursts, resolves mid-provisioning: one meeting each, everyone told once, creates never under-counted"
    )
    func killDuringBursts() async throws {
        let rounds = 4
        let perRound = 16
        let sandbox = try Sandbox(hosts: 8, concurrent: 8)
        defer { sandbox.tearDown() }
        var generator = SystemRandomNumberGenerator()
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 8, concurrent: 8)
            try await sandbox.startDaemon()
            // Slow creates keep rooms in the works when the kills come; some fail (retried after a backoff), some
            // replies are lost after the meeting was made (settled by the room's marker).
            for fault in [
                #"{"kind":"latency","seconds":0.03,"path_prefix":"/v2/users"}"#,
                #"{"kind":"status","status":503,"path_prefix":"/v2/users","method":"POST","count":6}"#,
                #"{"kind":"drop_create_reply","count":3}"#,
            ] {
                #expect(try await sandbox.simPOST("/_sim/faults", fault) < 300)
            }
            var resolved: Set<Int> = []
            for round in 0..<rounds {
                let time = "2026-11-29T12:\(String(format: "%02d", round)):00Z"
                try burst(sandbox, from: round * perRound, count: perRound, at: time)
                if round > 0 {
                    // Two incidents of the previous burst are resolved while their rooms may still be in the works.
                    for index in [(round - 1) * perRound + 1, (round - 1) * perRound + 4] {
                        try sandbox.submit(
                            "g\(index)-resolve.yaml",
                            incidentEvent(
                                id: "g\(index)-resolve",
                                stage: "resolved",
                                incident: "INC-G\(index)",
                                at: time
                            )
                        )
                        resolved.insert(index)
                    }
                }
                let moment = UInt64.random(in: 0...150, using: &generator)
                try await Task.sleep(for: .milliseconds(moment))  // waits-on-purpose: the random moment of the kill
                sandbox.daemon?.signal(SIGKILL)
                _ = try await sandbox.daemon?.waitForExit()
                try await sandbox.startDaemon()
            }

            let total = rounds * perRound
            _ = try await waitFor("new/ to empty", timeout: 60) {
                sandbox.files("var/spool/incidents/new").isEmpty ? true : nil
            }
            let settled = try await waitFor("every room settled", timeout: 90) { () -> [String: [String: Any]]? in
                let rooms = try await rooms(sandbox)
                for index in 0..<total {
                    let state = rooms["INC-G\(index)"]?["state"] as? String
                    if resolved.contains(index) {
                        // Opened and resolved in one batch (both were still in new/ at a restart): no room at all.
                        guard state == "ended" || state == nil else { return nil }
                    } else {
                        guard state == "ready" else { return nil }
                    }
                }
                return rooms
            }
            let meetings = try await sandbox.allSimMeetings()
            for index in 0..<total {
                let mine = meetings.filter { ($0["agenda"] as? String)?.contains("Incident INC-G\(index):") == true }
                if resolved.contains(index) {
                    #expect(mine.count <= 1, "INC-G\(index) has \(mine.count) meetings")
                    for meeting in mine {
                        #expect(
                            ["ended", "deleted"].contains(meeting["status"] as? String ?? ""),
                            "INC-G\(index): a meeting left open"
                        )
                    }
                } else {
                    #expect(mine.count == 1, "INC-G\(index) has \(mine.count) meetings")
                    let joinURL = try #require(settled["INC-G\(index)"]?["join_url"] as? String)
                    try await expectToldOnce(sandbox, index, joinURL: joinURL)
                }
            }
            try await expectCreatesCounted(sandbox, integrations: ["zoom-main"])
            try await expectNoneDead(sandbox)

            // A restart reads the same creates back.
            sandbox.daemon?.signal(SIGTERM)
            _ = try await sandbox.daemon?.waitForExit()
            try await sandbox.startDaemon()
            try await expectCreatesCounted(sandbox, integrations: ["zoom-main"])
        }
    }

    @Test(
        "an integration removed mid-burst: its bound rooms become unavailable, the others are served by the other one"
    )
    func integrationRemovedMidBurst() async throws {
        let count = 16
        let sandbox = try Sandbox(hosts: 8, concurrent: 4)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            let settings = sandbox.read("etc/sitroom.yaml")
                .replacingOccurrences(
                    of: "conference: { component: video, integrations: [zoom-main] }",
                    with: "conference: { component: video }"
                )
            try sandbox.write("etc/sitroom.yaml", settings)
            try sandbox.writeIntegration(name: "zoom-a", hostNumbers: [1, 2, 3, 4], concurrent: 4)
            try sandbox.writeIntegration(name: "zoom-b", hostNumbers: [5, 6, 7, 8], concurrent: 4)
            try await sandbox.startDaemon()
            #expect(
                try await sandbox.simPOST(
                    "/_sim/faults",
                    #"{"kind":"latency","seconds":0.1,"path_prefix":"/v2/users"}"#
                ) < 300
            )
            try burst(sandbox, from: 0, count: 4, at: "2026-11-29T12:00:00Z")
            _ = try await waitFor("a first ready room", timeout: 30) { () -> Bool? in
                let rooms = try await rooms(sandbox)
                return rooms.values.contains { $0["state"] as? String == "ready" } ? true : nil
            }
            // The rest of the burst arrives, and zoom-a is removed while its rooms lease hosts and await commits.
            try burst(sandbox, from: 4, count: 6, at: "2026-11-29T12:01:00Z")
            try FileManager.default.removeItem(atPath: "\(sandbox.root)/etc/integrations/zoom-a.yaml")
            #expect(try await sandbox.ctl(["reload"]).code == 0)
            // And more while the removal's rooms are being made unavailable: they go through zoom-b.
            try burst(sandbox, from: 10, count: count - 10, at: "2026-11-29T12:02:00Z")

            let settled = try await waitFor("every room settled", timeout: 60) { () -> [String: [String: Any]]? in
                let rooms = try await rooms(sandbox)
                for index in 0..<count {
                    let state = rooms["INC-G\(index)"]?["state"] as? String
                    guard state == "ready" || state == "unavailable" || state == "failed" else { return nil }
                }
                return rooms
            }
            let meetings = try await sandbox.allSimMeetings()
            for index in 0..<count {
                let room = try #require(settled["INC-G\(index)"])
                let state = room["state"] as? String ?? ""
                let integration = room["integration"] as? String
                #expect(state != "failed", "INC-G\(index) failed: \(room["reason"] ?? "")")
                if state == "unavailable" {
                    #expect(integration == "zoom-a", "INC-G\(index) unavailable on \(integration ?? "none")")
                } else if state == "ready" {
                    #expect(integration == "zoom-b", "INC-G\(index) ready on \(integration ?? "none")")
                    let mine = meetings.filter {
                        ($0["agenda"] as? String)?.contains("Incident INC-G\(index):") == true
                            && ($0["host_email"] as? String).map {
                                ["bridge-5", "bridge-6", "bridge-7", "bridge-8"].contains(String($0.prefix(8)))
                            } == true
                    }
                    #expect(mine.count == 1, "INC-G\(index) has \(mine.count) meetings on zoom-b")
                    try await expectToldOnce(sandbox, index, joinURL: room["join_url"] as? String ?? "?")
                }
            }
            try await expectCreatesCounted(sandbox, integrations: ["zoom-b"])

            // README: `room retry` provisions an `unavailable` room again from the start.
            let gone = try #require(settled.first { $0.value["state"] as? String == "unavailable" }?.key)
            let retry = try await sandbox.ctl(["room", "retry", gone])
            #expect(retry.code == 0, "room retry \(gone): \(retry.out) \(retry.err)")
            let again = try await sandbox.waitForRoom(gone, state: "ready")
            #expect(again["integration"] as? String == "zoom-b")
        }
    }

    @Test("the mail directory unusable, then SIGKILL mid-batch, then fixed: every notice delivered once, none dead")
    func mailDirectoryBrokenThenKilled() async throws {
        let count = 12
        let sandbox = try Sandbox(hosts: 4, concurrent: 4)
        defer { sandbox.tearDown() }
        var generator = SystemRandomNumberGenerator()
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            let settings = sandbox.read("etc/sitroom.yaml")
                .replacingOccurrences(
                    of: "  sms: { transport: file }",
                    with: "  sms: { transport: file }\n  retry: { first: 1s, max: 2s, give_up_after: 1h }"
                )
            try sandbox.write("etc/sitroom.yaml", settings)
            try sandbox.writeIntegration(hosts: 4, concurrent: 4)
            try await sandbox.startDaemon()
            // The tests run as root, for whom chmod blocks nothing: make var/mail a plain file instead.
            let mail = "\(sandbox.root)/var/mail"
            #expect(rename(mail, "\(mail).away") == 0)
            #expect(
                FileManager.default.createFile(
                    atPath: mail,
                    contents: Array("not a directory\n".utf8).withUnsafeBytes { Data($0) }
                )
            )
            try burst(sandbox, from: 0, count: count, at: "2026-11-29T12:00:00Z")
            _ = try await waitFor("email deliveries failing", timeout: 30) { () -> Bool? in
                sandbox.daemonLogs().contains("notice delivery failed, will retry") ? true : nil
            }
            // SMS go on meanwhile.
            _ = try await waitFor("the SMS", timeout: 30) { () -> Bool? in
                sandbox.files("var/sms/new").count >= count ? true : nil
            }
            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            try FileManager.default.removeItem(atPath: mail)
            #expect(rename("\(mail).away", mail) == 0)
            try await sandbox.startDaemon()
            let moment = UInt64.random(in: 0...60, using: &generator)
            try await Task.sleep(for: .milliseconds(moment))  // waits-on-purpose: a random kill moment
            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            try await sandbox.startDaemon()

            let ready = try await waitFor("every room ready", timeout: 60) { () -> [String: [String: Any]]? in
                let rooms = try await rooms(sandbox)
                return (0..<count).allSatisfy { rooms["INC-G\($0)"]?["state"] as? String == "ready" } ? rooms : nil
            }
            for index in 0..<count {
                try await expectToldOnce(sandbox, index, joinURL: ready["INC-G\(index)"]?["join_url"] as? String ?? "?")
            }
            try await expectNoneDead(sandbox)
        }
    }
}
