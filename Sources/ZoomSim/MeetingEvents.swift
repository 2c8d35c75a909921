import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging

/// Meeting events as the simulator sends them: to the webhook subscription of the app that made the meeting
/// (``SimWebhooks``), and to every WebSocket event-subscription connection of the meeting's account, in the order
/// they happened.
///
/// Zoom's pages: the meeting events and their payloads (developers.zoom.us/docs/api/meetings/events/: `meeting.started`,
/// `meeting.ended`, `meeting.participant_joined`, `meeting.participant_left`), WebSocket subscriptions
/// (developers.zoom.us/docs/api/websockets/: connect to `/ws?subscriptionId=ID&access_token=TOKEN` with an
/// account_credentials token, heartbeat every 30 s, events only while connected, none replayed). The frames
/// (`{"module": "build_connection", "success": true}`, heartbeat answers, `{"module": "message", "content": "<event
/// JSON>"}`) are as public clients of the API show them; Zoom's page prints none (docs/zoom-api/events.md).
///
/// The simulator accepts any `subscriptionId` and sends a connection the events of the account its token belongs to.
public final class SimEventHub: Sendable {
    struct Published: Sendable {
        var event: String
        var payload: JSON
        var clientID: String
        var accountID: String
    }

    private let continuation: AsyncStream<Published>.Continuation
    /// The open WebSocket connections.
    public let sockets = SimSockets()

    init(webhooks: SimWebhooks) {
        let (stream, continuation) = AsyncStream.makeStream(of: Published.self, bufferingPolicy: .unbounded)
        self.continuation = continuation
        let sockets = self.sockets
        Task {
            for await item in stream {
                let body = String(decoding: SimWebhooks.body(event: item.event, payload: item.payload), as: UTF8.self)
                let frame: JSON = ["module": "message", "content": .string(body)]
                await sockets.send(frame.serialized(), accountID: item.accountID)
                _ = await webhooks.deliver(clientID: item.clientID, event: item.event, payload: item.payload)
            }
        }
    }

    deinit { continuation.finish() }

    /// Queues an event for delivery (in order, after those queued before).
    func publish(_ event: String, payload: JSON, clientID: String, accountID: String) {
        continuation.yield(Published(event: event, payload: payload, clientID: clientID, accountID: accountID))
    }
}

/// The simulator's open WebSocket event-subscription connections.
public actor SimSockets {
    struct Connection {
        var accountID: String
        var clientID: String
        var subscriptionID: String
        var writer: WebSocketOutboundWriter
        var drop: AsyncStream<Void>.Continuation
    }

    private var connections: [Int: Connection] = [:]
    private var nextID = 1
    /// Connections made since the start (tests count reconnections).
    public private(set) var opened = 0

    func register(
        accountID: String,
        clientID: String,
        subscriptionID: String,
        writer: WebSocketOutboundWriter,
        drop: AsyncStream<Void>.Continuation
    ) -> Int {
        let id = nextID
        nextID += 1
        opened += 1
        connections[id] = Connection(
            accountID: accountID,
            clientID: clientID,
            subscriptionID: subscriptionID,
            writer: writer,
            drop: drop
        )
        return id
    }

    func unregister(_ id: Int) { connections[id] = nil }

    func send(_ text: String, accountID: String) async {
        for (id, connection) in connections.sorted(by: { $0.key < $1.key }) where connection.accountID == accountID {
            do { try await connection.writer.write(.text(text)) } catch { connections[id] = nil }
        }
    }

    /// `POST /_sim/websockets/drop`: ends every connection at once, with close code 1011 (unexpected condition), not a
    /// normal closure: the client sees it fail. - Returns: how many.
    public func dropAll() -> Int {
        for connection in connections.values { connection.drop.yield() }
        let count = connections.count
        connections = [:]
        return count
    }

    /// `GET /_sim/websockets`.
    public func listJSON() -> JSON {
        [
            "open": .number(connections.count), "opened": .number(opened),
            "connections": .array(
                connections.sorted(by: { $0.key < $1.key }).map {
                    [
                        "id": .number($0.key), "subscription_id": .string($0.value.subscriptionID),
                        "client_id": .string($0.value.clientID),
                    ]
                }
            ),
        ]
    }
}

/// A connection refused or dropped on purpose.
struct SocketDropped: Error {}

extension ZoomSimulator {
    /// The WebSocket upgrade of `/ws?subscriptionId=ID&access_token=TOKEN`: refused (no upgrade) without a valid
    /// access token the simulator issued, or without a subscription id.
    static func webSocketUpgrade(state: SimState) -> HTTPServerBuilder {
        .http1WebSocketUpgrade { request, _, _ in
            let path = request.path ?? ""
            guard path.hasPrefix("/ws") else { return .dontUpgrade }
            let query = URLComponents(string: path)?.queryItems ?? []
            func value(_ name: String) -> String? { query.first { $0.name == name }?.value }
            guard let subscription = value("subscriptionId"), !subscription.isEmpty,
                let caller = try? await state.authenticate(token: value("access_token"), rateClass: .light)
            else { return .dontUpgrade }
            let sockets = state.events.sockets
            return .upgrade([:]) { inbound, outbound, _ in
                let (dropped, drop) = AsyncStream.makeStream(of: Void.self)
                let id = await sockets.register(
                    accountID: caller.accountID,
                    clientID: caller.clientID,
                    subscriptionID: subscription,
                    writer: outbound,
                    drop: drop
                )
                do {
                    try await outbound.write(.text(#"{"module":"build_connection","success":true}"#))
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 16) {
                                guard case .text(let text) = message,
                                    (try? JSON.parse(Data(text.utf8)))?["module"] == .string("heartbeat")
                                else { continue }
                                try await outbound.write(.text(#"{"module":"heartbeat","success":true}"#))
                            }
                        }
                        group.addTask {
                            for await _ in dropped { throw SocketDropped() }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                } catch is SocketDropped {
                    // Dropped on purpose: not a normal closure. Thrown on, the handler's error makes the server close
                    // with 1011 (unexpected condition), so the client sees a failed connection and must reconnect.
                    await sockets.unregister(id)
                    throw SocketDropped()
                } catch {}
                await sockets.unregister(id)
            }
        }
    }
}
