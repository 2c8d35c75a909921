import Foundation
import PosixIO
import SitroomRuntime
import Synchronization

/// Puts complete files into the spool by the maildir protocol, sharing fsyncs between concurrent requests (a group
/// commit): requests that arrive while a batch is being made durable wait together for the next one, which writes
/// each file into `tmp/`, fsyncs them all in parallel (so the filesystem's journal commits them together), renames
/// them into `new/`, fsyncs `new/` once (``DurableFile/writeBatch``), and only then answers all of them. One request alone is written at once, so a lone request waits for one file fsync
/// and one directory fsync; under load a request waits for at most the batch before it and its own.
///
/// The work runs on a thread of its own, never on Swift's cooperative pool. Memory is bounded by what the requests
/// waiting hold (as many as connections are allowed), and a batch by ``maxBatchFiles`` and ``maxBatchBytes``.
public final class SpoolWriter: Sendable {
    private let queue = BlockingQueue<Pending>()
    /// The last file's sequence number; advanced only while the queue is locked (in ``BlockingQueue/append(_:)``),
    /// so files are queued in the order of their names.
    private let sequence = Atomic<UInt64>(0)
    private let tmp: String
    private let new: String
    private let observe: @Sendable (_ files: Int, _ seconds: [Double]) -> Void
    /// The files of a batch are fsynced in parallel, so that the filesystem's journal commits them together.
    private let fsyncs = FsyncPool(threads: 7, name: "intake-fsync")

    /// The most files made durable together.
    public static let maxBatchFiles = 256
    /// The most bytes made durable together (a batch always takes at least one file).
    public static let maxBatchBytes = 16 << 20

    private struct Pending: Sendable {
        var name: String
        var bytes: [UInt8]
        var enqueued: UInt64
        var continuation: CheckedContinuation<Result<String, PosixError>, Never>
    }

    /// Starts the writer's thread, which lives as long as the process.
    /// - Parameters:
    ///   - spool: the spool directory (`var/spool/incidents`); its `tmp/` and `new/` are sitroomd's to make.
    ///   - observe: told after each batch how many files it held and, for each, the seconds from its request to
    ///     its answer (the metrics' spool write latency).
    public init(spool: String, observe: @escaping @Sendable (_ files: Int, _ seconds: [Double]) -> Void = { _, _ in }) {
        tmp = spool + "/tmp"
        new = spool + "/new"
        self.observe = observe
        let rc = startDetachedThread(name: "intake-spool") { [self] in run() }
        precondition(rc == 0, "could not start the thread intake-spool (errno \(rc))")
    }

    /// Makes `bytes` a file in `new/`, durably.
    /// - Parameter suffix: the end of the file's name (`alertmanager`, `zoom`, ...), for people listing the spool.
    /// - Returns: the file's name in `new/` once it, and `new/` itself, are fsynced; or the `PosixError` naming
    ///   the call that failed (the spool is missing, the disk is full or read-only): then nothing is left in `tmp/`.
    public func deliver(_ bytes: [UInt8], suffix: String) async -> Result<String, PosixError> {
        await withCheckedContinuation { continuation in
            queue.append {
                let next = sequence.add(1, ordering: .relaxed).newValue
                let name = Self.name(sequence: next, suffix: suffix)
                return Pending(name: name, bytes: bytes, enqueued: Self.monotonic(), continuation: continuation)
            }
        }
    }

    /// A maildir-style unique name: `SECONDS.MMICROSECONDSPpidQsequence.sitroom-intake.SUFFIX`.
    static func name(sequence: UInt64, suffix: String) -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return "\(now.tv_sec).M\(now.tv_nsec / 1000)P\(getpid())Q\(sequence).sitroom-intake.\(suffix)"
    }

    static func monotonic() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    private func run() {
        while true {
            let batch = queue.take { queue in
                var take = 0
                var bytes = 0
                while take < queue.count, take < Self.maxBatchFiles,
                    take == 0 || bytes + queue[take].bytes.count <= Self.maxBatchBytes
                {
                    bytes += queue[take].bytes.count
                    take += 1
                }
                defer { queue.removeFirst(take) }
                return Array(queue.prefix(take))
            }

            let results = DurableFile.writeBatch(
                batch.map { ($0.name, $0.bytes) },
                tmpDirectory: tmp,
                finalDirectory: new,
                mode: 0o600,
                fsyncs: fsyncs
            )
            let done = Self.monotonic()
            observe(batch.count, batch.map { Double(done - $0.enqueued) / 1e9 })
            for (pending, result) in zip(batch, results) {
                pending.continuation.resume(returning: result.map { pending.name })
            }
        }
    }
}
