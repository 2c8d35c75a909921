import Foundation
import SitroomCore

// `backup PATH`: a consistent, compacted copy of the store while the daemon runs.
extension DaemonCore {
    /// `backup PATH`: copies the LMDB environment into `path` while the daemon runs (a consistent snapshot,
    /// compacted), then syncs it. `path` must be absolute and either not exist (it is made, mode 0700, in an
    /// existing directory) or be an empty directory. The copy runs on a thread of its own.
    func backup(to path: String) async -> ControlReply {
        guard path.hasPrefix("/") else { return .error("backup: the path must be absolute: \(path)") }
        let store = self.store
        let metrics = self.metrics
        let started = clock.now()
        let outcome: Result<Int, any Error> = await withCheckedContinuation { continuation in
            Self.backupQueue.async {
                continuation.resume(
                    returning: Result {
                        try store.backup(to: path)
                    }
                )
            }
        }
        switch outcome {
        case .success(let bytes):
            metrics.increment("sitroom_backups_total", [("outcome", "ok")])
            let seconds = String(format: "%.1f", clock.now() - started)
            logger.info("backup written", metadata: ["path": "\(path)", "bytes": "\(bytes)", "seconds": "\(seconds)"])
            return .ok(
                "backup written to \(path)/data.mdb (\(bytes) bytes, \(seconds)s); open it with mdb_stat \(path)"
            )
        case .failure(let error):
            metrics.increment("sitroom_backups_total", [("outcome", "error")])
            logger.error("backup failed", metadata: ["path": "\(path)", "error": "\(error)"])
            return .error("backup to \(path) failed: \(error)")
        }
    }

    static let backupQueue = DispatchQueue(label: "sitroom.backup")
}
