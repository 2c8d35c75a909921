import SitroomCore
import Testing

@testable import SitroomDaemon

/// The order a spool batch is applied in (``SpoolIntake/order(_:)``): by `occurred_at`, but a resolve goes after
/// the same incident's opening events of the batch, whatever the senders' clocks say.
@Suite("spool batch order")
struct SpoolOrderTests {
    func event(
        _ id: String,
        _ stage: IncidentStage,
        _ incident: String,
        at time: Double
    ) -> (name: String, event: IncidentEvent) {
        (
            id,
            IncidentEvent(
                eventID: id,
                occurredAt: time,
                stage: stage,
                incident: IncidentInfo(id: incident, title: "t"),
                participants: []
            )
        )
    }

    @Test("by occurred_at, then as found")
    func byTime() {
        let batch = [
            event("b", .situationRoom, "I1", at: 20), event("a", .situationRoom, "I2", at: 10),
            event("c", .updated, "I2", at: 10),
        ]
        #expect(SpoolIntake.order(batch).map(\.name) == ["a", "c", "b"])
    }

    @Test(
        "a resolve stamped before its incident's opening in the same batch still comes last: the incident ends resolved"
    )
    func resolveAfterOpening() {
        // Resolved by hand with an end before the firing's start, both files in new/ at once.
        let batch = [
            event("fire", .situationRoom, "I1", at: 100), event("resolve", .resolved, "I1", at: 40),
            event("other", .situationRoom, "I2", at: 50),
        ]
        #expect(SpoolIntake.order(batch).map(\.name) == ["other", "fire", "resolve"])
    }

    @Test("but not after a reopen: that says the incident came back after it was resolved")
    func reopenStaysLast() {
        let batch = [
            event("resolve", .resolved, "I1", at: 10), event("reopen", .reopened, "I1", at: 20),
            event("update", .updated, "I1", at: 30),
        ]
        #expect(SpoolIntake.order(batch).map(\.name) == ["resolve", "reopen", "update"])
        let other = [
            event("close", .closed, "I1", at: 10), event("update", .updated, "I1", at: 20),
            event("again", .reopened, "I1", at: 30),
        ]
        #expect(SpoolIntake.order(other).map(\.name) == ["update", "close", "again"])
    }
}
