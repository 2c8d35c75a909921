import Foundation
import SitroomCore
import SitroomStore

// The JSON answers of the control commands (`--json`), as Encodable reports; their fields are documented in
// docs/control.md. An absent value is written as `null` (not left out), as the docs promise: each report encodes
// its fields itself, since the synthesized encoding leaves nil out.

/// A JSON object key written as a string literal (`"room_id"`).
struct ReportKey: CodingKey, ExpressibleByStringLiteral {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    init(stringLiteral value: String) { stringValue = value }
}

/// An integration as `status --json`, `integrations --json` and `integration show --json` give it; `hosts` only
/// in `integration show --json`.
struct IntegrationJSON: Encodable {
    /// One host of `integration show --json`.
    struct Host: Encodable {
        var host: String
        var user: String
        var state: String
        /// `by the app (server-to-server)`, `pending_authorization`, or the authorization's state and reason.
        var authorization: String
        var openRooms: Int
        var createsToday: Int

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: ReportKey.self)
            try container.encode(host, forKey: "host")
            try container.encode(user, forKey: "user")
            try container.encode(state, forKey: "state")
            try container.encode(authorization, forKey: "authorization")
            try container.encode(openRooms, forKey: "open_rooms")
            try container.encode(createsToday, forKey: "creates_today")
        }
    }

    var name: String
    var kind: String
    var record: IntegrationRecord
    var hosts: [Host]?

    init(_ entry: (name: String, kind: String, record: IntegrationRecord), hosts: [Host]? = nil) {
        name = entry.name
        kind = entry.kind
        record = entry.record
        self.hosts = hosts
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        try container.encode(name, forKey: "name")
        try container.encode(kind, forKey: "kind")
        try container.encode(record.state.rawValue, forKey: "state")
        try container.encode(record.reason, forKey: "reason")
        try container.encode(rfc3339UTC(record.since), forKey: "since")
        try container.encode(record.nextStep(integration: name, kind: kind), forKey: "advice")
        try container.encode(record.missingScopes ?? [], forKey: "missing_scopes")
        if let hosts { try container.encode(hosts, forKey: "hosts") }
    }
}

/// A room as `rooms --json` (with `present`) and `room show --json` (with ``Detail``) give it.
struct RoomJSON: Encodable {
    /// What `room show --json` adds: the incident, who is told, and the live meeting.
    struct Detail {
        var record: IncidentRecord
        /// `nil` before any event from Zoom: `meeting`, `present`, `attendance` and `others_present` are then `null`.
        var presence: LivePresence?
    }

    var room: Room
    /// Participants in the meeting now (`null` without events from Zoom).
    var present: Int?
    var detail: Detail?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        try container.encode(room.incidentID, forKey: "incident")
        try container.encode(room.id, forKey: "room_id")
        try container.encode(room.state.rawValue, forKey: "state")
        try container.encode(room.reason, forKey: "reason")
        try container.encode(DaemonCore.nextStep(room), forKey: "advice")
        try container.encode(room.note, forKey: "note")
        try container.encode(room.joinURL, forKey: "join_url")
        try container.encode(room.meetingID, forKey: "meeting_id")
        try container.encode(room.passcode, forKey: "passcode")
        try container.encode(room.hostUser, forKey: "host")
        try container.encode(room.hostID, forKey: "host_id")
        try container.encode(room.integration, forKey: "integration")
        try container.encode(rfc3339UTCMillis(room.createdAt), forKey: "created_at")
        try container.encode(rfc3339UTCMillis(room.updatedAt), forKey: "updated_at")
        try container.encode(present, forKey: "present")
        guard let detail else { return }
        try container.encode(detail.record.info.title, forKey: "incident_title")
        try container.encode(detail.record.stage.rawValue, forKey: "stage")
        try container.encode(detail.record.participants.count, forKey: "participants")
        try container.encode(detail.record.unreachable, forKey: "unreachable")
        guard let presence = detail.presence else {
            for key: ReportKey in ["meeting", "attendance", "others_present"] { try container.encodeNil(forKey: key) }
            return
        }
        try container.encode(MeetingJSON(presence), forKey: "meeting")
        try container.encode(presence.standings.map(AttendanceJSON.init), forKey: "attendance")
        try container.encode(presence.others.map(OtherJSON.init), forKey: "others_present")
    }
}

