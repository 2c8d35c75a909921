import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore

// Incident events applied in batches: each batch in one group commit, leases taken before it, and the work
// each event calls for started after it.
extension RoomProvisioner {
    // MARK: Events

    /// Applies one incident event durably, then starts whatever Zoom work it calls for; see
    /// ``apply(batch:)`` for the rules.
    /// - Returns: `.duplicate` when the event id was applied before (nothing changes).
    /// - Throws: store errors; the event then stays in the spool and is applied again later.
    public func apply(_ event: IncidentEvent) async throws -> ApplyOutcome {
        try await apply(batch: [event])[0]
    }

    /// Applies many incident events in one LMDB write transaction (a group commit), in the order given, then
    /// starts whatever Zoom work they call for.
    ///
    /// Rules (README "How events apply"):
    /// - an event id applied before is a duplicate: nothing changes;
    /// - an event whose `occurred_at` is older than the last one applied for its incident only merges
    ///   participants: a late `situation_room` after `resolved` does not reopen the room;
    /// - `opened` records the incident; `updated` merges participants (new people get the notices they missed);
    /// - `situation_room` and `reopened` open a room unless one is open. A room whose end was requested but
    ///   not yet carried out is kept (the request withdrawn). An `ended` room comes back with its meeting when
    ///   it ended less than `reopen_hold_down` ago and its meeting was not deleted (the meeting is checked with
    ///   Zoom and its host taken again; if either fails, a new room is made); otherwise a new room is made;
    /// - `resolved` and `closed` end the room. A room made earlier in the same batch, which no Zoom call has
    ///   touched, is dropped instead: a storm that opens and resolves an incident makes no room for it.
    ///
    /// A new incident's first room gets its host before the commit when one is free and no room waits (``preLease(_:)``):
    /// the host, its create count and the create's intent are committed with the event, and the room's first run
    /// sends the create (one synced commit per incident fewer than leasing in the run; docs/performance.md).
    /// - Parameter events: the events, in the order to apply them (the spool sorts a batch by `occurred_at`).
    /// - Returns: one outcome per event, in order.
    /// - Throws: store errors; nothing of the batch is applied then (and the hosts leased for it are freed).
    /// - Complexity: O(events) reads and writes in one transaction.
    public func apply(batch events: [IncidentEvent]) async throws -> [ApplyOutcome] {
        let leases = await preLease(events)
        let now = clock.now()
        let store = self.store
        var batch = BatchEffects()
        let outcomes: [(ApplyOutcome, String)]
        do {
            outcomes = try store.write { txn in
                // The closure may run again (the map grown): start over each time.
                batch = BatchEffects()
                batch.leases = leases
                var results: [(ApplyOutcome, String)] = []
                results.reserveCapacity(events.count)
                for (index, event) in events.enumerated() {
                    // Rooms made by one batch keep the batch's order: each is 1 ms "younger" than the one before, so
                    // the waiting queue (oldest first) and `created_at` agree with the order events were applied.
                    results.append(try applyOne(event, now: now + Double(index) / 1000, txn, &batch))
                }
                for record in batch.records.values { try txn.incidents.put(record) }
                // The creates of the rooms still made (one made and resolved in the batch counts none).
                for (roomID, lease) in batch.leased where batch.created[roomID] != nil {
                    try txn.usage.recordCreates(
                        atLeast: lease.creates.count,
                        day: lease.creates.day,
                        integration: lease.host.integration,
                        host: lease.host.host
                    )
                }
                return results
            }
        } catch {
            for lease in leases.values { await pool.release(lease.key, room: lease.roomID) }
            throw error
        }
        for lease in leases.values where batch.leased[lease.roomID] == nil || batch.created[lease.roomID] == nil {
            await pool.release(lease.key, room: lease.roomID)
        }
        for (event, (outcome, effect)) in zip(events, outcomes) {
            var metadata: Logger.Metadata = [
                "event.id": "\(event.eventID)", "incident.id": "\(event.incident.id)",
                "stage": "\(event.stage.rawValue)",
            ]
            if outcome != .duplicate { metadata["effect"] = "\(effect)" }
            logger.info(outcome == .duplicate ? "duplicate event ignored" : "event applied", metadata: metadata)
            if outcome != .duplicate && !event.unreachable.isEmpty {
                logger.warning(
                    "participants who cannot be told",
                    metadata: [
                        "event.id": "\(event.eventID)", "incident.id": "\(event.incident.id)",
                        "people":
                            "\(NoticePlanner.unreachableList(event.unreachable).replacingOccurrences(of: "\n", with: "; "))",
                    ]
                )
            }
        }
        if !batch.queued.isEmpty {
            let queued = batch.queued
            Task { await notifier.enqueued(queued) }
        }
        for (id, time) in batch.deletions { scheduleDeletion(id, at: time) }
        for id in batch.drives {
            drive(id, intentCommitted: batch.leased[id] != nil && batch.created[id] != nil)
        }
        return outcomes.map(\.0)
    }

