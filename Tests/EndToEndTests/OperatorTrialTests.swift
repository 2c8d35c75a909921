import Foundation
import Testing

/// What an operator meets in the first hour (the newcomer's trial): each rough edge it found, against a running
/// sitroomd, zoom-sim and the real sitroomctl.
@Suite("an operator's first hour", .serialized)
struct OperatorTrialTests {
    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test("room end says an operator closed the room; status's room breakdown adds up; tables show AGE, REASON and -")
    func operatorClose() async throws {
        let sandbox = try Sandbox(hosts: 2)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()

            let empty = try await sandbox.ctl(["rooms"])
            #expect(empty.code == 0)
            #expect(empty.out.hasPrefix("no open rooms"))

            try sandbox.submit("a.yaml", incidentEvent(id: "evt-a", stage: "situation_room", incident: "INC-A"))
            try sandbox.submit("b.yaml", incidentEvent(id: "evt-b", stage: "situation_room", incident: "INC-B"))
            try await sandbox.waitForRoom("INC-A", state: "ready")
            try await sandbox.waitForRoom("INC-B", state: "ready")
            let readyMails = try await waitFor("four room-ready mails") { () -> [String]? in
                let names = sandbox.files("var/mail/new")
                return names.count == 4 ? names : nil
            }

            let table = try await sandbox.ctl(["rooms"])
            let header = try #require(table.out.split(separator: "\n").first)
            #expect(header.contains("AGE") && header.contains("REASON"), "\(table.out)")
            let rowA = try #require(table.out.split(separator: "\n").first { $0.hasPrefix("INC-A") })
            #expect(rowA.hasSuffix(" -"), "a ready room has no reason: its cell is -: \(rowA)")

            let end = try await sandbox.ctl(["room", "end", "INC-A"])
            #expect(end.code == 0, "\(end.err)")
            #expect(end.out.contains("closed") && !end.out.contains("resolved"), "\(end.out)")
            try await sandbox.waitForRoom("INC-A", state: "ended")
            let endedMails = try await waitFor("two room-ended mails") { () -> [String]? in
                let names = sandbox.files("var/mail/new").filter { !readyMails.contains($0) }
                return names.count == 2 ? names : nil
            }
            for name in endedMails {
                let mail = sandbox.mail(name)
                #expect(mail.contains("An operator closed the situation room for incident INC-A"), "\(mail)")
                #expect(!mail.contains("is resolved"), "\(mail)")
            }
            // The incident itself is still in its situation-room stage.
            let shown = try #require(
                try json(try await sandbox.ctl(["room", "show", "INC-A", "--json"]).out) as? [String: Any]
            )
            #expect(shown["state"] as? String == "ended")

            // 1 open (ready 1); ended 1: what is inside the parentheses adds up to the open count.
            let status = try await sandbox.ctl(["status"])
            let roomsLine = try #require(status.out.split(separator: "\n").first { $0.hasPrefix("rooms:") })
            #expect(roomsLine == "rooms: 1 open (ready 1); ended 1", "\(roomsLine)")
            let statusJSON = try #require(try json(try await sandbox.ctl(["status", "--json"]).out) as? [String: Any])
            let rooms = try #require(statusJSON["rooms"] as? [String: Any])
            #expect(rooms["open"] as? Int == 1)
            #expect((rooms["by_state"] as? [String: Int]) == ["ready": 1, "ended": 1])

            // Draining twice says so; resuming a host that is not drained says so.
            #expect(try await sandbox.ctl(["pool", "drain", "zoom-main", "bridge-2"]).out.contains("drained"))
            let again = try await sandbox.ctl(["pool", "drain", "zoom-main", "bridge-2"])
            #expect(again.code == 0)
            #expect(again.out.contains("already drained"), "\(again.out)")
            #expect(try await sandbox.ctl(["pool", "resume", "zoom-main", "bridge-2"]).out.contains("resumed"))
            #expect(try await sandbox.ctl(["pool", "resume", "zoom-main", "bridge-2"]).out.contains("not drained"))

