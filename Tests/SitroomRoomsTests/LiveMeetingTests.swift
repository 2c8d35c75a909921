import SitroomCore
import Testing

/// The live meeting as Zoom's events build it: in any order, any number of times.
@Suite("live meeting")
struct LiveMeetingTests {
    static let ada = ZoomMeetingEvent.Person(
        participantUUID: "p-ada",
        userID: "16778240",
        name: "Ada",
        email: "ADA@Example.com"
    )
    static let guest = ZoomMeetingEvent.Person(
        participantUUID: "p-guest",
        userID: "16779264",
        name: "Dial-in",
        email: ""
    )

    func event(
        _ kind: ZoomMeetingEvent.Kind,
        _ at: Double,
        _ person: ZoomMeetingEvent.Person? = nil
    ) -> ZoomMeetingEvent {
        ZoomMeetingEvent(kind: kind, meetingID: 85_746_065_432, uuid: "u1", accountID: "A", at: at, person: person)
    }

    let participants = [
        Participant(name: "Ada", email: "ada@example.com"), Participant(name: "Bo", email: "bo@example.com"),
        Participant(name: "Cy", phone: "+15005550101"),
    ]

    @Test("joins and leaves, matched by email case-insensitively; guests counted apart")
    func joinsAndLeaves() {
        var live = LiveMeeting()
        do {
            let changed = live.apply(event(.started, 100))
            #expect(changed)
        }
        do {
            let changed = live.apply(event(.participantJoined, 110, Self.ada))
            #expect(changed)
        }
        do {
            let changed = live.apply(event(.participantJoined, 115, Self.guest))
            #expect(changed)
        }
        #expect(live.status == .started)
        #expect(live.standing(of: participants[0]) == .present(since: 110))
        #expect(live.standing(of: participants[1]) == .notYet)
        #expect(live.standing(of: participants[2]) == .notYet)  // no email: cannot be matched
        #expect(live.othersPresent(besides: participants).map(\.name) == ["Dial-in"])
        do {
            let changed = live.apply(event(.participantLeft, 130, Self.ada))
            #expect(changed)
        }
        #expect(live.standing(of: participants[0]) == .left(at: 130))
        #expect(live.firstJoinAt == 110)
        // Back again.
        do {
            let changed = live.apply(event(.participantJoined, 140, Self.ada))
            #expect(changed)
        }
        #expect(live.standing(of: participants[0]) == .present(since: 140))
    }

    @Test("duplicates change nothing; older events cannot undo newer ones")
    func duplicatesAndOrder() {
        var live = LiveMeeting()
        let all = [
            event(.started, 100), event(.participantJoined, 110, Self.ada), event(.participantLeft, 130, Self.ada),
            event(.ended, 200),
        ]
        for item in all { live.apply(item) }
        let settled = live
        for item in all {
            let changed = live.apply(item)
            #expect(!changed, "\(item.kind) again")
        }
        #expect(live == settled)
        // An old start after the end does not restart it.
        do {
            let changed = live.apply(event(.started, 90))
            #expect(!changed)
        }
        #expect(live.status == .ended)
        #expect(live.present.isEmpty)
    }

    @Test("every order of the same events ends in the same standing")
    func anyOrder() {
        let all = [
            event(.started, 100), event(.participantJoined, 110, Self.ada), event(.participantJoined, 112, Self.guest),
            event(.participantLeft, 130, Self.ada), event(.participantJoined, 140, Self.ada),
        ]
        var reference = LiveMeeting()
        for item in all { reference.apply(item) }
        // All 120 orders.
        func permutations(_ items: [ZoomMeetingEvent]) -> [[ZoomMeetingEvent]] {
            guard items.count > 1 else { return [items] }
            return items.indices.flatMap { index -> [[ZoomMeetingEvent]] in
                var rest = items
                let first = rest.remove(at: index)
                return permutations(rest).map { [first] + $0 }
            }
        }
        for order in permutations(all) {
            var live = LiveMeeting()
            for item in order { live.apply(item) }
            #expect(live.status == .started)
            #expect(live.standing(of: participants[0]) == .present(since: 140), "\(order.map(\.at))")
            #expect(live.present.count == 2, "\(order.map(\.at))")
            #expect(live.firstJoinAt == 110)
        }
    }

    @Test("leave and rejoin within one second (Zoom's times are whole seconds): in the meeting")
    func rejoinSameSecond() {
        var live = LiveMeeting()
        live.apply(event(.participantJoined, 110, Self.ada))
        live.apply(event(.participantLeft, 110, Self.ada))
        live.apply(event(.participantJoined, 110, Self.ada))
        #expect(live.standing(of: participants[0]) == .present(since: 110))
        do {
            let changed = live.apply(event(.participantJoined, 110, Self.ada))
            #expect(!changed)
        }
    }

    @Test("ended in Zoom: everyone is out; a later start (the link used again) runs it again")
    func endedAndStartedAgain() {
        var live = LiveMeeting()
        live.apply(event(.participantJoined, 110, Self.ada))
        #expect(live.status == .started)  // a join means it runs, even before its start event
        live.apply(event(.ended, 200))
        #expect(live.status == .ended)
        #expect(live.endedAt == 200)
        #expect(live.standing(of: participants[0]) == .left(at: 200))
        live.apply(event(.started, 300))
        #expect(live.status == .started)
        #expect(live.endedAt == nil)
    }
}
