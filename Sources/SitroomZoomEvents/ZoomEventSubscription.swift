import Foundation
import Logging
import SitroomCore
import SitroomZoom
import Synchronization
import WSClient

/// Zoom's WebSocket event subscription for one integration, as a client that keeps itself connected.
///
/// Zoom's contract (developers.zoom.us/docs/api/websockets/; the frames as public clients of the API show them):
/// connect to `URL?subscriptionId=ID&access_token=TOKEN` with an account_credentials token; the first frame is
/// `{"module": "build_connection", "success": true}`; send `{"module": "heartbeat"}` every 30 seconds (Zoom closes a
/// silent connection); each event arrives as `{"module": "message", "content": "<the event JSON as a string>"}`.
/// Events arrive only while connected: none are replayed after a reconnect, so ``onConnected`` runs after every
/// (re)connection for the caller to reconcile what it may have missed.
///
/// Why swift-websocket: it is the Hummingbird project's WebSocket client over SwiftNIO (one of the packages sitroom
/// builds with), with TLS for `wss://`; Debian 12's libcurl has no WebSocket support.
public struct ZoomEventSubscription: Sendable {
    /// The connection's state, for `status` and the metrics.
    public enum State: String, Sendable, Hashable {
        case connecting, connected, disconnected
    }

    /// `events.websocket.url` (`wss://ws.zoom.us/ws`).
    public let url: String
    /// `events.websocket.subscription_id`.
    public let subscriptionID: String
    /// Seconds between heartbeats (Zoom: 30).
    public var heartbeatInterval: Double = 30
    /// Seconds of the first pause before reconnecting; doubles per failed attempt up to ``maxBackoff``.
    public var firstBackoff: Double = 1
    /// The longest pause between attempts, seconds.
    public var maxBackoff: Double = 60

    /// An access token for the integration; `fresh` asks for a new one (the last was refused or expired).
    let token: @Sendable (_ fresh: Bool) async throws -> String
    /// Each meeting event, in the order received.
    let onEvent: @Sendable (ZoomMeetingEvent) async -> Void
    /// The state changed; `detail` says why for `disconnected`.
    let onState: @Sendable (_ state: State, _ detail: String?) async -> Void
    /// Connected (the `build_connection` frame came): reconcile.
    let onConnected: @Sendable () async -> Void
    /// Zoom's `app_deauthorized` came over the subscription.
    let onDeauthorized: @Sendable (AppDeauthorized) async -> Void
    let logger: Logger

    public init(
        url: String,
        subscriptionID: String,
        logger: Logger,
        token: @escaping @Sendable (_ fresh: Bool) async throws -> String,
        onEvent: @escaping @Sendable (ZoomMeetingEvent) async -> Void,
        onState: @escaping @Sendable (_ state: State, _ detail: String?) async -> Void,
        onConnected: @escaping @Sendable () async -> Void,
        onDeauthorized: @escaping @Sendable (AppDeauthorized) async -> Void = { _ in }
    ) {
        self.onDeauthorized = onDeauthorized
        self.url = url
        self.subscriptionID = subscriptionID
        self.logger = logger
        self.token = token
        self.onEvent = onEvent
        self.onState = onState
        self.onConnected = onConnected
    }

    /// What ended one connection.
    enum Ending: Error {
        /// The server closed it, or it dropped.
        case closed(String)
        /// No token could be had.
        case noToken(String)
        /// The server refused the connection or its first frame said `success: false`.
        case refused(String)
    }

    /// Connects, serves the connection, and reconnects with backoff when it ends, until the task is cancelled.
    public func run() async {
        var failures = 0
        var freshToken = false
        while !Task.isCancelled {
            await onState(.connecting, nil)
            let (ending, wasConnected) = await connectOnce(freshToken: freshToken)
            if Task.isCancelled { break }
            var detail = ""
            switch ending {
            case .closed(let why): detail = why
            case .noToken(let why): detail = "no access token: \(why)"
            case .refused(let why): detail = why
            }
            // A refusal is often an expired or revoked token: the next attempt asks for a new one.
            freshToken = {
                if case .refused = ending { return true } else { return false }
            }()
            failures = wasConnected ? 1 : failures + 1
            let pause = min(maxBackoff, firstBackoff * Double(1 << min(failures - 1, 16)))
            await onState(.disconnected, detail)
            logger.warning(
                "Zoom event subscription disconnected; reconnecting",
                metadata: ["subscription": "\(subscriptionID)", "reason": "\(detail)", "retry_in": "\(pause)"]
            )
            do { try await Task.sleep(for: .seconds(pause)) } catch { break }
        }
        await onState(.disconnected, "stopped")
    }

