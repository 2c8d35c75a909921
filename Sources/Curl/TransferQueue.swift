import Dispatch
import SitroomRuntime
import Synchronization

/// One transfer on its way, for any protocol: what to do with a worker's easy handle, the awaiting task's
/// continuation and its cancellation flag.
final class Transfer<Output: Sendable>: Sendable {
    /// Runs the transfer on a worker's easy handle, blocking that thread; the closure tells whether the awaiting
    /// task was cancelled (checked from libcurl's progress callback).
    typealias Perform = @Sendable (EasyHandle, _ isCancelled: @escaping () -> Bool) -> Result<Output, any Error>

    private struct State {
        var continuation: CheckedContinuation<Output, any Error>?
        var cancelled = false
    }

    let perform: Perform
    private let state = Mutex(State())

    init(_ perform: @escaping Perform) {
        self.perform = perform
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() { state.withLock { $0.cancelled = true } }

    func setContinuation(_ continuation: CheckedContinuation<Output, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Resumes the awaiting task; only the first call has an effect.
    func resume(_ result: Result<Output, any Error>) {
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result)
    }
}

/// A FIFO queue of transfers served by up to `limit` worker threads, each owning one easy handle (and so one
/// cached connection) for its life: the one path by which ``HTTPClient`` (a queue per origin) and ``SMTPClient``
/// run `curl_easy_perform`, never on Swift's cooperative pool.
///
/// Workers start on demand, when every running one is busy, and live until ``shutDown()``. A worker counts as free
/// again before it resumes the awaiting task, so a caller sending one request after another finds it free and
/// reuses its connection instead of starting a second worker.
///
/// The state is guarded by a `Mutex`; idle workers sleep on a `DispatchSemaphore` (`Mutex` has no condition
/// variable), signalled once per sleeping worker that is needed, as a condition variable's `signal` would be.
final class TransferQueue<Output: Sendable>: Sendable {
    private struct State {
        var queue: [Transfer<Output>] = []
        var head = 0
        var workers = 0
        /// Workers between taking a transfer and handing its result back.
        var busy = 0
        /// Workers waiting on `wake` that no one has signalled yet.
        var sleeping = 0
        var isShutDown = false

        var pending: Int { queue.count - head }

        mutating func takeNext() -> Transfer<Output> {
            let transfer = queue[head]
            head += 1
            if head >= 64 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return transfer
        }

        mutating func takeAll() -> [Transfer<Output>] {
            defer {
                queue = []
                head = 0
            }
            return Array(queue[head...])
        }
    }

    private enum Decision {
        case queued(startWorker: Bool, wakeWorker: Bool)
        case shutDown, cancelled
    }
    private enum Next {
        case transfer(Transfer<Output>)
        case exit, wait
    }

    private let limit: Int
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    /// The error for transfers queued at, or sent after, ``shutDown()``.
    private let shutDownError: CurlError
    /// The workers' name as `ps -L` and `top -H` show it (`curl-http`, `curl-smtp`).
    private let threadName: String

    /// - Parameters:
    ///   - limit: The most workers (and so transfers in flight, and connections); at least 1.
    ///   - owner: The client's name, for the error after ``shutDown()`` ("HTTPClient was shut down").
    ///   - threadName: The workers' thread name (at most 15 bytes are kept).
    init(limit: Int, owner: String, threadName: String) {
        self.limit = max(1, limit)
        self.threadName = threadName
        shutDownError = CurlError(
            code: CurlError.failedInit.code,
            message: "\(owner) was shut down",
            requestMayHaveBeenSent: false
        )
    }

