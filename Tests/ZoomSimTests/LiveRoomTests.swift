import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import WSClient

@testable import ZoomSim

/// zoom-sim playing a meeting, checked from outside: a WebSocket client no one here wrote (swift-websocket's
/// `WSClient`) on the event subscription endpoint `/ws`, and a real HTTP receiver for the webhook subscription, both
/// on 127.0.0.1. The facts checked are Zoom's: developers.zoom.us/docs/api/websockets/ (connect with an
/// account_credentials token, heartbeat, events only while connected), developers.zoom.us/docs/api/webhooks/ (signed
/// deliveries) and the meeting events' payloads as Zoom's SDK types them (zoom/rivet-javascript meetings/meetings.d.ts:
/// `object.id` is a string in these four events).
@Suite("Live room: meeting events")
struct LiveRoomTests {
    /// The usual harness plus an app of another account, whose connections must hear none of `AcctSim1`'s events.
    static func configuration() -> SimConfiguration {
        var configuration = Harness.configuration(concurrent: 2)
        configuration.apps.append(
            .init(clientID: "other-app", clientSecret: "o-s3cret", accountID: "AcctOther", kind: .s2s)
        )
        return configuration
    }

    @Test("build_connection first, heartbeats answered, the connection listed")
    func connectAndHeartbeat() async throws {
        let harness = Harness(Self.configuration())
        try await harness.app.test(.live) { client in
            let token = try await client.s2sToken()
            let socket = try EventSocket(port: try #require(client.port), subscriptionID: "SUB1", token: token)
            defer { socket.stop() }
            let first = try await socket.frame(0)
            #expect(first["module"] == "build_connection" && first["success"] == true)

            socket.send(#"{"module":"heartbeat"}"#)
            let answer = try await socket.frame(1)
            #expect(answer["module"] == "heartbeat" && answer["success"] == true)

            let list = try await client.call(.get, "/_sim/websockets").body
            #expect(list["open"] == 1 && list["opened"] == 1)
            #expect(list["connections"]?.arrayValue?.first?["subscription_id"] == "SUB1")
            #expect(list["connections"]?.arrayValue?.first?["client_id"] == "abc123")
        }
    }

    @Test("join, leave and end: the events in order with Zoom's fields; nothing replayed; other accounts hear nothing")
    func meetingEventsInOrder() async throws {
        let harness = Harness(Self.configuration())
        try await harness.app.test(.live) { client in
            let port = try #require(client.port)
            let token = try await client.s2sToken()
            let socket = try EventSocket(port: port, subscriptionID: "SUB1", token: token)
            defer { socket.stop() }
            let otherToken = try #require(
                try await client.call(
                    .post,
                    "/oauth/token?grant_type=account_credentials&account_id=AcctOther",
                    basic: ("other-app", "o-s3cret")
                ).body["access_token"]?.stringValue
            )
            let other = try EventSocket(port: port, subscriptionID: "SUB2", token: otherToken)
            defer { other.stop() }
            #expect(try await socket.frame(0)["module"] == "build_connection")
            #expect(try await other.frame(0)["module"] == "build_connection")

            let created = try await client.createMeeting(token).body
            let id = try #require(created["id"]?.intValue)
            let uuid = try #require(created["uuid"]?.stringValue)
            #expect(try await client.call(.get, "/v2/meetings/\(id)", bearer: token).body["status"] == "waiting")

            // Joining a waiting meeting starts it: meeting.started goes first.
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            let ada = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "join", "email": "ada@example.com", "name": "Ada"]
            )
            #expect(ada.status == 200)
            let adaUUID = try #require(ada.body["participant_uuid"]?.stringValue)
            #expect(ada.body["user_id"]?.stringValue?.isEmpty == false)
            #expect(try await client.call(.get, "/v2/meetings/\(id)", bearer: token).body["status"] == "started")

            let started = try await socket.event(1)
            #expect(started["event"] == "meeting.started")
            let ts = try #require(started["event_ts"]?.intValue)
            #expect(
                ts >= before - 1000 && ts <= Int64(Date().timeIntervalSince1970 * 1000) + 1000,
                "event_ts in milliseconds"
            )
            #expect(started["payload"]?["account_id"] == "AcctSim1")
            let object = try #require(started["payload"]?["object"])
            #expect(object["id"] == .string(String(id)))
            #expect(object["uuid"] == .string(uuid))
            #expect(object["host_id"] == "u1abc" && object["topic"] == "Situation Room: db down" && object["type"] == 2)
            let startTime = try #require(object["start_time"])
            #expect(zoomTime(startTime) != nil)