    /// A host leased for a room an event is about to make, before the event's commit.
    struct PreLease: Sendable {
        /// The id the room will have.
        var roomID: String
        var host: PoolHost
        var user: String
        var creates: CreateCount
        var key: HostKey { HostKey(integration: host.integration, host: host.host) }
    }

    /// Leases hosts for the rooms of the incidents `events` open for the first time (a `situation_room` or `reopened`
    /// event of an incident not recorded yet, and not closed later in the batch), so their hosts and create intents
    /// go into the batch's commit. Nothing is leased while rooms wait (they come first), nor for a room no host can
    /// take now (its run leases as usual, and waits or fails with the reasons). A known incident's new room (a reopen
    /// after the hold-down, a retry) leases in its run: telling whether it gets one would decode its records twice.
    /// A lease not used after all (a duplicate event) is freed after the commit.
    /// - Returns: the leases by incident id.
    func preLease(_ events: [IncidentEvent]) async -> [String: PreLease] {
        guard waiting.isEmpty, !stopped else { return [:] }
        var openings: [String: IncidentEvent] = [:]
        var closed: Set<String> = []
        for event in events {
            switch event.stage {
            case .situationRoom, .reopened:
                if openings[event.incident.id] == nil { openings[event.incident.id] = event }
            case .resolved, .closed: closed.insert(event.incident.id)
            default: break
            }
        }
        for id in closed { openings[id] = nil }
        guard !openings.isEmpty else { return [:] }
        let store = self.store
        let now = clock.now()
        let new: [String]
        do {
            new = try store.read { txn in try openings.keys.filter { try !txn.incidents.contains($0) } }
        } catch {
            return [:]  // the runs lease as usual
        }
        // In the batch's order (by `occurred_at`): the first incident no host can take now stops the leasing, so the
        // ones after it queue behind it rather than take a host that frees up meanwhile.
        let fresh = Set(new)
        var order: [String] = []
        for event in events where fresh.contains(event.incident.id) && !order.contains(event.incident.id) {
            order.append(event.incident.id)
        }
        var leases: [String: PreLease] = [:]
        for id in order {
            guard let event = openings[id] else { continue }
            let record = IncidentRecord(
                info: event.incident,
                stage: event.stage,
                participants: [],
                integration: event.integration,
                roomID: nil,
                lastOccurredAt: event.occurredAt
            )
            let roomID = Self.newRoomID()
            guard
                case .leased(let host, let user, let creates)? = try? await lease(
                    roomID: roomID,
                    createdAt: now,
                    record: record,
                    excluding: [],
                    queued: true
                )
            else { break }
            leases[id] = PreLease(roomID: roomID, host: host, user: user, creates: creates)
        }
        return leases
    }

    /// How far ahead of sitroomd's clock an event's `occurred_at` may be (seconds); a later one is taken as stamped
    /// now, when it arrived (so a sender's wrong clock cannot make later events of the incident, its own corrected
    /// ones included, look stale).
    public static let maxClockAhead: Double = 300

