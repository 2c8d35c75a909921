/// The seam between sitroom and a video provider: what a room asks of the provider for one host, with the
/// credentials in hand. Zoom's side is `ZoomMeetings` (module SitroomZoom), made by the `IntegrationRegistry` for a
/// room's integration and host; another provider would be a module of its own with its own conforming type, and the
/// room machine, the provisioner and the notices would not change. Every failure comes as a ``ProviderFailure``: the
/// provider's answer already turned into a ``ProviderDecision`` (what happened, what of the host and the integration,
/// what next), which is all the room machine acts on.
public protocol MeetingProvider: Sendable {
    /// Creates the meeting `plan` describes on the host.
    func create(_ plan: MeetingPlan) async throws(ProviderFailure) -> MeetingInfo
    /// The host's meetings (scheduled and live) whose description carries `marker` (a room's, ``Room/marker``).
    func meetings(markedWith marker: String) async throws(ProviderFailure) -> [Int64]
    /// The meeting `id` as the provider describes it now.
    func meeting(_ id: Int64) async throws(ProviderFailure) -> MeetingInfo
    /// Whether the meeting `id` is under way now.
    func status(of id: Int64) async throws(ProviderFailure) -> ProviderMeetingStatus
    /// Ends the meeting `id`, then deletes it when `delete`; a meeting already gone counts as done.
    func end(_ id: Int64, delete: Bool) async throws(ProviderFailure)
    /// Deletes the meeting `id`; one already gone, or ended and not deletable, counts as done.
    func delete(_ id: Int64) async throws(ProviderFailure)
    /// Who is in the meeting `id` now; fails (with the provider's reason) where the provider's plan does not offer
    /// the list.
    func participants(in id: Int64) async throws(ProviderFailure) -> [ProviderParticipant]
}

/// Where a room's provider calls go: for a room's integration and host, a ``MeetingProvider`` with credentials in
/// hand. In sitroomd, the integration registry (Zoom); in tests, a double.
public protocol MeetingProviderSource: Sendable {
    /// The provider for `integration`'s `host` (the provider's user `user`), for a room of `incident` (named in
    /// decisions).
    /// - Throws: ``ProviderFailure`` (nothing sent) when no credentials may be had; other errors when the
    ///   integration is not configured or the store fails.
    func meetings(
        _ integration: String,
        host: String?,
        user: String?,
        incident: String?
    ) async throws
        -> any MeetingProvider
}

/// A meeting as the provider described it.
public struct MeetingInfo: Sendable, Hashable {
    /// The provider's meeting id.
    public var id: Int64
    /// The link participants join by.
    public var joinURL: String
    public var passcode: String?

    public init(id: Int64, joinURL: String, passcode: String?) {
        self.id = id
        self.joinURL = joinURL
        self.passcode = passcode
    }
}

/// The meeting a room wants, in sitroom's terms; the provider adds its own settings (the integration's `meeting:`).
public struct MeetingPlan: Sendable, Hashable {
    /// The meeting's title, rendered from the integration's `meeting.topic` template.
    public var topic: String
    /// Seconds since 1970: the meeting is scheduled from now.
    public var startTime: Double
    /// The room's marker (``Room/marker``), first in the meeting's description, so the meeting can be found again.
    public var marker: String
    /// The rest of the description (the incident's id and title).
    public var description: String
    /// Emails of those who may host the meeting too (the incident's commanders), the host's own left out.
    public var alternativeHosts: [String]

    public init(topic: String, startTime: Double, marker: String, description: String, alternativeHosts: [String]) {
        self.topic = topic
        self.startTime = startTime
        self.marker = marker
        self.description = description
        self.alternativeHosts = alternativeHosts
    }
}

/// Whether a meeting is under way, as the provider says.
public enum ProviderMeetingStatus: Sendable, Hashable, CustomStringConvertible {
    /// Not started, or ended (its link starts it again).
    case waiting
    case started
    /// A status sitroom does not know (named as the provider gave it).
    case other(String)

    public var description: String {
        switch self {
        case .waiting: return "waiting"
        case .started: return "started"
        case .other(let status): return status
        }
    }
}

/// Someone in a meeting, as the provider lists them.
public struct ProviderParticipant: Sendable, Hashable {
    public var name: String
    /// Lower-cased; `nil` for guests and phone users.
    public var email: String?
    /// Seconds since 1970.
    public var joinedAt: Double

    public init(name: String, email: String?, joinedAt: Double) {
        self.name = name
        self.email = email
        self.joinedAt = joinedAt
    }
}

/// A provider call that did not do what was asked.
public struct ProviderFailure: Error, Sendable, CustomStringConvertible {
    /// What the answer means (``ProviderDecision``).
    public var decision: ProviderDecision
    /// Whether the request itself went out (a refused token means it never did): a create that went out may have
    /// happened.
    public var sent: Bool
    /// The access token the call was made with, dropped if still current when the provider refused it.
    public var credential: String?
    /// The provider's own account of the failure, for logs and notes.
    public var detail: String

    public init(decision: ProviderDecision, sent: Bool, credential: String?, detail: String) {
        self.decision = decision
        self.sent = sent
        self.credential = credential
        self.detail = detail
    }

    public var description: String { detail }
}
