import Synchronization

/// Runs blocking system calls (`fsync`, `rename`, the write of a durable file) on a thread of its own, so they
/// never hold one of the threads of Swift's cooperative pool (as many as cores: 2 on the reference machine),
/// which the actors' messages and the parsing of spool files need.
///
/// Calls to one worker run one at a time, in the order they were made (an actor on a ``ThreadExecutor``).
public actor BlockingWorker {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// The workers that write notices into the maildir and SMS directories: eight threads for the process, so
    /// batches of the notifier's channel workers fsync in parallel (the filesystem's journal commits concurrent
    /// fsyncs together). ``nextNoticeWorker()`` hands them out in turn.
    private static let notices = (0..<8).map { BlockingWorker(name: "sitroom-notice\($0)") }
    private static let turn = Atomic<Int>(0)

    /// The next of the notice workers, in turn.
    public static func nextNoticeWorker() -> BlockingWorker {
        notices[turn.add(1, ordering: .relaxed).oldValue % notices.count]
    }

    /// The worker that moves spool files to `cur/` and `rejected/` and fsyncs the spool's directories.
    public static let spool = BlockingWorker(name: "sitroom-spool")

    /// Starts the worker's thread, which lives as long as the process: make workers once (the statics above).
    /// - Parameter name: the thread's name, as `ps -L` shows it (at most 15 bytes are kept).
    public init(name: String) {
        executor = ThreadExecutor(name: name)
    }

    /// Runs `body` on the worker's thread.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public func run<R: Sendable>(_ body: @Sendable () throws -> R) throws -> R {
        try body()
    }
}
