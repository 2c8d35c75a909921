import Foundation

/// A serial executor that runs its jobs on one dedicated thread, so an actor that does blocking work
/// (LMDB commits, file fsyncs) never blocks Swift's cooperative thread pool.
///
/// Linux has no `DispatchSerialQueue`; this is the hand-written equivalent (STYLE.md: an actor on its own
/// serial executor, as GRDB's `DispatchQueueActor`). Give an actor one with
/// `nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }`.
public final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    // Invariant making this @unchecked Sendable: `queue` is only touched with `condition` locked.
    private let condition = NSCondition()
    private var queue: [UnownedJob] = []

    /// Starts the thread.
    /// - Parameter name: the thread's name, as `ps -L` shows it (at most 15 bytes are kept).
    public init(name: String) {
        // The thread holds the executor for the life of the process: executors are made once per actor at start-up.
        let thread = Thread { self.runLoop() }
        thread.name = name
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    private func runLoop() {
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            swap(&batch, &queue)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
