import Crypto
import Foundation

// OAuth 2.0 (tokens, authorization codes, app scopes), users and paging: Zoom's "Using Zoom APIs", "OAuth".
extension SimState {
    // MARK: OAuth

    func app(clientID: String, secret: String) -> SimConfiguration.App? {
        configuration.apps.first { $0.clientID == clientID && $0.clientSecret == secret }
    }

    func randomToken(_ prefix: String, bytes: Int = 32) -> String {
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

    func issueTokenChecked(
        clientID: String?,
        secret: String?,
        grant: String,
        params: [String: String]
    ) throws
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
                    400,
                    code: 4700,
                    reason: "Invalid account_id: \(params["account_id"] ?? "")",
                    error: "invalid_request"
                )
            }
            let token = randomToken("sim.at.")
            accessTokens[token] = AccessToken(
                clientID: app.clientID,
                accountID: app.accountID,
                userID: nil,
                expiresAt: real.addingTimeInterval(TimeInterval(configuration.tokenExpiresIn)),
                scopes: scopes(of: app)
            )
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
                    stored.challengeMethod == "plain"
                    ? verifier : Self.base64url(Array(SHA256.hash(data: Array(verifier.utf8))))
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

    func issueUserPair(app: SimConfiguration.App, userID: String, now: Date) -> JSON {
        let account = configuration.users.first { $0.id == userID }?.accountID ?? app.accountID
        let token = randomToken("sim.at.")
        let refresh = randomToken("sim.rt.")
        accessTokens[token] = AccessToken(
            clientID: app.clientID,
            accountID: account,
            userID: userID,
            expiresAt: now.addingTimeInterval(TimeInterval(configuration.tokenExpiresIn)),
            scopes: scopes(of: app)
        )
        refreshTokens[refresh] = RefreshToken(
            clientID: app.clientID,
            accountID: account,
            userID: userID,
            expiresAt: now.addingTimeInterval(TimeInterval(configuration.refreshTokenLifetime))
        )
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
        clientID: String,
        user userKey: String?,
        redirectURI: String,
        challenge: String?,
        challengeMethod: String?
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
            clientID: clientID,
            userID: user.id,
            redirectURI: redirectURI,
            challenge: challenge,
            challengeMethod: challengeMethod ?? "S256",
            expiresAt: Date().addingTimeInterval(TimeInterval(configuration.authorizationCodeLifetime))
        )
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
                400,
                code: 4711,
                "Invalid access token, does not contain scopes:[\(operation.granularScopes.joined(separator: ", "))]."
            )
        }
        let second = Int64(Date().timeIntervalSince1970.rounded(.down))
        var window = rateWindows[access.accountID] ?? (second, 0, 0)
        if window.second != second { window = (second, 0, 0) }
        let limit = rateClass == .medium ? mediumPerSecond : lightPerSecond
        let used = rateClass == .medium ? window.medium : window.light
        if limit > 0 && used >= limit {
            var error = ZoomAPIError.api(
                429,
                code: 429,
                "You have reached the maximum per-second rate limit for this API. Try again later."
            )
            error.headers["Retry-After"] = "1"
            throw error
        }
        if rateClass == .medium { window.medium += 1 } else { window.light += 1 }
        rateWindows[access.accountID] = window
        return Caller(clientID: access.clientID, accountID: access.accountID, userID: access.userID)
    }

    // MARK: Users

    func findUser(_ key: String) -> SimConfiguration.User? {
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

    func userJSON(_ user: SimConfiguration.User, accountID: String, full: Bool) -> JSON {
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

    static func pmi(for user: SimConfiguration.User) -> Int64 {
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
            ($0.accountID == nil || $0.accountID == caller.accountID)
                && (caller.userID == nil || caller.userID == $0.id)
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

    func page(pageSize: Int?, token: String?, kind: String) throws -> (size: Int, offset: Int) {
        let size = min(max(pageSize ?? 30, 1), 300)
        guard let token, !token.isEmpty else { return (size, 0) }
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix(kind + ":"), let offset = Int(text.dropFirst(kind.count + 1)), offset >= 0
        else {
            throw ZoomAPIError.api(400, code: 300, "The next page token is invalid or expired.")
        }
        return (size, offset)
    }

    func pageToken(kind: String, offset: Int) -> String {
        Data("\(kind):\(offset)".utf8).base64EncodedString()
    }
}