    /// Queues a transfer and waits for its result.
    ///
    /// Cancelling the task while the transfer waits removes it from the queue and throws `CancellationError`
    /// (nothing was sent); during the transfer, `perform` sees `isCancelled` turn true.
    /// - Returns: What `perform` returned.
    /// - Throws: What `perform` failed with; ``CurlError/failedInit`` after ``shutDown()``, when no worker thread
    ///   could start, or when `curl_easy_init` failed; `CancellationError` as above.
    func submit(_ perform: @escaping Transfer<Output>.Perform) async throws -> Output {
        let transfer = Transfer(perform)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.setContinuation(continuation)
                enqueue(transfer)
            }
        } onCancel: {
            transfer.cancel()
            if removeIfQueued(transfer) {
                transfer.resume(.failure(CancellationError()))
            }
        }
    }

    /// Fails the queued transfers and later ones; transfers in flight finish (or time out) on their own, then
    /// their workers exit and close their connections. Does not block; safe to call more than once.
    func shutDown() {
        let (abandoned, sleepers) = state.withLock { state in
            state.isShutDown = true
            defer { state.sleeping = 0 }
            return (state.takeAll(), state.sleeping)
        }
        for _ in 0..<sleepers { wake.signal() }
        for transfer in abandoned { transfer.resume(.failure(shutDownError)) }
    }

    /// Queues `transfer`, starting a worker if every running one is busy and the limit allows; or fails it at
    /// once when the queue is shut down or the transfer already cancelled.
    private func enqueue(_ transfer: Transfer<Output>) {
        let decision: Decision = state.withLock { state in
            if state.isShutDown { return .shutDown }
            if transfer.isCancelled { return .cancelled }
            state.queue.append(transfer)
            if state.pending > state.workers - state.busy && state.workers < limit {
                state.workers += 1
                return .queued(startWorker: true, wakeWorker: false)
            }
            guard state.sleeping > 0 else { return .queued(startWorker: false, wakeWorker: false) }
            state.sleeping -= 1
            return .queued(startWorker: false, wakeWorker: true)
        }
        switch decision {
        case .shutDown:
            transfer.resume(.failure(shutDownError))
        case .cancelled:
            transfer.resume(.failure(CancellationError()))
        case .queued(startWorker: false, let wakeWorker):
            if wakeWorker { wake.signal() }
        case .queued(startWorker: true, _):
            // Named, or the worker would carry the name of whichever thread started it (a dispatch worker's).
            let rc = startDetachedThread(name: threadName) { [self] in runWorker() }
            if rc != 0 { workerFailedToStart(errno: rc) }
        }
    }

    /// Removes `transfer` if no worker has taken it yet.
    /// - Returns: Whether it was removed (and so must be resumed by the caller).
    private func removeIfQueued(_ transfer: Transfer<Output>) -> Bool {
        state.withLock { state in
            guard let index = state.queue[state.head...].firstIndex(where: { $0 === transfer }) else { return false }
            state.queue.remove(at: index)
            return true
        }
    }

    /// Waits for the next transfer; `nil` when the worker should exit (shut down and nothing queued).
    private func nextTransfer() -> Transfer<Output>? {
        while true {
            let next: Next = state.withLock { state in
                if state.pending > 0 {
                    state.busy += 1
                    return .transfer(state.takeNext())
                }
                if state.isShutDown {
                    state.workers -= 1
                    return .exit
                }
                state.sleeping += 1
                return .wait
            }
            switch next {
            case .transfer(let transfer): return transfer
            case .exit: return nil
            case .wait: wake.wait()
            }
        }
    }

    /// A worker thread's body: one easy handle, reused for every transfer it takes.
    private func runWorker() {
        let easy: EasyHandle
        do {
            easy = try EasyHandle()
        } catch {
            // Fail what this worker would have served rather than leave it waiting.
            while let transfer = nextTransferWithoutWaiting() {
                transfer.resume(.failure(error))
            }
            return
        }
        while let transfer = nextTransfer() {
            if transfer.isCancelled {
                finished()
                transfer.resume(.failure(CancellationError()))
                continue
            }
            let result = transfer.perform(easy, { transfer.isCancelled })
            finished()
            transfer.resume(result)
        }
    }

    private func finished() {
        state.withLock { $0.busy -= 1 }
    }

    /// Takes a queued transfer, or gives up this worker's place when none is left.
    private func nextTransferWithoutWaiting() -> Transfer<Output>? {
        state.withLock { state in
            guard state.pending > 0 else {
                state.workers -= 1
                return nil
            }
            return state.takeNext()
        }
    }

    private func workerFailedToStart(errno: Int32) {
        let error = CurlError(
            code: CurlError.failedInit.code,
            message: "could not start a worker thread (errno \(errno))",
            requestMayHaveBeenSent: false
        )
        let orphans: [Transfer<Output>] = state.withLock { state in
            state.workers -= 1
            guard state.workers == 0 else { return [] }
            return state.takeAll()
        }
        for orphan in orphans { orphan.resume(.failure(error)) }
    }
}
