import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomRuntime
import SitroomStore
import SitroomZoom

// Over 500 lines on purpose: the registry is the one owner of integrations' tokens; Server-to-Server tokens,
// user-OAuth authorization (PKCE, rotating refresh) and the idle refresh share its cache and in-flight requests,
// so splitting them would spread one token's life over files.

/// The configured video integrations: their Zoom clients, OAuth access tokens and states.
///
/// Server-to-Server tokens (`grant_type=account_credentials`) are cached in LMDB until 60 s before their
/// `expires_in` runs out; at most one token request per integration is in flight (later callers await it).
public actor IntegrationRegistry: MeetingProviderSource {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let store: Store
    private let http: ZoomHTTPClient
    private let clock: any WallClock
    private let logger: Logger
    private var integrations: [String: IntegrationConfig] = [:]
    private var clients: [String: ZoomClient] = [:]
    private var tokens: [TokenID: StoredToken] = [:]
    private var inFlight: [TokenID: Task<StoredToken, any Error>] = [:]
    private var records: [String: IntegrationRecord] = [:]
    /// When each integration's next request may go out (seconds since 1970), for pacing.
    private var nextSlot: [String: Double] = [:]

    /// Seconds before `expires_in` runs out when a token is no longer used.
    public static let expiryMargin = 60.0

    private let metrics: SitroomMetrics

    /// - Parameter metrics: counts Zoom requests and token requests per integration.
    public init(
        store: Store,
        http: ZoomHTTPClient,
        clock: any WallClock,
        logger: Logger,
        metrics: SitroomMetrics = SitroomMetrics(),
        executor: ThreadExecutor? = nil
    ) {
        self.executor = executor ?? ThreadExecutor(name: "sitroom-registry")
        self.store = store
        self.http = http
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
    }

    /// Applies a configuration generation in one LMDB transaction: new integrations are added
    /// (`pending_authorization` until their first token), removed ones forgotten (their records and tokens
    /// deleted from LMDB), changed ones get a new client. An integration known to the store but not configured
    /// (its file was removed while sitroomd was not running) counts as removed too.
    /// - Returns: the names of integrations that were removed, sorted.
    /// - Throws: store errors; nothing is changed then.
    @discardableResult
    public func configure(_ configuration: Configuration) throws -> [String] {
        let store = self.store
        let now = clock.now()
        var removed: [String] = []
        let known: [String: IntegrationRecord] = try store.write { txn in
            var gone = Set(integrations.keys.filter { configuration.integrations[$0] == nil })
            // Only an integration's own record names an integration (`names()` leaves out its hosts' records).
            for name in try txn.integrations.names() where configuration.integrations[name] == nil { gone.insert(name) }
            removed = gone.sorted()
            for name in removed {
                // The integration's tokens (its own, each host's) and records (its own, its hosts' authorizations,
                // pending authorizations and drained marks).
                try txn.integrations.forget(name)
            }
            var known: [String: IntegrationRecord] = [:]
            for name in configuration.integrations.keys {
                if let record = try txn.integrations.record(name) {
                    known[name] = record
                } else {
                    let record = IntegrationRecord(state: .pendingAuthorization, reason: nil, since: now)
                    try txn.integrations.putRecord(record, for: name)
                    known[name] = record
                }
            }
            return known
        }
        for name in removed {
            let own = TokenID(integration: name, host: nil)
            tokens[own] = nil
            inFlight[own]?.cancel()
            inFlight[own] = nil
            clients[name] = nil
        }
        for (name, integration) in configuration.integrations {
            if integrations[name] != integration {
                var client = ZoomClient(
                    http: http,
                    apiURL: integration.apiURL,
                    oauthURL: integration.oauthURL,
                    timeout: integration.requestTimeout
                )
                let metrics = self.metrics
                client.observer = { call in metrics.zoomCall(integration: name, call) }
                clients[name] = client
                tokens[TokenID(integration: name, host: nil)] = nil
            }
        }
        integrations = configuration.integrations
        records = known
        return removed
    }

    /// The Zoom client of an integration, or `nil` when it is not configured.
    public func client(_ name: String) -> ZoomClient? { clients[name] }

    /// The provider seam for one room's calls (``MeetingProvider``): Zoom's Meeting API for the integration's
    /// `host` (Zoom user `user`), with a valid access token and the integration's `meeting:` settings.
    /// - Throws: ``ProviderFailure`` (nothing sent) when the token endpoint refuses or fails, or the registry has
    ///   no token it may use (refused before, not yet authorized: a refusal of the credentials); ``SitroomError``
    ///   `.notFound` for an integration not configured; store errors.
    public func meetings(
        _ name: String,
        host: String?,
        user: String?,
        incident: String?
    ) async throws
        -> any MeetingProvider
    {
        guard let integration = integrations[name], let client = clients[name] else {
            throw SitroomError(.notFound, "integration \(name) is not configured")
        }
        let token: String
        do {
            token = try await accessToken(name, host: host)
        } catch let error as ZoomError {
            throw ZoomMeetings.tokenFailure(error, now: clock.now(), integration: name, host: host, incident: incident)
        } catch let error as SitroomError where error.code == .notAuthorized {
            throw ZoomMeetings.tokenFailure(
                ZoomError(.oauth(status: 401, code: nil, message: error.message)),
                now: clock.now(),
                integration: name,
                host: host,
                incident: incident
            )
        }
        let meeting = integration.meeting
        return ZoomMeetings(
            client: client,
            token: token,
            user: user,
            options: .init(
                waitingRoom: meeting.waitingRoom,
                joinBeforeHost: meeting.joinBeforeHost,
                autoRecording: meeting.autoRecording.rawValue,
                passcodeLength: meeting.passcode == .random ? meeting.passcodeLength : nil
            ),
            clock: clock,
            integration: name,
            host: host,
            incident: incident
        )
    }

    /// The state of an integration, or `nil` when it is not configured.
    public func state(_ name: String) -> IntegrationRecord? { records[name] }

    /// All integrations with their states, by name.
    public func snapshot() -> [(name: String, kind: String, record: IntegrationRecord)] {
        integrations.keys.sorted().compactMap { name in
            guard let record = records[name], let integration = integrations[name] else { return nil }
            return (name, integration.kind.rawValue, record)
        }
    }

    /// Which token a call uses: the integration's own (zoom-s2s), or the host's (zoom-oauth, one pair per host).
    func tokenKey(_ name: String, host: String?) -> TokenID {
        TokenID(integration: name, host: integrations[name]?.kind == .zoomOAuth ? host ?? "-" : nil)
    }

    /// A valid access token: cached (in memory, then LMDB) until 60 s before it expires, else requested.
    ///
    /// zoom-s2s: `grant_type=account_credentials`, one per integration. zoom-oauth: the host's pair is
    /// refreshed (`grant_type=refresh_token`). Either way at most one request per token is in flight; it runs in
    /// a task of its own, so a caller that is cancelled does not cancel it, and a rotated pair is committed to
    /// LMDB before anyone uses it.
    /// - Parameter host: the pool host id (zoom-oauth); ignored for zoom-s2s.
    /// - Throws: ``ZoomError`` from the token endpoint (``ZoomAnswer/refusesAuthorization`` for refused credentials),
    ///   ``SitroomError`` `.notFound` (unknown integration), `.badConfig` (unreadable secret) or `.notAuthorized`
    ///   (a zoom-oauth host without a valid authorization).
    public func accessToken(_ name: String, host: String? = nil) async throws -> String {
        let key = tokenKey(name, host: host)
        let now = clock.now()
        if let token = tokens[key], token.expiresAt - Self.expiryMargin > now { return token.accessToken }
        if let task = inFlight[key] { return try await task.value.accessToken }
        guard let integration = integrations[name], let client = clients[name] else {
            throw SitroomError(.notFound, "integration \(name) is not configured")
        }
        let stored = try readStoredToken(key)
        if let stored, stored.expiresAt - Self.expiryMargin > now {
            tokens[key] = stored
            return stored.accessToken
        }
        let task: Task<StoredToken, any Error>
        switch integration.kind {
        case .zoomS2S:
            task = Task { try await self.requestAccountToken(name, integration: integration, client: client) }
        case .zoomOAuth:
            guard let host, let stored, let refreshToken = stored.refreshToken else {
                throw SitroomError(
                    .notAuthorized,
                    "host \(host ?? "-") of \(name) is not authorized: run `sitroomctl integration authorize \(name) \(host ?? "HOST")`"
                )
            }
            task = Task {
                try await self.refreshPair(
                    name,
                    host: host,
                    integration: integration,
                    client: client,
                    using: refreshToken
                )
            }
        }
        inFlight[key] = task
        defer { inFlight[key] = nil }
        return try await task.value.accessToken
    }

    /// Requests a Server-to-Server token and commits it (and the integration's `active` state) to LMDB.
    private func requestAccountToken(
        _ name: String,
        integration: IntegrationConfig,
        client: ZoomClient
    ) async throws
        -> StoredToken
    {
        let secret = try Self.readSecret(integration.clientSecretFile, key: "client_secret_file")
        guard let accountID = integration.accountID else {
            throw SitroomError(.badConfig, "integration \(name): zoom-s2s needs account_id")
        }
        let issued = clock.now()
        let answer = try await client.requestAccountToken(
            accountID: accountID,
            clientID: integration.clientID,
            clientSecret: secret
        )
        let token = StoredToken(accessToken: answer.value, expiresAt: issued + answer.expiresIn)
        guard integrations[name] != nil else { throw SitroomError(.notFound, "integration \(name) was removed") }
        try commit(token, key: TokenID(integration: name, host: nil), integration: name, host: nil)
        return token
    }

    /// Refreshes a user-OAuth pair. Zoom rotates the refresh token on every refresh and the previous one stops
    /// working at once: the new pair is committed before it is used. A refresh refused as invalid re-reads the
    /// stored pair (another refresh may have rotated it meanwhile) before declaring the host in need of
    /// re-authorization.
    private func refreshPair(
        _ name: String,
        host: String,
        integration: IntegrationConfig,
        client: ZoomClient,
        using refreshToken: String
    ) async throws -> StoredToken {
        let secret = try Self.readSecret(integration.clientSecretFile, key: "client_secret_file")
        var current = refreshToken
        for attempt in 0..<2 {
            let issued = clock.now()
            do {
                let answer = try await client.refresh(
                    refreshToken: current,
                    clientID: integration.clientID,
                    clientSecret: secret
                )
                let token = StoredToken(
                    accessToken: answer.value,
                    expiresAt: issued + answer.expiresIn,
                    refreshToken: answer.refreshToken ?? current,
                    issuedAt: issued
                )
                try commit(token, key: tokenKey(name, host: host), integration: name, host: host)
                logger.debug("token refreshed", metadata: ["integration": "\(name)", "host": "\(host)"])
                return token
            } catch let error as ZoomError where error.answer.refusesAuthorization {
                if attempt == 0, let stored = try readStoredToken(tokenKey(name, host: host)),
                    let newer = stored.refreshToken, newer != current
                {
                    current = newer
                    continue
                }
                // The caller marks the host `needs_reauthorization` (and tells the admins once).
                throw error
            }
        }
        throw SitroomError(.zoom, "refresh of \(name)/\(host) did not settle")
    }

    /// Commits a token (and the `active` state it proves) to LMDB, then caches it. A token does not prove a scope
    /// was added: `missing_scope` is left only by an admin's act (`clearsMissingScope`: a completed authorization;
    /// `integration reauthorize` of a zoom-s2s integration goes through `pending_authorization`).
    private func commit(
        _ token: StoredToken,
        key: TokenID,
        integration name: String,
        host: String?,
        clearsMissingScope: Bool = false
    ) throws {
        let store = self.store
        let record = IntegrationRecord(state: .active, reason: nil, since: clock.now())
        let current = records[name]?.state
        let changed = current != .active && (current != .missingScope || clearsMissingScope)
        try store.write { txn in
            try txn.tokens.put(token, for: key)
            if changed { try txn.integrations.putRecord(record, for: name) }
        }
        tokens[key] = token
        if changed {
            records[name] = record
            logger.info("integration active", metadata: ["integration": "\(name)"])
        }
    }

    // MARK: User OAuth: authorizing hosts

    /// What sitroom knows of a zoom-oauth host's authorization (kept in the store).
    public typealias HostAuthorization = SitroomStore.HostAuthorization

    /// Starts authorizing a zoom-oauth host: a fresh PKCE pair and `state`, kept in LMDB.
    /// - Returns: the URL to open (Zoom asks the host's user to approve, then redirects to `redirect_uri`
    ///   with `code`).
    /// - Throws: ``SitroomError`` for an unknown integration or host, or a zoom-s2s integration.
    public func beginAuthorization(_ name: String, host: String) throws -> String {
        let (integration, client) = try oauthIntegration(name, host: host)
        let pkce = PKCE()
        let pending = PendingAuthorization(state: PKCE.randomState(), verifier: pkce.verifier, createdAt: clock.now())
        let store = self.store
        try store.write { txn in try txn.integrations.putPendingAuthorization(pending, name, host: host) }
        return client.authorizationURL(
            clientID: integration.clientID,
            redirectURI: integration.redirectURI ?? "",
            state: pending.state,
            pkce: pkce
        )
    }

    /// Completes a host's authorization with the code Zoom gave (valid 5 minutes): exchanges it
    /// (`grant_type=authorization_code` with the PKCE verifier), proves the pair with `GET /users/me`, then
    /// commits the pair and marks the host `active`. The code is never logged or stored.
    /// - Returns: a line for the admin.
    /// - Throws: ``SitroomError`` (no pending authorization, wrong user) or ``ZoomError``.
    public func completeAuthorization(_ name: String, host: String, code: String) async throws -> String {
        let (integration, client) = try oauthIntegration(name, host: host)
        let store = self.store
        guard
            let pending = try store.read({ txn in try txn.integrations.pendingAuthorization(name, host: host) }),
            clock.now() - pending.createdAt < 600
        else {
            throw SitroomError(
                .notFound,
                "no authorization of \(host) of \(name) under way: run `sitroomctl integration authorize \(name) \(host)` first"
            )
        }
        let secret = try Self.readSecret(integration.clientSecretFile, key: "client_secret_file")
        let issued = clock.now()
        let answer = try await client.exchangeAuthorizationCode(
            code: code,
            redirectURI: integration.redirectURI ?? "",
            codeVerifier: pending.verifier,
            clientID: integration.clientID,
            clientSecret: secret
        )
        let user = try await client.getUser(token: answer.value, userID: "me")
        let expected = integration.hosts.first { $0.id == host }?.user.lowercased()
        guard expected == user.id.lowercased() || expected == user.email?.lowercased() else {
            throw SitroomError(
                .badConfig,
                "the code was approved by Zoom user \(user.email ?? user.id), but host \(host) is \(expected ?? "?"); sign in as that user"
            )
        }
        let token = StoredToken(
            accessToken: answer.value,
            expiresAt: issued + answer.expiresIn,
            refreshToken: answer.refreshToken,
            issuedAt: issued
        )
        let authorization = HostAuthorization(
            state: .active,
            reason: nil,
            userID: user.id,
            email: user.email,
            since: clock.now()
        )
        try store.write { txn in
            try txn.integrations.putHostAuthorization(authorization, name, host: host)
            try txn.integrations.deletePendingAuthorization(name, host: host)
        }
        try commit(token, key: tokenKey(name, host: host), integration: name, host: host, clearsMissingScope: true)
        logger.info("host authorized", metadata: ["integration": "\(name)", "host": "\(host)"])
        return "\(host) of \(name) authorized as \(user.email ?? user.id)"
    }

    /// The hosts of a zoom-oauth integration that can take rooms (authorized and not in need of
    /// re-authorization); `nil` for zoom-s2s, whose hosts need no authorization of their own.
    public func authorizedHosts(_ name: String) throws -> Set<String>? {
        guard let integration = integrations[name], integration.kind == .zoomOAuth else { return nil }
        let store = self.store
        return try store.read { txn in
            var hosts: Set<String> = []
            for host in integration.hosts {
                if let record = try txn.integrations.hostAuthorization(name, host: host.id),
                    record.state == .active
                {
                    hosts.insert(host.id)
                }
            }
            return hosts
        }
    }

    /// Host authorizations of an integration, for `integration show`.
    public func hostAuthorizations(_ name: String) throws -> [String: HostAuthorization] {
        guard let integration = integrations[name] else { return [:] }
        let store = self.store
        return try store.read { txn in
            var all: [String: HostAuthorization] = [:]
            for host in integration.hosts {
                all[host.id] = try txn.integrations.hostAuthorization(name, host: host.id)
            }
            return all
        }
    }

    private func oauthIntegration(_ name: String, host: String) throws -> (IntegrationConfig, ZoomClient) {
        guard let integration = integrations[name], let client = clients[name] else {
            throw SitroomError(.notFound, "no integration named \(name)")
        }
        guard integration.kind == .zoomOAuth else {
            throw SitroomError(.badCommand, "\(name) is a zoom-s2s integration: it needs no per-host authorization")
        }
        guard integration.hosts.contains(where: { $0.id == host }) else {
            throw SitroomError(.notFound, "no host \(host) in the pool of \(name)")
        }
        return (integration, client)
    }

    /// `integration reauthorize NAME`: zoom-s2s asks for a token again now (and is `active` when it gets one);
    /// zoom-oauth starts the authorization of every host again. Rooms are kept either way.
    /// - Returns: a line (zoom-s2s) or the authorization URLs (zoom-oauth) for the admin.
    public func reauthorize(_ name: String) async throws -> String {
        guard let integration = integrations[name] else {
            throw SitroomError(.notFound, "no integration named \(name)")
        }
        switch integration.kind {
        case .zoomS2S:
            let store = self.store
            let stored = records[name]
            let before = stored?.state ?? .pendingAuthorization
            let record = IntegrationRecord(state: .pendingAuthorization, reason: nil, since: clock.now())
            try store.write { txn in
                try txn.integrations.putRecord(record, for: name)
                try txn.tokens.delete(TokenID(integration: name, host: nil))
            }
            records[name] = record
            tokens[TokenID(integration: name, host: nil)] = nil
            do {
                _ = try await accessToken(name)
            } catch {
                // A refused attempt changes nothing: the integration keeps the state it had, with its reason and
                // what to do (the admin sees the new error in the command's answer). A record written meanwhile
                // (the refusal judged by the token request itself) stays.
                if let previous = stored, records[name] == record {
                    try? store.write { txn in try txn.integrations.putRecord(previous, for: name) }
                    records[name] = previous
                }
                throw error
            }
            // "again" only for an integration that had been active and fell out of it: a first token is news.
            switch before {
            case .pendingAuthorization: return "\(name) is active"
            case .active: return "\(name) is active (with a new access token)"
            case .needsReauthorization, .missingScope: return "\(name) is active again"
            }
        case .zoomOAuth:
            var lines: [String] = []
            for host in integration.hosts {
                let url = try beginAuthorization(name, host: host.id)
                lines.append("\(host.id) (\(host.user)): open \(url)")
                lines.append("  then: sitroomctl integration authorize \(name) \(host.id) --code -")
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Applies a verified `app_deauthorized` event: the tokens it covers are deleted and the integration (or
    /// the host of that Zoom user) marked `needs_reauthorization`.
    /// - Returns: the integrations and hosts affected (host `nil`: the whole integration).
    public func deauthorize(_ event: AppDeauthorized) throws -> [(integration: String, host: String?)] {
        var affected: [(integration: String, host: String?)] = []
        for (name, integration) in integrations.sorted(by: { $0.key < $1.key })
        where integration.clientID == event.clientID {
            switch integration.kind {
            case .zoomS2S:
                guard integration.accountID == nil || integration.accountID == event.accountID else { continue }
                _ = try markNeedsReauthorization(
                    name,
                    reason: "Zoom deauthorized the app (app_deauthorized)",
                    advice:
                        "authorize the app again in the Zoom App Marketplace, then `sitroomctl integration reauthorize \(name)`"
                )
                affected.append((name, nil))
            case .zoomOAuth:
                let authorizations = try hostAuthorizations(name)
                for host in integration.hosts {
                    let record = authorizations[host.id]
                    guard event.userID == nil || record?.userID == event.userID else { continue }
                    _ = try markNeedsReauthorization(
                        name,
                        host: host.id,
                        reason: "Zoom deauthorized the app for this user"
                    )
                    affected.append((name, host.id))
                }
            }
        }
        return affected
    }

    /// Pacing within Zoom's per-account rate (`rate_limit.medium_per_second`, default 20): reserves the next
    /// free slot of the integration and returns how long the caller waits for it.
    /// - Returns: seconds to wait before sending (0 when a slot is free now).
    public func reserveRequestSlot(_ name: String) -> Double {
        let rate = Double(max(1, integrations[name]?.mediumPerSecond ?? 20))
        let now = clock.now()
        let slot = max(now, (nextSlot[name] ?? now))
        nextSlot[name] = slot + 1 / rate
        return slot - now
    }

    /// Forgets the cached access token (Zoom answered 401 code 124), so the next call gets a new one; a
    /// zoom-oauth pair keeps its refresh token.
    /// - Parameter ifValue: the refused token; when given, a different (newer) token is kept, so many rooms
    ///   refused at once lead to one new token, not one each.
    public func invalidateToken(_ name: String, host: String? = nil, ifValue refused: String? = nil) throws {
        let key = tokenKey(name, host: host)
        if let refused, let current = tokens[key], current.accessToken != refused { return }
        tokens[key] = nil
        let store = self.store
        try store.write { txn in
            let stored = try txn.tokens.get(key)
            if let refused, let stored, stored.accessToken != refused { return }
            if var stored, stored.refreshToken != nil {
                stored.expiresAt = 0
                try txn.tokens.put(stored, for: key)
            } else {
                try txn.tokens.delete(key)
            }
        }
    }

    /// Marks the integration (or, for zoom-oauth, one host) `needs_reauthorization` with Zoom's words, and
    /// deletes the tokens it covers.
    /// - Parameter advice: what an admin should do (from the table of Zoom answers); shown by `status` and
    ///   `integration show`.
    /// - Returns: true when the state changed (so admins are told once).
    @discardableResult
    public func markNeedsReauthorization(
        _ name: String,
        host: String? = nil,
        reason: String,
        advice: String? = nil
    ) throws
        -> Bool
    {
        guard let integration = integrations[name] else { return false }
        let store = self.store
        if integration.kind == .zoomOAuth, let host {
            let changed: Bool = try store.write { txn in
                var record =
                    try txn.integrations.hostAuthorization(name, host: host)
                    ?? HostAuthorization(state: .pendingAuthorization, since: clock.now())
                guard record.state != .needsReauthorization else { return false }
                record.state = .needsReauthorization
                record.reason = reason
                record.since = clock.now()
                try txn.integrations.putHostAuthorization(record, name, host: host)
                try txn.tokens.delete(tokenKey(name, host: host))
                return true
            }
            tokens[tokenKey(name, host: host)] = nil
            if changed {
                logger.warning(
                    "host needs re-authorization",
                    metadata: ["integration": "\(name)", "host": "\(host)", "reason": "\(reason)"]
                )
            }
            return changed
        }
        guard records[name]?.state != .needsReauthorization else { return false }
        let record = IntegrationRecord(state: .needsReauthorization, reason: reason, since: clock.now(), advice: advice)
        try store.write { txn in
            try txn.integrations.putRecord(record, for: name)
            try txn.tokens.deleteAll(of: name)
        }
        records[name] = record
        tokens = tokens.filter { $0.key.integration != name }
        logger.warning(
            "integration needs re-authorization",
            metadata: ["integration": "\(name)", "reason": "\(reason)"]
        )
        return true
    }

    /// Marks the integration `missing_scope` (an API call answered 4711 "does not contain scopes:[...]"): the app
    /// lacks a scope, every room through it would fail the same way, and re-authorizing alone does not help. Its
    /// tokens are kept (they prove nothing more); an admin adds the scope and runs `integration reauthorize`.
    /// - Parameters:
    ///   - scopes: the scopes Zoom named; a second answer naming other scopes adds them (admins are not told again).
    ///   - reason: Zoom's words; advice: what to do (from the table of Zoom answers).
    /// - Returns: true when the integration was not `missing_scope` before (so admins are told once).
    @discardableResult
    public func markMissingScope(_ name: String, scopes: [String], reason: String, advice: String) throws -> Bool {
        guard integrations[name] != nil else { return false }
        let previous = records[name]
        let wasMissing = previous?.state == .missingScope
        let known = wasMissing ? previous?.missingScopes ?? [] : []
        let merged = known + scopes.filter { !known.contains($0) }
        if wasMissing && merged == known { return false }
        let record = IntegrationRecord(
            state: .missingScope,
            reason: reason,
            since: wasMissing ? previous?.since ?? clock.now() : clock.now(),
            advice: advice,
            missingScopes: merged
        )
        let store = self.store
        try store.write { txn in try txn.integrations.putRecord(record, for: name) }
        records[name] = record
        logger.warning(
            "integration lacks a scope",
            metadata: ["integration": "\(name)", "scopes": "\(merged.joined(separator: " "))", "reason": "\(reason)"]
        )
        return !wasMissing
    }

    // MARK: Idle zoom-oauth hosts

    /// A zoom-oauth host whose pair was refreshed by ``refreshIdleHosts()`` but refused.
    public struct IdleRefreshFailure: Sendable {
        public var integration: String
        public var host: String
        public var error: ZoomError
    }

    /// Refreshes every authorized zoom-oauth host whose token pair is older than its integration's
    /// `refresh_idle_after` (pairs stored without an issue time count as old), so a host that takes no rooms for
    /// months never finds its refresh token expired (Zoom does not reliably document the lifetime; sitroom assumes
    /// it may be as short as 90 days). A refresh under way for the host is awaited instead of starting another.
    /// - Returns: the hosts whose refresh was refused as invalid (now `needs_reauthorization`, for the caller to
    ///   tell the admins), and how many pairs were refreshed.
    /// - Complexity: one LMDB read per zoom-oauth host, one refresh per host due.
    public func refreshIdleHosts() async -> (refreshed: Int, refused: [IdleRefreshFailure]) {
        var refreshed = 0
        var refused: [IdleRefreshFailure] = []
        let now = clock.now()
        for (name, integration) in integrations.sorted(by: { $0.key < $1.key }) where integration.kind == .zoomOAuth {
            // A failed read is logged and the host skipped this round (the next round reads again), never taken for
            // "not authorized".
            let authorized: Set<String>
            do { authorized = try authorizedHosts(name) ?? [] } catch {
                logger.error(
                    "cannot read the authorized hosts",
                    metadata: ["integration": "\(name)", "error": "\(error)"]
                )
                continue
            }
            for host in integration.hosts where authorized.contains(host.id) {
                let key = tokenKey(name, host: host.id)
                let token: StoredToken?
                do { token = try readStoredToken(key) } catch {
                    logger.error(
                        "cannot read a host's token",
                        metadata: ["integration": "\(name)", "host": "\(host.id)", "error": "\(error)"]
                    )
                    continue
                }
                guard let stored = token, let refreshToken = stored.refreshToken,
                    Self.isIdleRefreshDue(issuedAt: stored.issuedAt, now: now, after: integration.refreshIdleAfter),
                    let client = clients[name]
                else { continue }
                do {
                    if let task = inFlight[key] {
                        _ = try await task.value
                    } else {
                        let task = Task {
                            try await self.refreshPair(
                                name,
                                host: host.id,
                                integration: integration,
                                client: client,
                                using: refreshToken
                            )
                        }
                        inFlight[key] = task
                        defer { inFlight[key] = nil }
                        _ = try await task.value
                    }
                    refreshed += 1
                    logger.info(
                        "idle host token pair refreshed",
                        metadata: ["integration": "\(name)", "host": "\(host.id)"]
                    )
                } catch let error as ZoomError where error.answer.refusesAuthorization {
                    let decision = error.decision(now: clock.now(), integration: name, host: host.id)
                    if (try? markNeedsReauthorization(
                        name,
                        host: host.id,
                        reason: decision.reason,
                        advice: decision.advice
                    )) == true {
                        refused.append(IdleRefreshFailure(integration: name, host: host.id, error: error))
                    }
                } catch {
                    // Transient (Zoom unreachable, 5xx): the pair is still valid; the next run tries again.
                    logger.warning(
                        "cannot refresh an idle host token pair",
                        metadata: ["integration": "\(name)", "host": "\(host.id)", "error": "\(error)"]
                    )
                }
            }
        }
        return (refreshed, refused)
    }

    /// Whether a pair issued at `issuedAt` (seconds since 1970; `nil`: unknown, so old) is due for an idle refresh.
    static func isIdleRefreshDue(issuedAt: Double?, now: Double, after: Double) -> Bool {
        guard let issuedAt else { return true }
        return now - issuedAt >= after
    }

    /// The shortest `refresh_idle_after` of the zoom-oauth integrations (seconds), or `nil` when there are none:
    /// how often ``refreshIdleHosts()`` is worth running.
    public func shortestIdleRefresh() -> Double? {
        integrations.values.filter { $0.kind == .zoomOAuth }.map(\.refreshIdleAfter).min()
    }

    private func readStoredToken(_ key: TokenID) throws -> StoredToken? {
        let store = self.store
        return try store.read { txn in try txn.tokens.get(key) }
    }

    /// Reads a secret file, refusing one that is not a regular file of mode 0600 or stricter (as ssh refuses a key).
    /// - Returns: the file's content without surrounding white space.
    /// - Throws: ``SitroomError`` `.badConfig` naming the key and the file (never the content).
    public static func readSecret(_ path: String, key: String) throws -> String {
        try SecretFile.read(path, key: key)
    }
}
