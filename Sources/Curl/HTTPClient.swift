/// An HTTP/1.1 client over libcurl's easy interface.
///
/// Each origin (scheme://host:port) gets up to `maxConnectionsPerOrigin` worker threads of its own, each
/// with one reused easy handle and so one keep-alive connection. Requests to an origin wait in a FIFO
/// queue for a free worker, so at most `maxConnectionsPerOrigin` are in flight per origin. The blocking
/// `curl_easy_perform` runs only on those threads, never on Swift's cooperative pool; the awaiting task is
/// resumed through a continuation.
///
/// Workers are started on demand and live until ``shutdown()`` (or the client's deinit): a client is
/// meant to be created once and shared.
public final class HTTPClient: Sendable {
    /// The most requests in flight (and so connections) per origin.
    public let maxConnectionsPerOrigin: Int
    private let state: ClientState
    private let connectionCounter: Counter

    /// Creates a client; no thread starts until the first request.
    /// - Parameter maxConnectionsPerOrigin: The most concurrent requests, and connections, per origin
    ///   (at least 1).
    public init(maxConnectionsPerOrigin: Int = 4) {
        _ = curlGlobalInit
        self.maxConnectionsPerOrigin = max(1, maxConnectionsPerOrigin)
        state = ClientState()
        connectionCounter = Counter()
    }

    deinit {
        shutdown()
    }

    /// Performs `request` and returns the response, whatever its status code.
    ///
    /// Runs `curl_easy_perform` on a worker thread for the request's origin, reusing that worker's easy
    /// handle and connection. Waits in FIFO order while `maxConnectionsPerOrigin` requests to the same
    /// origin are in flight.
    ///
    /// Cancelling the task while the request waits removes it from the queue and throws
    /// `CancellationError` (nothing was sent); cancelling during the transfer aborts it with
    /// ``CurlError/abortedByCallback``.
    /// - Parameter request: The request.
    /// - Returns: The final response; 4xx and 5xx statuses are returned, not thrown.
    /// - Throws: ``CurlError`` when the transfer fails (see ``CurlError/requestMayHaveBeenSent``), including
    ///   ``CurlError/urlMalformed``, ``CurlError/unsupportedProtocol``, and ``CurlError/failedInit`` after
    ///   ``shutdown()``; `CancellationError` as above.
    ///
    /// The corresponding C function is `curl_easy_perform`.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let key = originKey(request.url) else {
            throw CurlError(
                code: CurlError.urlMalformed.code,
                message:
                    "URL using bad/illegal format or missing URL (\(request.method.rawValue) \(redactedURL(request.url)))",
                requestMayHaveBeenSent: false
            )
        }
        guard let origin = state.origin(for: key, limit: maxConnectionsPerOrigin, counter: connectionCounter) else {
            throw Self.shutDownError
        }
        let job = Job(request)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                job.setContinuation(continuation)
                origin.enqueue(job)
            }
        } onCancel: {
            job.cancel()
            if origin.removeIfQueued(job) {
                job.resume(.failure(CancellationError()))
            }
        }
    }

    /// The number of connections opened so far across all origins (`CURLINFO_NUM_CONNECTS` summed over
    /// completed transfers). With keep-alive, sequential requests to one origin open one.
    public var connectionsOpened: Int {
        connectionCounter.value
    }

    /// Stops the client: queued requests fail with ``CurlError/failedInit``, later ``send(_:)`` calls too.
    /// Transfers in flight finish (or time out) on their own, then their worker threads exit and close
    /// their connections. Does not block; safe to call more than once.
    public func shutdown() {
        for origin in state.shutDown() {
            origin.shutDown()
        }
    }

    static let shutDownError = CurlError(
        code: CurlError.failedInit.code,
        message: "HTTPClient was shut down",
        requestMayHaveBeenSent: false
    )
}

/// The origins of one client.
private final class ClientState: @unchecked Sendable {
    // Safe to share: `origins` and `isShutDown` are only touched under `lock`.
    private let lock = ConditionLock()
    private var origins: [String: Origin] = [:]
    private var isShutDown = false

    /// The origin's queue, created on first use; `nil` once shut down.
    func origin(for key: String, limit: Int, counter: Counter) -> Origin? {
        lock.withLock {
            guard !isShutDown else { return nil }
            if let origin = origins[key] { return origin }
            let origin = Origin(key: key, limit: limit, counter: counter)
            origins[key] = origin
            return origin
        }
    }

    func shutDown() -> [Origin] {
        lock.withLock {
            isShutDown = true
            defer { origins = [:] }
            return Array(origins.values)
        }
    }
}

/// One origin's FIFO queue and its worker threads.
final class Origin: @unchecked Sendable {
    // Safe to share: every mutable property is only touched under `lock`; `key`, `limit`, `counter` are lets.
    let key: String
    private let limit: Int
    private let counter: Counter
    private let lock = ConditionLock()
    private var queue: [Job] = []
    private var head = 0
    private var workers = 0
    /// Workers between taking a job and handing its result back. A worker counts as free again before
    /// it resumes the awaiting task, so a caller sending requests one after another finds it free and
    /// reuses its connection instead of starting a second worker.
    private var busyWorkers = 0
    private var isShutDown = false