    /// What a batch does besides its writes, collected inside the transaction and carried out after the commit.
    struct BatchEffects {
        /// Rooms to drive, in order.
        var drives: [String] = []
        var queued: [Notice] = []
        /// Meetings to delete after their hold-down: room id → when.
        var deletions: [(String, Double)] = []
        /// Rooms made by this batch → the incident's room before.
        var created: [String: String?] = [:]
        /// Hosts leased before the commit, by incident id (``preLease(_:)``), not yet given to a room.
        var leases: [String: PreLease] = [:]
        /// Rooms made with a host leased before the commit, by room id.
        var leased: [String: PreLease] = [:]
        /// The incidents as the batch left them, by id: each is read and written once per batch, however many of its
        /// events the batch holds.
        var records: [String: IncidentRecord] = [:]

        mutating func drive(_ id: String) { if !drives.contains(id) { drives.append(id) } }
        mutating func undrive(_ id: String) { drives.removeAll { $0 == id } }
    }

    func applyOne(
        _ event: IncidentEvent,
        now: Double,
        _ txn: borrowing StoreTransaction,
        _ batch: inout BatchEffects
    ) throws -> (ApplyOutcome, String) {
        guard try txn.events.markSeen(event.eventID, at: now) else { return (.duplicate, "") }
        // No sender's clock decides alone: a time too far ahead counts as now (plus the tolerance), and a resolve
        // ends the open room whatever its time (an open older than the incident's last event is what is ignored).
        let occurredAt = event.occurredAt > now + Self.maxClockAhead ? now : event.occurredAt
        var notes: [String] = []
        if occurredAt < event.occurredAt {
            notes.append(
                "occurred_at \(rfc3339UTC(event.occurredAt)) is ahead of sitroomd's clock: taken as \(rfc3339UTC(occurredAt))"
            )
        }
        let known = try batch.records[event.incident.id] ?? txn.incidents.get(event.incident.id)
        var record =
            known
            ?? IncidentRecord(
                info: event.incident,
                stage: event.stage,
                participants: [],
                integration: event.integration,
                roomID: nil,
                lastOccurredAt: occurredAt
            )
        // An opening stamped far in the future cannot claim to come after a resolve: with its sender's clock that far
        // off, its order against the resolve is unknown, and a resolved incident stays resolved (`reopened` reopens).
        let unknownOrder =
            occurredAt < event.occurredAt && known != nil && event.stage == .situationRoom
            && (record.stage == .resolved || record.stage == .closed)
        let stale = occurredAt < record.lastOccurredAt || unknownOrder
        let closing = event.stage == .resolved || event.stage == .closed
        record.merge(participants: event.participants, unreachable: event.unreachable)
        if !stale {
            record.info = event.incident
            record.stage = event.stage
            record.lastOccurredAt = occurredAt
            if let integration = event.integration { record.integration = integration }
        } else if closing {
            record.stage = event.stage
        }
        var room = try record.roomID.flatMap { try txn.rooms.get($0) }
        let before = room

        switch event.stage {
        case .situationRoom, .reopened:
            if stale {
                notes.append(
                    unknownOrder
                        ? "ignored: the incident is \(record.stage.rawValue) and this event's occurred_at is far ahead of "
                            + "sitroomd's clock, so it cannot be placed after the resolve (a `reopened` event reopens it)"
                        : "stale: ignored (occurred_at \(rfc3339UTC(occurredAt)) is before the incident's last event at "
                            + "\(rfc3339UTC(record.lastOccurredAt)); participants merged)"
                )
                break
            }
            guard var current = room else {
                room = try newRoom(for: &record, now: now, txn, &batch)
                break
            }
            if current.state.isOpen {
                if current.endRequested {
                    // Reopened before the end was carried out: keep the room (and its meeting).
                    current.endRequested = false
                    current.closedByOperator = false
                    current.updatedAt = now
                    try txn.rooms.put(current)
                    room = current
                    batch.drive(current.id)
                }
            } else if RoomRules.isReusable(current, now: now, policy: policy) {
                current = RoomRules.reopened(current, now: now)
                try txn.rooms.put(current)
                room = current
                batch.drive(current.id)
            } else {
                room = try newRoom(for: &record, now: now, txn, &batch)
            }
        case .resolved, .closed:
            if stale {
                notes.append(
                    "applied although its occurred_at \(rfc3339UTC(occurredAt)) is before the incident's last event at "
                        + "\(rfc3339UTC(record.lastOccurredAt)): a resolve always ends the open room"
                )
            }
            if let stored = room, var failed = RoomRules.sweepBeforeReplacing(stored) {
                // Its create's outcome was unknown: sweep Zoom for the room's marker now that it is over.
                failed.updatedAt = now
                try txn.rooms.put(failed)
                room = failed
                batch.drive(failed.id)
                break
            }
            guard var open = room, open.state.isOpen, !open.endRequested else { break }
            if let previous = batch.created[open.id] {
                // Made by this batch and never worked on: nobody ever saw it.
                try txn.rooms.delete(open.id)
                batch.created[open.id] = nil
                batch.undrive(open.id)
                record.roomID = previous
                room = try previous.flatMap { try txn.rooms.get($0) }
            } else if RoomRules.isRevivalPending(open), running[open.id] == nil {
                // Reopened and resolved again before any Zoom call: it is ended as it was.
                open = RoomRules.endedAsItWas(open, now: now, policy: policy)
                if let after = open.deleteAfter { batch.deletions.append((open.id, after)) }
                try txn.rooms.put(open)
                batch.undrive(open.id)
                room = open
            } else {
                open.endRequested = true
                open.updatedAt = now
                try txn.rooms.put(open)
                room = open
                batch.drive(open.id)
            }
        default:
            break
        }
        if let room, room.state == .ready, !room.endRequested {
            batch.queued += try planner.roomReady(room: room, record: record, now: now, txn)
        }
        batch.records[record.info.id] = record  // written once, at the end of the batch
        return (.applied, Self.effect(of: event, before: before, after: room, known: known != nil, notes: notes))
    }

