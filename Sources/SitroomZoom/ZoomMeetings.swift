import Foundation
import SitroomCore

/// Zoom's side of the provider seam (``MeetingProvider``): one host's meetings through the Meeting API, with an
/// access token in hand. Every Zoom error becomes a ``ProviderFailure`` whose ``ProviderDecision`` comes from the
/// table of Zoom answers (``ZoomError/providerDecision(now:integration:host:incident:)``); answers that table counts
/// as done (3001 gone; on delete, 3007 ended and not deletable) are success.
public struct ZoomMeetings: MeetingProvider {
    /// The integration's `meeting:` settings that Zoom's create request carries.
    public struct Options: Sendable, Hashable {
        public var waitingRoom: Bool
        public var joinBeforeHost: Bool
        /// `none`, `local` or `cloud`.
        public var autoRecording: String
        /// Characters of a random passcode, or `nil` for none.
        public var passcodeLength: Int?

        public init(waitingRoom: Bool, joinBeforeHost: Bool, autoRecording: String, passcodeLength: Int?) {
            self.waitingRoom = waitingRoom
            self.joinBeforeHost = joinBeforeHost
            self.autoRecording = autoRecording
            self.passcodeLength = passcodeLength
        }
    }

    let client: ZoomClient
    let token: String
    /// The host's Zoom user (email or id), whose meetings these are.
    let user: String?
    let options: Options
    let clock: any WallClock
    /// Named in the decisions' reasons and advice.
    let integration: String
    let host: String?
    let incident: String?

    /// - Parameters:
    ///   - token: the access token every call is made with (``ProviderFailure/credential``).
    ///   - user: the host's Zoom user; without it a create fails and no meeting is found by marker.
    public init(
        client: ZoomClient,
        token: String,
        user: String?,
        options: Options,
        clock: any WallClock,
        integration: String,
        host: String?,
        incident: String?
    ) {
        self.client = client
        self.token = token
        self.user = user
        self.options = options
        self.clock = clock
        self.integration = integration
        self.host = host
        self.incident = incident
    }

    /// A failure of the token endpoint (or a refusal before any request), as the seam reports it: nothing was sent.
    public static func tokenFailure(
        _ error: ZoomError,
        now: Double,
        integration: String,
        host: String?,
        incident: String?
    ) -> ProviderFailure {
        ProviderFailure(
            decision: error.providerDecision(now: now, integration: integration, host: host, incident: incident),
            sent: false,
            credential: nil,
            detail: "\(error)"
        )
    }

    private func failure(_ error: ZoomError) -> ProviderFailure {
        let sent: Bool
        if case .transport(_, let maySent) = error.kind { sent = maySent } else { sent = true }
        return ProviderFailure(
            decision: error.providerDecision(
                now: clock.now(),
                integration: integration,
                host: host,
                incident: incident
            ),
            sent: sent,
            credential: token,
            detail: "\(error)"
        )
    }

    /// Runs `call`, its Zoom error turned into a ``ProviderFailure``.
    private func zoom<T>(_ call: () async throws(ZoomError) -> T) async throws(ProviderFailure) -> T {
        do { return try await call() } catch { throw failure(error) }
    }

    /// Runs `call`; an answer the table of Zoom answers counts as done is success.
    private func done(_ call: () async throws(ZoomError) -> Void) async throws(ProviderFailure) {
        do { try await call() } catch {
            if error.answer.rule.request != .done { throw failure(error) }
        }
    }

