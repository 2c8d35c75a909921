import SitroomCore
import Testing

@testable import SitroomRooms

/// The room machine, transition by transition, in the in-memory ``World``.
@Suite("room machine")
struct RoomMachineTests {
    @Test("room retry forgets who was in the last meeting: the room's next meeting is a new one")
    func retryForgetsTheLastMeetingsPeople() throws {
        var room = Room(id: "r1", incidentID: "INC-1", createdAt: 100)
        room.state = .unavailable
        room.createPhase = .done
        room.meetingID = 7
        var live = LiveMeeting()
        let ada = ZoomMeetingEvent.Person(participantUUID: "p-ada", userID: "u1", name: "Ada", email: "ada@example.com")
        _ = live.apply(ZoomMeetingEvent(kind: .started, meetingID: 7, uuid: "m", accountID: "a", at: 110))
        _ = live.apply(
            ZoomMeetingEvent(kind: .participantJoined, meetingID: 7, uuid: "m", accountID: "a", at: 111, person: ada)
        )
        room.live = live
        let retried = try RoomRules.retry(room, now: 200).get()
        #expect(retried.state == .provisioning && retried.createPhase == .notSent)
        #expect(retried.live == nil)
    }

    @Test("a room leases a host and marks its create in flight in one write, creates, and is ready with its notices")
    func happyPath() {
        let world = World()
        let id = world.open("INC-1")
        var machine = RoomMachine(room: world.rooms[id]!, policy: world.policy)
        var step = machine.handle(.start, now: world.now)
        #expect(step.request == .lease(excluding: []))
        let host = world.hosts[0]
        step = machine.handle(
            .leased(host, user: "u", creates: CreateCount(host: host, count: 1, day: "d")),
            now: world.now
        )
        guard case .write(let inFlight, .lease) = step.request else {
            Issue.record("expected the lease's write, got \(String(describing: step.request))")
            return
        }
        #expect(inFlight.hostID == host.host && inFlight.createPhase == .inFlight)
        step = machine.handle(.written(.saved(inFlight)), now: world.now)
        #expect(step.request == .create(inFlight))
        step = machine.handle(
            .created(MeetingInfo(id: 7, joinURL: "https://zoom.us/j/7", passcode: "p")),
            now: world.now
        )
        guard case .write(let ready, .ready) = step.request else {
            Issue.record("expected the ready write, got \(String(describing: step.request))")
            return
        }
        #expect(ready.state == .ready && ready.meetingID == 7 && ready.createPhase == .done)
        step = machine.handle(.written(.saved(ready)), now: world.now)
        #expect(step.request == nil)
        #expect(step.effects.contains(.becameReady))
        #expect(machine.isFinished)
    }

    @Test("a room behind older waiting rooms waits, saying so without a count that would go stale")
    func queuedBehindOlderRooms() {
        let world = World()
        let id = world.open("INC-1")
        var machine = RoomMachine(room: world.rooms[id]!, policy: world.policy)
        _ = machine.handle(.start, now: world.now)
        let step = machine.handle(.queued, now: world.now)
        guard case .write(let waiting, _) = step.request else {
            Issue.record("expected the waiting write, got \(String(describing: step.request))")
            return
        }
        #expect(waiting.state == .waiting && waiting.waitingSince == world.now)
        #expect(waiting.reason == "queued behind older waiting rooms: hosts go to the oldest first")
        // Once written, the waiting queue is looked at again (an older room may have left it meanwhile).
        #expect(machine.handle(.written(.saved(waiting)), now: world.now).effects.contains(.retryWaiting))
    }

