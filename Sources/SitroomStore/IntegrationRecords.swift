import SitroomCore

// What the store keeps of integrations between runs (the `integrations` table; ``IntegrationStateRepository``).

/// The runtime state of an integration (SPEC §5).
public enum IntegrationState: String, Sendable, Codable, CaseIterable {
    /// Configured, not yet proven by a token (zoom-s2s) or a host's authorization (zoom-oauth).
    case pendingAuthorization = "pending_authorization"
    /// Takes rooms.
    case active
    /// Zoom refused its credentials or a host's authorization: an admin must act (`integration reauthorize`).
    case needsReauthorization = "needs_reauthorization"
    /// The Zoom app lacks a scope an API call needs (API-side 4711): new rooms fail over to the next integration
    /// until an admin adds it in the app's Scopes tab and runs `integration reauthorize` (docs/zoom.md).
    case missingScope = "missing_scope"

    /// Whether new rooms may be made through an integration in this state.
    public var takesRooms: Bool { self == .active || self == .pendingAuthorization }
}

/// What sitroom keeps of an integration between runs.
public struct IntegrationRecord: Sendable, Codable, Hashable {
    /// The integration's state.
    public var state: IntegrationState
    /// Zoom's words for the last refusal, when `needs_reauthorization` or `missing_scope`.
    public var reason: String?
    /// Seconds since 1970 since when the state holds.
    public var since: Double
    /// What an admin should do about the state (from the table of Zoom answers, `ZoomAnswer` in SitroomZoom); `nil` when nothing.
    public var advice: String?
    /// `missing_scope`: the scopes Zoom named.
    public var missingScopes: [String]?

    /// - Parameters: as the properties.
    public init(
        state: IntegrationState,
        reason: String? = nil,
        since: Double,
        advice: String? = nil,
        missingScopes: [String]? = nil
    ) {
        self.state = state
        self.reason = reason
        self.since = since
        self.advice = advice
        self.missingScopes = missingScopes
    }

    /// What an admin should do now: the stored advice, else what the state calls for.
    public func nextStep(integration name: String, kind: String) -> String? {
        if let advice { return advice }
        switch state {
        case .active: return nil
        case .pendingAuthorization:
            return kind == "zoom-oauth"
                ? "authorize each host: `sitroomctl integration authorize \(name) HOST`"
                : "none: it becomes active at its first token (`sitroomctl integration reauthorize \(name)` asks now)"
        case .needsReauthorization:
            return "fix what the reason names, then `sitroomctl integration reauthorize \(name)`"
        case .missingScope:
            return
                "add the missing scope in the Zoom app's Scopes tab, then `sitroomctl integration reauthorize \(name)`"
        }
    }
}

/// An authorization of a zoom-oauth host under way: the PKCE verifier and `state` of one `integration authorize`
/// (kept in the store only, for the 5 minutes Zoom's code is valid).
public struct PendingAuthorization: Sendable, Codable, Hashable {
    /// The OAuth 2.0 `state` sent with the authorization request.
    public var state: String
    /// The PKCE `code_verifier` (RFC 7636).
    public var verifier: String
    /// Seconds since 1970.
    public var createdAt: Double

    /// - Parameters: as the properties.
    public init(state: String, verifier: String, createdAt: Double) {
        self.state = state
        self.verifier = verifier
        self.createdAt = createdAt
    }
}

/// What sitroom knows of a zoom-oauth host's authorization.
public struct HostAuthorization: Sendable, Codable, Hashable {
    /// The host's state (``IntegrationState``, as an integration's).
    public var state: IntegrationState
    /// Zoom's words for the last refusal, when `needs_reauthorization`.
    public var reason: String?
    /// Zoom's user id, from `GET /users/me` at authorization (matched against `app_deauthorized`).
    public var userID: String?
    /// The Zoom user's email, from `GET /users/me`.
    public var email: String?
    /// Seconds since 1970 since when the state holds.
    public var since: Double

    /// - Parameters: as the properties.
    public init(
        state: IntegrationState,
        reason: String? = nil,
        userID: String? = nil,
        email: String? = nil,
        since: Double
    ) {
        self.state = state
        self.reason = reason
        self.userID = userID
        self.email = email
        self.since = since
    }
}
