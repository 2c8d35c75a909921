import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SitroomConfig
import Synchronization

/// The HTTP side of sitroom-intake: HummingbirdCore's HTTP/1.1 server (SwiftNIO) with a responder of our own, so
/// routes can change on reload and a request is judged before its body is read.
///
/// Bounds (SPEC §11, "bounded everywhere"):
/// - connections: at most `max_connections` are served at once; more wait in the listen backlog (Hummingbird's
///   `AvailableConnectionsDelegate` stops accepting);
/// - headers: a client has `header_timeout` to send a request's head, from the connection or the end of the last
///   answer (Hummingbird's idle timeout, which only counts whole request parts, so headers sent a byte at a time do
///   not keep it alive); the head is at most 32 KiB in at most 100 fields;
/// - body: `body_timeout` from the end of the head to the end of the body, then the connection is closed; at most
///   `max_body_size` bytes: a larger `Content-Length` is refused before anything is read (413), and a body that
///   grows past it is refused at that point; a body with broken framing (chunked encoding) is refused (400);
/// - a body not read (an early answer: 401, 404, 405, 413, 417) or not to its end: the answer says
///   `Connection: close` and is followed by our FIN (the output is shut once the answer is sent), what the sender
///   still sends is read and dropped for at most `body_timeout`, then the connection is closed (a lingering close:
///   closing with unread input would reset the connection, and the sender could lose its answer);
/// - memory: what the connections hold (bodies up to `max_body_size`); NIO's back-pressure stops reading from a
///   socket whose parts are not consumed.
public struct IntakeServer {
    let handler: IntakeHandler
    let metrics: IntakeMetrics
    let logger: Logger

    public init(handler: IntakeHandler, metrics: IntakeMetrics, logger: Logger) {
        self.handler = handler
        self.metrics = metrics
        self.logger = logger
    }

    /// The server as a swift-service-lifecycle `Service`: it listens until graceful shutdown, then stops accepting
    /// and finishes the requests in flight (whose files are then durable or refused).
    /// - Parameters:
    ///   - configuration: the settings at start (`listen`, `max_connections`, timeouts; later changes to these need a
    ///     restart, the routes do not).
    ///   - tls: the TLS context when `tls:` is configured (connections are then HTTPS only).
    ///   - onListening: called with the bound address (`127.0.0.1:8470`) once connections are accepted.
    public func makeService(
        configuration: IntakeConfiguration,
        tls: IntakeTLSContext?,
        onListening: @escaping @Sendable (String) async -> Void
    ) -> any Service {
        let handler = self.handler
        let metrics = self.metrics
        let bodyTimeout = configuration.bodyTimeout
        let responder: HTTPChannelHandler.Responder = { request, writer, channel in
            await Self.respond(
                request,
                writer: writer,
                channel: channel,
                handler: handler,
                metrics: metrics,
                bodyTimeout: bodyTimeout
            )
        }
        var channelConfiguration = HTTP1Channel.Configuration(
            idleTimeout: .milliseconds(Int64(configuration.headerTimeout * 1000))
        )
        channelConfiguration.httpDecoder = .init(
            maxHeaderFieldSize: 16 << 10,
            maxHeaderListSize: 32 << 10,
            maxHeaderFieldCount: 100
        )
        let http = HTTP1Channel(responder: responder, configuration: channelConfiguration)
        if let tls {
            return server(
                IntakeTLSChannel(base: http, context: tls),
                configuration: configuration,
                onListening: onListening
            )
        }
        return server(http, configuration: configuration, onListening: onListening)
    }

    private func server<Child: ServerChildChannel>(
        _ child: Child,
        configuration: IntakeConfiguration,
        onListening: @escaping @Sendable (String) async -> Void
    ) -> Server<Child> {
        let host = configuration.listen.host
        let metrics = self.metrics
        return Server(
            childChannelSetup: child,
            configuration: ServerConfiguration(
                address: .hostname(host, port: configuration.listen.port),
                serverName: nil,
                backlog: 256,
                reuseAddress: true,
                availableConnectionsDelegate: CountedConnections(max: configuration.maxConnections, metrics: metrics)
            ),
            onServerRunning: { channel in
                // One accept per read of the listening socket (NIO accepts up to 4 by default), so the connection
                // limit, which is checked between reads, is exact.
                try? await channel.setOption(ChannelOptions.maxMessagesPerRead, value: 1).get()
                let port = channel.localAddress?.port ?? configuration.listen.port
                await onListening(IntakeConfiguration.Listen(host: host, port: port).description)
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )
    }

    static func head(_ request: Request, channel: any Channel) -> IntakeRequestHead {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            if let existing = headers[name] {
                headers[name] = existing + ", " + field.value
            } else {
                headers[name] = field.value
            }
        }
        return IntakeRequestHead(
            method: request.method.rawValue,
            path: request.uri.path,
            headers: headers,
            remote: channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? ""
        )
    }