    /// One connection: until it ends. - Returns: why it ended, and whether it got as far as connected.
    func connectOnce(freshToken: Bool) async -> (Ending, Bool) {
        let accessToken: String
        do {
            accessToken = try await token(freshToken)
        } catch {
            return (.noToken("\(error)"), false)
        }
        var query = CharacterSet.alphanumerics
        query.insert(charactersIn: "-._~")
        let address =
            "\(url)?subscriptionId=\(subscriptionID.addingPercentEncoding(withAllowedCharacters: query) ?? "")"
            + "&access_token=\(accessToken.addingPercentEncoding(withAllowedCharacters: query) ?? "")"
        // The address holds the token: the client's own log lines stay off.
        var quiet = logger
        quiet.logLevel = .critical
        let connected = Flag()
        let interval = heartbeatInterval
        do {
            let close = try await WebSocketClient.connect(
                url: address,
                configuration: .init(maxFrameSize: 1 << 20),
                logger: quiet
            ) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .seconds(interval))
                            try await outbound.write(.text(#"{"module":"heartbeat"}"#))
                        }
                    }
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            guard case .text(let text) = message else { continue }
                            if let refusal = await handle(text, connected: connected) { throw refusal }
                        }
                    }
                    // The reader ends when the connection does; then the heartbeat stops too.
                    try await group.next()
                    group.cancelAll()
                }
            }
            let why =
                close.map { "closed by Zoom (\($0.closeCode))\($0.reason.map { ": \($0)" } ?? "")" }
                ?? "connection closed"
            return (.closed(why), connected.value)
        } catch let ending as Ending {
            return (ending, connected.value)
        } catch {
            // An error may quote the address, which holds the token: never let it reach a log line.
            let text = "\(error)".replacingOccurrences(of: accessToken, with: "<token>")
            // An upgrade answered 401/403 (a bad or expired token) is a refusal.
            if !connected.value && (text.contains("401") || text.contains("403") || text.contains("upgrade")) {
                return (.refused(text), false)
            }
            return (.closed(text), connected.value)
        }
    }

    /// One text frame. - Returns: an ``Ending`` to end the connection with, or `nil` to go on.
    private func handle(_ text: String, connected: Flag) async -> Ending? {
        guard let frame = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
            let module = frame["module"] as? String
        else {
            logger.warning(
                "Zoom event subscription: a frame that is not JSON with a module; ignored",
                metadata: ["bytes": "\(text.utf8.count)"]
            )
            return nil
        }
        switch module {
        case "build_connection":
            guard frame["success"] as? Bool == true else {
                return .refused(
                    "build_connection without success: \(OneLine.clean(frame["content"] as? String ?? "", limit: 200))"
                )
            }
            connected.value = true
            await onState(.connected, nil)
            logger.info("Zoom event subscription connected", metadata: ["subscription": "\(subscriptionID)"])
            await onConnected()
        case "heartbeat":
            break
        case "message":
            guard let content = frame["content"] as? String else { return nil }
            do {
                switch try MeetingEventReader.read(Array(content.utf8)) {
                case .meeting(let event): await onEvent(event)
                case .appDeauthorized(let event): await onDeauthorized(event)
                case .other(let name): logger.debug("Zoom event not used", metadata: ["event": "\(name)"])
                }
            } catch {
                logger.warning(
                    "Zoom event subscription: an event sitroom cannot read; ignored",
                    metadata: ["error": "\(error)"]
                )
            }
        default:
            logger.debug("Zoom event subscription: frame of another module", metadata: ["module": "\(module)"])
        }
        return nil
    }
}

/// A flag set once by the connection's reader task and read when the connection ends.
final class Flag: Sendable {
    private let stored = Atomic<Bool>(false)
    var value: Bool {
        get { stored.load(ordering: .acquiring) }
        set { stored.store(newValue, ordering: .releasing) }
    }
}
