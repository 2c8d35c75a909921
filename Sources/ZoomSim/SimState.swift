import Crypto
import Foundation

/// A meeting as the simulator keeps it, including after it ended or was deleted.
public struct SimMeeting: Sendable {
    /// Lifecycle as the test surface shows it. Zoom's own `GET /meetings/{meetingId}` (operation
    /// `meeting`) only knows `waiting` and `started`; an ended scheduled meeting reads `waiting` there.
    public enum Status: String, Sendable {
        case waiting, started, ended, deleted
    }

    public var id: Int64
    public var uuid: String
    public var hostID: String
    public var hostEmail: String
    public var accountID: String
    public var topic: String
    public var type: Int
    public var status: Status
    public var startTime: Date
    /// Minutes.
    public var duration: Int
    public var timezone: String
    public var agenda: String
    public var createdAt: Date
    /// The passcode; empty when the meeting has none.
    public var password: String
    public var encryptedPassword: String
    public var h323Password: String
    /// The host key in `start_url` (a secret: never shown on the test surface nor logged).
    var zak: String
    public var settings: JSON
    /// When the current occurrence started (the `start_time` of its meeting events); `nil` before the first start.
    public var startedAt: Date? = nil
    public var endedAt: Date?
    public var deletedAt: Date?
    /// The host already had `concurrent_meetings` live meetings when this one was created.
    public var overCapacity: Bool
    /// The client that created it.
    public var createdBy: String
    /// Who is in the meeting now, in order of joining (``SimState/participant(meetingID:action:email:name:guest:phone:participantUUID:)``).
    public var participants: [SimParticipant] = []

    /// Live meetings count against the host's `concurrent_meetings`.
    public var isLive: Bool { status == .waiting || status == .started }
}

/// Someone in a simulated meeting.
public struct SimParticipant: Sendable, Hashable {
    /// `participant_uuid`: one person in one meeting.
    public var participantUUID: String
    /// `user_id` in the meeting (Zoom numbers participants; not an account's user id).
    public var userID: String
    public var name: String
    /// Empty for guests and phone users, as in Zoom's events.
    public var email: String
    public var joinedAt: Date
}

/// Who a valid bearer token speaks for.
public struct Caller: Sendable {
    public var clientID: String
    public var accountID: String
    /// The authorizing user, for user-OAuth tokens; `nil` for Server-to-Server tokens.
    public var userID: String?
}

/// Rate-limit class of an API operation (Zoom's rate limit page: create/list meetings and list
/// users are Medium; get/update/delete/status of a meeting and get a user are Light).
public enum RateClass: String, Sendable {
    case light, medium
}

/// An API operation and the scopes Zoom accepts for it: the classic scope of its reference page ("Scopes:
/// `meeting:write:admin`, `meeting:write`") or a granular one ("Granular Scopes: `meeting:write:meeting`,
/// `meeting:write:meeting:admin`"), developers.zoom.us/docs/api/meetings/ and /docs/api/users/.
public enum SimOperation: String, Sendable, CaseIterable {
    case createMeeting, getMeeting, listMeetings, updateMeeting, meetingStatus, deleteMeeting, getUser, listUsers

    /// The granular scopes, user-level then admin; a 4711 answer names these.
    public var granularScopes: [String] {
        switch self {
        case .createMeeting: return ["meeting:write:meeting", "meeting:write:meeting:admin"]
        case .getMeeting: return ["meeting:read:meeting", "meeting:read:meeting:admin"]
        case .listMeetings: return ["meeting:read:list_meetings", "meeting:read:list_meetings:admin"]
        case .updateMeeting: return ["meeting:update:meeting", "meeting:update:meeting:admin"]
        case .meetingStatus: return ["meeting:update:status", "meeting:update:status:admin"]
        case .deleteMeeting: return ["meeting:delete:meeting", "meeting:delete:meeting:admin"]
        case .getUser: return ["user:read:user", "user:read:user:admin"]
        case .listUsers: return ["user:read:list_users:admin"]
        }
    }

    /// The classic scopes, user-level then admin.
    public var classicScopes: [String] {
        switch self {
        case .createMeeting, .updateMeeting, .meetingStatus, .deleteMeeting: return ["meeting:write", "meeting:write:admin"]
        case .getMeeting, .listMeetings: return ["meeting:read", "meeting:read:admin"]
        case .getUser: return ["user:read", "user:read:admin"]
        case .listUsers: return ["user:read:admin"]
        }
    }
}

/// What to do with the reply of a meeting create that has been carried out.
public enum CreateReplyFault: Sendable, Equatable {
    /// Hold the reply until `release` or shutdown.
    case hold
    /// Close the connection without replying.
    case drop
    /// Answer with this 5xx status instead of 201 (the meeting exists anyway).
    case error(Int)
    /// Answer 201 with this `join_url` instead of the meeting's (the meeting exists anyway): a success that carries no
    /// usable link (`https://`, `https://zoom.us`), as a broken proxy or a misread answer gives one.
    case joinURL(String)
}

