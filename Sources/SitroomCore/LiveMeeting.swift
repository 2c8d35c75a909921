import Foundation

/// One of Zoom's meeting events, as sitroom uses it, whichever way it came (a signed webhook through the spool, or
/// a WebSocket event subscription).
///
/// Zoom's meeting events carry `payload.object` with the meeting's `id` (a string in Zoom's SDK types, a number in
/// some payloads: both are read) and `uuid` (one occurrence of it); `meeting.started` adds `start_time`, `meeting.ended` `end_time`, and `meeting.participant_joined` /
/// `meeting.participant_left` a `participant` with `user_id`, `user_name`, `participant_uuid`, `join_time` or
/// `leave_time`, and `email` (empty for guests and phone users) (developers.zoom.us/docs/api/meetings/events/,
/// and the types of Zoom's own SDK, zoom/rivet-javascript `meetings/meetings.d.ts`).
public struct ZoomMeetingEvent: Sendable, Hashable, Codable {
    /// The events sitroom applies to a room (the `event` field).
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case started = "meeting.started"
        case ended = "meeting.ended"
        case participantJoined = "meeting.participant_joined"
        case participantLeft = "meeting.participant_left"
    }

    /// Someone in a meeting, as a participant event names them.
    public struct Person: Sendable, Hashable, Codable {
        /// `participant_uuid` (stable for one person in one meeting); empty when Zoom sent none.
        public var participantUUID: String
        /// `user_id`: the participant's id in this meeting (not a Zoom account id for guests).
        public var userID: String
        /// `user_name`.
        public var name: String
        /// `email`, lower-cased; `nil` when empty (guests, phone users).
        public var email: String?

        public init(participantUUID: String, userID: String, name: String, email: String?) {
            self.participantUUID = participantUUID
            self.userID = userID
            self.name = name
            let trimmed = email?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            self.email = trimmed.isEmpty ? nil : trimmed
        }

        /// What identifies the person across their join and leave events: `participant_uuid`, else `user_id`
        /// and name.
        public var key: String { participantUUID.isEmpty ? "user:\(userID):\(name)" : participantUUID }
    }

    public var kind: Kind
    /// `payload.object.id`: the meeting id sitroom recorded when it made the meeting.
    public var meetingID: Int64
    /// `payload.object.uuid`.
    public var uuid: String
    /// `payload.account_id`.
    public var accountID: String
    /// When it happened, seconds since 1970: `start_time`, `end_time`, `join_time` or `leave_time`, else the
    /// event's `event_ts`.
    public var at: Double
    /// The participant of a join or leave.
    public var person: Person?

    public init(kind: Kind, meetingID: Int64, uuid: String, accountID: String, at: Double, person: Person? = nil) {
        self.kind = kind
        self.meetingID = meetingID
        self.uuid = uuid
        self.accountID = accountID
        self.at = at
        self.person = person
    }
}

