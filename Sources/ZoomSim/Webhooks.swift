import Crypto
import Curl
import Foundation
import Hummingbird

/// Zoom's event subscriptions (webhooks), as the simulator delivers them. Everything here follows Zoom's pages:
///
/// - developers.zoom.us/docs/api/webhooks/ ("Validate your webhook endpoint", "Verify webhook events"): before a
///   subscription is saved, Zoom posts `{"payload": {"plainToken": ...}, "event_ts": ..., "event":
///   "endpoint.url_validation"}`, signed like any event, and expects `200 {"plainToken", "encryptedToken"}` with
///   `encryptedToken` the hex HMAC-SHA256 of `plainToken` keyed with the subscription's secret token, within 3
///   seconds. Every event is a POST of `{"event", "payload", "event_ts"}` (milliseconds) with `x-zm-request-timestamp`
///   (seconds) and `x-zm-signature: v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
/// - The headers of a delivery, as Zoom's own sample receiver logs them (github.com/zoom/webhook-sample):
///   `user-agent: Zoom Marketplace/1.0a`, `content-type: application/json; charset=utf-8`, `clientid`,
///   `x-zm-trackingid`, and `authorization` holding the legacy verification token (deprecated: sent only when the
///   subscription names one).
/// - developers.zoom.us/blog/webhook-delays: a delivery succeeds on a 200 or 204 within three seconds; otherwise
///   Zoom sends it three more times, 5 minutes after the first attempt, 20 minutes after the first retry and 60
///   minutes after the second; developers.zoom.us/docs/api/webhooks/ (docs/zoom-api/events.md): only on a status of
///   500 or more or a network error, never on a 4xx. The delays can be shortened per subscription for tests (`retry_delays`).
/// - Not simulated: the re-validation every 72 hours and disabling a subscription after failed validations.
///
/// Events are posted for the apps of the simulator; today `app_deauthorized` (its payload per Zoom's reference:
/// `account_id`, `user_id`, `signature`, `deauthorization_time`, `client_id`, `user_data_retention`) when an app is
/// removed through `POST /_sim/apps/{clientId}/deauthorize`. ``deliver(clientID:event:payload:)`` takes any event,
/// so meeting events (`meeting.started`, `meeting.participant_joined`, ...) can be added where meetings change.
public actor SimWebhooks {
    /// One event subscription of an app.
    public struct Subscription: Sendable {
        public var clientID: String
        public var url: String
        var secretToken: String
        /// The legacy verification token sent as `authorization`, when given.
        var verificationToken: String?
        /// The events delivered; `nil` for all of them.
        public var events: Set<String>?
        /// Seconds before each retry (Zoom: 300, 1200, 3600).
        public var retryDelays: [Double]
    }

    /// One attempt of a delivery.
    public struct Attempt: Sendable {
        public var time: Date
        /// The HTTP status, or `nil` on a network error or timeout.
        public var status: Int?
        public var error: String?
    }

    /// One event sent (or being sent) to a subscription.
    public struct Delivery: Sendable {
        public var id: Int
        public var clientID: String
        public var event: String
        public var url: String
        public var attempts: [Attempt]
        /// `delivered`, `retrying`, `failed`.
        public var state: String
    }

    /// Zoom's retry delays, in seconds (developers.zoom.us/blog/webhook-delays).
    public static let zoomRetryDelays: [Double] = [300, 1200, 3600]
    /// Zoom waits this long for an answer, in seconds.
    public static let answerTimeout = 3.0

    private var subscriptions: [String: Subscription] = [:]
    private var deliveries: [Delivery] = []
    private let http = HTTPClient(maxConnectionsPerOrigin: 2)

    public init() {}

    // MARK: Subscribing

    /// Validates `url` with `endpoint.url_validation`, then keeps the subscription (replacing the app's earlier one).
    /// - Returns: the subscription as `GET /_sim/webhooks` shows it.
    /// - Throws: 400 code 300 when the endpoint does not answer the challenge right (the reason says how).
    public func subscribe(
        clientID: String,
        url: String,
        secretToken: String,
        verificationToken: String?,
        events: Set<String>?,
        retryDelays: [Double]
    ) async throws -> JSON {
        let plainToken = Self.randomToken()
        let body = Self.body(event: "endpoint.url_validation", payload: ["plainToken": .string(plainToken)])
        let subscription = Subscription(
            clientID: clientID,
            url: url,
            secretToken: secretToken,
            verificationToken: verificationToken,
            events: events,
            retryDelays: retryDelays
        )
        let attempt = await post(body, to: subscription)
        guard let response = attempt.response, response.status == 200 else {
            throw ZoomAPIError.validation(
                field: "url",
                "URL validation failed: \(attempt.response.map { "HTTP \($0.status)" } ?? attempt.error ?? "no answer")"
            )
        }
        let expected = Self.hex(
            HMAC<SHA256>.authenticationCode(
                for: Array(plainToken.utf8),
                using: SymmetricKey(data: Array(secretToken.utf8))
            )
        )
        guard let answer = try? JSON.parse(Data(response.body)), answer["plainToken"]?.stringValue == plainToken,
            answer["encryptedToken"]?.stringValue == expected
        else {
            throw ZoomAPIError.validation(
                field: "url",
                "URL validation failed: the answer does not hold the expected plainToken and encryptedToken"
            )
        }
        subscriptions[clientID] = subscription
        return Self.json(subscription)
    }

    /// Removes the app's subscription.
    public func unsubscribe(clientID: String) { subscriptions[clientID] = nil }

    // MARK: Delivering

    /// Posts `event` to the app's subscription when it has one that takes the event; a failed first attempt (5xx,
    /// network error, no answer within 3 s) is retried later in the background, per the subscription's delays.
    /// - Returns: the delivery after its first attempt, or `nil` when no subscription takes the event.
    @discardableResult
    public func deliver(clientID: String, event: String, payload: JSON) async -> JSON? {
        guard let subscription = subscriptions[clientID], subscription.events?.contains(event) ?? true else {
            return nil
        }
        let body = Self.body(event: event, payload: payload)
        let id = deliveries.count + 1
        deliveries.append(
            Delivery(id: id, clientID: clientID, event: event, url: subscription.url, attempts: [], state: "retrying")
        )
        await attempt(id: id, body: body, subscription: subscription, retry: 0)
        return Self.json(deliveries[id - 1])
    }

    private func attempt(id: Int, body: [UInt8], subscription: Subscription, retry: Int) async {
        let result = await post(body, to: subscription)
        let status = result.response?.status
        deliveries[id - 1].attempts.append(Attempt(time: Date(), status: status, error: result.error))
        if let status, (200..<300).contains(status) {
            deliveries[id - 1].state = "delivered"
        } else if let status, status < 500 {
            deliveries[id - 1].state = "failed"  // Zoom does not retry a 4xx
        } else if retry < subscription.retryDelays.count {
            let delay = subscription.retryDelays[retry]
            Task {
                try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                await self.attempt(id: id, body: body, subscription: subscription, retry: retry + 1)
            }
        } else {
            deliveries[id - 1].state = "failed"
        }
    }

    /// One signed POST (a new timestamp and signature for each attempt).
    private func post(
        _ body: [UInt8],
        to subscription: Subscription
    ) async -> (response: Curl.HTTPResponse?, error: String?) {
        let timestamp = String(Int(Date().timeIntervalSince1970))
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/json; charset=utf-8"), ("User-Agent", "Zoom Marketplace/1.0a"),
            ("clientid", subscription.clientID), ("x-zm-request-timestamp", timestamp),
            ("x-zm-signature", Self.signature(secret: subscription.secretToken, timestamp: timestamp, body: body)),
            ("x-zm-trackingid", "v=2.0&s=\(Self.randomToken())&c=sim"), ("Expect", ""),
        ]
        if let token = subscription.verificationToken { headers.append(("Authorization", token)) }
        do {
            let response = try await http.send(
                Curl.HTTPRequest(
                    method: .post,
                    url: subscription.url,
                    headers: headers,
                    body: body,
                    timeout: Self.answerTimeout,
                    connectTimeout: Self.answerTimeout
                )
            )
            return (response, nil)
        } catch {
            return (nil, "\(error)")
        }
    }

    // MARK: Shapes

    /// `{"event": ..., "payload": ..., "event_ts": milliseconds}`, serialized once: the signature covers these bytes.
    static func body(event: String, payload: JSON) -> [UInt8] {
        let milliseconds = Int64(Date().timeIntervalSince1970 * 1000)
        let object: JSON = ["event": .string(event), "payload": payload, "event_ts": .int(milliseconds)]
        return Array(object.serialized().utf8)
    }

    /// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
    static func signature(secret: String, timestamp: String, body: [UInt8]) -> String {
        "v0="
            + hex(
                HMAC<SHA256>.authenticationCode(
                    for: Array("v0:\(timestamp):".utf8) + body,
                    using: SymmetricKey(data: Array(secret.utf8))
                )
            )
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return SimState.base64url((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    private static func json(_ subscription: Subscription) -> JSON {
        [
            "client_id": .string(subscription.clientID), "url": .string(subscription.url), "validated": true,
            "events": subscription.events.map { .array($0.sorted().map { .string($0) }) } ?? .null,
            "retry_delays": .array(subscription.retryDelays.map { .double($0) }),
        ]
    }

    private static func json(_ delivery: Delivery) -> JSON {
        [
            "id": .number(delivery.id), "client_id": .string(delivery.clientID), "event": .string(delivery.event),
            "url": .string(delivery.url), "state": .string(delivery.state),
            "attempts": .array(
                delivery.attempts.map {
                    [
                        "time": .string(SimState.format($0.time)), "status": .optional($0.status),
                        "error": .optional($0.error),
                    ]
                }
            ),
        ]
    }

    /// `GET /_sim/webhooks`: the subscriptions (secrets left out) and every delivery with its attempts.
    public func listJSON() -> JSON {
        [
            "subscriptions": .array(subscriptions.keys.sorted().map { Self.json(subscriptions[$0]!) }),
            "deliveries": .array(deliveries.map { Self.json($0) }),
        ]
    }
}

extension ZoomSimulator {
    /// The test surface of webhooks:
    /// - `POST /_sim/webhooks` `{client_id, url, secret_token | secret_token_file, verification_token?, events?,
    ///   retry_delays?}`: an event subscription for the app, saved once `url` answers Zoom's validation challenge
    ///   (else 400 code 300); `secret_token_file` is read like the simulator's other secret files (mode 0600).
    /// - `GET /_sim/webhooks`: subscriptions and deliveries. `DELETE /_sim/webhooks/{clientId}`.
    /// - `POST /_sim/apps/{clientId}/deauthorize` `{user?}`: the app is removed from its account, as an admin does in
    ///   the Marketplace: its tokens stop working at once (like the `revoke_app` fault) and `app_deauthorized` is
    ///   delivered to its subscription. The answer holds the delivery after its first attempt.
    static func addWebhookRoutes(_ router: Router<SimRequestContext>, state: SimState) {
        let sim = router.group("/_sim")
        let webhooks = state.webhooks
        sim.get("/webhooks") { _, _ in json(await webhooks.listJSON()) }
        sim.post("/webhooks") { request, _ -> Response in
            let body = try await jsonBody(request)
            guard let client = body["client_id"]?.stringValue,
                state.configuration.apps.contains(where: { $0.clientID == client })
            else { throw ZoomAPIError.validation(field: "client_id", "client_id must name an app of the simulator") }
            guard let url = body["url"]?.stringValue, url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ZoomAPIError.validation(field: "url", "url must be an http or https URL")
            }
            let secret: String
            if let token = body["secret_token"]?.stringValue, !token.isEmpty {
                secret = token
            } else if let file = body["secret_token_file"]?.stringValue {
                do {
                    secret = try SimConfiguration.readSecretFile(
                        file,
                        key: "secret_token_file",
                        configPath: "POST /_sim/webhooks"
                    )
                } catch {
                    throw ZoomAPIError.validation(field: "secret_token_file", "\(error)")
                }
            } else {
                throw ZoomAPIError.validation(field: "secret_token", "secret_token or secret_token_file is required")
            }
            let events = body["events"]?.arrayValue.map { Set($0.compactMap(\.stringValue)) }
            let delays = body["retry_delays"]?.arrayValue?.compactMap(\.doubleValue) ?? SimWebhooks.zoomRetryDelays
            return json(
                try await webhooks.subscribe(
                    clientID: client,
                    url: url,
                    secretToken: secret,
                    verificationToken: body["verification_token"]?.stringValue,
                    events: events,
                    retryDelays: delays
                ),
                status: 201
            )
        }
        sim.delete("/webhooks/:clientId") { _, context -> Response in
            await webhooks.unsubscribe(clientID: parameter(context, "clientId"))
            return noContent()
        }
        sim.post("/apps/:clientId/deauthorize") { request, context -> Response in
            let client = parameter(context, "clientId")
            guard let app = state.configuration.apps.first(where: { $0.clientID == client }) else {
                throw ZoomAPIError.validation(field: "client_id", "no app \(client)")
            }
            let body = try await jsonBody(request)
            let user = body["user"]?.stringValue.flatMap { key in
                state.configuration.users.first { $0.id == key || $0.email.lowercased() == key.lowercased() }
            }
            _ = try await state.applyFault(["kind": "revoke_app", "client_id": .string(client)])
            var generator = SystemRandomNumberGenerator()
            let payload: JSON = [
                "account_id": .string(app.accountID), "user_id": .string(user?.id ?? "sim-admin"),
                "signature": .string(
                    SimWebhooks.hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
                ),
                "deauthorization_time": .string(SimState.format(Date())), "client_id": .string(client),
                "user_data_retention": "false",
            ]
            // The account's WebSocket event subscriptions hear it too (developers.zoom.us/docs/api/websockets/: a
            // subscription carries the app's events).
            let content = String(decoding: SimWebhooks.body(event: "app_deauthorized", payload: payload), as: UTF8.self)
            let frame: JSON = ["module": "message", "content": .string(content)]
            await state.events.sockets.send(frame.serialized(), accountID: app.accountID)
            let delivery = await webhooks.deliver(clientID: client, event: "app_deauthorized", payload: payload)
            return json(["deauthorized": .string(client), "delivery": delivery ?? .null])
        }
    }
}
