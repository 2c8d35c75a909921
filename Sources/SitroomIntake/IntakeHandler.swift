import Foundation
import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import Synchronization

/// A request's head as the intake judges it: no body yet.
public struct IntakeRequestHead: Sendable {
    public var method: String
    /// The path without the query.
    public var path: String
    /// Header names lower-cased; a header sent several times has its values joined with `, ` (RFC 9110 §5.3).
    public var headers: [String: String]
    /// The peer's address, for the log.
    public var remote: String

    public init(method: String, path: String, headers: [String: String], remote: String = "") {
        self.method = method
        self.path = path
        self.headers = headers
        self.remote = remote
    }

    /// `Content-Length`, when given and a number.
    public var contentLength: Int? { headers["content-length"].flatMap { Int($0) } }

    /// Whether a body may follow (a `Content-Length` above 0 or a `Transfer-Encoding`).
    public var mayHaveBody: Bool { (contentLength ?? 0) > 0 || headers["transfer-encoding"] != nil }
}

/// An answer: status, headers and body; `outcome` names it for the log and the metrics.
public struct IntakeAnswer: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// `spooled`, `ignored`, `validated` (Zoom's URL check), `health`, `unauthorized`, `forbidden`, `malformed`,
    /// `too_large`, `unavailable`, `not_found`, `method_not_allowed`.
    public var outcome: String

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = [], outcome: String) {
        self.status = status
        self.headers = headers
        self.body = body
        self.outcome = outcome
    }

    /// A JSON object of strings and integers, keys sorted (written by hand: it is on every answer's path).
    static func json(_ status: Int, _ object: [String: Any], outcome: String, headers: [(String, String)] = []) -> Self
    {
        var text = "{"
        for (index, key) in object.keys.sorted().enumerated() {
            if index > 0 { text += "," }
            text += jsonString(key) + ":"
            switch object[key] {
            case let number as Int: text += String(number)
            case let value as String: text += jsonString(value)
            default: text += "null"
            }
        }
        text += "}\n"
        return Self(
            status: status,
            headers: [("Content-Type", "application/json")] + headers,
            body: Array(text.utf8),
            outcome: outcome
        )
    }

    /// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func text(_ status: Int, _ message: String, outcome: String, headers: [(String, String)] = []) -> Self {
        Self(
            status: status,
            headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
            body: Array((message.hasSuffix("\n") ? message : message + "\n").utf8),
            outcome: outcome
        )
    }
}

/// The live configuration: replaced whole by a reload, read by every request.
public final class IntakeLive: Sendable {
    private let current: Mutex<(configuration: IntakeConfiguration, generation: Int)>

    public init(_ configuration: IntakeConfiguration) {
        current = Mutex((configuration, 1))
    }

    /// The configuration and its generation number.
    public var snapshot: (configuration: IntakeConfiguration, generation: Int) { current.withLock { $0 } }

    /// Applies a new configuration when it differs from the live one.
    /// - Returns: the new generation number, or `nil` when nothing changed.
    public func apply(_ configuration: IntakeConfiguration) -> Int? {
        current.withLock { live in
            guard live.configuration != configuration else { return nil }
            live = (configuration, live.generation + 1)
            return live.generation
        }
    }
}

/// Decides what to answer a request: the route, its credentials, the body's format, and the spool write.
///
/// Answers follow the senders' retry rules (Alertmanager retries only on 5xx; PagerDuty retries 5xx, 429 and
/// timeouts for 48 hours and disables a subscription after 3 dropped deliveries; Zoom retries only on 5xx and
/// expects an answer within 3 seconds): 200 only once the file is durable in `new/`; 503 with `Retry-After` when it
/// cannot be (the event is then delivered again, never lost); 401, 403, 400, 404, 405, 413 for requests that would
/// fail again; 200 without spooling for events sitroom does not use, so no sender disables the subscription.
public final class IntakeHandler: Sendable {
    public let live: IntakeLive
    let secrets: SecretCache
    let writer: SpoolWriter
    let spool: String
    let logger: Logger
    let events: IntakeEvents
    /// Seconds since 1970 (Zoom's timestamp window).
    let now: @Sendable () -> Double

