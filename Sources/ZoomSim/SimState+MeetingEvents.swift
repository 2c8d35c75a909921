import Crypto
import Foundation

// Playing a meeting: participants join and leave, events delivered as webhooks and WebSocket frames.
extension SimState {
    // MARK: Playing a meeting (events)

    /// `POST /_sim/meetings/{id}/participants`: someone joins or leaves. Joining a meeting nobody started starts it
    /// (its `meeting.started` goes first); guests and phone users join with an empty email, as Zoom reports them.
    /// - Returns: the participant.
    /// - Throws: 404 for a meeting that is not live; 400 for a leave of someone not in it.
    public func participant(
        meetingID id: Int64,
        action: String,
        email: String?,
        name: String?,
        guest: Bool,
        phone: Bool,
        participantUUID: String?
    ) throws -> SimParticipant {
        guard var meeting = meetings[id], meeting.isLive || meeting.status == .ended else {
            throw ZoomAPIError.meetingNotFound(String(id))
        }
        switch action {
        case "join":
            begin(&meeting)
            participantSeq += 1
            let person = SimParticipant(
                participantUUID: participantUUID ?? Self.randomUUID(),
                userID: String(participantSeq),
                name: name ?? (guest || phone ? (phone ? "Dial-in user" : "Guest") : email ?? "Participant"),
                email: guest || phone ? "" : (email ?? ""),
                joinedAt: now()
            )
            meeting.participants.append(person)
            meetings[id] = meeting
            events.publish(
                "meeting.participant_joined",
                payload: eventPayload(meeting, participant: participantJSON(person, time: "join_time")),
                clientID: meeting.createdBy,
                accountID: meeting.accountID
            )
            return person
        case "leave":
            guard
                let index = meeting.participants.firstIndex(where: {
                    ($0.participantUUID == participantUUID && participantUUID != nil)
                        // An empty email names nobody: guests and phone users have one.
                        || (email?.isEmpty == false && $0.email.lowercased() == email?.lowercased())
                })
            else {
                throw ZoomAPIError.validation(
                    field: "email",
                    "nobody with that email or participant_uuid is in the meeting"
                )
            }
            let person = meeting.participants.remove(at: index)
            meetings[id] = meeting
            var object = participantJSON(person, time: "leave_time")
            if case .object(let fields) = object {
                object = .object(fields + [("leave_reason", .string("left the meeting"))])
            }
            events.publish(
                "meeting.participant_left",
                payload: eventPayload(meeting, participant: object),
                clientID: meeting.createdBy,
                accountID: meeting.accountID
            )
            return person
        default:
            throw ZoomAPIError.validation(field: "action", "action must be join or leave")
        }
    }

    /// A meeting instance's `uuid`: 16 random bytes, base64 (as Zoom's look, e.g. `aDYlohsHRtCd4ii1uC2+hA==`).
    static func newMeetingUUID() -> String {
        Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// Starts a meeting that is not started (its `startedAt` is now) and sends `meeting.started`; nothing for one
    /// already started.
    func begin(_ meeting: inout SimMeeting) {
        guard meeting.status != .started else { return }
        if meeting.status == .ended {
            // "Each meeting instance will generate its own Meeting UUID (i.e., after a meeting ends, a new UUID will be
            // generated for the next instance of the meeting)": Zoom's "Get a meeting" reference, field `uuid`.
            meeting.uuid = Self.newMeetingUUID()
        }
        meeting.status = .started
        meeting.endedAt = nil
        meeting.startedAt = now()
        meetings[meeting.id] = meeting
        emitStarted(meeting)
    }

    /// `meeting.started`: `payload.object` {id, uuid, host_id, topic, type, start_time} (Zoom's meeting events
    /// reference, developers.zoom.us/docs/api/meetings/events/).
    func emitStarted(_ meeting: SimMeeting) {
        events.publish(
            "meeting.started",
            payload: eventPayload(meeting, participant: nil),
            clientID: meeting.createdBy,
            accountID: meeting.accountID
        )
    }

    /// `meeting.ended`: as `meeting.started` (the same `start_time`: when this occurrence started), with `end_time`.
    func emitEnded(_ meeting: SimMeeting) {
        let payload = Self.setObjectField(
            eventPayload(meeting, participant: nil),
            "end_time",
            .string(Self.format(meeting.endedAt ?? now()))
        )
        events.publish("meeting.ended", payload: payload, clientID: meeting.createdBy, accountID: meeting.accountID)
    }

    /// `{"account_id", "object": {"id", "uuid", "host_id", "topic", "type", "start_time", "timezone", "duration",
    /// "participant"?}}`. `start_time` is when the occurrence started (the scheduled time before it did); Zoom's SDK
    /// (zoom/rivet-javascript meetings/meetings.d.ts) gives it in all four events (required in `meeting.started`,
    /// `meeting.ended` and `meeting.participant_left`).
    func eventPayload(_ meeting: SimMeeting, participant: JSON?) -> JSON {
        var object: [(String, JSON)] = [
            // A string here: Zoom's SDK (zoom/rivet-javascript meetings/meetings.d.ts) types these events' `id` so.
            ("id", .string(String(meeting.id))), ("uuid", .string(meeting.uuid)), ("host_id", .string(meeting.hostID)),
            ("topic", .string(meeting.topic)), ("type", .number(meeting.type)), ("timezone", .string(meeting.timezone)),
            ("duration", .number(meeting.duration)),
            ("start_time", .string(Self.format(meeting.startedAt ?? meeting.startTime))),
        ]
        if let participant { object.append(("participant", participant)) }
        return ["account_id": .string(meeting.accountID), "object": .object(object)]
    }

    /// A participant as Zoom's participant events carry it: `user_id`, `user_name`, `participant_uuid`,
    /// `join_time` or `leave_time`, `email`.
    func participantJSON(_ person: SimParticipant, time key: String) -> JSON {
        [
            "user_id": .string(person.userID), "user_name": .string(person.name),
            "participant_uuid": .string(person.participantUUID), "email": .string(person.email),
            "id": .string(""), key: .string(Self.format(key == "join_time" ? person.joinedAt : now())),
        ]
    }

    static func setObjectField(_ payload: JSON, _ key: String, _ value: JSON) -> JSON {
        guard case .object(let top) = payload, case .object(let object)? = payload["object"] else { return payload }
        let updated = JSON.object(object.filter { $0.0 != key } + [(key, value)])
        return .object(top.map { $0.0 == "object" ? ($0.0, updated) : $0 })
    }

    static func randomUUID() -> String {
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        return Data(bytes).base64EncodedString()
    }

    /// Whether `GET /j/{id}?pwd=` would let a participant in: the meeting exists, is not deleted, and the
    /// `pwd` matches when it has a passcode.
    public func canJoin(id: Int64, pwd: String?) -> Bool {
        guard let meeting = meetings[id], meeting.status != .deleted else { return false }
        return meeting.encryptedPassword.isEmpty || meeting.encryptedPassword == pwd
    }
}