            let joined = try await socket.event(2)
            #expect(joined["event"] == "meeting.participant_joined")
            #expect(joined["payload"]?["object"]?["uuid"] == .string(uuid))
            let person = try #require(joined["payload"]?["object"]?["participant"])
            #expect(person["user_name"] == "Ada" && person["email"] == "ada@example.com")
            #expect(person["participant_uuid"] == .string(adaUUID) && person["user_id"] == ada.body["user_id"])
            #expect(zoomTime(person["join_time"]) != nil)
            #expect(person["leave_reason"] == nil && person["leave_time"] == nil)

            // A guest and a phone user: no email.
            let guest = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "join", "name": "Grace", "guest": true]
            )
            let phone = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "join", "phone": true]
            )
            #expect(guest.body["email"] == "" && phone.body["email"] == "")
            let guestUUID = try #require(guest.body["participant_uuid"]?.stringValue)
            let guestJoined = try await socket.event(3)
            #expect(guestJoined["payload"]?["object"]?["participant"]?["user_name"] == "Grace")
            #expect(guestJoined["payload"]?["object"]?["participant"]?["email"] == "")
            #expect(try await socket.event(4)["payload"]?["object"]?["participant"]?["email"] == "")

            let sim = try await client.call(.get, "/_sim/meetings").body.arrayValue?.first { $0["id"]?.intValue == id }
            #expect(sim?["status"] == "started")
            #expect(
                sim?["participants"]?.arrayValue?.compactMap { $0["participant_uuid"]?.stringValue }.first == adaUUID
            )
            #expect(sim?["participants"]?.arrayValue?.count == 3)

            // Leaving by email and by participant_uuid.
            #expect(
                try await client.call(
                    .post,
                    "/_sim/meetings/\(id)/participants",
                    json: ["action": "leave", "email": "ADA@example.com"]
                )
                .status == 200
            )
            #expect(
                try await client.call(
                    .post,
                    "/_sim/meetings/\(id)/participants",
                    json: ["action": "leave", "participant_uuid": .string(guestUUID)]
                ).status == 200
            )
            let left = try await socket.event(5)
            #expect(left["event"] == "meeting.participant_left")
            let leaver = try #require(left["payload"]?["object"]?["participant"])
            #expect(leaver["participant_uuid"] == .string(adaUUID) && leaver["email"] == "ada@example.com")
            #expect(zoomTime(leaver["leave_time"]) != nil)
            #expect(leaver["leave_reason"]?.stringValue?.isEmpty == false)
            #expect(leaver["join_time"] == nil)
            // start_time is the occurrence's, in participant events too (Zoom's SDK requires it in participant_left).
            #expect(left["payload"]?["object"]?["start_time"] == startTime)
            #expect(
                try await socket.event(6)["payload"]?["object"]?["participant"]?["participant_uuid"]
                    == .string(guestUUID)
            )
            let present = try await client.call(.get, "/_sim/meetings").body.arrayValue?.first {
                $0["id"]?.intValue == id
            }
            #expect(present?["participants"]?.arrayValue?.count == 1)

            // A connection made now hears what happens from now on, nothing before (Zoom replays nothing).
            let late = try EventSocket(port: port, subscriptionID: "SUB1", token: token)
            defer { late.stop() }
            #expect(try await late.frame(0)["module"] == "build_connection")

            // Ending (here through the API, as sitroomd does): meeting.ended with end_time, the same uuid.
            let end = try await client.call(.put, "/v2/meetings/\(id)/status", bearer: token, json: ["action": "end"])
            #expect(end.status == 204)
            for (events, index) in [(socket, 7), (late, 1)] {
                let ended = try await events.event(index)
                #expect(ended["event"] == "meeting.ended")
                let object = ended["payload"]?["object"]
                #expect(object?["id"] == .string(String(id)) && object?["uuid"] == .string(uuid))
                // When it started, not when it was scheduled (2026-01-01T10:00:00Z).
                #expect(object?["start_time"] == startTime)
                let start = try #require(zoomTime(object?["start_time"]))
                let finish = try #require(zoomTime(object?["end_time"]))
                #expect(start <= finish)
            }
            #expect(try await client.call(.get, "/_sim/meetings").body.arrayValue?.first?["status"] == "ended")
            // Started again (its link used after it ended): a new instance, with a uuid of its own (Zoom's "Get a
            // meeting": after a meeting ends, a new UUID is generated for its next instance).
            #expect(try await client.call(.post, "/_sim/meetings/\(id)/start").status == 200)
            let again = try await socket.event(8)
            #expect(again["event"] == "meeting.started" && again["payload"]?["object"]?["id"] == .string(String(id)))
            let nextUUID = try #require(again["payload"]?["object"]?["uuid"]?.stringValue)
            #expect(nextUUID != uuid && !nextUUID.isEmpty)

            // The other account's connection: its next frame is its own meeting's start, none of the above.
            let otherMeeting = try #require(
                try await client.createMeeting(otherToken, user: "bridge-2@example.com").body["id"]?.intValue
            )
            #expect(try await client.call(.post, "/_sim/meetings/\(otherMeeting)/start").status == 200)
            let otherFirst = try await other.event(1)
            #expect(otherFirst["event"] == "meeting.started" && otherFirst["payload"]?["account_id"] == "AcctOther")
            #expect(otherFirst["payload"]?["object"]?["id"] == .string(String(otherMeeting)))
        }
    }

    @Test(
        "the test routes /start and /end send meeting.started and meeting.ended; bad participant requests are refused"
    )
    func startEndRoutesAndRefusals() async throws {
        let harness = Harness(Self.configuration())
        try await harness.app.test(.live) { client in
            let token = try await client.s2sToken()
            let socket = try EventSocket(port: try #require(client.port), subscriptionID: "SUB1", token: token)
            defer { socket.stop() }
            #expect(try await socket.frame(0)["module"] == "build_connection")
            let id = try #require(try await client.createMeeting(token).body["id"]?.intValue)

            let unknown = try await client.call(.post, "/_sim/meetings/99999/participants", json: ["action": "join"])
            #expect(unknown.status == 404 && unknown.code == 3001)
            let nobody = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "leave", "email": "nobody@example.com"]
            )
            #expect(nobody.status == 400 && nobody.code == 300)
            let neither = try await client.call(.post, "/_sim/meetings/\(id)/participants", json: ["action": "leave"])
            #expect(neither.status == 400)
            let bogus = try await client.call(.post, "/_sim/meetings/\(id)/participants", json: ["action": "wave"])
            #expect(bogus.status == 400 && bogus.code == 300)

            #expect(try await client.call(.post, "/_sim/meetings/\(id)/start").status == 200)
            #expect(try await socket.event(1)["event"] == "meeting.started")
            // Someone joins the started meeting: no second meeting.started.
            _ = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "join", "email": "alan@example.com"]
            )
            #expect(try await socket.event(2)["event"] == "meeting.participant_joined")
            // An empty email names nobody, not the guest (whose email is empty).
            _ = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "join", "guest": true]
            )
            #expect(try await socket.event(3)["event"] == "meeting.participant_joined")
            let empty = try await client.call(
                .post,
                "/_sim/meetings/\(id)/participants",
                json: ["action": "leave", "email": ""]
            )
            #expect(empty.status == 400 && empty.code == 300)
            #expect(try await client.call(.post, "/_sim/meetings/\(id)/end").status == 200)
            #expect(try await socket.event(4)["event"] == "meeting.ended")
            let sim = try await client.call(.get, "/_sim/meetings").body.arrayValue?.first
            #expect(sim?["status"] == "ended" && sim?["participants"]?.arrayValue?.isEmpty == true)
        }
    }

    @Test("no valid token, no subscription id: the upgrade is refused")
    func badTokenRefused() async throws {
        let harness = Harness(Self.configuration())
        try await harness.app.test(.live) { client in
            let port = try #require(client.port)
            let token = try await client.s2sToken()
            for query in [
                "subscriptionId=SUB1&access_token=not-a-token", "subscriptionId=SUB1", "access_token=\(token)",
            ] {
                await #expect(throws: WebSocketClientError.self, "\(query)") {
                    try await WebSocketClient.connect(
                        url: "ws://127.0.0.1:\(port)/ws?\(query)",
                        logger: EventSocket.logger
                    ) { _, _, _ in
                        Issue.record("upgraded with \(query)")
                    }
                }
            }
            // A token the app no longer has: revoked through Zoom's revoke endpoint.
            let revoke = try await client.call(
                .post,
                "/oauth/revoke",
                basic: ("abc123", "s3cret"),
                form: "token=\(token)"
            )
            #expect(revoke.status == 200)
            await #expect(throws: WebSocketClientError.self) {
                try await WebSocketClient.connect(
                    url: "ws://127.0.0.1:\(port)/ws?subscriptionId=SUB1&access_token=\(token)",
                    logger: EventSocket.logger
                ) { _, _, _ in Issue.record("upgraded with a revoked token") }
            }
            let list = try await client.call(.get, "/_sim/websockets").body
            #expect(list["open"] == 0 && list["opened"] == 0)
        }
    }

    @Test("drop ends every open connection; a new one works")
    func dropClosesConnections() async throws {
        let harness = Harness(Self.configuration())
        try await harness.app.test(.live) { client in
            let port = try #require(client.port)
            let token = try await client.s2sToken()
            let sockets = try (0..<2).map { _ in try EventSocket(port: port, subscriptionID: "SUB1", token: token) }
            defer { for socket in sockets { socket.stop() } }
            for socket in sockets { #expect(try await socket.frame(0)["module"] == "build_connection") }
            #expect(try await client.call(.get, "/_sim/websockets").body["open"] == 2)

            let drop = try await client.call(.post, "/_sim/websockets/drop")
            #expect(drop.body["dropped"] == 2)
            for socket in sockets {
                let ending = try await socket.ending()
                // The server ends it with 1011 (unexpected condition), not a normal close: the client must reconnect.
                if case .success(let close) = ending { #expect(close?.closeCode != .normalClosure) }
            }
            #expect(try await client.call(.get, "/_sim/websockets").body["open"] == 0)

            let again = try EventSocket(port: port, subscriptionID: "SUB1", token: token)
            defer { again.stop() }
            #expect(try await again.frame(0)["module"] == "build_connection")
            let list = try await client.call(.get, "/_sim/websockets").body
            #expect(list["open"] == 1 && list["opened"] == 3)
        }
    }

    @Test("the app's webhook subscription receives the meeting events, signed, in order")
    func webhookReceivesSignedEvents() async throws {
        let harness = Harness(Self.configuration())
        let receiver = WebhookReceiver(secret: "hook-secret")
        try await receiver.app.test(.live) { hookClient in
            let hookPort = try #require(hookClient.port)
            try await harness.app.test(.live) { client in
                let token = try await client.s2sToken()
                let subscribed = try await client.call(
                    .post,
                    "/_sim/webhooks",
                    json: [
                        "client_id": "abc123", "url": .string("http://127.0.0.1:\(hookPort)/zoom"),
                        "secret_token": "hook-secret",
                    ]
                )
                #expect(subscribed.status == 201)
                let id = try #require(try await client.createMeeting(token).body["id"]?.intValue)
                _ = try await client.call(
                    .post,
                    "/_sim/meetings/\(id)/participants",
                    json: ["action": "join", "email": "ada@example.com"]
                )
                _ = try await client.call(
                    .post,
                    "/_sim/meetings/\(id)/participants",
                    json: ["action": "leave", "email": "ada@example.com"]
                )
                #expect(try await client.call(.post, "/_sim/meetings/\(id)/end").status == 200)

                let received = try await waitFor {
                    let all = await receiver.events
                    return all.count >= 4 ? all : nil
                }
                #expect(
                    received.map { $0.body["event"]?.stringValue ?? "" } == [
                        "meeting.started", "meeting.participant_joined", "meeting.participant_left", "meeting.ended",
                    ]
                )
                for event in received {
                    #expect(event.signatureValid, "x-zm-signature of \(event.body["event"] ?? .null)")
                    #expect(event.clientID == "abc123")
                    #expect(event.body["payload"]?["object"]?["id"] == .string(String(id)))
                    #expect(event.body["event_ts"]?.intValue != nil)
                }
                #expect(received[1].body["payload"]?["object"]?["participant"]?["email"] == "ada@example.com")
            }
        }
    }
}