    static func respond(
        _ request: Request,
        writer: consuming ResponseWriter,
        channel: any Channel,
        handler: IntakeHandler,
        metrics: IntakeMetrics,
        bodyTimeout: Double
    ) async {
        // A connection being closed after an early answer takes no further request: one the sender pipelined behind
        // it is read and dropped with the rest (nothing of it is spooled, and it gets no answer).
        let head = head(request, channel: channel)
        guard !closing.withLock({ $0.contains(ObjectIdentifier(channel)) }) else {
            handler.dropped(head)
            return
        }
        let label = handler.label(head.path)
        var answer: IntakeAnswer
        var closeInput = head.mayHaveBody
        switch handler.preflight(head) {
        case .answer(let early):
            answer = early
        case .proceed(let route, let limit):
            if head.headers["expect"]?.lowercased() == "100-continue" {
                try? await writer.writeInformationalHead(HTTPResponse(status: .continue))
            }
            switch await readBody(
                request,
                limit: limit,
                contentLength: head.contentLength,
                timeout: bodyTimeout,
                channel: channel
            ) {
            case .complete(let body):
                closeInput = false
                answer = await handler.handle(route: route, head: head, body: body)
            case .tooLarge:
                answer = handler.tooLarge(limit, head)
            case .badFraming(let why):
                answer = handler.badFraming(head, why)
            case .incomplete:
                // The client went away or was too slow (the connection is closed): nobody to answer.
                metrics.answered(route: label, status: 408)
                try? await channel.close()
                return
            }
        }
        metrics.answered(route: label, status: answer.status)
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        fields[.contentLength] = "\(answer.body.count)"
        // The body is not read (an early answer: it is never waited for, so a slow sender still gets its 401/404) or
        // not to its end: the connection closes after the answer, and the sender is told so (it must not send its next
        // request on it).
        if closeInput { fields[.connection] = "close" }
        let body = head.method == "HEAD" ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body))
        do {
            try await writer.write(
                response: HTTPResponse(status: .init(code: answer.status), headerFields: fields),
                body: body
            )
        } catch {
            return
        }
        if closeInput { lingeringClose(channel, within: bodyTimeout) }
    }

    /// After an answer that left the body unread: shut the output once the answer is sent (NIO waits for pending
    /// writes), so nothing more is written on this connection (HummingbirdCore would answer the body's end, cut
    /// short, with a 400 of its own); the rest of the input is read and dropped by HummingbirdCore until the sender
    /// closes; after `seconds` the connection is closed whatever the sender does.
    static func lingeringClose(_ channel: any Channel, within seconds: Double) {
        let id = ObjectIdentifier(channel)
        closing.withLock { _ = $0.insert(id) }
        channel.closeFuture.whenComplete { _ in closing.withLock { _ = $0.remove(id) } }
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) { channel.close(promise: nil) }
    }

    /// The connections shut after an early answer (``lingeringClose(_:within:)``), until they are closed.
    static let closing = Mutex<Set<ObjectIdentifier>>([])

    enum BodyRead {
        case complete([UInt8])
        case tooLarge
        /// Cut short: the client closed, or `body_timeout` passed and the connection was closed.
        case incomplete
        /// NIO's HTTP/1 parser refused the body's framing (e.g. a chunk size that is not hexadecimal).
        case badFraming(String)
    }

    /// Reads the whole body, at most `limit` bytes, within `timeout` seconds (else closes the connection).
    static func readBody(
        _ request: Request,
        limit: Int,
        contentLength: Int?,
        timeout: Double,
        channel: any Channel
    ) async -> BodyRead {
        let expired = Atomic<Bool>(false)
        let timer = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
            expired.store(true, ordering: .sequentiallyConsistent)
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(contentLength ?? 4096, limit))
        do {
            for try await buffer in request.body {
                if bytes.count + buffer.readableBytes > limit { return .tooLarge }
                bytes.append(contentsOf: buffer.readableBytesView)
            }
        } catch let error as HTTPParserError {
            // The connection ending inside the body (a short read) is not the sender's framing: no one to answer.
            if case .invalidEOFState = error { return .incomplete }
            return .badFraming(error.debugDescription)
        } catch {
            return .incomplete
        }
        // NIO's body stream also ends when the connection does; a short body is never taken for a whole one.
        if expired.load(ordering: .sequentiallyConsistent) { return .incomplete }
        if let contentLength, bytes.count != contentLength { return .incomplete }
        return .complete(bytes)
    }
}

/// Hummingbird's connection limit, counting open connections for the metrics.
struct CountedConnections: AvailableConnectionsDelegate {
    let max: Int
    let metrics: IntakeMetrics
    var count = 0

    init(max: Int, metrics: IntakeMetrics) {
        self.max = max
        self.metrics = metrics
    }

    mutating func connectionOpened() {
        count += 1
        metrics.connectionOpened()
    }

    mutating func connectionClosed() {
        count -= 1
        metrics.connectionClosed()
    }

    func isAcceptingNewConnections() -> Bool { count < max }
}
