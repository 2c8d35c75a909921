import Foundation
import Testing

/// Hot reload of etc/ with the real processes: sitroomd watching its etc/ by inotify, observed through
/// `sitroomctl status --json`, and zoom-sim serving the rooms.
@Suite("config hot reload end to end", .serialized)
struct ConfigReloadEndToEndTests {
    /// `status --json`'s `generation` object.
    func generation(_ sandbox: Sandbox) async throws -> [String: Any] {
        let result = try await sandbox.ctl(["status", "--json"])
        guard result.code == 0,
            let object = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any],
            let generation = object["generation"] as? [String: Any]
        else { throw TimedOut(what: "status --json (exit \(result.code): \(result.err))") }
        return generation
    }

    func waitForGeneration(_ sandbox: Sandbox, _ number: Int) async throws -> [String: Any] {
        try await waitFor("config generation \(number)") {
            let current = try await generation(sandbox)
            return (current["number"] as? Int ?? 0) >= number ? current : nil
        }
    }

    /// Checks that the generation stays `number` once every event of an edit had the time to be reloaded.
    func expectStays(_ sandbox: Sandbox, at number: Int) async throws {
        // waits-on-purpose: "exactly once" is that nothing more happens, which only time can show: sitroomd
        // reloads at the latest two quiet periods (2 × 150 ms) after an edit's last event; wait that plus a margin
        // for a loaded machine and a process round trip, then look again.
        try await Task.sleep(for: .milliseconds(1200))  // waits-on-purpose
        #expect(try await generation(sandbox)["number"] as? Int == number)
    }

    @Test("an edit saved by rename applies once; an invalid edit keeps it, and status names file and line")
    func editsAndRefusals() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let first = try await generation(sandbox)
            #expect(first["number"] as? Int == 1)
            #expect(first["last_rejected"] is NSNull)
            let watch = try #require(first["watch"] as? [String: Any])
            #expect(watch["mode"] as? String == "inotify")
            #expect((watch["directories"] as? [String])?.contains { $0.hasSuffix("/etc/integrations") } == true)

            // Like `sed -i`: a new file beside it, renamed over it.
            let path = "\(sandbox.root)/etc/integrations/zoom-main.yaml"
            let edited = sandbox.read("etc/integrations/zoom-main.yaml")
                .replacingOccurrences(of: "Situation Room: {{incident.title}}", with: "War room {{incident.id}}")
            try sandbox.write("etc/integrations/.zoom-main.yaml.new", edited)
            #expect(rename(path.replacingOccurrences(of: "zoom-main.yaml", with: ".zoom-main.yaml.new"), path) == 0)
            _ = try await waitForGeneration(sandbox, 2)
            try await expectStays(sandbox, at: 2)

            // The new topic applies to the next room.
            try sandbox.submit("inc-1.yaml", incidentEvent(id: "evt-1", stage: "situation_room", incident: "INC-1"))
            let room = try await sandbox.waitForRoom("INC-1", state: "ready")
            let meetings = try await sandbox.simMeetings(room: try #require(room["room_id"] as? String))
            #expect(meetings.first?["topic"] as? String == "War room INC-1")

            // An invalid edit in place: refused, generation 2 stays, status and the log name file, line, column.
            try sandbox.write("etc/integrations/zoom-main.yaml", edited + "priority: off\n")
            let refused = try await waitFor("the edit to be refused") { () -> String? in
                let current = try await generation(sandbox)
                return ((current["last_rejected"] as? [String: Any])?["errors"] as? [String])?.joined(separator: "\n")
            }
            // The line appended.
            let priorityLine = edited.split(separator: "\n", omittingEmptySubsequences: false).count
            let line = "\(sandbox.root)/etc/integrations/zoom-main.yaml:\(priorityLine):11: priority: must be"
            #expect(refused.contains(line), "\(refused)")
            #expect(try await generation(sandbox)["number"] as? Int == 2)
            let text = try await sandbox.ctl(["status"])
            #expect(text.out.contains("config generation 2 applied"))
            #expect(text.out.contains(line))
            #expect(text.out.contains("config watch: inotify on"))
            #expect(sandbox.daemon?.stderr.contains("configuration rejected") == true)

            // Rooms keep working on generation 2.
            try sandbox.submit("inc-2.yaml", incidentEvent(id: "evt-2", stage: "situation_room", incident: "INC-2"))
            try await sandbox.waitForRoom("INC-2", state: "ready")
        }
    }

    @Test("removing an integration's file: its ready room becomes unavailable, and no new room goes through it")
    func removingAnIntegration() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            try sandbox.submit("inc-1.yaml", incidentEvent(id: "evt-1", stage: "situation_room", incident: "INC-1"))
            let ready = try await sandbox.waitForRoom("INC-1", state: "ready")
            let roomID = try #require(ready["room_id"] as? String)

            // sitroom.yaml names zoom-main: deleting only the file would be refused. Drop the name first.
            let settings = sandbox.read("etc/sitroom.yaml")
                .replacingOccurrences(
                    of: "conference: { component: video, integrations: [zoom-main] }",
                    with: "conference: { component: video }"
                )
            try sandbox.write("etc/sitroom.yaml", settings)
            _ = try await waitForGeneration(sandbox, 2)
            try FileManager.default.removeItem(atPath: "\(sandbox.root)/etc/integrations/zoom-main.yaml")
            _ = try await waitForGeneration(sandbox, 3)

            let gone = try await sandbox.waitForRoom("INC-1", state: "unavailable")
            #expect((gone["reason"] as? String)?.contains("integration zoom-main was removed") == true)
            #expect(gone["join_url"] as? String == ready["join_url"] as? String)
            let status = try await sandbox.ctl(["status", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any])
            #expect((object["integrations"] as? [Any])?.isEmpty == true)
            #expect((object["pool"] as? [Any])?.isEmpty == true)
            // The meeting was left alone in Zoom (people may be in it).
            #expect(try await sandbox.simMeetings(room: roomID).count == 1)

            // A new incident gets no room through it: nothing serves it now, and zoom-sim sees no new meeting.
            try sandbox.submit("inc-2.yaml", incidentEvent(id: "evt-2", stage: "situation_room", incident: "INC-2"))
            let failed = try await sandbox.waitForRoom("INC-2", state: "failed")
            #expect((failed["reason"] as? String)?.contains("no integration serves this incident") == true)
            let all = try await sandbox.simGET("/_sim/meetings")
            let meetings = (all as? [[String: Any]]) ?? ((all as? [String: Any])?["meetings"] as? [[String: Any]]) ?? []
            #expect(meetings.count == 1)
        }
    }
}