/// Polls `probe` until it gives a value; fails after `timeout`.
func waitFor<T>(timeout: Duration = .seconds(10), _ probe: () async throws -> T?) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if let value = try await probe() { return value }
        try await Task.sleep(for: .milliseconds(10))  // waits-on-purpose: the step of a bounded poll
    }
    throw TimedOut()
}

struct TimedOut: Error {}

/// A client of `/ws` on swift-websocket's `WSClient`: it keeps every text frame as it arrives and sends what it is
/// given; `stop()` ends it.
final class EventSocket: Sendable {
    static let logger: Logger = {
        var logger = Logger(label: "zoom-sim-test-ws")
        logger.logLevel = .critical
        return logger
    }()

    private let received = Received()
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<Void, Never>

    init(port: Int, subscriptionID: String, token: String) throws {
        let (stream, outgoing) = AsyncStream.makeStream(of: String.self)
        self.outgoing = outgoing
        let received = self.received
        let url = "ws://127.0.0.1:\(port)/ws?subscriptionId=\(subscriptionID)&access_token=\(token)"
        task = Task {
            do {
                let close = try await WebSocketClient.connect(url: url, logger: Self.logger) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                if case .text(let text) = message { await received.append(text) }
                            }
                        }
                        group.addTask {
                            for await text in stream { try await outbound.write(.text(text)) }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                await received.end(.success(close))
            } catch {
                await received.end(.failure(error))
            }
        }
    }

    func send(_ text: String) { outgoing.yield(text) }

    func stop() {
        outgoing.finish()
        task.cancel()
    }

    /// The `index`th text frame (from 0), parsed; throws if it does not come within the timeout.
    func frame(_ index: Int) async throws -> JSON {
        let text = try await waitFor { await received.texts.count > index ? await received.texts[index] : nil }
        return try JSON.parse(Data(text.utf8))
    }

    /// The event carried by the `index`th frame, which must be a `message` frame.
    func event(_ index: Int) async throws -> JSON {
        let frame = try await frame(index)
        #expect(frame["module"] == "message")
        let content = try #require(frame["content"]?.stringValue)
        return try JSON.parse(Data(content.utf8))
    }

    /// How the connection ended.
    func ending() async throws -> Result<WebSocketCloseFrame?, any Error> {
        try await waitFor { await received.ended }
    }

    actor Received {
        var texts: [String] = []
        var ended: Result<WebSocketCloseFrame?, any Error>?
        func append(_ text: String) { texts.append(text) }
        func end(_ result: Result<WebSocketCloseFrame?, any Error>) { ended = result }
    }
}

