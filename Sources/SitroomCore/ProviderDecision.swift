/// What a video provider's answer to one request means for sitroom, in terms no provider owns: for the request,
/// the host it was made for, the integration (the provider app), and what the room does next. The provider module
/// (SitroomZoom: its table of Zoom answers, ``ZoomAnswer``) decides which; the room machine (SitroomRooms) acts on
/// it. This is the seam that lets another video provider be a module of its own.
public struct ProviderDecision: Sendable, Hashable {
    /// What the answer means for the request itself.
    public enum Request: String, Sendable, Hashable {
        /// Refused; nothing changed at the provider.
        case refused
        /// It may have been carried out (a create may have made a meeting): look before doing it again.
        case mayHaveHappened = "may_have_happened"
        /// What it asked for is so already (the meeting is gone or has ended): count it as done.
        case done
    }

    /// What the answer means for the host the request was made for.
    public enum Host: String, Sendable, Hashable {
        case none
        /// Skipped by new rooms for a while (circuit breaker).
        case coolDown = "cool_down"
        /// Out of its daily create quota until 00:00 UTC.
        case outOfQuota = "out_of_quota"
        /// Cannot host until its configuration changes.
        case unusable
        /// Its user must authorize the app again (user-authorized apps).
        case needsReauthorization = "needs_reauthorization"
    }

    /// What the answer means for the integration.
    public enum Integration: String, Sendable, Hashable {
        case none
        /// No token can be had until an admin acts.
        case needsReauthorization = "needs_reauthorization"
        /// Every call needing a scope the app lacks fails the same way until it is added.
        case missingScope = "missing_scope"
    }

    /// What the room does next.
    public enum Next: String, Sendable, Hashable {
        /// Get a new access token and try once more.
        case retryWithNewToken = "retry_with_new_token"
        /// Wait and try again on the same host; fail after a few tries.
        case retryLater = "retry_later"
        /// Give up the host and lease another (or wait for one).
        case nextHost = "next_host"
        /// Give up the integration and fail over to the next that serves the incident.
        case nextIntegration = "next_integration"
        /// Create again without alternative hosts, and say so in the room.
        case createWithoutAlternativeHosts = "create_without_alternative_hosts"
        /// Fail the room with the provider's words and the advice.
        case fail
        /// Carry on as if the request succeeded.
        case carryOn = "carry_on"
    }

    public var request: Request
    public var host: Host
    public var integration: Integration
    public var next: Next
    /// The provider's answer in words (its code and message), for the room's reason and the log.
    public var reason: String
    /// What the operator should do.
    public var advice: String
    /// Seconds to wait before trying again, when the provider said (`Retry-After`).
    public var retryIn: Double?
    /// The scopes the app lacks, for ``Integration/missingScope``.
    public var missingScopes: [String]

    public init(
        request: Request,
        host: Host,
        integration: Integration,
        next: Next,
        reason: String,
        advice: String,
        retryIn: Double? = nil,
        missingScopes: [String] = []
    ) {
        self.request = request
        self.host = host
        self.integration = integration
        self.next = next
        self.reason = reason
        self.advice = advice
        self.retryIn = retryIn
        self.missingScopes = missingScopes
    }

    /// The integration, or the host's user, must authorize the app again.
    public var refusesAuthorization: Bool { integration == .needsReauthorization || host == .needsReauthorization }

    /// The request may have been carried out although no success came back.
    public var outcomeUnknown: Bool { request == .mayHaveHappened }
}