@Suite("sitroomd --check-config")
struct CheckConfigTests {
    /// Runs `sitroomd --check-config --root ROOT`; returns exit status, stdout and stderr.
    func check(_ sandbox: Sandbox) async throws -> (Int32, String, String) {
        let child = try Child(
            "sitroomd",
            ["--check-config", "--root", sandbox.root],
            logs: "\(sandbox.root)/logs",
            name: "check"
        )
        let status = try await child.waitForExit()
        return (status, child.stdout, child.stderr)
    }

    @Test("exits 0 on a valid etc/, and 1 printing every error as file:line:col: message")
    func validAndInvalid() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        sandbox.simPort = 9
        try sandbox.writeIntegration()
        let (ok, out, _) = try await check(sandbox)
        #expect(ok == 0)
        #expect(out.contains("configuration is valid (1 integration)"))

        try sandbox.write("etc/sitroom.yaml", "reopen_hold_down: 15 m\nnotify: { channels: [email, fax] }\n")
        let (bad, _, err) = try await check(sandbox)
        #expect(bad == 1)
        let lines = err.split(separator: "\n").map(String.init)
        #expect(
            lines.contains(
                "\(sandbox.root)/etc/sitroom.yaml:1:19: reopen_hold_down: must be a duration like 30s, 5m, 2h or 2d, not '15 m'"
            )
        )
        #expect(lines.contains { $0.hasPrefix("\(sandbox.root)/etc/sitroom.yaml:2:") && $0.contains("fax") })
    }

    @Test("warns, without refusing, of an integration file no one names and of a Zoom user in two integrations")
    func warnings() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        sandbox.simPort = 9
        try sandbox.writeIntegration()
        // zoom-spare is not in conference.integrations ([zoom-main]) and shares bridge-1 with zoom-main.
        try sandbox.writeIntegration(name: "zoom-spare", hostNumbers: [1, 3])
        let (status, out, err) = try await check(sandbox)
        #expect(status == 0, "warnings do not block: \(err)")
        #expect(out.contains("configuration is valid (2 integrations"))
        let warnings = err.split(separator: "\n").filter { $0.contains(": warning: ") }
        #expect(
            warnings.contains {
                $0.hasPrefix("\(sandbox.root)/etc/integrations/zoom-spare.yaml:1:1: warning: ")
                    && $0.contains("not named in conference.integrations")
            },
            "\(err)"
        )
        #expect(
            warnings.contains {
                $0.hasPrefix("\(sandbox.root)/etc/integrations/zoom-spare.yaml:") && $0.contains("bridge-1@example.com")
                    && $0.contains("also a host of integration zoom-main")
            },
            "\(err)"
        )
        #expect(warnings.count == 2, "\(err)")
    }
}