    /// Seconds a sender is asked to wait before delivering again when the spool cannot be written.
    public static let retryAfter = 10

    /// - Parameters:
    ///   - spool: the spool directory (`var/spool/incidents`), for the health check.
    ///   - events: told about spool writes and problems (state file and metrics).
    public init(
        live: IntakeLive,
        secrets: SecretCache,
        writer: SpoolWriter,
        spool: String,
        logger: Logger,
        events: IntakeEvents,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.live = live
        self.secrets = secrets
        self.writer = writer
        self.spool = spool
        self.logger = logger
        self.events = events
        self.now = now
    }

    /// What to do once the head is read.
    public enum Preflight: Sendable {
        /// Answer now, without reading the body.
        case answer(IntakeAnswer)
        /// Read the body (at most `maxBodySize` bytes), then ``handle(route:head:body:)``.
        case proceed(IntakeRoute, maxBodySize: Int)
    }

    /// The label of a path in the metrics: the route, the health check, or `other` (unknown paths are not labels).
    public func label(_ path: String) -> String {
        path == IntakeConfiguration.healthPath || live.snapshot.configuration.routes[path] != nil ? path : "other"
    }

    /// Judges the head: an unmet `Expect` (417), the health check, unknown paths (404), methods (405), bearer or basic
    /// credentials and the presence of a signature (401), then a declared body over `max_body_size` (413): all
    /// before any body is read.
    public func preflight(_ head: IntakeRequestHead) -> Preflight {
        let (configuration, generation) = live.snapshot
        // RFC 9110 §10.1.1: an expectation the server cannot meet is answered 417; 100-continue is the only one
        // (an empty field, as libcurl sends to turn 100-continue off, expects nothing).
        if let expect = head.headers["expect"], !expect.isEmpty, expect.lowercased() != "100-continue" {
            return .answer(
                refused(
                    head,
                    417,
                    "Expect: only 100-continue is understood, not '\(OneLine.clean(expect, limit: 100))'",
                    outcome: "malformed"
                )
            )
        }
        if head.path == IntakeConfiguration.healthPath {
            guard head.method == "GET" || head.method == "HEAD" else {
                return .answer(
                    refused(head, 405, "use GET", outcome: "method_not_allowed", headers: [("Allow", "GET, HEAD")])
                )
            }
            return .answer(health(generation: generation, routes: configuration.routes.count))
        }
        guard let route = configuration.routes[head.path] else {
            return .answer(refused(head, 404, "no route \(OneLine.clean(head.path, limit: 200))", outcome: "not_found"))
        }
        guard head.method == "POST" else {
            return .answer(
                refused(
                    head,
                    405,
                    "\(head.path) takes POST",
                    outcome: "method_not_allowed",
                    headers: [("Allow", "POST")]
                )
            )
        }
        let authorization = head.headers["authorization"]
        do {
            switch route.authentication {
            case .bearer(let file):
                let token = try secrets.secret(file, key: "bearer_token_file")
                guard Credentials.bearer(authorization, token: token) == true else {
                    return .answer(unauthorized(head, challenge: "Bearer realm=\"sitroom-intake\""))
                }
            case .basic(let username, let file):
                let password = try secrets.secret(file, key: "basic.password_file")
                guard Credentials.basic(authorization, username: username, password: password) == true else {
                    return .answer(
                        unauthorized(head, challenge: "Basic realm=\"sitroom-intake\", charset=\"UTF-8\"")
                    )
                }
            // The signature is checked over the body; one that is missing is refused before it is read.
            case .pagerDutySignature:
                guard head.headers["x-pagerduty-signature"] != nil else {
                    return .answer(
                        unauthorized(head, challenge: Self.pagerDutyChallenge, why: "no X-PagerDuty-Signature")
                    )
                }
            case .zoomSignature:
                guard head.headers["x-zm-signature"] != nil else {
                    return .answer(unauthorized(head, challenge: Self.zoomChallenge, why: "no x-zm-signature"))
                }
            }
        } catch {
            return .answer(secretUnavailable(route, error))
        }
        // After the credentials: a sender without them learns nothing of the limit.
        if let length = head.contentLength, length > configuration.maxBodySize {
            return .answer(tooLarge(configuration.maxBodySize, head))
        }
        return .proceed(route, maxBodySize: configuration.maxBodySize)
    }

