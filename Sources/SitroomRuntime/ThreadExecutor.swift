import Dispatch
import Synchronization

/// A serial executor that runs its jobs on one dedicated thread, so an actor that does blocking work
/// (LMDB commits, file fsyncs) never blocks Swift's cooperative thread pool.
///
/// Linux has no `DispatchSerialQueue` executor; this is the hand-written equivalent (an actor on its own serial
/// executor, as GRDB's `DispatchQueueActor`). Give an actor one with
/// `nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }`.
///
/// The queue is guarded by a `Mutex`; the thread sleeps on a `DispatchSemaphore`, signalled only when it said it
/// was going to sleep, so a busy executor takes jobs in batches without a wake-up per job. (`Mutex` has no
/// condition variable; a semaphore keeps a signal given before the thread waits, so no wake-up is lost.)
public final class ThreadExecutor: SerialExecutor, Sendable {
    private struct Queue: ~Copyable {
        var jobs: [UnownedJob] = []
        /// The thread found the queue empty and waits (or is about to wait) on `wake`.
        var sleeping = false
    }

    private let queue = Mutex(Queue())
    private let wake = DispatchSemaphore(value: 0)

    /// Starts the thread.
    /// - Parameter name: the thread's name, as `ps -L` shows it (at most 15 bytes are kept).
    public init(name: String) {
        // The thread holds the executor for the life of the process: executors are made once per actor at start-up.
        let rc = startDetachedThread(name: name) { [self] in runLoop() }
        precondition(rc == 0, "could not start the thread \(name) (errno \(rc))")
    }

    /// Queues `job` to run on the executor's thread, after the jobs queued before it.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let wakeUp = queue.withLock { queue in
            queue.jobs.append(job)
            defer { queue.sleeping = false }
            return queue.sleeping
        }
        if wakeUp { wake.signal() }
    }

    /// The executor, for an actor's `unownedExecutor`.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    private func runLoop() {
        var batch: [UnownedJob] = []
        while true {
            let empty = queue.withLock { queue in
                if queue.jobs.isEmpty {
                    queue.sleeping = true
                    return true
                }
                swap(&batch, &queue.jobs)
                return false
            }
            if empty {
                wake.wait()
                continue
            }
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