    /// What applying an event did, for its log line: the room made, reopened, asked to end, or nothing but the
    /// record (participants merged), and the notes (a clock ahead, a stale event).
    static func effect(of event: IncidentEvent, before: Room?, after: Room?, known: Bool, notes: [String]) -> String {
        var what: String
        switch (before, after) {
        case (nil, let room?):
            what = "room \(room.id) opened"
        case (_?, let room?) where room.id != before?.id:
            what = "room \(room.id) opened"
        case (let old?, let room?) where !old.state.isOpen && room.state.isOpen:
            what = "room \(room.id) reopened"
        case (let old?, let room?) where room.endRequested && !old.endRequested:
            what = "room \(room.id) asked to end"
        case (let old?, let room?) where old.state.isOpen && !room.state.isOpen:
            what = "room \(room.id) ended"
        case (let old?, let room?) where old.endRequested && !room.endRequested:
            what = "room \(room.id) kept open (reopened before its end)"
        default:
            what = known ? "merged participants only" : "incident recorded (no room)"
            if event.stage == .resolved || event.stage == .closed, after.map({ !$0.state.isOpen }) ?? true {
                what = known ? "incident \(event.stage.rawValue) (no open room)" : what
            }
        }
        return ([what] + notes).joined(separator: "; ")
    }

    /// Makes a new room for the incident in the batch's transaction and remembers the room it had before.
    func newRoom(
        for record: inout IncidentRecord,
        now: Double,
        _ txn: borrowing StoreTransaction,
        _ batch: inout BatchEffects
    ) throws -> Room {
        if let previous = record.roomID, var old = try txn.rooms.get(previous),
            let swept = RoomRules.sweepBeforeReplacing(old)
        {
            // A failed room whose create's outcome was unknown: its meeting may exist; it is looked for and ended.
            old = swept
            try txn.rooms.put(old)
            batch.drive(old.id)
        }
        var fresh: Room
        if let lease = batch.leases.removeValue(forKey: record.info.id) {
            // Its host was leased before this commit: the host and the create's intent are committed with the event.
            fresh = Room(id: lease.roomID, incidentID: record.info.id, createdAt: now)
            fresh = RoomRules.leased(fresh, host: lease.host, user: lease.user, now: now)
            batch.leased[fresh.id] = lease
        } else {
            fresh = Room(id: Self.newRoomID(), incidentID: record.info.id, createdAt: now)
        }
        batch.created.updateValue(record.roomID, forKey: fresh.id)  // keeps a nil previous room
        record.roomID = fresh.id
        try txn.rooms.put(fresh)
        batch.drive(fresh.id)
        return fresh
    }
}
