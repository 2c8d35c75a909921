import SitroomCore
import Testing

@testable import SitroomZoom

/// Zoom's meeting events read from their JSON, as the WebSocket subscription delivers them.
@Suite("meeting events from JSON")
struct MeetingEventReaderTests {
    @Test("a join: the meeting id as a number, the participant, its join_time")
    func join() throws {
        let json =
            #"{"event":"meeting.participant_joined","event_ts":1796470000000,"payload":{"account_id":"A1","object":{"id":85746065432,"uuid":"4444AAA==","host_id":"h","topic":"t","type":2,"participant":{"user_id":"16778240","user_name":"Ada\r\nX","participant_uuid":"p-1","join_time":"2026-12-05T12:00:05Z","email":"Ada@Example.com"}}}}"#
        let reading = try MeetingEventReader.read(Array(json.utf8))
        guard case .meeting(let event) = reading else {
            Issue.record("\(reading)")
            return
        }
        #expect(event.kind == .participantJoined)
        #expect(event.meetingID == 85_746_065_432)
        #expect(event.accountID == "A1")
        #expect(event.at == 1_796_472_005)
        #expect(
            event.person == .init(participantUUID: "p-1", userID: "16778240", name: "Ada  X", email: "ada@example.com")
        )
    }

    @Test("a guest's empty email is no email; a start without start_time takes event_ts; other events are named")
    func guestsAndOthers() throws {
        let guest =
            #"{"event":"meeting.participant_left","payload":{"object":{"id":1,"participant":{"user_name":"Dial-in","leave_time":"2026-12-05T12:00:05.250Z","email":""}}}}"#
        guard case .meeting(let left) = try MeetingEventReader.read(Array(guest.utf8)) else {
            Issue.record("not a meeting event")
            return
        }
        #expect(left.person?.email == nil)
        #expect(left.at == 1_796_472_005.25)
        guard
            case .meeting(let started) = try MeetingEventReader.read(
                Array(#"{"event":"meeting.started","event_ts":1500,"payload":{"object":{"id":"2"}}}"#.utf8)
            )
        else {
            Issue.record("not a meeting event")
            return
        }
        #expect(started.at == 1.5)
        #expect(started.meetingID == 2)
        #expect(
            try MeetingEventReader.read(Array(#"{"event":"recording.completed","payload":{}}"#.utf8))
                == .other("recording.completed")
        )
    }

    @Test("app_deauthorized over the subscription is read as such")
    func deauthorized() throws {
        let json =
            #"{"event":"app_deauthorized","payload":{"account_id":"A1","user_id":"u1","client_id":"c1","deauthorization_time":"2026-12-05T12:00:00Z"}}"#
        #expect(
            try MeetingEventReader.read(Array(json.utf8))
                == .appDeauthorized(AppDeauthorized(accountID: "A1", userID: "u1", clientID: "c1"))
        )
        #expect(throws: ZoomError.self) {
            try MeetingEventReader.read(Array(#"{"event":"app_deauthorized","payload":{}}"#.utf8))
        }
    }

    @Test("what cannot be read is an error naming what is missing")
    func errors() {
        #expect(throws: ZoomError.self) { try MeetingEventReader.read(Array("not json".utf8)) }
        #expect(throws: ZoomError.self) {
            try MeetingEventReader.read(Array(#"{"event":"meeting.ended","payload":{"object":{}}}"#.utf8))
        }
        #expect(throws: ZoomError.self) {
            try MeetingEventReader.read(
                Array(#"{"event":"meeting.participant_joined","payload":{"object":{"id":3}}}"#.utf8)
            )
        }
    }
}
