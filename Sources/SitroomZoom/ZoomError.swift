import Curl

/// A failed Zoom call, classified by what sitroom should do about it.
///
/// Zoom's error bodies are `{"code": integer, "message": string}` (shared/zoom-api/README.md); OAuth
/// errors may carry `reason`/`error` instead.
public struct ZoomError: Error, Sendable, CustomStringConvertible {
    /// What the failure means for sitroom.
    public enum Kind: Sendable, Hashable {
        /// Zoom answered with an error status: the request was refused and changed nothing.
        case api(status: Int, code: Int?, message: String)
        /// The OAuth token endpoint refused the credentials or grant.
        case oauth(status: Int, code: Int?, message: String)
        /// The request failed in transport; `maySent` tells whether it may have reached Zoom.
        case transport(message: String, maySent: Bool)
        /// A 2xx answer without the fields sitroom needs (never a room with a placeholder link).
        case invalidResponse(message: String)
    }

    public var kind: Kind
    /// Seconds to wait before retrying, from `Retry-After`.
    public var retryAfter: Double?

    public init(_ kind: Kind, retryAfter: Double? = nil) {
        self.kind = kind
        self.retryAfter = retryAfter
    }

    /// Zoom's `code`, if the answer had one.
    public var code: Int? {
        switch kind {
        case .api(_, let code, _), .oauth(_, let code, _): return code
        default: return nil
        }
    }

    /// HTTP status, if Zoom answered.
    public var status: Int? {
        switch kind {
        case .api(let status, _, _), .oauth(let status, _, _): return status
        default: return nil
        }
    }

    /// 401 code 124 "Invalid access token." (refresh the token and retry once).
    public var isInvalidAccessToken: Bool { status == 401 || code == 124 }

    /// The daily create/update limit: documented as code 300, answered as HTTP 429 with code 429 (README).
    public var isDailyLimit: Bool {
        if code == 300 { return true }
        if status == 429, case .api(_, _, let message) = kind, message.lowercased().contains("daily") { return true }
        return false
    }

    /// 429 per-second rate limit: wait `Retry-After` (or back off) and retry.
    public var isRateLimited: Bool { status == 429 && !isDailyLimit }

    /// The host cannot host: 1001 user does not exist, 3161 no hosting rights.
    public var isHostUnusable: Bool { code == 1001 || code == 3161 }

    /// The meeting is gone (3001) — fine when ending or deleting.
    public var isMeetingGone: Bool { code == 3001 }

    /// OAuth refusals that only re-integration fixes: 4700, 4702, 4704, 4711, 4717, or 401/400 from the token endpoint.
    public var needsReauthorization: Bool {
        if case .oauth(let status, let code, _) = kind {
            if let code, [4700, 4702, 4704, 4705, 4709, 4711, 4717].contains(code) { return true }
            return status == 400 || status == 401 || status == 403
        }
        return false
    }

    /// Transient: 5xx, timeouts, refused connections: retry with capped exponential backoff.
    public var isTransient: Bool {
        switch kind {
        case .transport: return true
        case .api(let status, _, _), .oauth(let status, _, _): return status >= 500 || isRateLimited
        case .invalidResponse: return false
        }
    }

    /// Whether a create may have happened at Zoom although no success reached us (lost reply, 5xx).
    public var outcomeUnknown: Bool {
        switch kind {
        case .transport(_, let maySent): return maySent
        case .api(let status, _, _): return status >= 500
        default: return false
        }
    }

    public var description: String {
        switch kind {
        case .api(let status, let code, let message):
            return "Zoom API error \(code.map(String.init) ?? "-") (HTTP \(status)): \(message)"
        case .oauth(let status, let code, let message):
            return "Zoom OAuth error \(code.map(String.init) ?? "-") (HTTP \(status)): \(message)"
        case .transport(let message, _):
            return "Zoom unreachable: \(message)"
        case .invalidResponse(let message):
            return "unusable answer from Zoom: \(message)"
        }
    }
}