    init(key: String, limit: Int, counter: Counter) {
        self.key = key
        self.limit = limit
        self.counter = counter
    }

    private var pendingCount: Int { queue.count - head }

    /// Queues `job`, starting a worker if every running one is busy and the limit allows; or fails it at
    /// once when the origin is shut down or the job already cancelled.
    func enqueue(_ job: Job) {
        enum Decision { case queued(startWorker: Bool), shutDown, cancelled }
        let decision: Decision = lock.withLock {
            if isShutDown { return .shutDown }
            if job.isCancelled { return .cancelled }
            queue.append(job)
            if pendingCount > workers - busyWorkers && workers < limit {
                workers += 1
                return .queued(startWorker: true)
            }
            lock.signal()
            return .queued(startWorker: false)
        }
        switch decision {
        case .shutDown:
            job.resume(.failure(HTTPClient.shutDownError))
        case .cancelled:
            job.resume(.failure(CancellationError()))
        case .queued(startWorker: false):
            break
        case .queued(startWorker: true):
            let rc = startDetachedThread { [self] in runWorker() }
            if rc != 0 { workerFailedToStart(errno: rc) }
        }
    }

    /// Removes `job` if no worker has taken it yet.
    /// - Returns: Whether it was removed (and so must be resumed by the caller).
    func removeIfQueued(_ job: Job) -> Bool {
        lock.withLock {
            guard let index = queue[head...].firstIndex(where: { $0 === job }) else { return false }
            queue.remove(at: index)
            return true
        }
    }

    func shutDown() {
        let abandoned: [Job] = lock.withLock {
            isShutDown = true
            let pending = Array(queue[head...])
            queue = []
            head = 0
            lock.broadcast()
            return pending
        }
        for job in abandoned {
            job.resume(.failure(HTTPClient.shutDownError))
        }
    }

    /// Waits for the next job; `nil` when the worker should exit (shut down and nothing queued).
    private func nextJob() -> Job? {
        lock.withLock {
            while pendingCount == 0 && !isShutDown {
                lock.wait()
            }
            guard pendingCount > 0 else {
                workers -= 1
                return nil
            }
            let job = queue[head]
            head += 1
            busyWorkers += 1
            if head >= 64 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    /// A worker thread's body: one easy handle, reused for every job it takes.
    private func runWorker() {
        let easy: EasyHandle
        do {
            easy = try EasyHandle()
        } catch {
            // Fail what this worker would have served rather than leave it waiting.
            while let job = nextJobWithoutWaiting() {
                job.resume(.failure(error))
            }
            return
        }
        while let job = nextJob() {
            if job.isCancelled {
                finished()
                job.resume(.failure(CancellationError()))
                continue
            }
            let outcome = easy.perform(job.request, isCancelled: { job.isCancelled })
            counter.add(outcome.connectsOpened)
            finished()
            job.resume(outcome.result.mapError { $0 })
        }
    }

    private func finished() {
        lock.withLock { busyWorkers -= 1 }
    }

    /// Takes a queued job, or gives up this worker's place when none is left.
    private func nextJobWithoutWaiting() -> Job? {
        lock.withLock {
            guard pendingCount > 0 else {
                workers -= 1
                return nil
            }
            let job = queue[head]
            head += 1
            return job
        }
    }

    private func workerFailedToStart(errno: Int32) {
        let error = CurlError(
            code: CurlError.failedInit.code,
            message: "could not start a worker thread (errno \(errno))",
            requestMayHaveBeenSent: false
        )
        let orphans: [Job] = lock.withLock {
            workers -= 1
            guard workers == 0 else { return [] }
            let pending = Array(queue[head...])
            queue = []
            head = 0
            return pending
        }
        for job in orphans { job.resume(.failure(error)) }
    }
}

/// One request on its way: its continuation and cancellation flag.
final class Job: @unchecked Sendable {
    // Safe to share: `continuation` and `cancelled` are only touched under `lock`; `request` is a let.
    let request: HTTPRequest
    private let lock = ConditionLock()
    private var continuation: CheckedContinuation<HTTPResponse, any Error>?
    private var cancelled = false

    init(_ request: HTTPRequest) {
        self.request = request
    }

    var isCancelled: Bool {
        lock.withLock { cancelled }
    }

    func cancel() {
        lock.withLock { cancelled = true }
    }

    func setContinuation(_ continuation: CheckedContinuation<HTTPResponse, any Error>) {
        lock.withLock { self.continuation = continuation }
    }

    /// Resumes the awaiting task; only the first call has an effect.
    func resume(_ result: Result<HTTPResponse, any Error>) {
        let continuation: CheckedContinuation<HTTPResponse, any Error>? = lock.withLock {
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(with: result)
    }
}

/// A thread-safe running total.
final class Counter: @unchecked Sendable {
    // Safe to share: `total` is only touched under `lock`.
    private let lock = ConditionLock()
    private var total = 0

    func add(_ amount: Int) {
        guard amount != 0 else { return }
        lock.withLock { total += amount }
    }

    var value: Int {
        lock.withLock { total }
    }
}