/// `meeting` in `room show --json`: `status` (`waiting`, `started`, `ended`), `started_at`, `ended_at`,
/// `first_join_at` (RFC 3339 or null), `seconds_to_first_join`, `seconds_to_assemble` (from the room ready, or null).
struct MeetingJSON: Encodable {
    let presence: LivePresence

    init(_ presence: LivePresence) { self.presence = presence }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        let live = presence.live
        try container.encode(live.status.rawValue, forKey: "status")
        try container.encode(live.startedAt.map(rfc3339UTCMillis), forKey: "started_at")
        try container.encode(live.endedAt.map(rfc3339UTCMillis), forKey: "ended_at")
        try container.encode(live.firstJoinAt.map(rfc3339UTCMillis), forKey: "first_join_at")
        try container.encode(presence.toFirstJoin, forKey: "seconds_to_first_join")
        try container.encode(presence.toAssemble, forKey: "seconds_to_assemble")
    }
}

/// One participant of `attendance` in `room show --json`: `name`, `email`, `standing` (`joined`, `left`,
/// `not_yet`) and `since` (joined) or `at` (left).
struct AttendanceJSON: Encodable {
    let person: Participant
    let standing: ParticipantStanding

    init(_ entry: (Participant, ParticipantStanding)) { (person, standing) = entry }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        try container.encode(person.name, forKey: "name")
        try container.encode(person.email, forKey: "email")
        try container.encode(standing.word, forKey: "standing")
        switch standing {
        case .present(let since): try container.encode(rfc3339UTCMillis(since), forKey: "since")
        case .left(let at): try container.encode(rfc3339UTCMillis(at), forKey: "at")
        case .notYet: break
        }
    }
}

/// One of `others_present` in `room show --json`: someone in the meeting who is none of the participants.
struct OtherJSON: Encodable {
    let attendee: LiveMeeting.Attendee

    init(_ attendee: LiveMeeting.Attendee) { self.attendee = attendee }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        try container.encode(attendee.name, forKey: "name")
        try container.encode(attendee.email, forKey: "email")
    }
}

/// A notice of `outbox --json`.
struct NoticeJSON: Encodable {
    let notice: Notice

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        try container.encode(notice.id, forKey: "id")
        try container.encode(notice.incidentID, forKey: "incident")
        try container.encode(notice.roomID, forKey: "room_id")
        try container.encode(notice.personID, forKey: "person")
        try container.encode(notice.kind.rawValue, forKey: "kind")
        try container.encode(notice.channel.rawValue, forKey: "channel")
        try container.encode(notice.recipient, forKey: "recipient")
        try container.encode(notice.state.rawValue, forKey: "state")
        try container.encode(notice.attempts, forKey: "attempts")
        try container.encode(rfc3339UTCMillis(notice.createdAt), forKey: "created_at")
        try container.encode(rfc3339UTCMillis(notice.nextAttemptAt), forKey: "next_attempt_at")
        try container.encode(notice.detail, forKey: "detail")
    }
}

/// An entry of `audit --json`: `time`, `uid` (null for a command without a peer's credentials), `command` (secrets
/// redacted), `outcome`.
struct AuditJSON: Encodable {
    let entry: AuditEntry

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: ReportKey.self)
        try container.encode(rfc3339UTCMillis(entry.time), forKey: "time")
        try container.encode(entry.uid, forKey: "uid")
        try container.encode(entry.command, forKey: "command")
        try container.encode(entry.outcome, forKey: "outcome")
    }
}