/// The meeting as Zoom last told sitroom about it: started or not, who is in it, who has been. Kept on the room
/// (``Room/live``); changed only by ``apply(_:)``, which takes events in any order and any number of times.
public struct LiveMeeting: Sendable, Hashable, Codable {
    /// The meeting's state in Zoom.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Made, nobody has started it (Zoom's `waiting`).
        case waiting
        /// Someone started it (Zoom's `started`).
        case started
        /// The host ended it in Zoom ("End for all"); the link starts it again.
        case ended
    }

    /// Someone who joined (or left) the meeting.
    public struct Attendee: Sendable, Hashable, Codable {
        /// ``ZoomMeetingEvent/Person/key``.
        public var key: String
        public var name: String
        /// Lower-cased; `nil` for guests and phone users.
        public var email: String?
        /// Seconds since 1970 of the latest join; `nil` when only a leave was seen (out of order).
        public var joinedAt: Double?
        /// Seconds since 1970 of the leave after the latest join; `nil` while in the meeting.
        public var leftAt: Double?
        /// Seconds since 1970 of the first join seen.
        public var firstJoinedAt: Double?

        /// In the meeting now.
        public var isPresent: Bool { joinedAt != nil && leftAt == nil }
    }

    public var status: Status
    /// Seconds since 1970 when it (last) started.
    public var startedAt: Double?
    /// Seconds since 1970 when it was ended in Zoom; `nil` unless ``status`` is `ended`.
    public var endedAt: Double?
    /// Seconds since 1970 of the status's event, so an older status event cannot undo a newer one.
    public var statusAt: Double
    /// Everyone seen, in order of first appearance.
    public var attendees: [Attendee]
    /// Seconds since 1970 when the first of the incident's participants joined (set once, by the applier).
    public var participantFirstJoinAt: Double?
    /// Seconds since 1970 when all the incident's participants with an email were first in at once (set once).
    public var assembledAt: Double?

    public init(status: Status = .waiting, statusAt: Double = 0) {
        self.status = status
        self.statusAt = statusAt
        self.attendees = []
    }

    /// Applies one event. Duplicates change nothing; an event older than what it would overwrite is ignored (a
    /// leave older than the person's latest join, a status older than the current one).
    /// - Returns: whether anything changed.
    @discardableResult
    public mutating func apply(_ event: ZoomMeetingEvent) -> Bool {
        let before = self
        switch event.kind {
        case .started:
            if event.at >= statusAt && status != .started {
                status = .started
                startedAt = event.at
                endedAt = nil
                statusAt = event.at
            }
        case .ended:
            if event.at >= statusAt && status != .ended {
                status = .ended
                endedAt = event.at
                statusAt = event.at
                // Everyone is out of an ended meeting (Zoom may not send each leave).
                for index in attendees.indices where attendees[index].isPresent { attendees[index].leftAt = event.at }
            }
        case .participantJoined, .participantLeft:
            guard let person = event.person else { return false }
            let joined = event.kind == .participantJoined
            if joined && status != .started && event.at >= statusAt {
                // A join means the meeting runs, even when its start event is late or lost.
                status = .started
                startedAt = startedAt.map { min($0, event.at) } ?? event.at
                endedAt = nil
                statusAt = event.at
            }
            if !attendees.contains(where: { $0.key == person.key }),
                let stand = attendees.firstIndex(where: { attendee in
                    attendee.key.hasPrefix(Self.reconciledPrefix)
                        && (person.email.map { attendee.email == $0 }
                            ?? (attendee.email == nil && attendee.name == person.name))
                })
            {
                // Someone reconciliation found in the meeting: their own events from now on carry their real key.
                attendees[stand].key = person.key
            }
            guard let index = attendees.firstIndex(where: { $0.key == person.key }) else {
                attendees.append(
                    Attendee(
                        key: person.key,
                        name: person.name,
                        email: person.email,
                        joinedAt: joined ? event.at : nil,
                        leftAt: joined ? nil : event.at,
                        firstJoinedAt: joined ? event.at : nil
                    )
                )
                return true
            }
            var attendee = attendees[index]
            if attendee.email == nil, let email = person.email { attendee.email = email }
            if joined {
                attendee.firstJoinedAt = min(attendee.firstJoinedAt ?? event.at, event.at)
                // Zoom's times are whole seconds: a join in the same second as the latest one is a duplicate only if
                // they have not left since (leave and rejoin within a second is a rejoin, in the order received).
                let leftSinceLatest =
                    attendee.leftAt.map { left in attendee.joinedAt.map { left >= $0 } ?? true } ?? false
                if let latest = attendee.joinedAt, event.at < latest || (event.at == latest && !leftSinceLatest) {
                    // A duplicate, or an older join: nothing newer to say.
                } else if let left = attendee.leftAt, event.at < left, attendee.joinedAt == nil {
                    attendee.joinedAt = event.at  // the join of a leave seen first
                } else if let left = attendee.leftAt, event.at < left {
                    // An older join than the recorded leave: still left.
                } else {
                    attendee.joinedAt = event.at
                    attendee.leftAt = nil
                }
            } else {
                if let latest = attendee.joinedAt, event.at < latest {
                    // The leave of an earlier stay: they came back since.
                } else if attendee.leftAt.map({ event.at > $0 }) ?? true {
                    attendee.leftAt = event.at
                }
            }
            attendees[index] = attendee
        }
        return self != before
    }

    /// The key prefix of people reconciliation found in the meeting (Zoom's list names no participant_uuid); their
    /// next event with their real key takes them over (matched by email, or by name without one).
    public static let reconciledPrefix = "reconciled:"

    /// Those in the meeting now.
    public var present: [Attendee] { attendees.filter(\.isPresent) }

    /// The first join of anyone, seconds since 1970.
    public var firstJoinAt: Double? { attendees.compactMap(\.firstJoinedAt).min() }

    /// How the incident's `participant` stands: in the meeting, left it, or not joined yet (matched by email,
    /// case-insensitively; people without an email cannot be matched and count as not joined yet).
    public func standing(of participant: Participant) -> ParticipantStanding {
        guard let email = participant.email?.lowercased() else { return .notYet }
        let seen = attendees.filter { $0.email == email }
        if let here = seen.first(where: \.isPresent) { return .present(since: here.joinedAt ?? 0) }
        if let gone = seen.compactMap(\.leftAt).max(), seen.contains(where: { $0.firstJoinedAt != nil }) {
            return .left(at: gone)
        }
        return .notYet
    }

    /// Those in the meeting now who are none of `participants` (matched by email): guests, phone users and others.
    public func othersPresent(besides participants: [Participant]) -> [Attendee] {
        let emails = Set(participants.compactMap { $0.email?.lowercased() })
        return present.filter { attendee in attendee.email.map { !emails.contains($0) } ?? true }
    }
}

/// Where one of the incident's participants stands in the live meeting.
public enum ParticipantStanding: Sendable, Hashable {
    /// In the meeting, since this time (seconds since 1970).
    case present(since: Double)
    /// Joined, then left at this time.
    case left(at: Double)
    /// Has not joined.
    case notYet

    /// `joined`, `left` or `not_yet`, as `room show --json` says it.
    public var word: String {
        switch self {
        case .present: return "joined"
        case .left: return "left"
        case .notYet: return "not_yet"
        }
    }
}
