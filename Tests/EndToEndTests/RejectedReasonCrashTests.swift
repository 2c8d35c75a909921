import Foundation
import Testing

/// A SIGKILL while sitroomd rejects a spool file (breaker session). `SpoolIntake.rejectNow` moves the file into
/// `rejected/` first and only then writes its `NAME.error` through the spool's `tmp/` (write, fsync, rename): a kill
/// in that window leaves `rejected/NAME` with no reason beside it and `tmp/NAME.error` in the feeds' `tmp/`. A storm
/// of 20,000 files with 200 bad ones, killed three times, left 1 and then 3 such pairs (scripts are in the report).
/// SPEC §4: "A file that cannot be used moves to `rejected/` with `NAME.error` beside it saying why."
@Suite("a rejection cut short by SIGKILL", .serialized)
struct RejectedReasonCrashTests {
    @Test("the state a kill between the move and the reason's rename leaves is repaired at the next start")
    func reasonLeftInTmp() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            let spool = "\(sandbox.root)/var/spool/incidents"
            for sub in ["tmp", "new", "cur", "rejected"] {
                try FileManager.default.createDirectory(atPath: "\(spool)/\(sub)", withIntermediateDirectories: true)
            }
            // Exactly what the kill left in the storm: the file in rejected/, its reason still in tmp/.
            try Data("event_id: [broken\n".utf8).write(to: URL(fileURLWithPath: "\(spool)/rejected/bad-0039.yaml"))
            try Data("new/bad-0039.yaml:2:1: invalid YAML: did not find expected ',' or ']'\n".utf8)
                .write(to: URL(fileURLWithPath: "\(spool)/tmp/bad-0039.yaml.error"))
            try await sandbox.startDaemon()
            _ = try await waitFor("rejected/bad-0039.yaml.error", timeout: 10) {
                FileManager.default.fileExists(atPath: "\(spool)/rejected/bad-0039.yaml.error") ? true : nil
            }
            #expect(sandbox.files("var/spool/incidents/tmp").isEmpty)
        }
    }
}
