/// The state of a room: what the incident's video conference component shows (SPEC §5).
public enum RoomState: String, Sendable, Codable, CaseIterable {
    /// Being created.
    case provisioning
    /// No host can take it now; retried by itself.
    case waiting
    /// The meeting exists; join URL, meeting id and passcode are known.
    case ready
    /// Nothing can serve it and retrying will not help.
    case failed
    /// The incident was resolved and the meeting ended.
    case ended
    /// Its integration was removed or deauthorized.
    case unavailable

    /// Whether the room still holds (or may come to hold) a host of the pool.
    public var isOpen: Bool {
        switch self {
        case .provisioning, .waiting, .ready: return true
        case .failed, .ended, .unavailable: return false
        }
    }
}

/// Where a create-meeting call stands, so a restart can tell whether Zoom may already have the meeting.
public enum CreatePhase: String, Sendable, Codable {
    /// No create request was sent for the current host.
    case notSent = "not_sent"
    /// A create request may have reached Zoom; its outcome is unknown until the marker is looked for.
    case inFlight = "in_flight"
    /// The meeting is known (created or adopted).
    case done
}

/// A situation room: one per open incident, at most one Zoom meeting (SPEC §5).
public struct Room: Sendable, Codable, Hashable {
    /// The room id: stable, unique, used in the Zoom marker `sitroom:room=<id>`.
    public var id: String
    public var incidentID: String
    public var state: RoomState
    /// Why the room is in its state (Zoom's code and message, pool counts), for people.
    public var reason: String?
    /// The integration that serves (or last tried to serve) the room.
    public var integration: String?
    /// The pool host id (SPEC §3 `hosts[].id`) that hosts the room.
    public var hostID: String?
    /// The Zoom user (id or email) of that host.
    public var hostUser: String?
    public var createPhase: CreatePhase
    /// Zoom meeting `id`.
    public var meetingID: Int64?
    /// Zoom `join_url`.
    public var joinURL: String?
    /// Zoom `password` (the passcode); `nil` for meetings without one.
    public var passcode: String?
    /// Seconds since 1970 when the room was made.
    public var createdAt: Double
    /// Seconds since 1970 of the last state change.
    public var updatedAt: Double
    /// Seconds since 1970 when the room ended, for the reopen hold-down.
    public var endedAt: Double?
    /// The incident was resolved or closed: the meeting is to be ended, then the room `ended`.
    public var endRequested: Bool
    /// Failed attempts of the current operation (create or end), for backoff.
    public var attempts: Int
    /// Seconds since 1970 since when the room has been `waiting` for a host.
    public var waitingSince: Double?
    /// A create's outcome was unknown (timeout, lost reply): the host's meetings are swept for this room's
    /// marker after the next create and when the room ends, so a late-completing create leaves no stray meeting.
    public var sweepMarker: Bool {
        get { sweep ?? false }
        set { sweep = newValue }
    }
    /// Stored optional so rooms written before the field existed still decode.
    private var sweep: Bool?
    /// An operator closed the room (`room end INCIDENT`) rather than the incident being resolved: the
    /// `room-ended` notices say so. Cleared when the incident is reopened.
    public var closedByOperator: Bool {
        get { operatorClosed ?? false }
        set { operatorClosed = newValue ? true : nil }
    }
    /// Stored optional so rooms written before the field existed still decode.
    private var operatorClosed: Bool?
    /// Seconds since 1970 after which the ended meeting is deleted (`on_resolve: end_and_delete` waits out
    /// `reopen_hold_down`, so a reopened incident gets its room and meeting back); `nil` when no deletion is
    /// pending.
    public var deleteAfter: Double?
    /// Seconds since 1970 when sitroom decided to delete the meeting (the request may still be on its way);
    /// from then on the room is never reopened with it.
    public var meetingDeletedAt: Double?
    /// What to do about the room's state, for people (from the table of Zoom answers: "fix the field Zoom names,
    /// then `sitroomctl room retry INC-1`"); `nil` when nothing is to be done.
    public var advice: String?
    /// Something people should know about a room that works, e.g. that it was made without its alternative hosts.
    public var note: String?
    /// Zoom refused the alternative hosts: this room's meeting is created without them.
    public var withoutAlternativeHosts: Bool {
        get { noAlternativeHosts ?? false }
        set { noAlternativeHosts = newValue ? true : nil }
    }
    /// Stored optional so rooms written before the field existed still decode.
    private var noAlternativeHosts: Bool?
    /// The meeting as Zoom's events describe it (started, who is in it); `nil` until the first event of it.
    public var live: LiveMeeting?
    /// Seconds since 1970 when the room became `ready` with its meeting (its link went out): the start of the
    /// live room's times (to first join, to all present) and of the nudge.
    public var readyAt: Double?

    public init(id: String, incidentID: String, createdAt: Double) {
        self.id = id
        self.incidentID = incidentID
        self.state = .provisioning
        self.createPhase = .notSent
        self.endRequested = false
        self.attempts = 0
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }

    /// The marker sitroom puts in the meeting's `agenda` to find it again (SPEC §5).
    public var marker: String { Room.marker(for: id) }

    /// The agenda marker for a room id: `sitroom:room=<id>`.
    public static func marker(for roomID: String) -> String { "sitroom:room=\(roomID)" }
}

/// What sitroom keeps of an incident.
public struct IncidentRecord: Sendable, Codable, Hashable {
    public var info: IncidentInfo
    public var stage: IncidentStage
    public var participants: [Participant]
    /// The integration the feed asked for, if any.
    public var integration: String?
    /// The current (or last) room of the incident.
    public var roomID: String?
    /// `occurred_at` of the last applied event, seconds since 1970.
    public var lastOccurredAt: Double
    /// Participants the events named who cannot be told (``UnreachablePerson``), by name; empty when none.
    public var unreachable: [UnreachablePerson] {
        get { unreachablePeople ?? [] }
        set { unreachablePeople = newValue.isEmpty ? nil : newValue }
    }
    /// Stored optional so records written before the field existed still decode.
    private var unreachablePeople: [UnreachablePerson]?

    public init(
        info: IncidentInfo,
        stage: IncidentStage,
        participants: [Participant],
        integration: String?,
        roomID: String?,
        lastOccurredAt: Double
    ) {
        self.info = info
        self.stage = stage
        self.participants = participants
        self.integration = integration
        self.roomID = roomID
        self.lastOccurredAt = lastOccurredAt
    }

    /// Merges participants of an `updated` event: a person already known (same ``Participant/personID``)
    /// is replaced by the newer entry, new people are appended.
    public mutating func merge(participants newcomers: [Participant], unreachable people: [UnreachablePerson] = []) {
        for person in people {
            if let index = unreachable.firstIndex(where: { $0.name == person.name }) {
                unreachable[index] = person
            } else {
                unreachable.append(person)
            }
        }
        // Someone a later event names with contacts that all work is no longer listed.
        unreachable.removeAll { gone in
            !people.contains { $0.name == gone.name } && newcomers.contains { $0.name == gone.name }
        }
        for person in newcomers {
            if let index = participants.firstIndex(where: { $0.personID == person.personID }) {
                participants[index] = person
            } else {
                participants.append(person)
            }
        }
    }
}