/// An HTTP endpoint for the webhook subscription, answering Zoom's validation challenge and checking signatures
/// (developers.zoom.us/docs/api/webhooks/: `encryptedToken` = hex HMAC-SHA256 of `plainToken`; `x-zm-signature` =
/// `v0=` + hex HMAC-SHA256 of `v0:{x-zm-request-timestamp}:{body}`, keyed with the secret token).
struct WebhookReceiver {
    struct Received: Sendable {
        var body: JSON
        var clientID: String?
        var signatureValid: Bool
    }

    actor Inbox {
        var events: [Received] = []
        func record(_ event: Received) { events.append(event) }
    }

    let inbox = Inbox()
    let app: any ApplicationProtocol
    /// The events received so far (the validation challenge left out).
    var events: [Received] { get async { await inbox.events } }

    init(secret: String) {
        let router = Router()
        let inbox = self.inbox
        router.post("/zoom") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let text = String(decoding: bytes.readableBytesView, as: UTF8.self)
            let body = try JSON.parse(Data(text.utf8))
            if body["event"] == "endpoint.url_validation" {
                let plain = body["payload"]?["plainToken"]?.stringValue ?? ""
                let answer: JSON = ["plainToken": .string(plain), "encryptedToken": .string(Self.hmac(plain, secret))]
                return Response(
                    status: .ok,
                    headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: answer.serialized()))
                )
            }
            func header(_ name: String) -> String? { request.headers.first { $0.name.canonicalName == name }?.value }
            let timestamp = header("x-zm-request-timestamp") ?? ""
            let signature = header("x-zm-signature") ?? ""
            let valid = signature == "v0=" + Self.hmac("v0:\(timestamp):\(text)", secret)
            await inbox.record(Received(body: body, clientID: header("clientid"), signatureValid: valid))
            return Response(status: .ok)
        }
        app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    static func hmac(_ message: String, _ key: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: SymmetricKey(data: Data(key.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }
}

/// A time as Zoom's events write it (`2026-01-01T10:00:00Z`).
func zoomTime(_ value: JSON?) -> Date? {
    value?.stringValue.flatMap { ISO8601DateFormatter().date(from: $0) }
}