/// All simulator state: apps and tokens, users and their usage, meetings, the request log and faults.
///
/// Times: token and code expiry use the real wall clock; meeting times and the UTC day of the daily
/// create/update limit use the simulated clock (real time plus `POST /_sim/clock` advances).
public actor SimState {
    struct AccessToken {
        var clientID: String
        var accountID: String
        var userID: String?
        var expiresAt: Date
        /// The app's scopes when the token was issued; `nil`: all.
        var scopes: [String]? = nil
    }
    struct RefreshToken {
        var clientID: String
        var accountID: String
        var userID: String
        var expiresAt: Date
    }
    struct AuthorizationCode {
        var clientID: String
        var userID: String
        var redirectURI: String
        var challenge: String?
        var challengeMethod: String
        var expiresAt: Date
    }
    struct StatusFault {
        var pathPrefix: String
        var method: String?
        var status: Int
        var remaining: Int
        /// `Retry-After` as sent: seconds, or a time (RFC 3339).
        var retryAfter: String?
    }
    struct RequestRecord {
        var seq: Int
        var method: String
        var path: String
        var query: String
        var time: Double
        var connection: Int?
        var grantType: String?
        var status: Int?
        var outcome: String
        var durationMS: Double?
    }
    struct UserUsage {
        var day: Int = 0
        var createsToday: Int = 0
        var createsTotal: Int = 0
        var maxLiveSeen: Int = 0
        var overCapacityCreates: Int = 0
        var limitedDay: Int?
        /// How a `daily_limit` fault answers: `429` (with `X-RateLimit-Type: Daily-limit` and an RFC 3339
        /// `Retry-After`), `429_bare` (no such headers, as users report too) or `300`.
        var limitedAnswer: String?
    }

    public let configuration: SimConfiguration
    /// Event subscriptions and their deliveries (``SimWebhooks``).
    public let webhooks = SimWebhooks()
    /// Meeting events on their way to webhooks and WebSocket connections, in the order they happened.
    public let events: SimEventHub
    private var participantSeq = 16_778_240
    /// `http://127.0.0.1:PORT`, used in `api_url`, `join_url` and `start_url`.
    public private(set) var baseURL: String

    private var accessTokens: [String: AccessToken] = [:]
    private var refreshTokens: [String: RefreshToken] = [:]
    private var codes: [String: AuthorizationCode] = [:]
    private var tokenRequests: [String: Int] = [:]
    private var tokenFailures: [String: Int] = [:]
    private var disabledApps: Set<String> = []
    /// Scopes set by `/_sim/faults` kind `scopes`, by client id; they override the configured ones.
    private var appScopes: [String: [String]?] = [:]
    private var passcodePolicy: SimConfiguration.PasscodePolicy
    /// `/_sim/faults` kind `refuse_delete_ended`: deleting an ended meeting answers 3007.
    private var refuseDeleteEnded = false

    private var meetings: [Int64: SimMeeting] = [:]
    private var meetingOrder: [Int64] = []
    private var usage: [String: UserUsage] = [:]

    private var requests: [RequestRecord] = []
    private var nextSeq = 1
    private var connectionIDs: [String: Int] = [:]

    private var clockOffset: TimeInterval = 0
    private var rateWindows: [String: (second: Int64, light: Int, medium: Int)] = [:]
    private var mediumPerSecond: Int
    private var lightPerSecond: Int

    private var latency: (seconds: Double, pathPrefix: String)?
    private var statusFaults: [StatusFault] = []
    private var createReplyFaults: [CreateReplyFault] = []
    private var held: [Int: CheckedContinuation<Bool, Never>] = [:]
    private var nextHold = 0
    private var shuttingDown = false

    /// Creates the state for `configuration`, answering with URLs under `baseURL`.
    public init(configuration: SimConfiguration, baseURL: String = "http://127.0.0.1:9") {
        self.configuration = configuration
        self.baseURL = baseURL
        self.events = SimEventHub(webhooks: webhooks)
        self.mediumPerSecond = configuration.limits.mediumPerSecond
        self.lightPerSecond = configuration.limits.lightPerSecond
        self.passcodePolicy = configuration.passcodePolicy
    }

    /// The scopes an app has now (`nil`: every operation).
    private func scopes(of app: SimConfiguration.App) -> [String]? {
        if let override = appScopes[app.clientID] { return override }
        return app.scopes
    }

    /// The token answer's `scope`: the app's scopes, or what an app with all of them would say.
    private func scopeText(_ app: SimConfiguration.App, user: Bool) -> String {
        if let scopes = scopes(of: app) { return scopes.joined(separator: " ") }
        return user ? "meeting:read meeting:write user:read" : "meeting:read:admin meeting:write:admin user:read:admin"
    }

    /// Sets the base URL once the listening port is known.
    public func setBaseURL(_ url: String) { baseURL = url }

    // MARK: Clock

    /// The simulated now: real time plus clock advances.
    public func now() -> Date { Date().addingTimeInterval(clockOffset) }

    private func utcDay(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }

    /// Moves the simulated clock forward by `seconds` (days of the daily limit roll over with it).
    public func advanceClock(seconds: TimeInterval) { clockOffset += seconds }

    // MARK: OAuth

    private func app(clientID: String, secret: String) -> SimConfiguration.App? {
        configuration.apps.first { $0.clientID == clientID && $0.clientSecret == secret }
    }

    private func randomToken(_ prefix: String, bytes: Int = 32) -> String {
        prefix + Self.base64url((0..<bytes).map { _ in UInt8.random(in: 0...255) })
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Answers `POST /oauth/token` (developers.zoom.us/docs/integrations/oauth/ and
    /// developers.zoom.us/docs/internal-apps/s2s-oauth/; errors from developers.zoom.us/docs/integrations/oauth-error-messages/).
    ///
    /// - Parameters:
    ///   - clientID/secret: from `Authorization: Basic`; `nil` when the header is missing or malformed.
    ///   - params: query and form parameters merged.
    /// - Returns: the token answer body.
    /// - Throws: ``ZoomAPIError`` with Zoom's OAuth error codes (4702 client, 4705 grant type,
    ///   4709 redirect URI, 4717 app disabled, 4700 other invalid requests), and for a refresh token it will not
    ///   take the answer without a code, ``ZoomAPIError/invalidRefreshToken``.
    public func issueToken(clientID: String?, secret: String?, params: [String: String]) throws -> JSON {
        let grant = params["grant_type"] ?? ""
        tokenRequests[grant.isEmpty ? "none" : grant, default: 0] += 1
        do {
            return try issueTokenChecked(clientID: clientID, secret: secret, grant: grant, params: params)
        } catch {
            tokenFailures[grant.isEmpty ? "none" : grant, default: 0] += 1
            throw error
        }
    }

    private func issueTokenChecked(clientID: String?, secret: String?, grant: String, params: [String: String]) throws
        -> JSON
    {
        guard let clientID, let secret, let app = app(clientID: clientID, secret: secret) else {
            throw ZoomAPIError.invalidClient
        }
        guard !disabledApps.contains(app.clientID) else {
            throw ZoomAPIError.oauth(401, code: 4717, reason: "The app has been disabled", error: "invalid_client")
        }
        let real = Date()
        switch (grant, app.kind) {
        case ("account_credentials", .s2s):
            guard let account = params["account_id"], account == app.accountID else {
                throw ZoomAPIError.oauth(
                    400, code: 4700, reason: "Invalid account_id: \(params["account_id"] ?? "")", error: "invalid_request")
            }
            let token = randomToken("sim.at.")
            accessTokens[token] = AccessToken(
                clientID: app.clientID, accountID: app.accountID, userID: nil,
                expiresAt: real.addingTimeInterval(TimeInterval(configuration.tokenExpiresIn)), scopes: scopes(of: app))
            return [
                "access_token": .string(token), "token_type": "bearer",
                "expires_in": .number(configuration.tokenExpiresIn), "scope": .string(scopeText(app, user: false)),
                "api_url": .string(baseURL),
            ]
        case ("authorization_code", .oauth):
            guard let code = params["code"], let stored = codes[code], stored.clientID == app.clientID,
                stored.expiresAt > real
            else {
                throw ZoomAPIError.oauth(400, code: 4700, reason: "Invalid authorization code", error: "invalid_grant")
            }
            codes[code] = nil  // single use
            guard params["redirect_uri"] == stored.redirectURI else {
                throw ZoomAPIError.oauth(400, code: 4709, reason: "Redirect URI mismatch.", error: "invalid_request")
            }
            if let challenge = stored.challenge {
                guard let verifier = params["code_verifier"] else {
                    throw ZoomAPIError.oauth(400, code: 4700, reason: "Invalid code_verifier", error: "invalid_grant")
                }
                let computed =
                    stored.challengeMethod == "plain" ? verifier : Self.base64url(Array(SHA256.hash(data: Array(verifier.utf8))))
                guard computed == challenge else {
                    throw ZoomAPIError.oauth(400, code: 4700, reason: "Invalid code_verifier", error: "invalid_grant")
                }
            }
            return issueUserPair(app: app, userID: stored.userID, now: real)
        case ("refresh_token", .oauth):
            guard let old = params["refresh_token"], let stored = refreshTokens[old], stored.clientID == app.clientID,
                stored.expiresAt > real
            else {
                throw ZoomAPIError.invalidRefreshToken
            }
            refreshTokens[old] = nil  // rotation: the previous refresh token stops working at once
            return issueUserPair(app: app, userID: stored.userID, now: real)
        default:
            throw ZoomAPIError.oauth(400, code: 4705, reason: "Unsupported grant type", error: "unsupported_grant_type")
        }
    }

    private func issueUserPair(app: SimConfiguration.App, userID: String, now: Date) -> JSON {
        let account = configuration.users.first { $0.id == userID }?.accountID ?? app.accountID
        let token = randomToken("sim.at.")
        let refresh = randomToken("sim.rt.")
        accessTokens[token] = AccessToken(
            clientID: app.clientID, accountID: account, userID: userID,
            expiresAt: now.addingTimeInterval(TimeInterval(configuration.tokenExpiresIn)), scopes: scopes(of: app))
        refreshTokens[refresh] = RefreshToken(
            clientID: app.clientID, accountID: account, userID: userID,
            expiresAt: now.addingTimeInterval(TimeInterval(configuration.refreshTokenLifetime)))
        return [
            "access_token": .string(token), "token_type": "bearer", "refresh_token": .string(refresh),
            "expires_in": .number(configuration.tokenExpiresIn), "scope": .string(scopeText(app, user: true)),
            "api_url": .string(baseURL),
        ]
    }

    /// Answers `POST /oauth/revoke`: the token (access or refresh) stops working; for a user-OAuth app
    /// every token of that user and app goes (Zoom treats revoke as deauthorization).
    /// - Throws: ``ZoomAPIError/invalidClient``.
    public func revoke(clientID: String?, secret: String?, token: String?) throws -> JSON {
        guard let clientID, let secret, let app = app(clientID: clientID, secret: secret) else {
            throw ZoomAPIError.invalidClient
        }
        var user: String?
        if let token, let access = accessTokens[token], access.clientID == app.clientID {
            user = access.userID
            accessTokens[token] = nil
        }
        if let token, let refresh = refreshTokens[token], refresh.clientID == app.clientID {
            user = refresh.userID
            refreshTokens[token] = nil
        }
        if let user {
            accessTokens = accessTokens.filter { !($0.value.clientID == app.clientID && $0.value.userID == user) }
            refreshTokens = refreshTokens.filter { !($0.value.clientID == app.clientID && $0.value.userID == user) }
        }
        return ["status": "success"]
    }

    /// Issues an authorization code for `user` as if that user had approved the app in a browser
    /// (`GET /oauth/authorize` or `POST /_sim/authorize`).
    /// - Throws: ``ZoomAPIError`` 4702 for an unknown or non-oauth client, 1001 for an unknown user.
    public func authorize(
        clientID: String, user userKey: String?, redirectURI: String, challenge: String?, challengeMethod: String?
    ) throws -> String {
        guard let app = configuration.apps.first(where: { $0.clientID == clientID }), app.kind == .oauth else {
            throw ZoomAPIError.invalidClient
        }
        guard !disabledApps.contains(clientID) else {
            throw ZoomAPIError.oauth(401, code: 4717, reason: "The app has been disabled", error: "invalid_client")
        }
        let user: SimConfiguration.User?
        if let userKey {
            user = findUser(userKey)
        } else {
            user = configuration.users.first { $0.accountID == nil || $0.accountID == app.accountID }
        }
        guard let user else { throw ZoomAPIError.userNotFound(userKey ?? "") }
        let code = randomToken("simcode", bytes: 24)
        codes[code] = AuthorizationCode(
            clientID: clientID, userID: user.id, redirectURI: redirectURI, challenge: challenge,
            challengeMethod: challengeMethod ?? "S256",
            expiresAt: Date().addingTimeInterval(TimeInterval(configuration.authorizationCodeLifetime)))
        return code
    }

    /// Checks a bearer token and the per-second rate limit of its account.
    /// - Parameters:
    ///   - token: the bearer token, or `nil` when the header is missing.
    ///   - rateClass: the operation's rate-limit class.
    ///   - operation: the operation, whose scope the token must carry (`nil`: no scope is checked).
    /// - Throws: 401 code 124 for a missing, unknown, expired or revoked token; 400 code 4711 "Invalid access
    ///   token, does not contain scopes:[...]" when the token lacks the operation's scope (the message Zoom gives,
    ///   as its developer forum shows it); 429 with `Retry-After: 1` when the account exceeded its per-second limit
    ///   (developers.zoom.us/docs/api/rate-limits/).
    public func authenticate(token: String?, rateClass: RateClass, operation: SimOperation? = nil) throws -> Caller {
        guard let token, let access = accessTokens[token], access.expiresAt > Date(),
            !disabledApps.contains(access.clientID)
        else {
            throw ZoomAPIError.invalidAccessToken
        }
        if let operation, let scopes = access.scopes,
            Set(scopes).isDisjoint(with: operation.classicScopes + operation.granularScopes)
        {
            throw ZoomAPIError.api(
                400, code: 4711,
                "Invalid access token, does not contain scopes:[\(operation.granularScopes.joined(separator: ", "))].")
        }
        let second = Int64(Date().timeIntervalSince1970.rounded(.down))
        var window = rateWindows[access.accountID] ?? (second, 0, 0)
        if window.second != second { window = (second, 0, 0) }
        let limit = rateClass == .medium ? mediumPerSecond : lightPerSecond
        let used = rateClass == .medium ? window.medium : window.light
        if limit > 0 && used >= limit {
            var error = ZoomAPIError.api(
                429, code: 429, "You have reached the maximum per-second rate limit for this API. Try again later.")
            error.headers["Retry-After"] = "1"
            throw error
        }
        if rateClass == .medium { window.medium += 1 } else { window.light += 1 }
        rateWindows[access.accountID] = window
        return Caller(clientID: access.clientID, accountID: access.accountID, userID: access.userID)
    }

    // MARK: Users

    private func findUser(_ key: String) -> SimConfiguration.User? {
        configuration.users.first { $0.id == key || $0.email.lowercased() == key.lowercased() }
    }

    /// Resolves `userId` of a path (id, email or `me`) for `caller`.
    /// - Throws: 404 code 1001 when no such user is visible to the caller.
    func resolveUser(_ key: String, caller: Caller) throws -> SimConfiguration.User {
        let user: SimConfiguration.User?
        if key == "me" {
            if let id = caller.userID {
                user = findUser(id)
            } else {
                user = configuration.users.first { $0.accountID == nil || $0.accountID == caller.accountID }
            }
        } else {
            user = findUser(key)
        }
        guard let user, user.accountID == nil || user.accountID == caller.accountID else {
            throw ZoomAPIError.userNotFound(key)
        }
        if let own = caller.userID, own != user.id { throw ZoomAPIError.userNotFound(key) }
        return user
    }

    private func userJSON(_ user: SimConfiguration.User, accountID: String, full: Bool) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(user.id)), ("first_name", .string(user.firstName)), ("last_name", .string(user.lastName)),
            ("display_name", .string("\(user.firstName) \(user.lastName)")), ("email", .string(user.email)),
            ("type", .number(user.type)), ("pmi", .int(Self.pmi(for: user))), ("timezone", "UTC"), ("verified", 1),
            ("dept", ""), ("created_at", "2024-01-01T00:00:00Z"), ("last_login_time", "2024-01-01T00:00:00Z"),
            ("language", "en-US"), ("status", "active"), ("role_id", "2"),
        ]
        if full {
            members += [
                ("role_name", "Member"), ("use_pmi", false),
                ("personal_meeting_url", .string("\(baseURL)/j/\(Self.pmi(for: user))")),
                ("account_id", .string(user.accountID ?? accountID)), ("account_number", 10_000_001),
                ("cluster", "sim"), ("group_ids", []), ("im_group_ids", []), ("jid", .string("\(user.id)@xmpp.sim")),
                ("login_types", [100]),
            ]
        }
        return .object(members)
    }

    private static func pmi(for user: SimConfiguration.User) -> Int64 {
        var hash: UInt64 = 1_469_598_103_934_665_603
        for byte in user.id.utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
        return 1_000_000_000 + Int64(hash % 8_999_999_999)
    }

    /// `GET /users/{userId}` (operation `user`).
    public func getUser(_ key: String, caller: Caller) throws -> JSON {
        userJSON(try resolveUser(key, caller: caller), accountID: caller.accountID, full: true)
    }

    /// `GET /users` (operation `users`), paged like meetings.
    public func listUsers(caller: Caller, pageSize: Int?, nextPageToken: String?) throws -> JSON {
        let visible = configuration.users.filter {
            ($0.accountID == nil || $0.accountID == caller.accountID) && (caller.userID == nil || caller.userID == $0.id)
        }
        let (size, offset) = try page(pageSize: pageSize, token: nextPageToken, kind: "users")
        let slice = Array(visible.dropFirst(offset).prefix(size))
        let next = offset + slice.count < visible.count ? pageToken(kind: "users", offset: offset + slice.count) : ""
        return [
            "page_count": .number(max(1, (visible.count + size - 1) / size)), "page_number": .number(offset / size + 1),
            "page_size": .number(size), "total_records": .number(visible.count), "next_page_token": .string(next),
            "users": .array(slice.map { userJSON($0, accountID: caller.accountID, full: false) }),
        ]
    }

    // MARK: Paging

    private func page(pageSize: Int?, token: String?, kind: String) throws -> (size: Int, offset: Int) {
        let size = min(max(pageSize ?? 30, 1), 300)
        guard let token, !token.isEmpty else { return (size, 0) }
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix(kind + ":"), let offset = Int(text.dropFirst(kind.count + 1)), offset >= 0
        else {
            throw ZoomAPIError.api(400, code: 300, "The next page token is invalid or expired.")
        }
        return (size, offset)
    }

    private func pageToken(kind: String, offset: Int) -> String {
        Data("\(kind):\(offset)".utf8).base64EncodedString()
    }

    // MARK: Meetings

    private func usageForToday(_ userID: String) -> UserUsage {
        var entry = usage[userID] ?? UserUsage()
        let today = utcDay(now())
        if entry.day != today {
            entry.day = today
            entry.createsToday = 0
        }
        return entry
    }

    /// Counts one create/update against the host's daily limit.
    /// - Throws: when the host has used up its daily create/update requests (100 per host per UTC day,
    ///   developers.zoom.us/docs/api/rate-limits/): HTTP 429 code 429 "You have exceeded the daily rate limit ..."
    ///   with `X-RateLimit-Type: Daily-limit`, `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0` and `Retry-After` the
    ///   next 00:00 UTC as RFC 3339 (the rate-limits page's example); or, per `limits.daily_limit_code` or the fault,
    ///   the same without those headers (as users report it, devforum.zoom.us) or HTTP 400 code 300 "A maximum of
    ///   {n} meetings can be created/updated for a single user in one day." ("Create a meeting", responses: 300).
    private func chargeDailyLimit(_ user: SimConfiguration.User) throws {
        var entry = usageForToday(user.id)
        let limit = configuration.limits.dailyCreateLimit
        let limited = entry.limitedDay == entry.day
        if entry.createsToday >= limit || limited {
            let answer = limited ? entry.limitedAnswer ?? "\(configuration.limits.dailyLimitCode)" : "\(configuration.limits.dailyLimitCode)"
            if answer == "300" {
                throw ZoomAPIError.api(
                    400, code: 300, "A maximum of \(limit) meetings can be created/updated for a single user in one day.")
            }
            var error = ZoomAPIError.api(
                429, code: 429,
                "You have exceeded the daily rate limit (\(limit)) of Meeting Create/Update API requests permitted "
                    + "for this particular user. You may resume these requests at GMT 00:00:00.")
            if answer != "429_bare" {
                let midnight = Date(timeIntervalSince1970: Double(utcDay(now()) + 1) * 86_400)
                error.headers = [
                    "X-RateLimit-Category": "Medium", "X-RateLimit-Type": "Daily-limit",
                    "X-RateLimit-Limit": "\(limit)", "X-RateLimit-Remaining": "0", "Retry-After": Self.format(midnight),
                ]
            }
            throw error
        }
        entry.createsToday += 1
        usage[user.id] = entry
    }

    private static let passwordCharacters = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    private static func isValidPassword(_ password: String) -> Bool {
        password.count <= 10
            && password.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || "@-_*".contains($0) }
    }

    private static func parseTime(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601) { return date }
        if let date = try? Date(text + "Z", strategy: .iso8601) { return date }
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        return try? fractional.parse(text)
    }

    /// Formats `date` as Zoom does: `yyyy-MM-ddTHH:mm:ssZ` in UTC.
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }

    private static let defaultSettings: JSON = [
        "host_video": false, "participant_video": false, "cn_meeting": false, "in_meeting": false,
        "join_before_host": false, "jbh_time": 0, "mute_upon_entry": false, "watermark": false, "use_pmi": false,
        "approval_type": 2, "audio": "voip", "auto_recording": "none", "enforce_login": false,
        "enforce_login_domains": "", "alternative_hosts": "", "alternative_host_update_polls": false,
        "close_registration": false, "show_share_button": false, "allow_multiple_devices": false,
        "registrants_confirmation_email": true, "waiting_room": false, "request_permission_to_unmute_participants": false,
        "registrants_email_notification": true, "meeting_authentication": false,
        "encryption_type": "enhanced_encryption", "approved_or_denied_countries_or_regions": ["enable": false],
        "breakout_room": ["enable": false], "alternative_hosts_email_notification": true, "device_testing": false,
        "focus_mode": false, "private_meeting": false, "email_notification": true, "host_save_video_order": false,
    ]

    /// The field rules of "Create a meeting" (developers.zoom.us/docs/api/meetings/#tag/meetings/POST/users/{userId}/meetings):
    /// `topic` at most 200 characters, `agenda` at most 2,000, `type` 1, 2, 3 or 8, `password` at most 10 characters
    /// of letters, digits and `@ - _ *` and within the account's passcode rules; a refusal is 400 code 300
    /// "Validation Failed." with `errors[]` naming the field (developers.zoom.us/docs/api/rest/error-definitions/).
    /// Nothing refused counts against the daily limit.
    private func validateFields(_ body: JSON) throws {
        if let topic = body["topic"]?.stringValue, topic.count > 200 {
            throw ZoomAPIError.validation(field: "topic", "Topic must be at most 200 characters.")
        }
        if let agenda = body["agenda"]?.stringValue, agenda.count > 2000 {
            throw ZoomAPIError.validation(field: "agenda", "Agenda must be at most 2000 characters.")
        }
        if let type = body["type"], ![1, 2, 3, 8].contains(type.intValue ?? -1) {
            throw ZoomAPIError.validation(field: "type", "Invalid meeting type.")
        }
        if let start = body["start_time"]?.stringValue, !start.isEmpty, Self.parseTime(start) == nil {
            throw ZoomAPIError.validation(field: "start_time", "Invalid start_time.")
        }
        if let password = body["password"]?.stringValue, !Self.isValidPassword(password) {
            throw ZoomAPIError.validation(
                field: "password",
                "Password can only have a maximum of 10 characters and only contain alphanumeric characters and @-_*.")
        }
        // "If the account owner or administrator has configured minimum passcode requirement settings, the password
        // must meet those requirements" ("Create a meeting", `password`).
        if let password = body["password"]?.stringValue, !password.isEmpty, let problem = passcodePolicy.violation(password) {
            throw ZoomAPIError.validation(field: "password", problem)
        }
        if let settings = body["settings"], settings.objectValue == nil {
            throw ZoomAPIError.validation(field: "settings", "Invalid field.")
        }
    }

    /// `settings.alternative_hosts`: "A semicolon-separated list of the meeting's alternative hosts' email
    /// addresses or IDs" ("Create a meeting"); each must be a licensed user (`type` 2) of the host's account
    /// (support.zoom.us, "Alternative host"). Zoom's reference documents the rule, not its wording: the message is
    /// ours, the shape (300 "Validation Failed." with `errors[]` on the field) is Zoom's.
    /// - Throws: 300 with `errors: [{"field": "settings.alternative_hosts", ...}]`.
    private func validateAlternativeHosts(_ body: JSON, host: SimConfiguration.User, accountID: String) throws {
        guard let list = body["settings"]?["alternative_hosts"]?.stringValue else { return }
        for entry in list.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            guard let user = findUser(entry), user.id != host.id, user.type == 2,
                (user.accountID ?? accountID) == (host.accountID ?? accountID)
            else {
                throw ZoomAPIError.validation(
                    field: "settings.alternative_hosts",
                    "Alternative host \(entry) must be a licensed user of the host's account.")
            }
        }
    }

    private func randomPassword() -> String {
        String((0..<6).map { _ in Self.passwordCharacters.randomElement()! })
    }

    private func applyPassword(_ password: String, to meeting: inout SimMeeting) {
        meeting.password = password
        if password.isEmpty {
            meeting.encryptedPassword = ""
            meeting.h323Password = ""
            meeting.settings = meeting.settings.merging(["waiting_room": true])
        } else {
            meeting.encryptedPassword = Self.base64url((0..<24).map { _ in UInt8.random(in: 0...255) }) + ".1"
            meeting.h323Password = String((0..<6).map { _ in "0123456789".randomElement()! })
        }
    }

    /// `POST /users/{userId}/meetings` (operation `meetingCreate`): creates a meeting and says what to do
    /// with the reply.
    ///
    /// Passcode: a non-empty `password` is used; `"password": ""` means none (Zoom then forces the
    /// waiting room on); otherwise one is generated (Zoom's default "require a passcode" account setting).
    /// `type: 2` without `start_time` becomes an instant meeting (`type: 1`) starting now ("Create a meeting",
    /// `start_time`: "only used for scheduled and/or recurring meetings with a fixed time").
    /// - Throws: 1001 unknown user, 3161 no hosting rights, daily limit, 300 validation errors.
    public func createMeeting(userKey: String, body: JSON, caller: Caller) throws -> (SimMeeting, CreateReplyFault?) {
        let user = try resolveUser(userKey, caller: caller)
        guard user.hostingAllowed else {
            throw ZoomAPIError.api(
                400, code: 3161, "Meeting hosting and scheduling capabilities are not allowed for your user account.")
        }
        guard body.objectValue != nil else {
            throw ZoomAPIError.api(400, code: 300, "Request Body should be a valid JSON object.")
        }
        try validateFields(body)
        try validateAlternativeHosts(body, host: user, accountID: caller.accountID)
        try chargeDailyLimit(user)

        var id: Int64
        repeat { id = Int64.random(in: 10_000_000_000...99_999_999_999) } while meetings[id] != nil
        let now = now()
        var type = Int(body["type"]?.intValue ?? 2)
        let startText = body["start_time"]?.stringValue ?? ""
        if type == 2 && startText.isEmpty { type = 1 }
        var meeting = SimMeeting(
            id: id, uuid: Self.newMeetingUUID(),
            hostID: user.id, hostEmail: user.email, accountID: user.accountID ?? caller.accountID,
            topic: body["topic"]?.stringValue ?? "\(user.firstName) \(user.lastName)'s Zoom Meeting", type: type,
            status: .waiting, startTime: Self.parseTime(startText) ?? now,
            duration: Int(body["duration"]?.intValue ?? 60), timezone: body["timezone"]?.stringValue ?? "UTC",
            agenda: body["agenda"]?.stringValue ?? "", createdAt: now, password: "", encryptedPassword: "",
            h323Password: "", zak: randomToken("", bytes: 30), settings: Self.defaultSettings.merging(body["settings"] ?? [:]),
            endedAt: nil, deletedAt: nil, overCapacity: false, createdBy: caller.clientID)
        if let password = body["password"]?.stringValue {
            applyPassword(password, to: &meeting)
        } else {
            applyPassword(randomPassword(), to: &meeting)
        }
        let liveBefore = meetings.values.filter { $0.hostID == user.id && $0.isLive }.count
        meeting.overCapacity = liveBefore >= user.concurrentMeetings
        meetings[id] = meeting
        meetingOrder.append(id)
        var entry = usageForToday(user.id)
        entry.createsTotal += 1
        entry.maxLiveSeen = max(entry.maxLiveSeen, liveBefore + 1)
        if meeting.overCapacity { entry.overCapacityCreates += 1 }
        usage[user.id] = entry

        let fault = createReplyFaults.isEmpty ? nil : createReplyFaults.removeFirst()
        return (meeting, fault)
    }

    private func accessibleMeeting(_ idText: String, caller: Caller) throws -> SimMeeting {
        guard let id = Int64(idText), let meeting = meetings[id], meeting.status != .deleted,
            meeting.accountID == caller.accountID, caller.userID == nil || caller.userID == meeting.hostID
        else {
            throw ZoomAPIError.meetingNotFound(idText)
        }
        return meeting
    }

    func joinURL(_ m: SimMeeting) -> String {
        m.encryptedPassword.isEmpty ? "\(baseURL)/j/\(m.id)" : "\(baseURL)/j/\(m.id)?pwd=\(m.encryptedPassword)"
    }

    /// The body of a create (201) or get (200) answer, fields as operations `meetingCreate` / `meeting`.
    public func meetingJSON(_ m: SimMeeting, includeStatus: Bool) -> JSON {
        var members: [(String, JSON)] = [
            ("uuid", .string(m.uuid)), ("id", .int(m.id)), ("host_id", .string(m.hostID)),
            ("host_email", .string(m.hostEmail)), ("assistant_id", ""), ("topic", .string(m.topic)),
            ("type", .number(m.type)),
        ]
        if includeStatus { members.append(("status", .string(m.status == .started ? "started" : "waiting"))) }
        else { members.append(("status", "waiting")) }
        members += [
            ("start_time", .string(Self.format(m.startTime))), ("duration", .number(m.duration)),
            ("timezone", .string(m.timezone)), ("agenda", .string(m.agenda)),
            ("created_at", .string(Self.format(m.createdAt))),
            ("start_url", .string("\(baseURL)/s/\(m.id)?zak=\(m.zak)")), ("join_url", .string(joinURL(m))),
            ("password", .string(m.password)), ("h323_password", .string(m.h323Password)),
            ("pstn_password", .string(m.h323Password)), ("encrypted_password", .string(m.encryptedPassword)),
            ("pre_schedule", false), ("settings", m.settings),
        ]
        return .object(members)
    }

    /// `GET /meetings/{meetingId}` (operation `meeting`).
    /// - Throws: 404 code 3001 when the meeting does not exist (or was deleted).
    public func getMeeting(_ idText: String, caller: Caller) throws -> JSON {
        meetingJSON(try accessibleMeeting(idText, caller: caller), includeStatus: true)
    }

    /// `GET /metrics/meetings/{meetingId}/participants?type=live` (Dashboards, "List meeting participants"; Zoom
    /// documents it for Business plans and up with the dashboard scopes, which the simulator does not check): who
    /// is in the started meeting now, `{page_count, page_size, total_records, next_page_token, participants: [{id,
    /// user_id, user_name, email, join_time}]}` (no `leave_time`: nobody listed has left); empty for a meeting not
    /// started.
    public func liveParticipants(_ idText: String, caller: Caller) throws -> JSON {
        let meeting = try accessibleMeeting(idText, caller: caller)
        let people = meeting.status == .started ? meeting.participants : []
        return [
            "page_count": 1, "page_size": 300, "total_records": .number(people.count), "next_page_token": "",
            "participants": .array(
                people.map {
                    [
                        "id": .string($0.userID), "user_id": .string($0.userID), "user_name": .string($0.name),
                        "email": .string($0.email), "join_time": .string(Self.format($0.joinedAt)),
                    ]
                }),
        ]
    }

    /// `GET /users/{userId}/meetings` (operation `meetings`): `type` scheduled (default: not deleted),
    /// live (started), upcoming / upcoming_meetings (waiting, not yet over), previous_meetings (ended);
    /// oldest first; `page_size` 30 by default, at most 300.
    /// - Complexity: O(meetings).
    public func listMeetings(
        userKey: String, caller: Caller, type: String?, pageSize: Int?, nextPageToken: String?
    ) throws -> JSON {
        let user = try resolveUser(userKey, caller: caller)
        let now = now()
        let filter: (SimMeeting) -> Bool
        switch type ?? "scheduled" {
        case "scheduled": filter = { $0.status != .deleted }
        case "live": filter = { $0.status == .started }
        case "upcoming", "upcoming_meetings":
            filter = { $0.status == .waiting && $0.startTime.addingTimeInterval(TimeInterval($0.duration * 60)) > now }
        case "previous_meetings": filter = { $0.status == .ended }
        default: throw ZoomAPIError.validation(field: "type", "Invalid field.")
        }
        let all = meetingOrder.compactMap { meetings[$0] }.filter { $0.hostID == user.id && filter($0) }
        let (size, offset) = try page(pageSize: pageSize, token: nextPageToken, kind: "meetings:\(user.id)")
        let slice = Array(all.dropFirst(offset).prefix(size))
        let next =
            offset + slice.count < all.count ? pageToken(kind: "meetings:\(user.id)", offset: offset + slice.count) : ""
        let items: [JSON] = slice.map { m in
            [
                "uuid": .string(m.uuid), "id": .int(m.id), "host_id": .string(m.hostID), "topic": .string(m.topic),
                "type": .number(m.type), "start_time": .string(Self.format(m.startTime)),
                "duration": .number(m.duration), "timezone": .string(m.timezone), "agenda": .string(m.agenda),
                "created_at": .string(Self.format(m.createdAt)), "join_url": .string(joinURL(m)),
            ]
        }
        return [
            "page_size": .number(size), "total_records": .number(all.count), "next_page_token": .string(next),
            "meetings": .array(items),
        ]
    }

    /// `PATCH /meetings/{meetingId}` (operation `meetingUpdate`); counts against the host's daily
    /// create/update limit.
    /// - Throws: 3001 when gone, the daily limit, validation errors.
    public func updateMeeting(_ idText: String, body: JSON, caller: Caller) throws {
        var meeting = try accessibleMeeting(idText, caller: caller)
        guard body.objectValue != nil else {
            throw ZoomAPIError.api(400, code: 300, "Request Body should be a valid JSON object.")
        }
        try validateFields(body)
        guard let host = configuration.users.first(where: { $0.id == meeting.hostID }) else {
            throw ZoomAPIError.meetingNotFound(idText)
        }
        try chargeDailyLimit(host)
        if let topic = body["topic"]?.stringValue { meeting.topic = topic }
        if let agenda = body["agenda"]?.stringValue { meeting.agenda = agenda }
        if let type = body["type"]?.intValue { meeting.type = Int(type) }
        if let start = body["start_time"]?.stringValue, let date = Self.parseTime(start) { meeting.startTime = date }
        if let duration = body["duration"]?.intValue { meeting.duration = Int(duration) }
        if let timezone = body["timezone"]?.stringValue { meeting.timezone = timezone }
        if let settings = body["settings"] { meeting.settings = meeting.settings.merging(settings) }
        if let password = body["password"]?.stringValue { applyPassword(password, to: &meeting) }
        meetings[meeting.id] = meeting
    }

    /// `DELETE /meetings/{meetingId}` (operation `meetingDelete`).
    /// - Throws: 400 code 3002 while the meeting is in progress; 404 code 3001 when it is gone; with the fault
    ///   `refuse_delete_ended`, 400 code 3007 "Sorry, you cannot delete this meeting since it has ended." for an
    ///   ended meeting (Zoom answers so for some ended meetings; "Delete a meeting", error 3007).
    public func deleteMeeting(_ idText: String, caller: Caller) throws {
        var meeting = try accessibleMeeting(idText, caller: caller)
        if meeting.status == .started {
            throw ZoomAPIError.api(400, code: 3002, "Sorry, you cannot delete this meeting since it is in progress.")
        }
        if meeting.status == .ended && refuseDeleteEnded {
            throw ZoomAPIError.api(400, code: 3007, "Sorry, you cannot delete this meeting since it has ended.")
        }
        meeting.status = .deleted
        meeting.deletedAt = now()
        meetings[meeting.id] = meeting
    }

    /// `PUT /meetings/{meetingId}/status` (operation `meetingStatus`): `end` ends a waiting or started
    /// meeting; `recover` restores a deleted one.
    /// - Throws: 3001 when gone, 300 for another action.
    public func setMeetingStatus(_ idText: String, action: String?, caller: Caller) throws {
        switch action {
        case "end":
            var meeting = try accessibleMeeting(idText, caller: caller)
            let wasStarted = meeting.status == .started
            if meeting.isLive {
                meeting.status = .ended
                meeting.endedAt = now()
                meeting.participants = []
            }
            meetings[meeting.id] = meeting
            if wasStarted { emitEnded(meeting) }
        case "recover":
            guard let id = Int64(idText), var meeting = meetings[id], meeting.accountID == caller.accountID,
                caller.userID == nil || caller.userID == meeting.hostID
            else { throw ZoomAPIError.meetingNotFound(idText) }
            if meeting.status == .deleted {
                meeting.status = .waiting
                meeting.deletedAt = nil
            }
            meetings[id] = meeting
        default:
            throw ZoomAPIError.validation(field: "action", "Invalid field.")
        }
    }

    /// Starts a meeting as if its host opened `start_url` (test surface and `GET /s/{id}?zak=`).
    /// - Returns: `false` when there is no such live meeting or the host key is wrong.
    public func startMeeting(id: Int64, zak: String?) -> Bool {
        guard var meeting = meetings[id], meeting.status == .waiting || meeting.status == .started || meeting.status == .ended
        else { return false }
        if let zak, zak != meeting.zak { return false }
        begin(&meeting)
        return true
    }

    /// Ends a meeting as if its host left (test surface).
    public func endMeetingFromClient(id: Int64) -> Bool {
        guard var meeting = meetings[id], meeting.status == .started || meeting.status == .waiting else { return false }
        let wasStarted = meeting.status == .started
        meeting.status = .ended
        meeting.endedAt = now()
        meeting.participants = []
        meetings[id] = meeting
        if wasStarted { emitEnded(meeting) }
        return true
    }

    // MARK: Playing a meeting (events)

    /// `POST /_sim/meetings/{id}/participants`: someone joins or leaves. Joining a meeting nobody started starts it
    /// (its `meeting.started` goes first); guests and phone users join with an empty email, as Zoom reports them.
    /// - Returns: the participant.
    /// - Throws: 404 for a meeting that is not live; 400 for a leave of someone not in it.
    public func participant(
        meetingID id: Int64, action: String, email: String?, name: String?, guest: Bool, phone: Bool,
        participantUUID: String?
    ) throws -> SimParticipant {
        guard var meeting = meetings[id], meeting.isLive || meeting.status == .ended else {
            throw ZoomAPIError.meetingNotFound(String(id))
        }
        switch action {
        case "join":
            begin(&meeting)
            participantSeq += 1
            let person = SimParticipant(
                participantUUID: participantUUID ?? Self.randomUUID(), userID: String(participantSeq),
                name: name ?? (guest || phone ? (phone ? "Dial-in user" : "Guest") : email ?? "Participant"),
                email: guest || phone ? "" : (email ?? ""), joinedAt: now())
            meeting.participants.append(person)
            meetings[id] = meeting
            events.publish(
                "meeting.participant_joined", payload: eventPayload(meeting, participant: participantJSON(person, time: "join_time")),
                clientID: meeting.createdBy, accountID: meeting.accountID)
            return person
        case "leave":
            guard
                let index = meeting.participants.firstIndex(where: {
                    ($0.participantUUID == participantUUID && participantUUID != nil)
                        // An empty email names nobody: guests and phone users have one.
                        || (email?.isEmpty == false && $0.email.lowercased() == email?.lowercased())
                })
            else { throw ZoomAPIError.validation(field: "email", "nobody with that email or participant_uuid is in the meeting") }
            let person = meeting.participants.remove(at: index)
            meetings[id] = meeting
            var object = participantJSON(person, time: "leave_time")
            if case .object(let fields) = object { object = .object(fields + [("leave_reason", .string("left the meeting"))]) }
            events.publish(
                "meeting.participant_left", payload: eventPayload(meeting, participant: object), clientID: meeting.createdBy,
                accountID: meeting.accountID)
            return person
        default:
            throw ZoomAPIError.validation(field: "action", "action must be join or leave")
        }
    }

    /// A meeting instance's `uuid`: 16 random bytes, base64 (as Zoom's look, e.g. `aDYlohsHRtCd4ii1uC2+hA==`).
    static func newMeetingUUID() -> String {
        Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// Starts a meeting that is not started (its `startedAt` is now) and sends `meeting.started`; nothing for one
    /// already started.
    private func begin(_ meeting: inout SimMeeting) {
        guard meeting.status != .started else { return }
        if meeting.status == .ended {
            // "Each meeting instance will generate its own Meeting UUID (i.e., after a meeting ends, a new UUID will be
            // generated for the next instance of the meeting)": Zoom's "Get a meeting" reference, field `uuid`.
            meeting.uuid = Self.newMeetingUUID()
        }
        meeting.status = .started
        meeting.endedAt = nil
        meeting.startedAt = now()
        meetings[meeting.id] = meeting
        emitStarted(meeting)
    }

    /// `meeting.started`: `payload.object` {id, uuid, host_id, topic, type, start_time} (Zoom's meeting events
    /// reference, developers.zoom.us/docs/api/meetings/events/).
    private func emitStarted(_ meeting: SimMeeting) {
        events.publish(
            "meeting.started", payload: eventPayload(meeting, participant: nil), clientID: meeting.createdBy,
            accountID: meeting.accountID)
    }

    /// `meeting.ended`: as `meeting.started` (the same `start_time`: when this occurrence started), with `end_time`.
    private func emitEnded(_ meeting: SimMeeting) {
        let payload = Self.setObjectField(
            eventPayload(meeting, participant: nil), "end_time", .string(Self.format(meeting.endedAt ?? now())))
        events.publish("meeting.ended", payload: payload, clientID: meeting.createdBy, accountID: meeting.accountID)
    }

    /// `{"account_id", "object": {"id", "uuid", "host_id", "topic", "type", "start_time", "timezone", "duration",
    /// "participant"?}}`. `start_time` is when the occurrence started (the scheduled time before it did); Zoom's SDK
    /// (zoom/rivet-javascript meetings/meetings.d.ts) gives it in all four events (required in `meeting.started`,
    /// `meeting.ended` and `meeting.participant_left`).
    private func eventPayload(_ meeting: SimMeeting, participant: JSON?) -> JSON {
        var object: [(String, JSON)] = [
            // A string here: Zoom's SDK (zoom/rivet-javascript meetings/meetings.d.ts) types these events' `id` so.
            ("id", .string(String(meeting.id))), ("uuid", .string(meeting.uuid)), ("host_id", .string(meeting.hostID)),
            ("topic", .string(meeting.topic)), ("type", .number(meeting.type)), ("timezone", .string(meeting.timezone)),
            ("duration", .number(meeting.duration)), ("start_time", .string(Self.format(meeting.startedAt ?? meeting.startTime))),
        ]
        if let participant { object.append(("participant", participant)) }
        return ["account_id": .string(meeting.accountID), "object": .object(object)]
    }

    /// A participant as Zoom's participant events carry it: `user_id`, `user_name`, `participant_uuid`,
    /// `join_time` or `leave_time`, `email`.
    private func participantJSON(_ person: SimParticipant, time key: String) -> JSON {
        [
            "user_id": .string(person.userID), "user_name": .string(person.name),
            "participant_uuid": .string(person.participantUUID), "email": .string(person.email),
            "id": .string(""), key: .string(Self.format(key == "join_time" ? person.joinedAt : now())),
        ]
    }

    private static func setObjectField(_ payload: JSON, _ key: String, _ value: JSON) -> JSON {
        guard case .object(let top) = payload, case .object(let object)? = payload["object"] else { return payload }
        let updated = JSON.object(object.filter { $0.0 != key } + [(key, value)])
        return .object(top.map { $0.0 == "object" ? ($0.0, updated) : $0 })
    }

    private static func randomUUID() -> String {
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        return Data(bytes).base64EncodedString()
    }

    /// Whether `GET /j/{id}?pwd=` would let a participant in: the meeting exists, is not deleted, and the
    /// `pwd` matches when it has a passcode.
    public func canJoin(id: Int64, pwd: String?) -> Bool {
        guard let meeting = meetings[id], meeting.status != .deleted else { return false }
        return meeting.encryptedPassword.isEmpty || meeting.encryptedPassword == pwd
    }

    // MARK: Faults

    /// Latency to add before answering a request to `path`, in seconds.
    func latency(for path: String) -> Double? {
        guard let latency, path.hasPrefix(latency.pathPrefix) else { return nil }
        return latency.seconds
    }

    /// A status fault matching this request, consumed.
    func takeStatusFault(method: String, path: String) -> ZoomAPIError? {
        guard
            let index = statusFaults.firstIndex(where: {
                path.hasPrefix($0.pathPrefix) && ($0.method == nil || $0.method == method)
            })
        else { return nil }
        let fault = statusFaults[index]
        if fault.remaining <= 1 { statusFaults.remove(at: index) } else { statusFaults[index].remaining -= 1 }
        var error = ZoomAPIError.api(fault.status, code: fault.status, fault.status == 429
            ? "You have reached the maximum per-second rate limit for this API. Try again later."
            : "Internal Server Error (simulated)")
        if let retry = fault.retryAfter { error.headers["Retry-After"] = retry }
        return error
    }

    /// Applies one `POST /_sim/faults` document; see ``ZoomSimulator`` for the kinds.
    /// - Returns: the active faults afterwards.
    /// - Throws: 400 code 300 for an unknown kind or a missing field.
    public func applyFault(_ fault: JSON) throws -> JSON {
        let count = Int(fault["count"]?.intValue ?? 1)
        switch fault["kind"]?.stringValue {
        case "latency":
            guard let seconds = fault["seconds"]?.doubleValue, seconds >= 0 else {
                throw ZoomAPIError.validation(field: "seconds", "latency needs seconds >= 0")
            }
            latency = seconds == 0 ? nil : (seconds, fault["path_prefix"]?.stringValue ?? "/")
        case "status":
            guard let status = fault["status"]?.intValue, (400...599).contains(status) else {
                throw ZoomAPIError.validation(field: "status", "status fault needs a 4xx/5xx status")
            }
            statusFaults.append(
                StatusFault(
                    pathPrefix: fault["path_prefix"]?.stringValue ?? "/", method: fault["method"]?.stringValue,
                    status: Int(status), remaining: count,
                    retryAfter: fault["retry_after"]?.stringValue ?? fault["retry_after"]?.intValue.map { String($0) }))
        case "hold_create_reply":
            createReplyFaults += Array(repeating: .hold, count: count)
        case "drop_create_reply":
            createReplyFaults += Array(repeating: .drop, count: count)
        case "error_create_reply":
            let status = Int(fault["status"]?.intValue ?? 502)
            createReplyFaults += Array(repeating: .error(status), count: count)
        case "join_url_create_reply":
            guard let url = fault["join_url"]?.stringValue else {
                throw ZoomAPIError.validation(field: "join_url", "join_url_create_reply needs join_url")
            }
            createReplyFaults += Array(repeating: .joinURL(url), count: count)
        case "release":
            releaseHeld()
        case "revoke_app", "disable_app":
            guard let client = fault["client_id"]?.stringValue else {
                throw ZoomAPIError.validation(field: "client_id", "revoke_app needs client_id")
            }
            disabledApps.insert(client)
            accessTokens = accessTokens.filter { $0.value.clientID != client }
            refreshTokens = refreshTokens.filter { $0.value.clientID != client }
        case "enable_app":
            if let client = fault["client_id"]?.stringValue { disabledApps.remove(client) }
        case "deauthorize":
            guard let client = fault["client_id"]?.stringValue, let userKey = fault["user"]?.stringValue,
                let user = findUser(userKey)
            else { throw ZoomAPIError.validation(field: "user", "deauthorize needs client_id and a known user") }
            accessTokens = accessTokens.filter { !($0.value.clientID == client && $0.value.userID == user.id) }
            refreshTokens = refreshTokens.filter { !($0.value.clientID == client && $0.value.userID == user.id) }
        case "expire_tokens":
            let client = fault["client_id"]?.stringValue
            let past = Date().addingTimeInterval(-1)
            for (key, token) in accessTokens where client == nil || token.clientID == client {
                accessTokens[key]?.expiresAt = past
            }
            if fault["refresh_tokens"]?.boolValue == true {
                for (key, token) in refreshTokens where client == nil || token.clientID == client {
                    refreshTokens[key]?.expiresAt = past
                }
            }
        case "daily_limit":
            guard let userKey = fault["user"]?.stringValue, let user = findUser(userKey) else {
                throw ZoomAPIError.validation(field: "user", "daily_limit needs a known user")
            }
            let answer = fault["answer"]?.stringValue ?? fault["answer"]?.intValue.map { String($0) }
            guard answer == nil || ["429", "429_bare", "300"].contains(answer!) else {
                throw ZoomAPIError.validation(field: "answer", "daily_limit answer must be 429, 429_bare or 300")
            }
            var entry = usageForToday(user.id)
            entry.limitedDay = entry.day
            entry.limitedAnswer = answer
            usage[user.id] = entry
        case "scopes":
            // The app's Scopes tab changed: tokens issued from now on carry these (`null` or no `scopes`: all).
            guard let client = fault["client_id"]?.stringValue, configuration.apps.contains(where: { $0.clientID == client })
            else { throw ZoomAPIError.validation(field: "client_id", "scopes needs a known client_id") }
            appScopes[client] = .some(fault["scopes"]?.arrayValue?.compactMap(\.stringValue))
        case "passcode_policy":
            passcodePolicy = SimConfiguration.PasscodePolicy(
                minLength: Int(fault["min_length"]?.intValue ?? 0), requireLetter: fault["require_letter"]?.boolValue ?? false,
                requireDigit: fault["require_digit"]?.boolValue ?? false,
                requireSpecial: fault["require_special"]?.boolValue ?? false)
        case "refuse_delete_ended":
            refuseDeleteEnded = fault["enabled"]?.boolValue ?? true
        case "rate_limit":
            if let medium = fault["medium_per_second"]?.intValue { mediumPerSecond = Int(medium) }
            if let light = fault["light_per_second"]?.intValue { lightPerSecond = Int(light) }
        case "clear":
            clearFaults()
        default:
            throw ZoomAPIError.validation(field: "kind", "unknown fault kind")
        }
        return faultsJSON()
    }

    /// Clears every fault: latency, status faults, pending create-reply faults, disabled apps, daily-limit
    /// marks, per-second overrides, scope and passcode-policy overrides and `refuse_delete_ended`; held replies are
    /// released.
    public func clearFaults() {
        latency = nil
        statusFaults = []
        createReplyFaults = []
        disabledApps = []
        appScopes = [:]
        passcodePolicy = configuration.passcodePolicy
        refuseDeleteEnded = false
        for key in usage.keys { usage[key]?.limitedDay = nil }
        mediumPerSecond = configuration.limits.mediumPerSecond
        lightPerSecond = configuration.limits.lightPerSecond
        releaseHeld()
    }

    /// The active faults, for `GET /_sim/faults`.
    public func faultsJSON() -> JSON {
        var list: [JSON] = []
        if let latency {
            list.append(["kind": "latency", "seconds": .double(latency.seconds), "path_prefix": .string(latency.pathPrefix)])
        }
        for fault in statusFaults {
            list.append([
                "kind": "status", "path_prefix": .string(fault.pathPrefix), "method": .optional(fault.method),
                "status": .number(fault.status), "count": .number(fault.remaining),
            ])
        }
        for fault in createReplyFaults {
            switch fault {
            case .hold: list.append(["kind": "hold_create_reply"])
            case .drop: list.append(["kind": "drop_create_reply"])
            case .error(let status): list.append(["kind": "error_create_reply", "status": .number(status)])
            case .joinURL(let url): list.append(["kind": "join_url_create_reply", "join_url": .string(url)])
            }
        }
        for app in disabledApps.sorted() { list.append(["kind": "revoke_app", "client_id": .string(app)]) }
        for (client, scopes) in appScopes.sorted(by: { $0.key < $1.key }) {
            list.append([
                "kind": "scopes", "client_id": .string(client),
                "scopes": scopes.map { .array($0.map { .string($0) }) } ?? .null,
            ])
        }
        if passcodePolicy != configuration.passcodePolicy {
            list.append([
                "kind": "passcode_policy", "min_length": .number(passcodePolicy.minLength),
                "require_letter": .bool(passcodePolicy.requireLetter), "require_digit": .bool(passcodePolicy.requireDigit),
                "require_special": .bool(passcodePolicy.requireSpecial),
            ])
        }
        if refuseDeleteEnded { list.append(["kind": "refuse_delete_ended"]) }
        let today = utcDay(now())
        for (user, entry) in usage.sorted(by: { $0.key < $1.key }) where entry.limitedDay == today {
            list.append(["kind": "daily_limit", "user": .string(user)])
        }
        return [
            "faults": .array(list), "held_replies": .number(held.count),
            "medium_per_second": .number(mediumPerSecond), "light_per_second": .number(lightPerSecond),
        ]
    }

    /// Suspends until ``releaseHeld()`` (returns `true`) or ``shutdown()`` (returns `false`).
    public func waitForRelease() async -> Bool {
        if shuttingDown { return false }
        let key = nextHold
        nextHold += 1
        return await withCheckedContinuation { continuation in
            held[key] = continuation
        }
    }

    /// The number of replies currently held.
    public var heldCount: Int { held.count }

    /// Lets every held reply go out.
    public func releaseHeld() {
        let waiting = held
        held = [:]
        for continuation in waiting.values { continuation.resume(returning: true) }
    }

    /// Drops every held reply (their connections close unanswered) and refuses new holds.
    public func shutdown() {
        shuttingDown = true
        let waiting = held
        held = [:]
        for continuation in waiting.values { continuation.resume(returning: false) }
    }

    // MARK: Request log

    /// Records the start of a request; never pass secrets (the caller redacts the query).
    /// - Parameter connectionKey: identifies the TCP connection; mapped to a small integer.
    /// - Returns: the record's sequence number.
    func beginRequest(method: String, path: String, query: String, connectionKey: String?) -> Int {
        let seq = nextSeq
        nextSeq += 1
        var connection: Int?
        if let connectionKey {
            if let known = connectionIDs[connectionKey] {
                connection = known
            } else {
                connection = connectionIDs.count + 1
                connectionIDs[connectionKey] = connection
            }
        }
        requests.append(
            RequestRecord(
                seq: seq, method: method, path: path, query: query, time: Date().timeIntervalSince1970,
                connection: connection, grantType: nil, status: nil, outcome: "pending", durationMS: nil))
        return seq
    }

    private func recordIndex(_ seq: Int) -> Int? {
        // Records are appended in seq order; search from the end, where active requests are.
        requests.lastIndex { $0.seq == seq }
    }

    /// Notes the grant type of a token request.
    func annotate(seq: Int, grantType: String) {
        if let index = recordIndex(seq) { requests[index].grantType = grantType }
    }

    /// Notes how a request ended: `status` for an answer, `nil` with outcome `dropped` when unanswered.
    func finishRequest(seq: Int, status: Int?, outcome: String) {
        guard let index = recordIndex(seq) else { return }
        requests[index].status = status
        requests[index].outcome = outcome
        requests[index].durationMS = (Date().timeIntervalSince1970 - requests[index].time) * 1000
    }

    /// Marks a request as held (its reply withheld).
    func markHeld(seq: Int) {
        if let index = recordIndex(seq) { requests[index].outcome = "held" }
    }

    /// The request log, for `GET /_sim/requests`, records with `seq > since`.
    public func requestsJSON(since: Int = 0) -> JSON {
        .array(
            requests.filter { $0.seq > since }.map { r in
                var members: [(String, JSON)] = [
                    ("seq", .number(r.seq)), ("method", .string(r.method)), ("path", .string(r.path)),
                    ("query", .string(r.query)), ("status", .optional(r.status)), ("outcome", .string(r.outcome)),
                    ("time", .double(r.time)),
                ]
                if let connection = r.connection { members.append(("connection", .number(connection))) }
                if let grant = r.grantType { members.append(("grant_type", .string(grant))) }
                if let duration = r.durationMS { members.append(("duration_ms", .double(duration))) }
                return .object(members)
            })
    }

    /// Empties the request log.
    public func clearRequests() { requests = [] }

    // MARK: Test surface views

    /// Every meeting ever created, oldest first, for `GET /_sim/meetings` (no `start_url`: it holds the host key).
    public func meetingsJSON() -> JSON {
        .array(
            meetingOrder.compactMap { meetings[$0] }.map { m in
                [
                    "id": .int(m.id), "uuid": .string(m.uuid), "host_id": .string(m.hostID),
                    "host_email": .string(m.hostEmail), "account_id": .string(m.accountID), "topic": .string(m.topic),
                    "agenda": .string(m.agenda), "type": .number(m.type), "status": .string(m.status.rawValue),
                    "start_time": .string(Self.format(m.startTime)), "duration": .number(m.duration),
                    "join_url": .string(joinURL(m)), "password": .string(m.password),
                    "created_at": .string(Self.format(m.createdAt)), "ended_at": .optional(m.endedAt.map(Self.format)),
                    "deleted_at": .optional(m.deletedAt.map(Self.format)), "over_capacity": .bool(m.overCapacity),
                    "client_id": .string(m.createdBy), "settings": m.settings,
                    "participants": .array(
                        m.participants.map {
                            [
                                "participant_uuid": .string($0.participantUUID), "user_id": .string($0.userID),
                                "user_name": .string($0.name), "email": .string($0.email),
                            ]
                        }),
                ]
            })
    }

    /// All meetings as values (for tests in-process).
    public func allMeetings() -> [SimMeeting] { meetingOrder.compactMap { meetings[$0] } }

    /// Per-user usage for `GET /_sim/users`: live meetings now, the most ever live at once, creates.
    public func usersJSON() -> JSON {
        .array(
            configuration.users.map { user in
                let entry = usageForToday(user.id)
                let live = meetings.values.filter { $0.hostID == user.id && $0.isLive }.count
                let started = meetings.values.filter { $0.hostID == user.id && $0.status == .started }.count
                return [
                    "id": .string(user.id), "email": .string(user.email), "type": .number(user.type),
                    "concurrent_meetings": .number(user.concurrentMeetings), "live": .number(live),
                    "started": .number(started), "max_live_seen": .number(entry.maxLiveSeen),
                    "over_capacity_creates": .number(entry.overCapacityCreates),
                    "oversubscribed": .bool(entry.maxLiveSeen > user.concurrentMeetings),
                    "creates_today": .number(entry.createsToday), "creates_total": .number(entry.createsTotal),
                    "daily_create_limit": .number(configuration.limits.dailyCreateLimit),
                    "daily_limited": .bool(entry.limitedDay == entry.day),
                ]
            })
    }

    /// Token statistics for `GET /_sim/tokens` (counts only, never token values).
    public func tokensJSON() -> JSON {
        let real = Date()
        let liveAccess = accessTokens.values.filter { $0.expiresAt > real }
        let liveRefresh = refreshTokens.values.filter { $0.expiresAt > real }
        var byClient: [(String, JSON)] = []
        for app in configuration.apps {
            byClient.append(
                (
                    app.clientID,
                    [
                        "live_access_tokens": .number(liveAccess.filter { $0.clientID == app.clientID }.count),
                        "live_refresh_tokens": .number(liveRefresh.filter { $0.clientID == app.clientID }.count),
                        "disabled": .bool(disabledApps.contains(app.clientID)),
                    ]
                ))
        }
        return [
            "requests": .object(tokenRequests.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }),
            "failures": .object(tokenFailures.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }),
            "live_access_tokens": .number(liveAccess.count), "live_refresh_tokens": .number(liveRefresh.count),
            "by_client": .object(byClient),
        ]
    }

    /// The simulated clock for `GET|POST /_sim/clock`.
    public func clockJSON() -> JSON {
        ["now": .string(Self.format(now())), "offset_seconds": .double(clockOffset)]
    }
}
