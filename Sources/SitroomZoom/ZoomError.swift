import Curl
import Foundation

/// A Zoom call that did not succeed: what Zoom answered (or that it did not), as the client read it.
///
/// What sitroom does about it is not decided here but by the one table of Zoom answers, ``ZoomAnswer``:
/// ``answer`` names the row, ``decision(now:integration:host:incident:)`` fills it in.
///
/// Zoom's error bodies are `{"code": integer, "message": string}`, validation errors add
/// `errors: [{field, message}]`; the token endpoint may answer `{"reason": "...", "error": "invalid_grant"}` with
/// no `code` at all (developers.zoom.us/docs/integrations/oauth-error-messages/; docs/zoom.md).
public struct ZoomError: Error, Sendable, Hashable, CustomStringConvertible {
    /// How the call ended.
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

    /// One entry of a validation error's `errors[]`: the field Zoom refused and why.
    public struct FieldError: Sendable, Hashable, CustomStringConvertible {
        /// Zoom's name of the field, e.g. `topic`, `password`, `settings.alternative_hosts`.
        public var field: String
        public var message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }

        public var description: String { field.isEmpty ? message : "\(field): \(message)" }
    }

    /// `Retry-After` as Zoom sends it: seconds, or a time (RFC 3339 `2020-05-31T00:00:00Z` with the daily limit;
    /// an HTTP-date is read too) (developers.zoom.us/docs/api/rate-limits/).
    public enum RetryAfter: Sendable, Hashable {
        case seconds(Double)
        /// Seconds since 1970.
        case time(Double)

        /// Parses a `Retry-After` value; `nil` when it is neither a number of seconds nor a time.
        public init?(header: String) {
            let text = header.trimmingCharacters(in: .whitespaces)
            if let seconds = Double(text), seconds >= 0, seconds.isFinite {
                self = .seconds(seconds)
            } else if let date = try? Date(text, strategy: .iso8601) {
                self = .time(date.timeIntervalSince1970)
            } else if let date = Self.httpDate.date(from: text) {
                self = .time(date.timeIntervalSince1970)
            } else {
                return nil
            }
        }

        /// Seconds to wait from `now` (seconds since 1970); never negative.
        public func seconds(from now: Double) -> Double {
            switch self {
            case .seconds(let seconds): return seconds
            case .time(let time): return max(0, time - now)
            }
        }

        /// RFC 9110 §5.6.7 IMF-fixdate, `Sun, 31 May 2020 00:00:00 GMT`.
        private static var httpDate: DateFormatter {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            return formatter
        }
    }

    public var kind: Kind
    /// The operation that failed (`nil` when not known, e.g. an error made up by a caller).
    public var operation: ZoomOperation?
    /// For ``ZoomOperation/token``: the grant asked for (`account_credentials`, `authorization_code`, `refresh_token`).
    public var grant: String?
    /// A validation error's `errors[]`.
    public var fieldErrors: [FieldError]
    /// The token endpoint's `error` member (`invalid_grant`, `invalid_client`, `unsupported_grant_type`, ...).
    public var oauthError: String?
    /// The `X-RateLimit-Type` header of a 429 (`Daily-limit`, `QPS`, ...), when Zoom sent it.
    public var rateLimitType: String?
    /// `Retry-After`, when Zoom sent one.
    public var retryAfter: RetryAfter?
    /// A create answered 2xx with a meeting id but nothing usable (``Kind/invalidResponse``), and deleting that meeting
    /// failed too: it may still exist at Zoom, so the room sweeps for its marker (``outcomeUnknown``).
    public var strayMeetingID: Int64? = nil

    public init(
        _ kind: Kind,
        operation: ZoomOperation? = nil,
        grant: String? = nil,
        fieldErrors: [FieldError] = [],
        oauthError: String? = nil,
        rateLimitType: String? = nil,
        retryAfter: RetryAfter? = nil
    ) {
        self.kind = kind
        self.operation = operation
        self.grant = grant
        self.fieldErrors = fieldErrors
        self.oauthError = oauthError
        self.rateLimitType = rateLimitType
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

    /// Zoom's `message` (or the token endpoint's `reason`), or what went wrong in transport.
    public var message: String {
        switch kind {
        case .api(_, _, let message), .oauth(_, _, let message), .transport(let message, _),
            .invalidResponse(let message):
            return message
        }
    }

    /// The row of the table of Zoom answers this answer belongs to.
    public var answer: ZoomAnswer { ZoomAnswer.classify(self) }

    /// Whether a create may have happened at Zoom although no success reached us (lost reply, 5xx).
    public var outcomeUnknown: Bool {
        switch kind {
        case .transport(_, let maySent): return maySent
        case .api(let status, _, _): return status >= 500
        case .invalidResponse: return strayMeetingID != nil
        default: return false
        }
    }

    public var description: String {
        let detail = fieldErrors.isEmpty ? "" : " (" + fieldErrors.map(\.description).joined(separator: "; ") + ")"
        switch kind {
        case .api(let status, let code, let message):
            return "Zoom API error \(code.map(String.init) ?? "-") (HTTP \(status)): \(message)\(detail)"
        case .oauth(let status, let code, let message):
            let error = oauthError.map { " [\($0)]" } ?? ""
            return "Zoom OAuth error \(code.map(String.init) ?? "-") (HTTP \(status)): \(message)\(error)"
        case .transport(let message, _):
            return "Zoom unreachable: \(message)"
        case .invalidResponse(let message):
            return "unusable answer from Zoom: \(message)"
        }
    }
}
