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
        case .createMeeting, .updateMeeting, .meetingStatus, .deleteMeeting:
            return ["meeting:write", "meeting:write:admin"]
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
    var participantSeq = 16_778_240
    /// `http://127.0.0.1:PORT`, used in `api_url`, `join_url` and `start_url`.
    public internal(set) var baseURL: String

    var accessTokens: [String: AccessToken] = [:]
    var refreshTokens: [String: RefreshToken] = [:]
    var codes: [String: AuthorizationCode] = [:]
    var tokenRequests: [String: Int] = [:]
    var tokenFailures: [String: Int] = [:]
    var disabledApps: Set<String> = []
    /// Scopes set by `/_sim/faults` kind `scopes`, by client id; they override the configured ones.
    var appScopes: [String: [String]?] = [:]
    var passcodePolicy: SimConfiguration.PasscodePolicy
    /// `/_sim/faults` kind `refuse_delete_ended`: deleting an ended meeting answers 3007.
    var refuseDeleteEnded = false

    var meetings: [Int64: SimMeeting] = [:]
    var meetingOrder: [Int64] = []
    var usage: [String: UserUsage] = [:]

    var requests: [RequestRecord] = []
    var nextSeq = 1
    var connectionIDs: [String: Int] = [:]

    var clockOffset: TimeInterval = 0
    var rateWindows: [String: (second: Int64, light: Int, medium: Int)] = [:]
    var mediumPerSecond: Int
    var lightPerSecond: Int

    var latency: (seconds: Double, pathPrefix: String)?
    var statusFaults: [StatusFault] = []
    var createReplyFaults: [CreateReplyFault] = []
    var held: [Int: CheckedContinuation<Bool, Never>] = [:]
    var nextHold = 0
    var shuttingDown = false

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
    func scopes(of app: SimConfiguration.App) -> [String]? {
        if let override = appScopes[app.clientID] { return override }
        return app.scopes
    }

    /// The token answer's `scope`: the app's scopes, or what an app with all of them would say.
    func scopeText(_ app: SimConfiguration.App, user: Bool) -> String {
        if let scopes = scopes(of: app) { return scopes.joined(separator: " ") }
        return user ? "meeting:read meeting:write user:read" : "meeting:read:admin meeting:write:admin user:read:admin"
    }

    /// Sets the base URL once the listening port is known.
    public func setBaseURL(_ url: String) { baseURL = url }

    // MARK: Clock

    /// The simulated now: real time plus clock advances.
    public func now() -> Date { Date().addingTimeInterval(clockOffset) }

    func utcDay(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }

    /// Moves the simulated clock forward by `seconds` (days of the daily limit roll over with it).
    public func advanceClock(seconds: TimeInterval) { clockOffset += seconds }
}
