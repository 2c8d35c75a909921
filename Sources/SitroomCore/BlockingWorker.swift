/// Runs blocking system calls (`fsync`, `rename`, the write of a durable file) on a thread of its own, so they
/// never hold one of the threads of Swift's cooperative pool (as many as cores: 2 on the reference machine),
/// which the actors' messages and the parsing of spool files need.
///
/// Calls run one at a time, in the order they were made (an actor on a ``ThreadExecutor``).
public actor BlockingWorker {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// The worker that writes notices into the maildir and SMS directories. One thread for the process.
    public static let notices = BlockingWorker(name: "sitroom-notices")
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
