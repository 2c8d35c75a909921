import Foundation
import Testing

/// A SIGKILL while sitroomd rejects a spool file (found by a breaker session). Before stop 26 `SpoolIntake.rejectNow`
/// moved the file into `rejected/` first and only then wrote its `NAME.error` through the spool's `tmp/` (write,
/// fsync, rename): a kill in that window left `rejected/NAME` with no reason beside it and `tmp/NAME.error` in the
/// feeds' `tmp/` (a storm of 20,000 files with 200 bad ones, killed three times, left 1 and then 3 such pairs). The
/// reason now goes in first, and what the old order left is completed at the next start.
/// SPEC §4: "A file that cannot be used moves to `rejected/` with `NAME.error` beside it saying why."
@Suite("a rejection cut short by SIGKILL", .serialized)
struct RejectedReasonCrashTests {
    /// Starts zoom-sim and sitroomd over a spool laid out by `leave` (what a kill left), then runs `check`.
    func afterAKill(
        leave: (String) throws -> Void,
        check: (Sandbox, String) async throws -> Void
    ) async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            let spool = "\(sandbox.root)/var/spool/incidents"
            for sub in ["tmp", "new", "cur", "rejected"] {
                try FileManager.default.createDirectory(atPath: "\(spool)/\(sub)", withIntermediateDirectories: true)
            }
            try leave(spool)
            try await sandbox.startDaemon()
            try await check(sandbox, spool)
        }
    }

    @Test("the state a kill between the move and the reason's rename leaves is repaired at the next start")
    func reasonLeftInTmp() async throws {
        try await afterAKill { spool in
            // Exactly what the kill left in the storm: the file in rejected/, its reason still in tmp/.
            try Data("event_id: [broken\n".utf8).write(to: URL(fileURLWithPath: "\(spool)/rejected/bad-0039.yaml"))
            try Data("new/bad-0039.yaml:2:1: invalid YAML: did not find expected ',' or ']'\n".utf8)
                .write(to: URL(fileURLWithPath: "\(spool)/tmp/bad-0039.yaml.error"))
            // And one killed before a byte of its reason was written.
            try Data("event_id: [broken\n".utf8).write(to: URL(fileURLWithPath: "\(spool)/rejected/bad-0041.yaml"))
            try Data().write(to: URL(fileURLWithPath: "\(spool)/tmp/bad-0041.yaml.error"))
        } check: { sandbox, spool in
            _ = try await waitFor("rejected/bad-0039.yaml.error and bad-0041.yaml.error", timeout: 10) {
                let done = ["bad-0039.yaml.error", "bad-0041.yaml.error"].allSatisfy {
                    FileManager.default.fileExists(atPath: "\(spool)/rejected/\($0)")
                }
                return done ? true : nil
            }
            let kept = try String(contentsOfFile: "\(spool)/rejected/bad-0039.yaml.error", encoding: .utf8)
            #expect(kept.hasPrefix("new/bad-0039.yaml:2:1: invalid YAML"))
            let lost = try String(contentsOfFile: "\(spool)/rejected/bad-0041.yaml.error", encoding: .utf8)
            #expect(lost.hasPrefix("the reason was lost"))
            #expect(sandbox.files("var/spool/incidents/tmp").isEmpty)
        }
    }

    @Test("a kill after the reason is written and before the move: the file is rejected again under its own name")
    func reasonWrittenFileNotMoved() async throws {
        try await afterAKill { spool in
            // Since stop 26 the reason goes in first: a kill then leaves it beside no file, the file still in new/.
            try Data("event_id: [broken\n".utf8).write(to: URL(fileURLWithPath: "\(spool)/new/bad-0040.yaml"))
            try Data("an older reason\n".utf8).write(to: URL(fileURLWithPath: "\(spool)/rejected/bad-0040.yaml.error"))
        } check: { sandbox, spool in
            _ = try await waitFor("rejected/bad-0040.yaml", timeout: 10) {
                FileManager.default.fileExists(atPath: "\(spool)/rejected/bad-0040.yaml") ? true : nil
            }
            let reason = try String(contentsOfFile: "\(spool)/rejected/bad-0040.yaml.error", encoding: .utf8)
            #expect(reason.hasPrefix("new/bad-0040.yaml:"), "\(reason)")
            #expect(sandbox.files("var/spool/incidents/rejected") == ["bad-0040.yaml", "bad-0040.yaml.error"])
            #expect(sandbox.files("var/spool/incidents/new").isEmpty)
            #expect(sandbox.files("var/spool/incidents/tmp").isEmpty)
        }
    }
}
