import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

// Over 500 lines on purpose: the simulator's HTTP surface is one Hummingbird router, Zoom's routes and the /_sim/
// test surface side by side, each route a few lines over SimState (where the behaviour lives).

/// The request context of the simulator: Hummingbird's core storage plus the TCP channel, so the
/// request log can tell connections apart and `drop_create_reply` can close one.
public struct SimRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came in on.
    public let channel: any Channel
    /// Sequence number of this request in the request log (0 for `/_sim/` requests, which are not logged).
    public var requestSeq: Int = 0

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// Thrown when a reply is deliberately not sent (`drop_create_reply`, or a held reply at shutdown).
struct ReplyWithheld: Error {}

/// The Zoom API simulator: routes, middleware, and a runner.
///
/// Zoom surface (shapes from Zoom's OpenAPI description, as derived in docs/zoom-api/meetings-openapi.json, and
/// the Zoom pages each behaviour cites):
/// `POST /oauth/token`, `POST /oauth/revoke`, `GET /oauth/authorize`, `POST|GET /v2/users/{userId}/meetings`,
/// `GET|PATCH|DELETE /v2/meetings/{meetingId}`, `PUT /v2/meetings/{meetingId}/status`,
/// `GET /v2/users/{userId}`, `GET /v2/users`, `GET /v2/metrics/meetings/{meetingId}/participants?type=live`; plus `GET /j/{id}` (join link) and `GET /s/{id}` (start link).
///
/// Test surface (no auth, JSON): `GET /_sim/meetings`, `GET|DELETE /_sim/requests`, `GET /_sim/tokens`,
/// `GET /_sim/users`, `GET|POST|DELETE /_sim/faults`, `GET|POST /_sim/clock`, `POST /_sim/authorize`,
/// `POST /_sim/meetings/{id}/start`, `POST /_sim/meetings/{id}/end`, `POST /_sim/meetings/{id}/participants`
/// (`{action: join|leave, email?, name?, guest?, phone?, participant_uuid?}`), `GET /_sim/websockets`,
/// `POST /_sim/websockets/drop` (``SimEventHub``); the WebSocket event subscription `GET /ws`; webhooks: `GET|POST /_sim/webhooks`,
/// `DELETE /_sim/webhooks/{clientId}`, `POST /_sim/apps/{clientId}/deauthorize` (``SimWebhooks``).
///
/// Fault kinds of `POST /_sim/faults` (``SimState/applyFault(_:)``): `latency`, `status`, `hold_create_reply`,
/// `drop_create_reply`, `error_create_reply`, `join_url_create_reply` (a 201 whose `join_url` is replaced: a test of
/// the client, not a Zoom behaviour), `release`, `revoke_app`, `enable_app`, `deauthorize`, `expire_tokens`,
/// `daily_limit`, `scopes`, `passcode_policy`.
public enum ZoomSimulator {
    /// Query parameters whose values are secrets: never written to the request log.
    static let secretParameters: Set<String> = [
        "code", "code_verifier", "refresh_token", "token", "access_token", "client_secret", "zak",
    ]

    // MARK: Building

    /// Builds the router with every route and the logging / fault middleware.
    public static func buildRouter(state: SimState) -> Router<SimRequestContext> {
        let router = Router(context: SimRequestContext.self)
        router.add(middleware: RecordMiddleware(state: state))
        router.add(middleware: FaultMiddleware(state: state))
        addOAuthRoutes(router, state: state)
        addAPIRoutes(router, state: state)
        addLinkRoutes(router, state: state)
        addSimRoutes(router, state: state)
        addWebhookRoutes(router, state: state)
        return router
    }

