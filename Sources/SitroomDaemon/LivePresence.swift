import Foundation
import SitroomCore

/// A room's live meeting against the incident's participants, as `rooms`, `room show` and their JSON show it.
/// Participants are matched to the people in the meeting by email, case-insensitively; guests, phone users and
/// anyone else present are counted apart (``others``).
struct LivePresence {
    let live: LiveMeeting
    let participants: [Participant]
    /// ``Room/readyAt``: when the link went out.
    let readyAt: Double?

    /// The room is open (an ended room's meeting is not started again by its link).
    let roomOpen: Bool

    init(_ live: LiveMeeting, participants: [Participant], readyAt: Double? = nil, roomOpen: Bool = true) {
        self.live = live
        self.participants = participants
        self.readyAt = readyAt
        self.roomOpen = roomOpen
    }

    /// Seconds from the room ready to the first participant in, and to all of them (with an email) in at once.
    var toFirstJoin: Double? {
        let emails = Set(participants.compactMap { $0.email?.lowercased() })
        let first = live.attendees.filter { $0.email.map(emails.contains) ?? false }.compactMap(\.firstJoinedAt).min()
        return first.flatMap { at in readyAt.map { max(0, at - $0) } }
    }
    var toAssemble: Double? { live.assembledAt.flatMap { at in readyAt.map { max(0, at - $0) } } }

    /// Each participant and where they stand, in the incident's order.
    var standings: [(Participant, ParticipantStanding)] { participants.map { ($0, live.standing(of: $0)) } }

    /// The incident's participants in the meeting now.
    var present: Int { standings.filter { if case .present = $0.1 { return true } else { return false } }.count }

    /// Those present who are none of the incident's participants (guests, phone users, others).
    var others: [LiveMeeting.Attendee] { live.othersPresent(besides: participants) }

    /// `3/5`, and `+2` when others are present too: the `PRESENT` column of `rooms`.
    var column: String { "\(present)/\(participants.count)" + (others.isEmpty ? "" : " +\(others.count)") }

    /// The meeting's state in words.
    var meetingText: String {
        switch live.status {
        case .waiting: return "not started"
        case .started: return "started at \(rfc3339UTC(live.startedAt ?? live.statusAt))"
        case .ended:
            return "ended in Zoom at \(rfc3339UTC(live.endedAt ?? live.statusAt))"
                + (roomOpen ? " (the link starts it again)" : "")
        }
    }

    /// `room show`'s lines: the meeting, the count, the first join, then each participant.
    var rows: [(String, String)] {
        var rows: [(String, String)] = [
            ("meeting", meetingText),
            (
                "present",
                "\(present) of \(participants.count) participant(s)"
                    + (others.isEmpty ? "" : ", and \(others.count) other(s)")
            ),
            ("first join", live.firstJoinAt.map(rfc3339UTC) ?? ""),
            ("assembled", toAssemble.map { "all in \(TextTable.age($0)) after the link went out" } ?? "not yet"),
        ]
        for (index, (person, standing)) in standings.enumerated() {
            let who = person.email.map { "\(person.name) <\($0)>" } ?? "\(person.name) (no email: cannot be matched)"
            let state: String
            switch standing {
            case .present(let since): state = "joined \(rfc3339UTC(since))"
            case .left(let at): state = "left \(rfc3339UTC(at))"
            case .notYet: state = "not yet"
            }
            rows.append((index == 0 ? "attendance" : "", "\(who): \(state)"))
        }
        for (index, other) in others.enumerated() {
            rows.append(
                (index == 0 ? "others" : "", "\(other.name)\(other.email.map { " <\($0)>" } ?? " (guest or phone)")")
            )
        }
        return rows
    }
}
