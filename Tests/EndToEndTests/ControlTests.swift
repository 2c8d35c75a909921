import Foundation
import Testing

/// The control FIFO and sitroomctl against a running sitroomd (SPEC §7).
@Suite("control FIFO end to end", .serialized)
struct ControlTests {
    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// Writes raw bytes into the control FIFO the way `echo ... >` does: open, write, close.
    func write(_ bytes: [UInt8], _ sandbox: Sandbox) {
        let fd = open("\(sandbox.root)/var/run/sitroom.ctl", O_WRONLY | O_NONBLOCK)
        guard fd >= 0 else { return }
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
    func cpuTicks(_ pid: Int32) -> Int {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        return fields.count > 12 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
    }

    @Test("every command answers; JSON has the documented fields; changing commands are audited, read-only ones not")
    func commands() async throws {
        let sandbox = try Sandbox(hosts: 2)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            try sandbox.submit("c1.yaml", incidentEvent(id: "evt-c1", stage: "situation_room", incident: "INC-C1"))
            try await sandbox.waitForRoom("INC-C1", state: "ready")

            let help = try await sandbox.ctl(["help"])
            for command in [
                "status", "reload", "rooms", "room show", "room retry", "room end", "pool NAME", "integrations",
                "audit",
                "outbox", "notify resend",
            ] {
                #expect(help.out.contains(command), "help lacks \(command)")
            }

            let status = try #require(try json(try await sandbox.ctl(["status", "--json"]).out) as? [String: Any])
            for key in ["version", "uptime_seconds", "generation", "integrations", "pool", "rooms", "outbox", "spool"] {
                #expect(status[key] != nil, "status --json lacks \(key)")
            }
            #expect((status["rooms"] as? [String: Any])?["open"] as? Int == 1)

            let rooms = try #require(try json(try await sandbox.ctl(["rooms", "--json"]).out) as? [[String: Any]])
            #expect(rooms.count == 1)
            let room = try #require(
                try json(try await sandbox.ctl(["room", "show", "INC-C1", "--json"]).out) as? [String: Any]
            )
            for key in [
                "state", "reason", "join_url", "meeting_id", "passcode", "host", "integration", "room_id", "incident",
            ] {
                #expect(room.keys.contains(key), "room show --json lacks \(key)")
            }
            let pool = try #require(
                try json(try await sandbox.ctl(["pool", "zoom-main", "--json"]).out) as? [[String: Any]]
            )
            for key in [
                "host", "user", "open_rooms", "concurrent_meetings", "creates_today", "daily_create_limit", "state",
                "detail",
            ] {
                #expect(pool.first?[key] != nil, "pool --json lacks \(key)")
            }
            let integrations = try #require(
                try json(try await sandbox.ctl(["integrations", "--json"]).out) as? [[String: Any]]
            )
            #expect(integrations.first?["state"] as? String == "active")
            #expect(try await sandbox.ctl(["integration", "show", "zoom-main"]).out.contains("bridge-1"))

            // The outbox: every notice of the room, sent; nothing dead.
            _ = try await waitFor("the room's notices sent") { () -> Bool? in
                let all = try json(try await sandbox.ctl(["outbox", "all", "--json"]).out) as? [[String: Any]] ?? []
                return !all.isEmpty && all.allSatisfy({ $0["state"] as? String == "sent" }) ? true : nil
            }
            let notices = try #require(
                try json(try await sandbox.ctl(["outbox", "all", "--json"]).out) as? [[String: Any]]
            )
            for key in ["id", "incident", "kind", "channel", "recipient", "state", "attempts", "created_at"] {
                #expect(notices.first?[key] != nil, "outbox --json lacks \(key)")
            }
            #expect(
                (try json(try await sandbox.ctl(["outbox", "dead", "--json"]).out) as? [[String: Any]])?.isEmpty == true
            )
            let resend = try await sandbox.ctl(["notify", "resend", "INC-C1", "ada@example.com"])
            #expect(resend.code == 0, "\(resend.err)")
            #expect(resend.out.contains("ada@example.com"))

            // Human output is an aligned table.
            let table = try await sandbox.ctl(["rooms"])
            #expect(table.out.hasPrefix("INCIDENT"))

            // Changing commands: drain, resume, room end, room retry (refused: the room is fine), reload.
            #expect(try await sandbox.ctl(["pool", "drain", "zoom-main", "bridge-2"]).code == 0)
            #expect(try await sandbox.ctl(["pool", "resume", "zoom-main", "bridge-2"]).code == 0)
            let retry = try await sandbox.ctl(["room", "retry", "INC-C1"])
            #expect(retry.code == 1)
            #expect(retry.err.contains("nothing to retry"))
            #expect(try await sandbox.ctl(["room", "end", "INC-C1"]).code == 0)
            try await sandbox.waitForRoom("INC-C1", state: "ended")
            #expect(try await sandbox.ctl(["reload"]).code == 0)

            let audit = try #require(
                try json(try await sandbox.ctl(["audit", "50", "--json"]).out) as? [[String: Any]]
            )
            let commands = audit.compactMap { $0["command"] as? String }
            #expect(
                commands == [
                    "notify resend INC-C1 ada@example.com", "pool drain zoom-main bridge-2",
                    "pool resume zoom-main bridge-2", "room retry INC-C1", "room end INC-C1",
                    "reload",
                ]
            )
            #expect(audit.allSatisfy { $0["uid"] as? Int == Int(getuid()) })
            #expect(
                (audit.first { $0["command"] as? String == "room retry INC-C1" }?["outcome"] as? String)?.hasPrefix(
                    "error"
                ) == true
            )

            // Errors name what was wrong and change nothing.
            let unknown = try await sandbox.ctl(["frobnicate", "now"])
            #expect(unknown.code == 64)
            #expect(unknown.err.contains("unknown command: frobnicate now"))
            #expect(try await sandbox.ctl(["room", "show", "INC-NOPE"]).err.contains("no incident INC-NOPE"))
            #expect(try await sandbox.ctl(["audit", "zero"]).code == 64)
            #expect(try json(try await sandbox.ctl(["audit", "--json"]).out) as? [[String: Any]] != nil)
            #expect((try json(try await sandbox.ctl(["audit", "50", "--json"]).out) as? [[String: Any]])?.count == 6)
        }
    }

    @Test("malformed input never wedges the reader; 1,000 echo-style writers leave the daemon idle afterwards")
    func abuse() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            write(Array(repeating: UInt8(ascii: "x"), count: 5000) + [10], sandbox)  // over 4096 bytes
            write(Array("status\u{0}now\n".utf8), sandbox)  // a NUL byte
            write([0xff, 0xfe, 0x20, 0x73, 10], sandbox)  // invalid UTF-8
            write(Array("no-newline-at-the-end".utf8), sandbox)  // a final line without a newline
            write(Array("reply=relative/path status\n".utf8), sandbox)
            write(Array("\n\n   \n".utf8), sandbox)
            #expect(try await sandbox.ctl(["status"]).code == 0)

            for _ in 0..<1000 { write(Array("help\n".utf8), sandbox) }
            #expect(try await sandbox.ctl(["status"]).code == 0)
            let pid = try #require(sandbox.daemon?.process.processIdentifier)
            let before = cpuTicks(pid)
            try await Task.sleep(for: .seconds(1))  // waits-on-purpose: the idle window whose CPU time is measured
            let used = cpuTicks(pid) - before
            #expect(used <= 10, "sitroomd used \(used) ticks (1/100 s) of CPU in an idle second after the writers")
            #expect(try await sandbox.ctl(["status"]).code == 0)
            let log = sandbox.daemon?.stderr ?? ""
            #expect(log.contains("longer than 4096 bytes"))
            #expect(log.contains("NUL"))
            #expect(log.contains("UTF-8"))
        }
    }

    @Test("with control.group, a member's read-only command is answered and a changing one refused")
    func groupMember() async throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            Issue.record("needs root and setpriv(1) to run sitroomctl as nobody:nogroup")
            return
        }
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            let settings = sandbox.read("etc/sitroom.yaml") + "control: { group: nogroup }\n"
            try sandbox.write("etc/sitroom.yaml", settings)
            try await sandbox.startDaemon()
            // nobody must be able to reach var/run: the sandbox root and var/ are 0755.
            _ = chmod(sandbox.root, 0o755)
            func asNobody(_ arguments: [String]) throws -> (Int32, String) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                process.arguments =
                    [
                        "--reuid=65534", "--regid=65534", "--clear-groups", "\(binDirectory)/sitroomctl", "--root",
                        sandbox.root,
                    ]
                    + arguments
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                process.environment = ["PATH": "/usr/bin:/bin", "TMPDIR": "/tmp"]
                try process.run()
                let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (process.terminationStatus, out)
            }
            var info = stat()
            #expect(stat("\(sandbox.root)/var/run/sitroom.ctl", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o620)
            #expect(info.st_gid == 65534)
            let status = try asNobody(["status"])
            #expect(status.0 == 0, "\(status.1)")
            let drain = try asNobody(["pool", "drain", "zoom-main", "bridge-1"])
            #expect(drain.0 == 1)
            #expect(drain.1.contains("only sitroomd's user or root"))
            let audit = try await sandbox.ctl(["audit", "--json"])
            let entries = try #require(try json(audit.out) as? [[String: Any]])
            #expect(entries.last?["uid"] as? Int == 65534)
            #expect((entries.last?["outcome"] as? String)?.hasPrefix("refused") == true)
            #expect(try await sandbox.ctl(["pool", "drain", "zoom-main", "bridge-1"]).code == 0)  // root may
        }
    }
}
