import Synchronization

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
        guard let origin = state.origin(for: key, limit: maxConnectionsPerOrigin) else {
            throw Self.shutDownError
        }
        let counter = connectionCounter
        return try await origin.submit { easy, isCancelled in
            let outcome = easy.perform(request, isCancelled: isCancelled)
            counter.add(outcome.connectsOpened)
            return outcome.result.mapError { $0 }
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

    /// The error for requests after ``shutdown()``: the one its origins' queues fail queued requests with.
    static let shutDownError = CurlError(
        code: CurlError.failedInit.code,
        message: "HTTPClient was shut down",
        requestMayHaveBeenSent: false
    )
}

/// The origins of one client: a ``TransferQueue`` each.
private final class ClientState: Sendable {
    private struct Origins {
        var byKey: [String: TransferQueue<HTTPResponse>] = [:]
        var isShutDown = false
    }
    private let origins = Mutex(Origins())

    /// The origin's queue, created on first use; `nil` once shut down.
    func origin(for key: String, limit: Int) -> TransferQueue<HTTPResponse>? {
        origins.withLock { origins in
            guard !origins.isShutDown else { return nil }
            if let origin = origins.byKey[key] { return origin }
            let origin = TransferQueue<HTTPResponse>(limit: limit, owner: "HTTPClient", threadName: "curl-http")
            origins.byKey[key] = origin
            return origin
        }
    }

    func shutDown() -> [TransferQueue<HTTPResponse>] {
        origins.withLock { origins in
            origins.isShutDown = true
            defer { origins.byKey = [:] }
            return Array(origins.byKey.values)
        }
    }
}

/// A thread-safe running total.
final class Counter: Sendable {
    private let total = Atomic<Int>(0)

    func add(_ amount: Int) {
        guard amount != 0 else { return }
        total.add(amount, ordering: .relaxed)
    }

    var value: Int {
        total.load(ordering: .relaxed)
    }
}