    /// Zoom Meeting API "Create a meeting" (`POST /users/{userId}/meetings`): a scheduled meeting, its fields cut to
    /// Zoom's limits (``ZoomLimits``) at a character boundary, the marker first in the agenda (list answers keep only
    /// its first 250 characters).
    public func create(_ plan: MeetingPlan) async throws(ProviderFailure) -> MeetingInfo {
        guard let user else {
            throw ProviderFailure(
                decision: ProviderDecision(
                    request: .refused,
                    host: .none,
                    integration: .none,
                    next: .fail,
                    reason: "the room has no host user",
                    advice: "`sitroomctl room retry INCIDENT`"
                ),
                sent: false,
                credential: nil,
                detail: "no host user"
            )
        }
        let request = MeetingRequest(
            topic: MeetingRequest.cut(plan.topic, to: ZoomLimits.topic),
            startTime: rfc3339UTC(plan.startTime),
            duration: 60,
            password: options.passcodeLength.map { MeetingRequest.passcode(length: $0) },
            agenda: MeetingRequest.cut("\(plan.marker)\n\(plan.description)", to: ZoomLimits.agenda),
            settings: .init(
                waitingRoom: options.waitingRoom,
                joinBeforeHost: options.joinBeforeHost,
                autoRecording: options.autoRecording,
                alternativeHosts: MeetingRequest.alternativeHosts(plan.alternativeHosts, excluding: user)
            )
        )
        let made = try await zoom { () async throws(ZoomError) in
            try await client.createMeeting(token: token, userID: user, request)
        }
        return MeetingInfo(made)
    }

    /// "List meetings" (`GET /users/{userId}/meetings`), `scheduled` then `live`, filtered by the marker in the
    /// agenda.
    public func meetings(markedWith marker: String) async throws(ProviderFailure) -> [Int64] {
        guard let user else { return [] }
        var found: [Int64] = []
        for type in ["scheduled", "live"] {
            let listed = try await zoom { () async throws(ZoomError) in
                try await client.listMeetings(token: token, userID: user, type: type)
            }
            for meeting in listed where meeting.agenda?.contains(marker) == true && !found.contains(meeting.id) {
                found.append(meeting.id)
            }
        }
        return found
    }

    /// "Get a meeting" (`GET /meetings/{meetingId}`).
    public func meeting(_ id: Int64) async throws(ProviderFailure) -> MeetingInfo {
        MeetingInfo(
            try await zoom { () async throws(ZoomError) in try await client.getMeeting(token: token, meetingID: id) }
        )
    }

    /// "Get a meeting"'s `status`: `started`, or `waiting` for a meeting not started or ended.
    public func status(of id: Int64) async throws(ProviderFailure) -> ProviderMeetingStatus {
        let meeting = try await zoom { () async throws(ZoomError) in
            try await client.getMeeting(token: token, meetingID: id)
        }
        switch meeting.status {
        case "started": return .started
        case "waiting": return .waiting
        default: return .other(meeting.status ?? "-")
        }
    }

    /// "Update meeting status" (`PUT /meetings/{meetingId}/status`, `end`), then "Delete a meeting" when asked.
    public func end(_ id: Int64, delete: Bool) async throws(ProviderFailure) {
        try await done { () async throws(ZoomError) in try await client.endMeeting(token: token, meetingID: id) }
        if delete { try await self.delete(id) }
    }

    /// "Delete a meeting" (`DELETE /meetings/{meetingId}`).
    public func delete(_ id: Int64) async throws(ProviderFailure) {
        try await done { () async throws(ZoomError) in try await client.deleteMeeting(token: token, meetingID: id) }
    }

    /// Dashboards "List meeting participants" (`type=live`), those still in.
    public func participants(in id: Int64) async throws(ProviderFailure) -> [ProviderParticipant] {
        let listed = try await zoom { () async throws(ZoomError) in
            try await client.liveParticipants(token: token, meetingID: id)
        }
        return listed.filter { $0.leftAt == nil }.map {
            ProviderParticipant(name: $0.name, email: $0.email, joinedAt: $0.joinedAt)
        }
    }
}

extension MeetingInfo {
    /// The fields sitroom keeps of Zoom's meeting.
    public init(_ meeting: Meeting) {
        self.init(id: meeting.id, joinURL: meeting.joinURL, passcode: meeting.password)
    }
}
