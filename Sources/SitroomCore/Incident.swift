/// The stage an incident event moves its incident to (SPEC §4 native format, `stage`).
public enum IncidentStage: String, Sendable, Codable, CaseIterable {
    case opened
    case situationRoom = "situation_room"
    case updated
    case resolved
    case closed
    case reopened
}

/// The role of a participant in an incident (SPEC §4, `participants[].role`).
public enum ParticipantRole: String, Sendable, Codable, CaseIterable {
    case commander
    case responder
}

/// A person handling an incident, with the contacts notices go to.
///
/// A person is identified by their normalised email (lower-cased), else their phone (E.164).
public struct Participant: Sendable, Codable, Hashable {
    /// Display name, as the feed gave it.
    public var name: String
    /// Email address, normalised to lower case; `nil` when the feed gave none.
    public var email: String?
    /// Phone number in E.164 form (`+` and 8 to 15 digits); `nil` when the feed gave none.
    public var phone: String?
    /// Role in the incident; `nil` when the feed gave none.
    public var role: ParticipantRole?

    public init(name: String, email: String? = nil, phone: String? = nil, role: ParticipantRole? = nil) {
        self.name = name
        self.email = email?.lowercased()
        self.phone = phone
        self.role = role
    }

    /// The identity of the person: `email:<address>` or `phone:<E.164>`.
    public var personID: String {
        if let email { return "email:\(email)" }
        return "phone:\(phone ?? name)"
    }
}

/// The incident as a feed describes it (SPEC §4, `incident`).
public struct IncidentInfo: Sendable, Codable, Hashable {
    /// The feed's incident id; the key of the incident in sitroom.
    public var id: String
    /// One line (each feed makes it so, with its own length limit).
    public var title: String
    /// One line: control characters, line breaks among them, become spaces (at most 200 characters).
    public var severity: String?
    /// One line, as `severity`.
    public var team: String?

    /// `severity` and `team` are made one line here, whichever feed gave them: they reach mail headers
    /// (the Subject), SMS texts and log lines.
    public init(id: String, title: String, severity: String? = nil, team: String? = nil) {
        self.id = id
        self.title = title
        self.severity = severity.map { OneLine.clean($0, limit: 200) }
        self.team = team.map { OneLine.clean($0, limit: 200) }
    }
}

/// A participant an event named who cannot be told through some or all channels: no email or phone, or one that
/// is malformed (`name` as the feed gave it; `reason` says what was wrong and what reaches them still).
public struct UnreachablePerson: Sendable, Codable, Hashable {
    public var name: String
    public var reason: String

    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }
}

/// One incident event from the spool (SPEC §4, native YAML or JSON format).
public struct IncidentEvent: Sendable, Codable, Hashable {
    /// The feed's event id; applying an event is idempotent by this id.
    public var eventID: String
    /// When the event happened, as seconds since 1970-01-01T00:00:00Z (from RFC 3339 `occurred_at`).
    public var occurredAt: Double
    public var stage: IncidentStage
    public var incident: IncidentInfo
    public var participants: [Participant]
    /// The integration the feed asks for (`integration`), or `nil` for the configured order.
    public var integration: String?
    /// Participants the event named who cannot be told (or only on some channels): the event is kept for the
    /// others, and these are listed in `room show` and told to the admins once.
    public var unreachable: [UnreachablePerson] = []

    public init(
        eventID: String,
        occurredAt: Double,
        stage: IncidentStage,
        incident: IncidentInfo,
        participants: [Participant],
        integration: String? = nil,
        unreachable: [UnreachablePerson] = []
    ) {
        self.unreachable = unreachable
        self.eventID = eventID
        self.occurredAt = occurredAt
        self.stage = stage
        self.incident = incident
        self.participants = participants
        self.integration = integration
    }
}