    @Test("a lost create answer is settled by the room's marker, never by a second create")
    func lostAnswer() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.lost]
        world.run(id)
        #expect(world.rooms[id]?.state == .ready)
        #expect(world.log.contains("\(id): meeting adopted after an unknown create outcome"))
        #expect(world.meetings.count == 1)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a lost answer then a restart (nothing of the run remembered): the marker is found")
    func lostAnswerThenRestart() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.lost]
        world.run(id, crashAfter: 3)  // the lease's write (create in flight), the create (lost), the retry's write
        world.restart()
        world.run(id)
        #expect(world.rooms[id]?.state == .ready)
        #expect(world.meetings.count == 1)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a 5xx is retried with backoff on the same host; after the attempts the room fails and frees its host")
    func transientThenFail() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.notSent, .notSent, .notSent, .notSent]
        world.run(id)
        #expect(world.rooms[id]?.state == .failed)
        #expect(world.rooms[id]?.reason?.contains("after 4 attempts") == true)
        #expect(world.leases[id] == nil)
        #expect(world.notices.contains { $0.room == id && $0.kind == "failed" })
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a daily limit drops the host (out of quota) and the room leases another")
    func dailyLimit() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.dailyLimit]
        world.run(id)
        #expect(world.rooms[id]?.state == .ready)
        #expect(world.hostsOut == [world.hosts[0]])
        #expect(world.rooms[id]?.hostID == world.hosts[1].host)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a missing scope puts the integration out and the room fails over to the next integration")
    func missingScope() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.missingScope]
        world.run(id)
        #expect(world.rooms[id]?.state == .ready)
        #expect(world.rooms[id]?.integration == "zoom-b")
        #expect(world.integrationsOut == ["zoom-a"])
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a refused token is renewed once; refused again, the integration is out")
    func tokenRenewedOnce() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.tokenRejected]
        world.run(id)
        #expect(world.rooms[id]?.state == .ready && world.rooms[id]?.integration == "zoom-a")
        let other = world.open("INC-2")
        world.script = [.tokenRejected, .tokenRejected]
        world.run(other)
        #expect(world.rooms[other]?.state == .ready && world.rooms[other]?.integration == "zoom-b")
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a validation error fails the room with the reason; nothing is out of quota")
    func validation() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.validation]
        world.run(id)
        #expect(world.rooms[id]?.state == .failed)
        #expect(world.rooms[id]?.reason == "validation failed")
        #expect(world.hostsOut.isEmpty && world.integrationsOut.isEmpty)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("resolving ends the meeting, frees the host and schedules the deletion after the hold-down")
    func resolve() {
        let world = World()
        let id = world.open("INC-1")
        world.run(id)
        world.resolve("INC-1")
        world.run(id)
        #expect(world.rooms[id]?.state == .ended)
        #expect(world.leases[id] == nil)
        #expect(world.liveMeetings(of: "INC-1").isEmpty)
        #expect(world.deletions[id] == world.now + 900)
        #expect(world.notices.contains { $0.room == id && $0.kind == "ended" })
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("resolved while a create's answer was lost: the meeting is found and ended, none is left")
    func resolveDuringLostCreate() {
        let world = World()
        let id = world.open("INC-1")
        world.script = [.lost]
        world.run(id, crashAfter: 2)
        world.resolve("INC-1")
        world.restart()
        world.run(id)
        #expect(world.rooms[id]?.state == .ended)
        #expect(world.liveMeetings(of: "INC-1").isEmpty)
        #expect(world.leases[id] == nil)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("reopened within the hold-down: the same room and meeting come back; reopened after its deletion: a new room")
    func reopen() {
        let world = World()
        let id = world.open("INC-1")
        world.run(id)
        let meeting = world.rooms[id]?.meetingID
        world.resolve("INC-1")
        world.run(id)
        world.reopen("INC-1")
        world.settle(id)
        #expect(world.rooms[id]?.state == .ready && world.rooms[id]?.meetingID == meeting)
        // The meeting deleted at Zoom meanwhile: the room cannot come back; a new one is made.
        world.resolve("INC-1")
        world.run(id)
        world.meetings[meeting!]!.deleted = true
        world.reopen("INC-1")
        world.settle(id)
        let current = world.incidents["INC-1"]!
        #expect(current != id)
        #expect(world.rooms[current]?.state == .ready)
        #expect(world.rooms[id]?.reason?.hasPrefix("not reopened: meeting") == true)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("reopened, then resolved while a run was finishing: it ends as it was, no call; flapping keeps one meeting")
    func reopenResolvedWhileRunning() {
        let world = World()
        let id = world.open("INC-1")
        world.run(id)
        let meeting = world.rooms[id]?.meetingID
        for _ in 0..<5 {
            world.resolve("INC-1")
            world.run(id)
            world.now += 30
            world.reopen("INC-1")
            #expect(world.rooms[id]?.reason?.hasPrefix("reopened: taking back meeting") == true)
            // The resolve lands while a run of the room is still going: the end is requested, not done in place.
            world.resolve("INC-1", whileRunning: true)
            #expect(world.rooms[id]?.endRequested == true)
            world.calls = []
            world.run(id)
            #expect(world.calls.isEmpty, "\(world.calls)")
            #expect(world.rooms[id]?.state == .ended && world.rooms[id]?.reason == nil)
            #expect(world.deletions[id] == world.now + 900)
            world.now += 30
            world.reopen("INC-1")
            world.settle(id)
            #expect(world.incidents["INC-1"] == id)
            #expect(world.rooms[id]?.state == .ready && world.rooms[id]?.meetingID == meeting)
        }
        #expect(world.meetings.count == 1)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("a room given its host at the event's commit sends its create at once; resolved first, it sends none")
    func intentCommittedWithTheEvent() {
        let world = World()
        let (id, leased) = world.openWithHost("INC-1")
        #expect(leased)
        world.run(id, first: .intentCommitted)
        #expect(world.calls == ["\(id): create"])
        #expect(world.rooms[id]?.state == .ready && world.rooms[id]?.createPhase == .done)
        #expect(world.notices.contains { $0.room == id && $0.kind == "ready" })

        // Resolved before its first run: no create goes out, the host is freed.
        let (other, _) = world.openWithHost("INC-2")
        world.resolve("INC-2")
        world.calls = []
        world.run(other, first: .intentCommitted)
        #expect(world.calls.isEmpty, "\(world.calls)")
        #expect(world.rooms[other]?.state == .ended && world.leases[other] == nil)
        #expect(world.meetings.values.filter { $0.roomID == other }.isEmpty)

        // A restart before the create: the intent is settled by the room's marker (nothing found), then the create.
        let (third, _) = world.openWithHost("INC-3")
        world.restart()
        world.calls = []
        world.run(third)
        #expect(world.calls == ["\(third): find marker", "\(third): create"])
        #expect(world.rooms[third]?.state == .ready)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("when the integration refuses everything, a room asked to end is ended without the provider")
    func endWithoutProvider() {
        let world = World(integrations: ["zoom-a"], hostsPerIntegration: 1)
        let id = world.open("INC-1")
        world.run(id)
        world.resolve("INC-1")
        world.script = [.credentialsRefused]
        world.run(id)
        #expect(world.rooms[id]?.state == .ended)
        #expect(world.rooms[id]?.reason?.contains("could not be ended") == true)
        #expect(world.leases[id] == nil)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }

    @Test("no host free: the room waits with the reasons; nothing can ever serve it: it fails")
    func waitingAndFailing() {
        let world = World(integrations: ["zoom-a"], hostsPerIntegration: 1)
        let first = world.open("INC-1")
        world.run(first)
        let second = world.open("INC-2")
        world.run(second)
        #expect(world.rooms[second]?.state == .waiting)
        #expect(world.rooms[second]?.reason?.contains("busy") == true)
        world.integrationsOut = ["zoom-a"]
        let third = world.open("INC-3")
        world.run(third)
        #expect(world.rooms[third]?.state == .failed)
        #expect(world.violations.isEmpty, "\(world.violations)")
    }
}