    /// Builds the application listening on `host:port` (`port` 0: an ephemeral port).
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    public static func buildApplication(
        state: SimState,
        host: String = "127.0.0.1",
        port: Int = 0,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: buildRouter(state: state),
            server: webSocketUpgrade(state: state),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            services: [],
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                await state.setBaseURL("http://\(host):\(bound)")
                await onListening(bound)
            },
            logger: logger
        )
    }

    /// Runs the simulator until SIGTERM or SIGINT; held replies are dropped first so shutdown never waits
    /// on them.
    /// - Throws: when the server cannot bind.
    public static func run(
        configuration: SimConfiguration,
        host: String = "127.0.0.1",
        port: Int,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void
    ) async throws {
        let state = SimState(configuration: configuration, baseURL: "http://\(host):\(port)")
        let app = buildApplication(state: state, host: host, port: port, logger: logger, onListening: onListening)
        // ServiceGroup shuts services down last-first: the releaser lets held replies go before the
        // server waits for in-flight requests.
        let group = ServiceGroup(
            configuration: .init(
                services: [app, HeldReplyReleaser(state: state)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }

    // MARK: Helpers

    static func json(_ body: JSON, status: Int = 200, headers: [String: String] = [:]) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/json;charset=UTF-8"
        // Rate-limit answers carry Retry-After and X-RateLimit-* (developers.zoom.us/docs/api/rate-limits/).
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            if let field = HTTPFields.Element.Name(name) { fields[field] = value }
        }
        return Response(
            status: .init(code: status),
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(string: body.serialized()))
        )
    }

    static func noContent() -> Response { Response(status: .noContent) }

    static func errorResponse(_ error: ZoomAPIError) -> Response {
        json(error.body, status: error.status, headers: error.headers)
    }

    /// Decodes `a=b&c=d` (form or query), `+` as space, percent-escapes decoded.
    static func parseForm(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            guard let key = parts.first else { continue }
            result[decode(key)] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return result
    }

    static func redactedQuery(_ query: String?) -> String {
        guard let query, !query.isEmpty else { return "" }
        return query.split(separator: "&").map { pair -> String in
            let name = pair.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            return secretParameters.contains(name) ? "\(name)=REDACTED" : String(pair)
        }.joined(separator: "&")
    }

    static func body(_ request: Request) async throws -> ByteBuffer {
        var request = request
        return try await request.collectBody(upTo: 1 << 20)
    }

    /// Parses a JSON request body; an empty body is an empty object.
    static func jsonBody(_ request: Request) async throws -> JSON {
        let buffer = try await body(request)
        if buffer.readableBytes == 0 { return [:] }
        do {
            return try JSON.parse(Data(buffer.readableBytesView))
        } catch {
            throw ZoomAPIError.api(400, code: 300, "Request Body should be a valid JSON object.")
        }
    }

    static func basicCredentials(_ request: Request) -> (String?, String?) {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
            let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return (nil, nil) }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    static func bearer(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    static func parameter(_ context: SimRequestContext, _ name: String) -> String {
        let raw = context.parameters.get(name) ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    static func queryParams(_ request: Request) -> [String: String] { parseForm(request.uri.query ?? "") }

    // MARK: OAuth

    static func addOAuthRoutes(_ router: Router<SimRequestContext>, state: SimState) {
        router.post("/oauth/token") { request, context -> Response in
            var params = queryParams(request)
            let buffer = try await body(request)
            if buffer.readableBytes > 0 {
                let text = String(buffer: buffer)
                for (key, value) in parseForm(text) { params[key] = value }
            }
            if context.requestSeq > 0 {
                await state.annotate(seq: context.requestSeq, grantType: params["grant_type"] ?? "")
            }
            let (client, secret) = basicCredentials(request)
            return json(try await state.issueToken(clientID: client, secret: secret, params: params))
        }
        router.post("/oauth/revoke") { request, _ -> Response in
            var params = queryParams(request)
            let buffer = try await body(request)
            if buffer.readableBytes > 0 { for (k, v) in parseForm(String(buffer: buffer)) { params[k] = v } }
            let (client, secret) = basicCredentials(request)
            return json(try await state.revoke(clientID: client, secret: secret, token: params["token"]))
        }
        // The browser step of user OAuth: approves at once for `sim_user` (or the account's first user)
        // and redirects to `redirect_uri?code=...&state=...`.
        router.get("/oauth/authorize") { request, _ -> Response in
            let params = queryParams(request)
            guard params["response_type"] == "code", let client = params["client_id"],
                let redirect = params["redirect_uri"]
            else {
                throw ZoomAPIError.oauth(400, code: 4700, reason: "Invalid request", error: "invalid_request")
            }
            let code = try await state.authorize(
                clientID: client,
                user: params["sim_user"],
                redirectURI: redirect,
                challenge: params["code_challenge"],
                challengeMethod: params["code_challenge_method"]
            )
            var location = redirect + (redirect.contains("?") ? "&" : "?") + "code=\(code)"
            if let s = params["state"], let escaped = s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
                location += "&state=\(escaped)"
            }
            var fields = HTTPFields()
            fields[.location] = location
            return Response(status: .found, headers: fields)
        }
    }

    // MARK: /v2

    static func addAPIRoutes(_ router: Router<SimRequestContext>, state: SimState) {
        let v2 = router.group("/v2")
        v2.post("/users/:userId/meetings") { request, context -> Response in
            let caller = try await state.authenticate(
                token: bearer(request),
                rateClass: .medium,
                operation: .createMeeting
            )
            let body = try await jsonBody(request)
            let (meeting, fault) = try await state.createMeeting(
                userKey: parameter(context, "userId"),
                body: body,
                caller: caller
            )
            let reply = json(await state.meetingJSON(meeting, includeStatus: false), status: 201)
            switch fault {
            case nil:
                return reply
            case .error(let status):
                return json(["code": .number(status), "message": "Internal Server Error (simulated)"], status: status)
            case .joinURL(let url):
                guard case .object(let members) = await state.meetingJSON(meeting, includeStatus: false) else {
                    return reply
                }
                return json(.object(members.map { $0.0 == "join_url" ? ($0.0, .string(url)) : $0 }), status: 201)
            case .drop:
                try? await context.channel.close().get()
                throw ReplyWithheld()
            case .hold:
                if context.requestSeq > 0 { await state.markHeld(seq: context.requestSeq) }
                if await state.waitForRelease() { return reply }
                try? await context.channel.close().get()
                throw ReplyWithheld()
            }
        }
        v2.get("/users/:userId/meetings") { request, context -> Response in
            let caller = try await state.authenticate(
                token: bearer(request),
                rateClass: .medium,
                operation: .listMeetings
            )
            let query = queryParams(request)
            return json(
                try await state.listMeetings(
                    userKey: parameter(context, "userId"),
                    caller: caller,
                    type: query["type"],
                    pageSize: query["page_size"].flatMap { Int($0) },
                    nextPageToken: query["next_page_token"]
                )
            )
        }
        v2.get("/users/:userId") { request, context -> Response in
            let caller = try await state.authenticate(token: bearer(request), rateClass: .light, operation: .getUser)
            return json(try await state.getUser(parameter(context, "userId"), caller: caller))
        }
        v2.get("/users") { request, _ -> Response in
            let caller = try await state.authenticate(token: bearer(request), rateClass: .medium, operation: .listUsers)
            let query = queryParams(request)
            return json(
                try await state.listUsers(
                    caller: caller,
                    pageSize: query["page_size"].flatMap { Int($0) },
                    nextPageToken: query["next_page_token"]
                )
            )
        }
        v2.get("/meetings/:meetingId") { request, context -> Response in
            let caller = try await state.authenticate(token: bearer(request), rateClass: .light, operation: .getMeeting)
            return json(try await state.getMeeting(parameter(context, "meetingId"), caller: caller))
        }
        v2.get("/metrics/meetings/:meetingId/participants") { request, context -> Response in
            let caller = try await state.authenticate(token: bearer(request), rateClass: .medium)
            return json(try await state.liveParticipants(parameter(context, "meetingId"), caller: caller))
        }
        v2.patch("/meetings/:meetingId") { request, context -> Response in
            let caller = try await state.authenticate(
                token: bearer(request),
                rateClass: .light,
                operation: .updateMeeting
            )
            let body = try await jsonBody(request)
            try await state.updateMeeting(parameter(context, "meetingId"), body: body, caller: caller)
            return noContent()
        }
        v2.delete("/meetings/:meetingId") { request, context -> Response in
            let caller = try await state.authenticate(
                token: bearer(request),
                rateClass: .light,
                operation: .deleteMeeting
            )
            try await state.deleteMeeting(parameter(context, "meetingId"), caller: caller)
            return noContent()
        }
        v2.put("/meetings/:meetingId/status") { request, context -> Response in
            let caller = try await state.authenticate(
                token: bearer(request),
                rateClass: .light,
                operation: .meetingStatus
            )
            let body = try await jsonBody(request)
            try await state.setMeetingStatus(
                parameter(context, "meetingId"),
                action: body["action"]?.stringValue,
                caller: caller
            )
            return noContent()
        }
    }

    // MARK: Join and start links

    static func html(_ text: String, status: HTTPResponse.Status) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "text/html;charset=UTF-8"
        return Response(
            status: status,
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(string: "<!doctype html><title>zoom-sim</title><p>\(text)</p>\n"))
        )
    }

    static func addLinkRoutes(_ router: Router<SimRequestContext>, state: SimState) {
        router.get("/j/:id") { request, context -> Response in
            guard let id = Int64(parameter(context, "id")),
                await state.canJoin(id: id, pwd: queryParams(request)["pwd"])
            else { return html("This meeting link is invalid.", status: .notFound) }
            return html("Joining meeting \(id).", status: .ok)
        }
        router.get("/s/:id") { request, context -> Response in
            guard let id = Int64(parameter(context, "id")),
                await state.startMeeting(id: id, zak: queryParams(request)["zak"] ?? "")
            else { return html("This meeting link is invalid.", status: .notFound) }
            return html("Meeting \(id) started.", status: .ok)
        }
    }

    // MARK: /_sim

    static func addSimRoutes(_ router: Router<SimRequestContext>, state: SimState) {
        let sim = router.group("/_sim")
        sim.get("/meetings") { _, _ in json(await state.meetingsJSON()) }
        sim.post("/meetings/:id/start") { _, context -> Response in
            guard let id = Int64(parameter(context, "id")), await state.startMeeting(id: id, zak: nil) else {
                throw ZoomAPIError.meetingNotFound(parameter(context, "id"))
            }
            return json(["ok": true])
        }
        sim.post("/meetings/:id/end") { _, context -> Response in
            guard let id = Int64(parameter(context, "id")), await state.endMeetingFromClient(id: id) else {
                throw ZoomAPIError.meetingNotFound(parameter(context, "id"))
            }
            return json(["ok": true])
        }
        sim.post("/meetings/:id/participants") { request, context -> Response in
            guard let id = Int64(parameter(context, "id")) else {
                throw ZoomAPIError.meetingNotFound(parameter(context, "id"))
            }
            let body = try await jsonBody(request)
            let person = try await state.participant(
                meetingID: id,
                action: body["action"]?.stringValue ?? "",
                email: body["email"]?.stringValue,
                name: body["name"]?.stringValue,
                guest: body["guest"]?.boolValue ?? false,
                phone: body["phone"]?.boolValue ?? false,
                participantUUID: body["participant_uuid"]?.stringValue
            )
            return json([
                "participant_uuid": .string(person.participantUUID), "user_id": .string(person.userID),
                "user_name": .string(person.name), "email": .string(person.email),
            ])
        }
        sim.get("/websockets") { _, _ in json(await state.events.sockets.listJSON()) }
        sim.post("/websockets/drop") { _, _ -> Response in
            json(["dropped": .number(await state.events.sockets.dropAll())])
        }
        sim.get("/requests") { request, _ in
            json(await state.requestsJSON(since: queryParams(request)["since"].flatMap { Int($0) } ?? 0))
        }
        sim.delete("/requests") { _, _ -> Response in
            await state.clearRequests()
            return json(["ok": true])
        }
        sim.get("/tokens") { _, _ in json(await state.tokensJSON()) }
        sim.get("/users") { _, _ in json(await state.usersJSON()) }
        sim.get("/faults") { _, _ in json(await state.faultsJSON()) }
        sim.post("/faults") { request, _ -> Response in
            let body = try await jsonBody(request)
            let faults = body.arrayValue ?? [body]
            var result: JSON = [:]
            for fault in faults { result = try await state.applyFault(fault) }
            return json(result)
        }
        sim.delete("/faults") { _, _ -> Response in
            await state.clearFaults()
            return json(await state.faultsJSON())
        }
        sim.get("/clock") { _, _ in json(await state.clockJSON()) }
        sim.post("/clock") { request, _ -> Response in
            let body = try await jsonBody(request)
            let seconds =
                (body["advance_days"]?.doubleValue ?? 0) * 86_400 + (body["advance_hours"]?.doubleValue ?? 0) * 3_600
                + (body["advance_seconds"]?.doubleValue ?? 0)
            await state.advanceClock(seconds: seconds)
            return json(await state.clockJSON())
        }
        sim.post("/authorize") { request, _ -> Response in
            let body = try await jsonBody(request)
            guard let client = body["client_id"]?.stringValue else {
                throw ZoomAPIError.validation(field: "client_id", "client_id is required")
            }
            let redirect = body["redirect_uri"]?.stringValue ?? "http://127.0.0.1/callback"
            let code = try await state.authorize(
                clientID: client,
                user: body["user"]?.stringValue,
                redirectURI: redirect,
                challenge: body["code_challenge"]?.stringValue,
                challengeMethod: body["code_challenge_method"]?.stringValue
            )
            return json(["code": .string(code), "redirect_uri": .string(redirect)])
        }
    }
}