    /// The challenges of a 401 for the signature routes (RFC 9110 §11.6.1 asks every 401 for one): the scheme names
    /// the header the sender must sign with.
    static let pagerDutyChallenge = "X-PagerDuty-Signature realm=\"sitroom-intake\""
    static let zoomChallenge = "x-zm-signature realm=\"sitroom-intake\""

    /// 413, naming the limit; logged with the sender's address.
    public func tooLarge(_ limit: Int, _ head: IntakeRequestHead) -> IntakeAnswer {
        refused(
            head,
            413,
            "the body is larger than max_body_size (\(limit) bytes)",
            outcome: "too_large",
            headers: [("Connection", "close")]
        )
    }

    /// 400 for a body whose HTTP framing is broken (a bad chunk size, the connection ending inside a chunk), logged:
    /// the body is not read further and the connection closes after the answer.
    public func badFraming(_ head: IntakeRequestHead, _ why: String) -> IntakeAnswer {
        refused(
            head,
            400,
            "the body's HTTP framing is broken: \(why)",
            outcome: "malformed",
            headers: [("Connection", "close")]
        )
    }

    /// A request that came on a connection being closed after an early answer: not judged, not spooled, not
    /// answered (the sender was told `Connection: close`); logged.
    public func dropped(_ head: IntakeRequestHead) {
        logger.info(
            "dropped: a request sent behind an early answer on a closing connection",
            metadata: ["path": "\(OneLine.clean(head.path, limit: 200))", "remote": "\(head.remote)"]
        )
    }

    /// Every refusal, logged as one warning with the path, the sender's address, the status and the reason (`reason`,
    /// else the answer's text): an admin whose sender is refused finds why in the log.
    func refused(
        _ head: IntakeRequestHead,
        _ status: Int,
        _ message: String,
        outcome: String,
        headers: [(String, String)] = [],
        reason: String? = nil
    ) -> IntakeAnswer {
        logger.warning(
            "refused",
            metadata: [
                "path": "\(OneLine.clean(head.path, limit: 200))", "remote": "\(head.remote)", "status": "\(status)",
                "reason": "\(reason ?? message)",
            ]
        )
        return .text(status, message, outcome: outcome, headers: headers)
    }

    /// Judges the body and, when it is an event sitroom uses, puts it into the spool before answering.
    public func handle(route: IntakeRoute, head: IntakeRequestHead, body: [UInt8]) async -> IntakeAnswer {
        do {
            switch route.authentication {
            case .pagerDutySignature(let file):
                let secret = try secrets.secret(file, key: "signing_secret_file")
                switch Credentials.pagerDuty(head.headers["x-pagerduty-signature"], body: body, secret: secret) {
                case nil:
                    return unauthorized(
                        head,
                        challenge: Self.pagerDutyChallenge,
                        why: "no v1 X-PagerDuty-Signature"
                    )
                case false?: return forbidden(head, "X-PagerDuty-Signature does not match the signing secret")
                case true?: return await spoolEvent(route: route, head: head, body: body)
                }
            case .zoomSignature(let integration, let file):
                let secret = try secrets.secret(file, key: "integrations/\(integration).yaml webhook_secret_file")
                switch Credentials.zoom(
                    signature: head.headers["x-zm-signature"],
                    timestamp: head.headers["x-zm-request-timestamp"],
                    body: body,
                    secret: secret,
                    now: now()
                )
                {
                case .missing: return unauthorized(head, challenge: Self.zoomChallenge, why: "no x-zm-signature")
                case .invalid(let why): return forbidden(head, why)
                case .valid: return await zoomEvent(route: route, head: head, body: body, secret: secret)
                }
            case .bearer, .basic:
                return await spoolEvent(route: route, head: head, body: body)
            }
        } catch {
            return secretUnavailable(route, error)
        }
    }

