/// A serial executor that runs its jobs on one dedicated thread, so an actor that does blocking work
/// (LMDB commits, file fsyncs) never blocks Swift's cooperative thread pool.
///
/// Linux has no `DispatchSerialQueue` executor; this is the hand-written equivalent (an actor on its own serial
/// executor, as GRDB's `DispatchQueueActor`). Give an actor one with
/// `nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }`.
/// Jobs wait in a ``BlockingQueue``; the thread takes all that are queued at once and runs them in order.
public final class ThreadExecutor: SerialExecutor, Sendable {
    private let jobs = BlockingQueue<UnownedJob>()

    /// Starts the thread.
    /// - Parameter name: the thread's name, as `ps -L` shows it (at most 15 bytes are kept).
    public init(name: String) {
        // The thread holds the executor for the life of the process: executors are made once per actor at start-up.
        let rc = startDetachedThread(name: name) { [self] in runLoop() }
        precondition(rc == 0, "could not start the thread \(name) (errno \(rc))")
    }

    /// Queues `job` to run on the executor's thread, after the jobs queued before it.
    public func enqueue(_ job: consuming ExecutorJob) {
        jobs.append(UnownedJob(job))
    }

    /// The executor, for an actor's `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    private func runLoop() {
        var batch: [UnownedJob] = []
        while true {
            // Swapping keeps both arrays' storage: no allocation per batch.
            jobs.take { queued in swap(&batch, &queued) }
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
