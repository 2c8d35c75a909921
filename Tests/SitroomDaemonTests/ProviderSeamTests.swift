import Foundation
import SitroomCore
import Testing

@testable import SitroomDaemon

/// A video provider double behind the seam (``MeetingProvider``): meetings in memory, failures scripted per
/// operation, every call recorded.
actor FakeMeetings: MeetingProviderSource {
    struct Stored {
        var marker: String
        var host: String?
        var ended = false
        var deleted = false
    }

    private(set) var meetings: [Int64: Stored] = [:]
    private(set) var calls: [String] = []
    private var nextID: Int64 = 1000
    /// Failures the next creates throw, in order.
    private var createFailures: [ProviderFailure] = []

    func failNextCreates(_ failures: [ProviderFailure]) { createFailures = failures }

    nonisolated func meetings(
        _ integration: String,
        host: String?,
        user: String?,
        incident: String?
    ) async throws
        -> any MeetingProvider
    {
        Provider(fake: self, host: host)
    }

    func create(_ plan: MeetingPlan, host: String?) throws(ProviderFailure) -> MeetingInfo {
        calls.append("create \(plan.marker)")
        if !createFailures.isEmpty { throw createFailures.removeFirst() }
        nextID += 1
        meetings[nextID] = Stored(marker: plan.marker, host: host)
        return MeetingInfo(id: nextID, joinURL: "https://video.example/j/\(nextID)", passcode: "pc")
    }

    func marked(_ marker: String) -> [Int64] {
        calls.append("find \(marker)")
        return meetings.filter { $0.value.marker == marker && !$0.value.deleted }.keys.sorted()
    }

    func meeting(_ id: Int64) throws(ProviderFailure) -> MeetingInfo {
        calls.append("get \(id)")
        return MeetingInfo(id: id, joinURL: "https://video.example/j/\(id)", passcode: "pc")
    }

    func end(_ id: Int64, delete: Bool) {
        calls.append(delete ? "end+delete \(id)" : "end \(id)")
        meetings[id]?.ended = true
        if delete { meetings[id]?.deleted = true }
    }

    struct Provider: MeetingProvider {
        let fake: FakeMeetings
        let host: String?

        func create(_ plan: MeetingPlan) async throws(ProviderFailure) -> MeetingInfo {
            try await fake.create(plan, host: host)
        }
        func meetings(markedWith marker: String) async throws(ProviderFailure) -> [Int64] { await fake.marked(marker) }
        func meeting(_ id: Int64) async throws(ProviderFailure) -> MeetingInfo { try await fake.meeting(id) }
        func status(of id: Int64) async throws(ProviderFailure) -> ProviderMeetingStatus { .waiting }
        func end(_ id: Int64, delete: Bool) async throws(ProviderFailure) { await fake.end(id, delete: delete) }
        func delete(_ id: Int64) async throws(ProviderFailure) { await fake.end(id, delete: true) }
        func participants(in id: Int64) async throws(ProviderFailure) -> [ProviderParticipant] { [] }
    }
}

/// The daemon's actors in-process (real LMDB in a temporary directory) with a provider double behind the seam:
/// nothing of Zoom is reached, and the rooms behave as they do with Zoom.
@Suite("the provider seam, in-process")
struct ProviderSeamTests {
    func event(
        _ id: String,
        _ stage: IncidentStage,
        incident: String,
        at: Double = Date().timeIntervalSince1970
    )
        -> IncidentEvent
    {
        IncidentEvent(
            eventID: id,
            occurredAt: at,
            stage: stage,
            incident: IncidentInfo(id: incident, title: "Checkout down"),
            participants: [Participant(name: "Ada", email: "ada@example.com", role: .commander)]
        )
    }

    /// Runs `body` over a fixture whose provider calls go to `fake`.
    func withFixture(_ fake: FakeMeetings, _ body: (ReloadFixture) async throws -> Void) async throws {
        try await ReloadFixture(providers: fake).running(body)
    }

    func room(_ fixture: ReloadFixture, _ incident: String, _ state: RoomState) async throws -> Room {
        try await waitFor("room of \(incident) \(state)") {
            let room = try await fixture.core.provisioner.show(incident: incident)?.1
            return room?.state == state ? room : nil
        }
    }

    @Test("an incident gets one meeting through the seam, its link in the room; resolved, the meeting is ended")
    func meetingThroughTheSeam() async throws {
        let fake = FakeMeetings()
        try await withFixture(fake) { fixture in
            _ = try await fixture.core.provisioner.apply(event("e1", .situationRoom, incident: "INC-1"))
            let ready = try await room(fixture, "INC-1", .ready)
            let meetingID = try #require(ready.meetingID)
            #expect(ready.joinURL == "https://video.example/j/\(meetingID)")
            #expect(await fake.calls == ["create \(ready.marker)"])
            #expect(await fake.meetings[meetingID]?.host == ready.hostID)

            _ = try await fixture.core.provisioner.apply(
                event("e2", .resolved, incident: "INC-1", at: Date().timeIntervalSince1970 + 1)
            )
            _ = try await room(fixture, "INC-1", .ended)
            // Ended now; deleted after the reopen hold-down (15 minutes here), so only the end is seen.
            #expect(await fake.calls.last == "end \(meetingID)")
            #expect(await fake.meetings[meetingID]?.ended == true)
        }
    }

    @Test("a failure's decision drives the room: retry later is retried, a lost answer is found by the marker")
    func decisionsDriveTheRoom() async throws {
        let fake = FakeMeetings()
        let retry = ProviderDecision(
            request: .refused,
            host: .none,
            integration: .none,
            next: .retryLater,
            reason: "the provider is busy",
            advice: "none",
            retryIn: 0.05
        )
        let lost = ProviderDecision(
            request: .mayHaveHappened,
            host: .none,
            integration: .none,
            next: .retryLater,
            reason: "no answer",
            advice: "none",
            retryIn: 0.05
        )
        await fake.failNextCreates([
            ProviderFailure(decision: retry, sent: true, credential: "t", detail: "503"),
            ProviderFailure(decision: lost, sent: true, credential: "t", detail: "timed out"),
        ])
        try await withFixture(fake) { fixture in
            _ = try await fixture.core.provisioner.apply(event("e1", .situationRoom, incident: "INC-2"))
            let ready = try await room(fixture, "INC-2", .ready)
            let calls = await fake.calls
            // A busy answer, then a create whose answer was lost: the marker is looked for before the third create.
            #expect(calls.prefix(3) == ["create \(ready.marker)", "create \(ready.marker)", "find \(ready.marker)"])
            #expect(calls.filter { $0.hasPrefix("create") }.count == 3)
            #expect(await fake.meetings.count == 1)
        }
    }
}