    // MARK: Formats

    private static func spoolFormat(_ format: IntakeRoute.Format) -> SpoolFormat {
        switch format {
        case .alertmanager: return .alertmanager
        case .pagerduty: return .pagerduty
        case .zoom: return .zoomWebhook
        case .native: return .native
        }
    }

    /// Alertmanager, PagerDuty and native bodies: parsed as sitroomd will parse the file (so a malformed one is
    /// refused here, 400, rather than rejected later), then spooled as received.
    private func spoolEvent(route: IntakeRoute, head: IntakeRequestHead, body: [UInt8]) async -> IntakeAnswer {
        let item: SpoolItem
        do {
            item = try SpoolFileParser.parse(body, file: "body", context: FeedContext(), maxFileSize: body.count + 1)
        } catch {
            return malformed(head, error.errors.map(\.description).joined(separator: "\n"))
        }
        let expected = Self.spoolFormat(route.format)
        switch item {
        case .event(let event, let format, _) where format == expected:
            return await spool(route: route, body, eventID: event.eventID)
        case .ignored(let format, let reason) where format == expected:
            logger.debug(
                "event not used; answered without spooling",
                metadata: ["route": "\(route.path)", "reason": "\(reason)"]
            )
            return .json(200, ["status": "ignored", "reason": reason], outcome: "ignored")
        case .event(_, let format, _), .ignored(let format, _):
            return malformed(
                head,
                "\(route.path) takes \(route.format.rawValue) events; the body is \(format.rawValue)"
            )
        case .zoomWebhook:
            return malformed(
                head,
                "\(route.path) takes \(route.format.rawValue) events; the body is a Zoom webhook file"
            )
        }
    }

    /// A verified Zoom delivery: the URL validation is answered at once; an event sitroom uses is spooled as the
    /// Zoom webhook file of SPEC §4; any other event is acknowledged without spooling.
    private func zoomEvent(
        route: IntakeRoute,
        head: IntakeRequestHead,
        body: [UInt8],
        secret: String
    ) async -> IntakeAnswer {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let event = object["event"] as? String
        else {
            return malformed(head, "the body is not a JSON object with an event")
        }
        if event == "endpoint.url_validation" {
            // developers.zoom.us/docs/api/webhooks/: answer 200 {plainToken, encryptedToken} within 3 seconds. The
            // request is verified first: answering unsigned ones would make this an HMAC oracle for the secret.
            guard let payload = object["payload"] as? [String: Any], let plain = payload["plainToken"] as? String,
                !plain.isEmpty
            else {
                return malformed(head, "endpoint.url_validation without payload.plainToken")
            }
            logger.info("Zoom endpoint validated", metadata: ["route": "\(route.path)"])
            return .json(
                200,
                [
                    "plainToken": plain,
                    "encryptedToken": Credentials.zoomEncryptedToken(plainToken: plain, secret: secret),
                ],
                outcome: "validated"
            )
        }
        guard ZoomWebhookEvent.usedEvents.contains(event) else {
            logger.debug(
                "Zoom event not used; answered without spooling",
                metadata: ["route": "\(route.path)", "event": "\(event)"]
            )
            return .json(200, ["status": "ignored", "reason": "sitroom does not use \(event)"], outcome: "ignored")
        }
        let file = Self.zoomFile(path: route.path, head: head, body: body)
        let item: SpoolItem
        do {
            item = try SpoolFileParser.parse(file, file: "request", context: FeedContext(), maxFileSize: file.count + 1)
        } catch {
            return malformed(head, error.errors.map(\.description).joined(separator: "\n"))
        }
        guard case .zoomWebhook = item else { return malformed(head, "not a Zoom webhook") }
        let limit = live.snapshot.configuration.maxBodySize
        guard file.count <= limit else {
            return refused(
                head,
                413,
                "the spool file (the body with Zoom's signature headers, \(file.count) bytes) is larger than max_body_size (\(limit) bytes)",
                outcome: "too_large"
            )
        }
        return await spool(route: route, file, eventID: nil)
    }