            // A first reauthorization of an integration that was never out of `active` does not say "again".
            let reauthorize = try await sandbox.ctl(["integration", "reauthorize", "zoom-main"])
            #expect(reauthorize.code == 0, "\(reauthorize.err)")
            #expect(
                reauthorize.out.contains("zoom-main is active") && !reauthorize.out.contains("again"),
                "\(reauthorize.out)"
            )
        }
    }

    @Test("bad usage exits 64 with the command's usage line; a read-only listing of incidents without a room")
    func usageAndIncidents() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()

            let show = try await sandbox.ctl(["room", "show"])
            #expect(show.code == 64)
            #expect(show.err.contains("room show INCIDENT"), "\(show.err)")
            let pool = try await sandbox.ctl(["pool", "drain", "zoom-main"])
            #expect(pool.code == 64)
            #expect(pool.err.contains("pool drain NAME HOST"), "\(pool.err)")

            // An `opened` incident has no room; `incidents` lists it, with `-` for the room.
            try sandbox.submit("o.yaml", incidentEvent(id: "evt-o", stage: "opened", incident: "INC-O"))
            try sandbox.submit("r.yaml", incidentEvent(id: "evt-r", stage: "situation_room", incident: "INC-R"))
            try await sandbox.waitForRoom("INC-R", state: "ready")
            let listing = try await waitFor("INC-O listed") { () -> String? in
                let out = try await sandbox.ctl(["incidents"]).out
                return out.contains("INC-O") ? out : nil
            }
            let rowO = try #require(listing.split(separator: "\n").first { $0.hasPrefix("INC-O") })
            #expect(rowO.contains("opened"), "\(rowO)")
            let rowR = try #require(listing.split(separator: "\n").first { $0.hasPrefix("INC-R") })
            #expect(rowR.contains("ready"), "\(rowR)")
            let incidents = try #require(
                try json(try await sandbox.ctl(["incidents", "--json"]).out) as? [[String: Any]]
            )
            let opened = try #require(incidents.first { $0["incident"] as? String == "INC-O" })
            #expect(opened["room_id"] is NSNull)
            #expect(opened["stage"] as? String == "opened")
        }
    }

    @Test("a rejected spool file shows in status; submit --wait reports the outcome; submit --check spools nothing")
    func rejectedAndSubmit() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()

            let bad = "\(sandbox.root)/bad.yaml"
            try "event_id: evt-bad\nstage: situation_room\nincident: { id: INC-X }\n".write(
                toFile: bad,
                atomically: true,
                encoding: .utf8
            )
            let good = "\(sandbox.root)/good.yaml"
            try incidentEvent(id: "evt-good", stage: "situation_room", incident: "INC-G").write(
                toFile: good,
                atomically: true,
                encoding: .utf8
            )

            // --check: validated here, nothing spooled.
            let checkBad = try await sandbox.ctl(["submit", "--check", bad])
            #expect(checkBad.code == 1)
            #expect(checkBad.err.contains("bad.yaml:"), "\(checkBad.err)")
            let checkGood = try await sandbox.ctl(["submit", "--check", good])
            #expect(checkGood.code == 0, "\(checkGood.err)")
            #expect(sandbox.files("var/spool/incidents/new").isEmpty)
            #expect(sandbox.files("var/spool/incidents/cur").isEmpty)

            // --wait: rejected → exit 1 with the reason; applied → exit 0.
            let waitBad = try await sandbox.ctl(["submit", "--wait", bad], timeout: 30)
            #expect(waitBad.code == 1)
            #expect(waitBad.err.contains("rejected"), "\(waitBad.err)")
            let waitGood = try await sandbox.ctl(["submit", "--wait", good], timeout: 30)
            #expect(waitGood.code == 0, "\(waitGood.err)")
            #expect(try await sandbox.room("INC-G") != nil, "applied means the incident is in the store")

            let status = try await sandbox.ctl(["status"])
            #expect(status.out.contains("rejected: 1 in the last hour, 1 in rejected/"), "\(status.out)")
            #expect(status.out.contains("newest rejected: rejected/"), "\(status.out)")
            let spool = try #require(
                (try json(try await sandbox.ctl(["status", "--json"]).out) as? [String: Any])?["spool"]
                    as? [String: Any]
            )
            let rejected = try #require(spool["rejected"] as? [String: Any])
            #expect(rejected["last_hour"] as? Int == 1)
            #expect(rejected["total"] as? Int == 1)
            #expect(((rejected["newest"] as? [String: Any])?["reason"] as? String)?.isEmpty == false)
        }
    }

    @Test("the demo refuses to start over a running one (its lock held), says so, and leaves var/ alone")
    func demoRefuses() async throws {
        // A copy of scripts/run-demo in a directory of its own: it works on the directory above the script.
        let directory = NSTemporaryDirectory() + "sitroom-demo-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for sub in ["scripts", "var/run", "var/lib", "logs"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(sub)", withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(
            atPath: "\(repositoryRoot)/scripts/run-demo",
            toPath: "\(directory)/scripts/run-demo"
        )
        try "the running demo's state\n".write(toFile: "\(directory)/var/lib/marker", atomically: true, encoding: .utf8)
        // Hold the lock as a running sitroomd does (flock(2), LOCK_EX).
        let fd = open("\(directory)/var/run/sitroom.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)

        let demo = try Child("/bin/bash", ["\(directory)/scripts/run-demo"], logs: "\(directory)/logs", name: "demo")
        let status = try await demo.waitForExit(timeout: 30)
        #expect(status == 75, "\(demo.stdout)\(demo.stderr)")
        #expect(demo.stderr.contains("sitroomd is already running on \(directory)"), "\(demo.stderr)")
        #expect(FileManager.default.fileExists(atPath: "\(directory)/var/lib/marker"), "var/ was left alone")
        // `make run` asks first, before it installs or builds anything.
        let check = try Child(
            "/bin/bash",
            ["\(directory)/scripts/run-demo", "--check-only"],
            logs: "\(directory)/logs",
            name: "check"
        )
        #expect(try await check.waitForExit(timeout: 30) == 75, "\(check.stderr)")

        // With the lock released (the daemon gone), the check lets the demo go on (here it then stops at the build,
        // since the copy has no package: anything but the refusal).
        flock(fd, LOCK_UN)
        let free = try Child(
            "/bin/bash",
            ["\(directory)/scripts/run-demo", "--check-only"],
            logs: "\(directory)/logs",
            name: "check2"
        )
        // (Another program on zoom-sim's port 9480 would still stop it, saying so: not the lock.)
        let freeStatus = try await free.waitForExit(timeout: 30)
        #expect(freeStatus == 0 || (freeStatus == 75 && free.stderr.contains("is in use")), "\(free.stderr)")
        #expect(!free.stderr.contains("already running"), "\(free.stderr)")
        let next = try Child("/bin/bash", ["\(directory)/scripts/run-demo"], logs: "\(directory)/logs", name: "demo2")
        let nextStatus = try await next.waitForExit(timeout: 120)
        #expect(nextStatus != 75 || !next.stderr.contains("already running"), "\(next.stderr)")
    }
}