/// Logs every non-`/_sim/` request (method, path, redacted query, status, time, connection) and turns
/// ``ZoomAPIError``s and unknown routes into Zoom-shaped JSON answers.
struct RecordMiddleware: RouterMiddleware {
    typealias Context = SimRequestContext
    let state: SimState

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        var context = context
        let logged = !path.hasPrefix("/_sim/")
        if logged {
            let channel = context.channel
            let key = "\(ObjectIdentifier(channel).hashValue)-\(channel.remoteAddress?.description ?? "")"
            context.requestSeq = await state.beginRequest(
                method: request.method.rawValue,
                path: path,
                query: ZoomSimulator.redactedQuery(request.uri.query),
                connectionKey: key
            )
        }
        let seq = context.requestSeq
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as ZoomAPIError {
            response = ZoomSimulator.errorResponse(error)
        } catch is ReplyWithheld {
            if logged { await state.finishRequest(seq: seq, status: nil, outcome: "dropped") }
            throw ReplyWithheld()
        } catch let error as HTTPError {
            let status = Int(error.status.code)
            response = ZoomSimulator.json(
                ["code": .number(status), "message": .string(error.body ?? error.status.reasonPhrase)],
                status: status
            )
        }
        if logged {
            await state.finishRequest(seq: seq, status: Int(response.status.code), outcome: "replied")
            // Path only: queries and bodies may carry codes or tokens.
            context.logger.debug(
                "request",
                metadata: [
                    "http.method": "\(request.method.rawValue)", "http.path": "\(path)",
                    "http.status": "\(response.status.code)",
                ]
            )
        }
        return response
    }
}

/// Applies latency and status faults to Zoom-surface requests (never to `/_sim/`).
struct FaultMiddleware: RouterMiddleware {
    typealias Context = SimRequestContext
    let state: SimState

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        guard !path.hasPrefix("/_sim/") else { return try await next(request, context) }
        if let seconds = await state.latency(for: path) {
            try await Task.sleep(for: .seconds(seconds))
        }
        if let error = await state.takeStatusFault(method: request.method.rawValue, path: path) {
            throw error
        }
        return try await next(request, context)
    }
}

/// On graceful shutdown, drops held replies so the server does not wait for them forever.
struct HeldReplyReleaser: Service {
    let state: SimState

    func run() async throws {
        try? await gracefulShutdown()
        await state.shutdown()
    }
}