    /// The Zoom webhook file of SPEC §4: the request line, the headers Zoom's signature needs and a few that help
    /// people (never `Authorization`), a blank line, then the body byte for byte.
    static func zoomFile(path: String, head: IntakeRequestHead, body: [UInt8]) -> [UInt8] {
        var text = "POST \(path) HTTP/1.1\n"
        for name in ["content-type", "user-agent", "x-zm-request-timestamp", "x-zm-signature", "x-zm-trackingid"] {
            if let value = head.headers[name], !value.contains("\n"), !value.contains("\r") {
                text += "\(name): \(value)\n"
            }
        }
        return Array((text + "\n").utf8) + body
    }

    private func spool(route: IntakeRoute, _ bytes: [UInt8], eventID: String?) async -> IntakeAnswer {
        switch await writer.deliver(bytes, suffix: route.format.rawValue) {
        case .success(let name):
            events.spoolWrite(succeeded: true)
            logger.debug(
                "spooled",
                metadata: ["route": "\(route.path)", "file": "\(name)", "event.id": "\(eventID ?? "")"]
            )
            var answer: [String: Any] = ["status": "spooled"]
            if let eventID { answer["event_id"] = eventID }
            return .json(200, answer, outcome: "spooled")
        case .failure(let error):
            events.spoolWrite(succeeded: false)
            events.problem("cannot write into the spool (\(route.path)): \(error)")
            logger.error(
                "cannot write into the spool; answered 503",
                metadata: ["route": "\(route.path)", "error": "\(error)"]
            )
            return .text(
                503,
                "the event cannot be stored now; deliver it again later",
                outcome: "unavailable",
                headers: [("Retry-After", "\(Self.retryAfter)")]
            )
        }
    }

    // MARK: Answers

    private func unauthorized(
        _ head: IntakeRequestHead,
        challenge: String?,
        why: String = "missing or wrong credentials"
    ) -> IntakeAnswer {
        refused(
            head,
            401,
            "missing or wrong credentials",
            outcome: "unauthorized",
            headers: challenge.map { [("WWW-Authenticate", $0)] } ?? [],
            reason: why
        )
    }

    private func forbidden(_ head: IntakeRequestHead, _ why: String) -> IntakeAnswer {
        refused(head, 403, "the signature does not verify: \(why)", outcome: "forbidden")
    }

    private func malformed(_ head: IntakeRequestHead, _ why: String) -> IntakeAnswer {
        refused(head, 400, why, outcome: "malformed")
    }

    private func secretUnavailable(_ route: IntakeRoute, _ error: any Error) -> IntakeAnswer {
        events.problem("cannot read a secret of \(route.path): \(error)")
        logger.error(
            "cannot read the route's secret; answered 503",
            metadata: ["route": "\(route.path)", "error": "\(error)"]
        )
        return .text(
            503,
            "the intake cannot check credentials now",
            outcome: "unavailable",
            headers: [("Retry-After", "\(Self.retryAfter)")]
        )
    }

    /// `GET /healthz`: 200 while the spool's `tmp/` and `new/` are directories and the last write into them did not
    /// fail, else 503 with the reason.
    private func health(generation: Int, routes: Int) -> IntakeAnswer {
        var reason: String?
        for directory in [spool + "/tmp", spool + "/new"] where !Self.isDirectory(directory) {
            reason = "\(directory) is missing"
        }
        if reason == nil, !events.spoolWritable { reason = "the last write into the spool failed" }
        if let reason {
            return .json(503, ["status": "unavailable", "reason": reason, "generation": generation], outcome: "health")
        }
        return .json(200, ["status": "ok", "generation": generation, "routes": routes], outcome: "health")
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }
}

/// Where the handler reports what the state file and the metrics show.
public protocol IntakeEvents: Sendable {
    /// A write into the spool ended.
    func spoolWrite(succeeded: Bool)
    /// Whether the last write into the spool succeeded (or none was tried).
    var spoolWritable: Bool { get }
    /// Something an operator should see in `status` (no secret in it).
    func problem(_ message: String)
}
