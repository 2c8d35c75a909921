import Foundation
import LMDB
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomRuntime
import SitroomStore
import SitroomZoom

/// Turns incident events into rooms and rooms into Zoom meetings (SPEC §5).
///
/// Every event is applied in one LMDB transaction (incident, room, seen event id, notices) before its spool
/// file leaves `new/`. A room is written `provisioning` with its create phase `in_flight` *before* the create
/// request is sent; a create whose outcome is unknown (lost reply, crash) is settled by looking for the
/// room's marker `sitroom:room=<id>` among the host's meetings before creating again, so no room ever gets
/// two meetings.
public actor RoomProvisioner {
    private let executor = ThreadExecutor(name: "sitroom-rooms")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// The outcome of applying one event.
    public enum ApplyOutcome: String, Sendable {
        case applied
        /// Its event id was applied before.
        case duplicate
    }

    /// Transient failures (5xx, timeouts, refused connections) retried this many times before a room fails.
    public var maxTransientAttempts = 4
    /// Seconds of the first backoff step; doubles per attempt, capped at ``maxBackoff``.
    public var firstBackoff = 0.5
    public var maxBackoff = 30.0
    /// Seconds a host that failed is skipped by new leases.
    static let coolDown = 30.0

    let store: Store
    let pool: AccountPool
    let registry: IntegrationRegistry
    let notifier: Notifier
    let clock: any WallClock
    let logger: Logger
    var configuration: Configuration
    private var templates: NoticeTemplates
    var running: [String: Task<Void, Never>] = [:]
    /// Meetings waiting out the reopen hold-down before they are deleted, by room id.
    private var deletions: [String: Task<Void, Never>] = [:]
    private var rerun: Set<String> = []
    /// Rooms whose work has news it has not looked at yet (``drive(_:)`` while it runs): a ``pause(_:seconds:)``
    /// that starts after the news came (the work was awaiting a commit or a Zoom call) returns at once.
    var news: Set<String> = []
    var stopped = false
    /// Rooms in `waiting`: id → when the room was made (the queue is served oldest first).
    var waiting: [String: Double] = [:]
    private var retrying = false
    private var retryAgain = false
    /// Rooms backing off, woken early by news (``drive(_:)``) or shutdown.
    private var wakers: [String: CheckedContinuation<Void, Never>] = [:]
    /// Room writes waiting for the next group commit (``commit(_:)``), in the order they were asked for.
    private var pendingWrites: [PendingWrite] = []
    private var flushScheduled = false

    let metrics: SitroomMetrics

    /// - Parameter metrics: records how long rooms take from their event to `ready`.
    public init(
        store: Store, pool: AccountPool, registry: IntegrationRegistry, notifier: Notifier, configuration: Configuration,
        clock: any WallClock, logger: Logger, metrics: SitroomMetrics = SitroomMetrics()
    ) throws {
        self.metrics = metrics
        self.store = store
        self.pool = pool
        self.registry = registry
        self.notifier = notifier
        self.configuration = configuration
        self.templates = try NoticeTemplates(configuration.templates)
        self.topicTemplates = Self.topicTemplates(configuration)
        self.clock = clock
        self.logger = logger
    }

    /// Applies a configuration generation to the next room and notice.
    public func configure(_ configuration: Configuration) throws {
        templates = try NoticeTemplates(configuration.templates)
        topicTemplates = Self.topicTemplates(configuration)
        self.configuration = configuration
    }

    /// Each integration's `meeting.topic` template, parsed once per configuration generation (not per room).
    private var topicTemplates: [String: NoticeTemplates]

    private static func topicTemplates(_ configuration: Configuration) -> [String: NoticeTemplates] {
        // The topic renders like a one-paragraph text notice (the kind.channel key is only a slot for it). One
        // that does not parse renders as the incident's title.
        configuration.integrations.compactMapValues { try? NoticeTemplates(["room-ready.chat": $0.meeting.topic]) }
    }

    /// The live configuration generation (the spool reads `feeds`, the roster and `spool` settings from it).
    public func currentConfiguration() -> Configuration { configuration }

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
                for record in batch.records.values { try store.putIncident(record, txn) }
                // The creates of the rooms still made (one made and resolved in the batch counts none).
                for (roomID, lease) in batch.leased where batch.created[roomID] != nil {
                    try store.recordCreates(
                        atLeast: lease.creates.count, day: lease.creates.day, integration: lease.host.integration,
                        host: lease.host.host, txn)
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
                "event.id": "\(event.eventID)", "incident.id": "\(event.incident.id)", "stage": "\(event.stage.rawValue)",
            ]
            if outcome != .duplicate { metadata["effect"] = "\(effect)" }
            logger.info(outcome == .duplicate ? "duplicate event ignored" : "event applied", metadata: metadata)
            if outcome != .duplicate && !event.unreachable.isEmpty {
                logger.warning(
                    "participants who cannot be told",
                    metadata: [
                        "event.id": "\(event.eventID)", "incident.id": "\(event.incident.id)",
                        "people": "\(NoticePlanner.unreachableList(event.unreachable).replacingOccurrences(of: "\n", with: "; "))",
                    ])
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
    private func preLease(_ events: [IncidentEvent]) async -> [String: PreLease] {
        guard waiting.isEmpty, !stopped else { return [:] }
        var openings: [String: IncidentEvent] = [:]
        var closed: Set<String> = []
        for event in events {
            switch event.stage {
            case .situationRoom, .reopened: if openings[event.incident.id] == nil { openings[event.incident.id] = event }
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
            new = try store.read { txn in try openings.keys.filter { try !store.hasIncident($0, txn) } }
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
                info: event.incident, stage: event.stage, participants: [], integration: event.integration, roomID: nil,
                lastOccurredAt: event.occurredAt)
            let roomID = Self.newRoomID()
            guard
                case .leased(let host, let user, let creates)? = try? await lease(
                    roomID: roomID, createdAt: now, record: record, excluding: [], queued: true)
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
    private struct BatchEffects {
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

    private func applyOne(
        _ event: IncidentEvent, now: Double, _ txn: borrowing Transaction, _ batch: inout BatchEffects
    ) throws -> (ApplyOutcome, String) {
        guard try store.markEventSeen(event.eventID, at: now, txn) else { return (.duplicate, "") }
        // No sender's clock decides alone: a time too far ahead counts as now (plus the tolerance), and a resolve
        // ends the open room whatever its time (an open older than the incident's last event is what is ignored).
        let occurredAt = event.occurredAt > now + Self.maxClockAhead ? now : event.occurredAt
        var notes: [String] = []
        if occurredAt < event.occurredAt {
            notes.append("occurred_at \(rfc3339UTC(event.occurredAt)) is ahead of sitroomd's clock: taken as \(rfc3339UTC(occurredAt))")
        }
        let known = try batch.records[event.incident.id] ?? store.incident(event.incident.id, txn)
        var record =
            known
            ?? IncidentRecord(
                info: event.incident, stage: event.stage, participants: [], integration: event.integration,
                roomID: nil, lastOccurredAt: occurredAt)
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
        var room = try record.roomID.flatMap { try store.room($0, txn) }
        let before = room

        switch event.stage {
        case .situationRoom, .reopened:
            if stale {
                notes.append(
                    unknownOrder
                        ? "ignored: the incident is \(record.stage.rawValue) and this event's occurred_at is far ahead of "
                            + "sitroomd's clock, so it cannot be placed after the resolve (a `reopened` event reopens it)"
                        : "stale: ignored (occurred_at \(rfc3339UTC(occurredAt)) is before the incident's last event at "
                            + "\(rfc3339UTC(record.lastOccurredAt)); participants merged)")
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
                    try store.putRoom(current, txn)
                    room = current
                    batch.drive(current.id)
                }
            } else if RoomRules.isReusable(current, now: now, policy: policy) {
                current = RoomRules.reopened(current, now: now)
                try store.putRoom(current, txn)
                room = current
                batch.drive(current.id)
            } else {
                room = try newRoom(for: &record, now: now, txn, &batch)
            }
        case .resolved, .closed:
            if stale {
                notes.append(
                    "applied although its occurred_at \(rfc3339UTC(occurredAt)) is before the incident's last event at "
                        + "\(rfc3339UTC(record.lastOccurredAt)): a resolve always ends the open room")
            }
            if let stored = room, var failed = RoomRules.sweepBeforeReplacing(stored) {
                // Its create's outcome was unknown: sweep Zoom for the room's marker now that it is over.
                failed.updatedAt = now
                try store.putRoom(failed, txn)
                room = failed
                batch.drive(failed.id)
                break
            }
            guard var open = room, open.state.isOpen, !open.endRequested else { break }
            if let previous = batch.created[open.id] {
                // Made by this batch and never worked on: nobody ever saw it.
                try store.deleteRoom(open.id, txn)
                batch.created[open.id] = nil
                batch.undrive(open.id)
                record.roomID = previous
                room = try previous.flatMap { try store.room($0, txn) }
            } else if RoomRules.isRevivalPending(open), running[open.id] == nil {
                // Reopened and resolved again before any Zoom call: it is ended as it was.
                open = RoomRules.endedAsItWas(open, now: now, policy: policy)
                if let after = open.deleteAfter { batch.deletions.append((open.id, after)) }
                try store.putRoom(open, txn)
                batch.undrive(open.id)
                room = open
            } else {
                open.endRequested = true
                open.updatedAt = now
                try store.putRoom(open, txn)
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
    private func newRoom(
        for record: inout IncidentRecord, now: Double, _ txn: borrowing Transaction, _ batch: inout BatchEffects
    ) throws -> Room {
        if let previous = record.roomID, var old = try store.room(previous, txn), let swept = RoomRules.sweepBeforeReplacing(old) {
            // A failed room whose create's outcome was unknown: its meeting may exist; it is looked for and ended.
            old = swept
            try store.putRoom(old, txn)
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
        try store.putRoom(fresh, txn)
        batch.drive(fresh.id)
        return fresh
    }

    /// Starts work on every room left unfinished by the last run (start-up recovery) and on waiting rooms, and
    /// schedules the pending deletions of ended rooms' meetings. Only the rooms the room index marks
    /// (``RoomSummary/needsRecovery``: open, or ended with a deletion pending) are decoded.
    /// - Complexity: O(rooms) index entries, plus a decode per open room and per ended room awaiting deletion.
    public func recover() throws {
        let store = self.store
        let rooms = try store.read { txn in try store.rooms(where: { $0.needsRecovery }, txn) }
        for room in rooms.sorted(by: { $0.createdAt < $1.createdAt }) {
            if room.state == .waiting && !room.endRequested {
                waiting[room.id] = room.createdAt
            } else if room.state.isOpen, room.state != .ready || room.endRequested {
                drive(room.id)
            } else if room.state == .failed, room.endRequested, room.sweepMarker {
                drive(room.id)  // its sweep for a meeting a create may have left was not done yet
            }
            if room.state == .ended, let after = room.deleteAfter {
                scheduleDeletion(room.id, at: room.meetingDeletedAt == nil ? after : 0)
            }
        }
        if !waiting.isEmpty { Task { await self.retryWaiting() } }
    }

    /// Returns at once: that it returns shows the actor's thread is not stuck (the systemd watchdog).
    public func heartbeat() {}

    /// Stops starting new work; in-flight Zoom calls are cancelled, their rooms stay durable in LMDB.
    public func stop() {
        stopped = true
        for task in running.values { task.cancel() }
        for id in Array(wakers.keys) { wake(id) }
        for task in deletions.values { task.cancel() }
    }

    /// Gives waiting rooms another try, oldest first (a host was freed, a cool-down or the UTC day ended):
    /// each in turn leases a host and starts its work; the first that finds none leaves the rest waiting.
    /// - Complexity: O(w log w) in the waiting rooms.
    public func retryWaiting() async {
        if retrying {
            retryAgain = true
            return
        }
        retrying = true
        defer { retrying = false }
        repeat {
            retryAgain = false
            // Integrations an older room of this pass found no host in (or whose own run is leasing now): a younger
            // room that could only use them is not served before it, even when a host frees up during the pass.
            var taken: Set<String> = []
            for id in waiting.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }).map(\.key) {
                guard !stopped, let room = readRoom(id), room.state == .waiting else { continue }
                let wanted = Set((try? readIncident(room.incidentID)).flatMap { $0 }.map { candidates(for: $0) } ?? [])
                if running[id] != nil {
                    if !room.endRequested { taken.formUnion(wanted) }
                    continue
                }
                if room.endRequested {
                    drive(id)
                } else if !wanted.isEmpty, wanted.isSubset(of: taken) {
                    continue
                } else if await leaseWaiting(id) {
                    drive(id)
                } else if readRoom(id)?.state == .waiting {
                    taken.formUnion(wanted)
                }
            }
        } while retryAgain && !stopped
    }

    /// Periodic duties (every few seconds): serve waiting rooms whose hosts came back (cool-down over, a new
    /// UTC day), and tell the admins once about rooms waiting longer than `conference.waiting_alert_after`.
    public func tick() async {
        let now = clock.now()
        let limit = configuration.daemon.conference.waitingAlertAfter
        for id in waiting.keys.sorted() {
            guard let room = readRoom(id), room.state == .waiting, let since = room.waitingSince, now - since >= limit else {
                continue
            }
            queueAdminNotices(kind: .adminWaiting, room: room, integration: room.integration, reason: room.reason ?? "waiting")
        }
        await retryWaiting()
        if !idleRefreshRunning, let shortest = await registry.shortestIdleRefresh(),
            now - idleRefreshCheckedAt >= min(3600, shortest / 4)
        {
            idleRefreshRunning = true
            idleRefreshCheckedAt = now
            Task { await self.refreshIdleHosts() }
        }
    }

    /// When the idle zoom-oauth hosts were last looked at (seconds since 1970), and whether a look is under way.
    private var idleRefreshCheckedAt = 0.0
    private var idleRefreshRunning = false

    /// Refreshes idle zoom-oauth hosts whose pair is older than `refresh_idle_after`
    /// (``IntegrationRegistry/refreshIdleHosts()``), and tells the admins once about each host Zoom refused.
    private func refreshIdleHosts() async {
        defer { idleRefreshRunning = false }
        let (_, refused) = await registry.refreshIdleHosts()
        for failure in refused {
            let decision = failure.error.decision(now: clock.now(), integration: failure.integration, host: failure.host)
            queueAdminNotices(
                kind: .adminReauthorize, room: nil, integration: failure.integration,
                reason: "host \(failure.host): \(decision.reason)", advice: decision.advice)
        }
    }

    /// Rooms of open incidents on an integration (or one of its hosts) lose their Zoom functionality: they
    /// become `unavailable` with the reason, their work stops and their hosts are freed (SPEC §5: deauthorized
    /// or removed). Only rooms bound to it count (ready, a host leased, a meeting made or a create sent); a
    /// room merely waiting stays waiting for another integration. The meeting itself is left alone in Zoom.
    /// - Returns: the ids of the rooms changed.
    /// - Complexity: O(rooms) index entries, plus a decode per open room.
    @discardableResult
    public func markUnavailable(integration: String, host: String? = nil, reason: String) async throws -> [String] {
        let store = self.store
        let now = clock.now()
        let changed: [Room] = try store.write { txn in
            var changed: [Room] = []
            for room in try store.rooms(where: { $0.state.isOpen }, txn) {
                guard let unavailable = RoomRules.unavailable(room, integration: integration, host: host, reason: reason, now: now)
                else { continue }
                try store.putRoom(unavailable, txn)
                changed.append(unavailable)
            }
            return changed
        }
        for room in changed {
            running[room.id]?.cancel()
            track(room)
            if let hostID = room.hostID { await pool.release(HostKey(integration: integration, host: hostID), room: room.id) }
            logger.warning(
                "room unavailable", metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "reason": "\(reason)"])
        }
        return changed.map(\.id)
    }

    /// Tells the admins that an integration needs them (re-authorization), once per integration and cause.
    public func notifyAdminsReauthorize(integration: String, reason: String, advice: String? = nil) {
        queueAdminNotices(kind: .adminReauthorize, room: nil, integration: integration, reason: reason, advice: advice)
    }

    /// `room retry INCIDENT`: a `failed` or `unavailable` room is tried again from the start (a new lease; its
    /// integration may have been re-authorized meanwhile); a `waiting` room is given a host if one is free.
    /// - Returns: a line for the admin.
    /// - Throws: ``SitroomError`` `.notFound` (no such incident or room) or `.badCommand` (the room is fine).
    public func retry(incident: String) async throws -> String {
        guard let (_, found) = try show(incident: incident), let room = found else {
            throw SitroomError(.notFound, "no room for incident \(incident)")
        }
        if room.state == .waiting {
            await retryWaiting()
            return "room \(room.id) of \(incident) is waiting: \(readRoom(room.id)?.reason ?? "")"
        }
        if room.state == .failed, room.sweepMarker, !room.endRequested, running[room.id] == nil {
            // A create of this room may have left a meeting on its host: the room keeps its host and marker and is
            // swept for it (``RoomRules/sweepBeforeReplacing(_:)``), and the incident gets a new room, which may
            // lease another host (a retry of the same room would forget the host the stray meeting is on).
            let store = self.store
            let now = clock.now()
            var batch = BatchEffects()
            let fresh: Room? = try store.write { txn in
                guard var record = try store.incident(incident, txn), record.roomID == room.id else { return nil }
                let fresh = try newRoom(for: &record, now: now, txn, &batch)
                try store.putIncident(record, txn)
                return fresh
            }
            if let fresh {
                track(fresh)
                for id in batch.drives { drive(id) }
                return "room \(room.id) of \(incident) is swept for a meeting its create may have left; new room \(fresh.id) is being provisioned"
            }
        }
        let retried: Room
        switch RoomRules.retry(room, now: clock.now()) {
        case .success(let value): retried = value
        case .failure(let refusal): throw SitroomError(.badCommand, refusal.message)
        }
        // Written at once, not through the machine's merge: that refuses to bring back an `unavailable` room (work
        // still in flight for it must not), which is exactly what this command asks. The stored end request stays.
        let store = self.store
        try store.write { txn in
            var current = retried
            if let stored = try store.room(current.id, txn) {
                current.endRequested = stored.endRequested
                current.closedByOperator = stored.closedByOperator
                current.live = stored.live
            }
            try store.putRoom(current, txn)
        }
        track(retried)
        drive(retried.id)
        return "room \(retried.id) of \(incident) is being provisioned again"
    }

    /// Applies one of Zoom's meeting events (from a verified webhook or the WebSocket subscription) to the open
    /// room whose meeting it names; events of meetings sitroom did not make, or of rooms no longer open, change
    /// nothing. Duplicates and events out of order are harmless (``LiveMeeting/apply(_:)``).
    /// - Parameter via: `webhook` or `websocket`, for the log.
    /// - Returns: what it did, for the log.
    @discardableResult
    public func applyMeetingEvent(_ event: ZoomMeetingEvent, via: String) async -> String {
        let store = self.store
        let planner = self.planner
        let now = clock.now()
        var withdrawn: [Notice] = []
        var timings: [(String, Double)] = []
        let outcome: Result<(Room, Bool)?, any Error> = Result {
            try store.write { txn -> (Room, Bool)? in
                withdrawn = []
                timings = []
                guard var room = try store.rooms(where: { $0.state.isOpen }, txn).first(where: { $0.meetingID == event.meetingID })
                else { return nil }
                var live = room.live ?? LiveMeeting(status: .waiting, statusAt: 0)
                guard live.apply(event) else { return (room, false) }
                if event.kind == .participantJoined, let record = try store.incident(room.incidentID, txn) {
                    // Whoever of the participants is in (or has been in) the meeting is not nudged.
                    var present: [Double] = []
                    var firstJoins: [Double] = []
                    for person in record.participants where live.standing(of: person) != .notYet {
                        withdrawn += try planner.joined(room: room, person: person, now: now, txn)
                        if case .present(let since) = live.standing(of: person) { present.append(since) }
                        let email = person.email?.lowercased()
                        firstJoins += live.attendees.filter { $0.email == email }.compactMap(\.firstJoinedAt)
                    }
                    // The times come from the attendees, not this event (a reconciliation may bring an earlier join).
                    if let first = firstJoins.min() {
                        if live.participantFirstJoinAt == nil {
                            timings.append(("sitroom_meeting_first_join_seconds", first - (room.readyAt ?? first)))
                        }
                        live.participantFirstJoinAt = min(live.participantFirstJoinAt ?? first, first)
                    }
                    let expected = record.participants.filter { $0.email != nil }.count
                    if live.assembledAt == nil, expected > 0, present.count == expected, let last = present.max() {
                        live.assembledAt = last  // when the last of them came in
                        timings.append(("sitroom_meeting_assembled_seconds", last - (room.readyAt ?? last)))
                    }
                }
                room.live = live
                try store.putRoom(room, txn)
                return (room, true)
            }
        }
        if !withdrawn.isEmpty { await notifier.enqueued(withdrawn) }
        if case .success(_?) = outcome {
            for (name, seconds) in timings { metrics.observe(name, max(0, seconds), bounds: SitroomMetrics.joinBuckets) }
        }
        var metadata: Logger.Metadata = [
            "event": "\(event.kind.rawValue)", "meeting": "\(event.meetingID)", "via": "\(via)",
        ]
        if let person = event.person { metadata["participant"] = "\(person.name)" }
        switch outcome {
        case .failure(let error):
            metadata["error"] = "\(error)"
            logger.error("cannot apply a Zoom meeting event", metadata: metadata)
            return "not applied: \(error)"
        case .success(nil):
            logger.debug("Zoom meeting event of no open room (a meeting sitroom did not make, or ended): ignored", metadata: metadata)
            return "no open room has meeting \(event.meetingID): ignored"
        case .success(let (room, changed)?):
            metadata["room.id"] = "\(room.id)"
            metadata["incident.id"] = "\(room.incidentID)"
            if changed {
                metadata["present"] = "\(room.live?.present.count ?? 0)"
                logger.info("Zoom meeting event applied", metadata: metadata)
                // Counted as Zoom reported them; reconciliation's corrections are not joins or leaves seen.
                if via != "reconcile" {
                    if event.kind == .participantJoined { metrics.increment("sitroom_meeting_joins_total") }
                    if event.kind == .participantLeft { metrics.increment("sitroom_meeting_leaves_total") }
                }
                return "room \(room.id) updated"
            }
            logger.debug("Zoom meeting event changed nothing (a duplicate, or older than what the room knows)", metadata: metadata)
            return "room \(room.id): nothing new"
        }
    }

    /// `room end INCIDENT`: an operator closes the room now: the meeting is ended (and deleted per
    /// `on_resolve`) as a `resolved` event would, but the incident stays as it is, and the `room-ended` notices
    /// say that an operator closed the room (``Room/closedByOperator``).
    /// - Throws: ``SitroomError`` `.notFound` (no such incident or room) or `.badCommand` (not open).
    public func end(incident: String) throws -> String {
        guard let (_, found) = try show(incident: incident), let room = found else {
            throw SitroomError(.notFound, "no room for incident \(incident)")
        }
        var ending: Room
        switch RoomRules.requestEnd(room, now: clock.now()) {
        case .success(let value): ending = value
        case .failure(let refusal): throw SitroomError(.badCommand, refusal.message)
        }
        ending.closedByOperator = true
        let store = self.store
        try store.write { [ending] txn in
            var written = ending
            written.live = try store.room(ending.id, txn)?.live ?? ending.live
            try store.putRoom(written, txn)
        }
        drive(room.id)
        return "room \(room.id) of \(incident) is being closed; its participants are told an operator closed it"
    }

    /// The incidents sitroom keeps, with their current room if they have one (an `opened` incident has none),
    /// most recent event first.
    /// - Parameter openOnly: leave out incidents that are `resolved` or `closed`.
    /// - Complexity: O(incidents) decodes, plus a room read per incident that has one.
    public func incidents(openOnly: Bool) throws -> [(IncidentRecord, Room?)] {
        let store = self.store
        let listed: [(IncidentRecord, Room?)] = try store.read { txn in
            var listed: [(IncidentRecord, Room?)] = []
            for record in try store.all(IncidentRecord.self, store.tables.incidents, txn)
            where !openOnly || (record.stage != .resolved && record.stage != .closed) {
                listed.append((record, try record.roomID.flatMap { try store.room($0, txn) }))
            }
            return listed
        }
        return listed.sorted { ($0.0.lastOccurredAt, $0.0.info.id) > ($1.0.lastOccurredAt, $1.0.info.id) }
    }

    /// A room and its incident, for `room show`.
    public func show(incident id: String) throws -> (IncidentRecord, Room?)? {
        let store = self.store
        return try store.read { txn in
            guard let record = try store.incident(id, txn) else { return nil }
            return (record, try record.roomID.flatMap { try store.room($0, txn) })
        }
    }

    /// How many rooms are in each state that has any, for `status`: read from the room index, no room decoded
    /// (README, "Performance").
    /// - Complexity: O(rooms) index entries.
    public func roomCounts() throws -> [RoomState: Int] {
        let store = self.store
        return try store.read { txn in try store.roomCounts(txn).byState }.filter { $0.value > 0 }
    }

    /// The rooms, oldest first: all of them, or only the open ones (found in the room index, so only they are
    /// decoded).
    /// - Parameter openOnly: list only rooms in an open state (`provisioning`, `waiting`, `ready`).
    /// - Complexity: O(r log r) in the rooms listed, plus O(rooms) index entries when `openOnly`.
    public func rooms(openOnly: Bool = false) throws -> [Room] {
        let store = self.store
        let rooms = try store.read { txn in
            openOnly
                ? try store.rooms(where: { $0.state.isOpen }, txn) : try store.all(Room.self, store.tables.rooms, txn)
        }
        return rooms.sorted { $0.createdAt < $1.createdAt }
    }

    /// Reconciles the open rooms of `integration` with Zoom ("Get a meeting", `GET /meetings/{id}`): Zoom replays no
    /// event missed while sitroomd was not listening, so after each (re)connection of its event subscription, and
    /// at a slow interval, each room's meeting state is set from Zoom's `status` (`started`, or `waiting` for a
    /// meeting not started or ended). A call that fails changes nothing (the next reconciliation tries again).
    /// - Returns: the rooms whose meeting state changed.
    @discardableResult
    public func reconcileMeetings(integration: String) async -> Int {
        guard let client = await registry.client(integration) else { return 0 }
        let rooms = ((try? self.rooms(openOnly: true)) ?? []).filter {
            $0.integration == integration && $0.state == .ready && $0.meetingID != nil && !$0.endRequested
        }
        var changed = 0
        for room in rooms {
            guard let meetingID = room.meetingID else { continue }
            let status: String?
            do {
                let token = try await registry.accessToken(integration, host: room.hostID)
                status = try await client.getMeeting(token: token, meetingID: meetingID).status
            } catch {
                logger.warning(
                    "cannot reconcile a room's meeting with Zoom",
                    metadata: ["room.id": "\(room.id)", "meeting": "\(meetingID)", "error": "\(error)"])
                continue
            }
            let now = clock.now()
            let current = room.live?.status
            var events: [ZoomMeetingEvent] = []
            if status == "started" && current != .started {
                events.append(ZoomMeetingEvent(kind: .started, meetingID: meetingID, uuid: "", accountID: "", at: now))
            } else if status == "waiting" && current == .started {
                events.append(ZoomMeetingEvent(kind: .ended, meetingID: meetingID, uuid: "", accountID: "", at: now))
            }
            if status == "started" {
                events += await reconcileParticipants(room, client: client, integration: integration, now: now)
            }
            if !events.isEmpty {
                logger.info(
                    "meeting state reconciled with Zoom",
                    metadata: [
                        "room.id": "\(room.id)", "meeting": "\(meetingID)", "status": "\(status ?? "-")",
                        "corrections": "\(events.count)",
                    ])
                var updated = false
                for event in events where await applyMeetingEvent(event, via: "reconcile").hasSuffix("updated") { updated = true }
                if updated { changed += 1 }
            }
        }
        return changed
    }

    /// Who is in a started meeting by Zoom's Dashboards list ("List meeting participants", `type=live`) against
    /// who the room thinks is in: joins for the missing, leaves (at `now`) for those gone. Without that API (a plan
    /// without Dashboards), nothing: the room corrects itself from the next events.
    private func reconcileParticipants(
        _ room: Room, client: ZoomClient, integration: String, now: Double
    ) async -> [ZoomMeetingEvent] {
        guard let meetingID = room.meetingID else { return [] }
        let listed: [ZoomClient.LiveParticipant]
        do {
            let token = try await registry.accessToken(integration, host: room.hostID)
            listed = try await client.liveParticipants(token: token, meetingID: meetingID).filter { $0.leftAt == nil }
        } catch {
            logger.info(
                "cannot list a meeting's participants (Zoom Dashboards); only its state is reconciled",
                metadata: ["room.id": "\(room.id)", "meeting": "\(meetingID)", "error": "\(error)"])
            return []
        }
        let attendees = readRoom(room.id)?.live?.attendees ?? []
        func same(_ attendee: LiveMeeting.Attendee, _ person: ZoomClient.LiveParticipant) -> Bool {
            if let email = person.email { return attendee.email == email }
            return attendee.email == nil && attendee.name == person.name
        }
        // Matched one to one (two dial-in users of one name are two people): what is left over on either side is a
        // join or a leave the room missed.
        var unmatched = attendees.filter(\.isPresent)
        var rejoined: Set<String> = []
        var events: [ZoomMeetingEvent] = []
        for person in listed {
            if let index = unmatched.firstIndex(where: { same($0, person) }) {
                unmatched.remove(at: index)
                continue
            }
            let key: String
            var at = person.joinedAt
            if let known = attendees.first(where: { !$0.isPresent && !rejoined.contains($0.key) && same($0, person) }) {
                key = known.key  // someone who left and came back: their own entry, so their next leave finds it
                rejoined.insert(key)
                at = max(at, known.leftAt ?? at)  // after the leave the room knows, whatever the two clocks say
            } else {
                let base = LiveMeeting.reconciledPrefix + (person.email ?? "name:\(person.name)")
                let taken = attendees.filter { $0.key.hasPrefix(base) }.count + events.filter { $0.person?.participantUUID.hasPrefix(base) == true }.count
                key = taken == 0 ? base : "\(base)#\(taken + 1)"
            }
            events.append(
                ZoomMeetingEvent(
                    kind: .participantJoined, meetingID: meetingID, uuid: "", accountID: "", at: at,
                    person: .init(participantUUID: key, userID: "", name: person.name, email: person.email)))
        }
        for attendee in unmatched {
            events.append(
                ZoomMeetingEvent(
                    kind: .participantLeft, meetingID: meetingID, uuid: "", accountID: "", at: now,
                    person: .init(participantUUID: attendee.key, userID: "", name: attendee.name, email: attendee.email)))
        }
        return events
    }

    /// The participants of each of `incidents` (those sitroom keeps), in one read.
    public func participants(of incidents: [String]) throws -> [String: [Participant]] {
        let store = self.store
        return try store.read { txn in
            var found: [String: [Participant]] = [:]
            for id in Set(incidents) { if let record = try store.incident(id, txn) { found[id] = record.participants } }
            return found
        }
    }

    // MARK: Driving a room

    /// Starts a run of the room, or tells the one running that there is news.
    /// - Parameter intentCommitted: the room is new and its host and create intent were committed with its event
    ///   (``RoomInput/intentCommitted``): the run sends the create.
    func drive(_ id: String, intentCommitted: Bool = false) {
        guard !stopped else { return }
        if running[id] != nil {
            rerun.insert(id)
            news.insert(id)
            wake(id)  // a room backing off looks again now (e.g. its incident was resolved meanwhile)
            return
        }
        running[id] = Task { await self.work(id, first: intentCommitted ? .intentCommitted : .start) }
    }

    /// Backs off for `seconds`, or until ``drive(_:)`` has news for the room, or until the daemon stops.
    func pause(_ id: String, seconds: Double) async {
        guard !stopped, news.remove(id) == nil else { return }
        let clock = self.clock
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            wakers[id]?.resume()
            wakers[id] = continuation
            Task {
                try? await clock.sleep(seconds: seconds)
                self.wake(id)
            }
        }
    }

    private func wake(_ id: String) {
        wakers.removeValue(forKey: id)?.resume()
    }

    func finished(_ id: String) {
        running[id] = nil
        news.remove(id)
        if rerun.remove(id) != nil { drive(id) }
    }


    // MARK: Reading the store

    /// The room as stored; `nil` when there is none, or when the read fails (logged).
    func readRoom(_ id: String) -> Room? {
        let store = self.store
        do {
            return try store.read { txn in try store.room(id, txn) }
        } catch {
            logger.error("cannot read a room", metadata: ["room.id": "\(id)", "error": "\(error)"])
            return nil
        }
    }

    /// The room as stored, read again after a pause for as long as the read fails (logged each time) and the
    /// daemon runs: a failed read never passes for "no room".
    func loadRetrying(_ id: String) async -> Room? {
        let store = self.store
        while !stopped {
            do {
                return try store.read { txn in try store.room(id, txn) }
            } catch {
                logger.error("cannot read a room; trying again", metadata: ["room.id": "\(id)", "error": "\(error)"])
                await pause(id, seconds: maxBackoff)
            }
        }
        return nil
    }

    /// The incident as stored.
    func readIncident(_ id: String) throws -> IncidentRecord? {
        let store = self.store
        return try store.read { txn in try store.incident(id, txn) }
    }

    // MARK: Group commit

    /// A write asked for by one room's work, and who waits for its commit (with what the write returned).
    private struct PendingWrite {
        var body: (borrowing Transaction) throws -> any Sendable
        var done: CheckedContinuation<any Sendable, any Error>
    }

    /// Runs `body` in the next group commit and returns once that commit is synced to disk (issue 9: "group
    /// commit"). Writes asked for while a commit is being synced, or before the actor gets to the flush, go
    /// in one LMDB write transaction (one `fdatasync` for all of them), each in its own nested transaction
    /// (``LMDB/Transaction/nested(_:)``): one that throws is undone alone and its caller gets the error. So
    /// many rooms in flight share each sync, and nothing is acted on (a create sent, a notice queued) before
    /// the write that records it is durable.
    /// - Parameter body: the write; it runs on this actor, later, maybe more than once (the map grown).
    /// - Returns: what `body` returned in the committed run.
    /// - Throws: what `body` threw, or the store's error when the whole commit failed.
    func commit<R: Sendable>(_ body: @escaping (borrowing Transaction) throws -> R) async throws -> R {
        let value = try await withCheckedThrowingContinuation { (done: CheckedContinuation<any Sendable, any Error>) in
            pendingWrites.append(PendingWrite(body: { txn in try body(txn) }, done: done))
            if !flushScheduled {
                flushScheduled = true
                // Behind the jobs already queued on this actor: their writes join this commit.
                Task { self.flushWrites() }
            }
        }
        guard let result = value as? R else { preconditionFailure("a group commit returned another write's value") }
        return result
    }

    /// Commits every pending write in one synced transaction and resumes their writers.
    private func flushWrites() {
        flushScheduled = false
        let batch = pendingWrites
        pendingWrites = []
        guard !batch.isEmpty else { return }
        var outcomes: [Result<any Sendable, any Error>] = []
        do {
            try store.write { txn in
                outcomes = []
                for write in batch {
                    outcomes.append(Result { try txn.nested { child in try write.body(child) } })
                }
            }
        } catch {
            for write in batch { write.done.resume(throwing: error) }
            return
        }
        metrics.groupCommit(writes: batch.count)
        for (write, outcome) in zip(batch, outcomes) { write.done.resume(with: outcome) }
    }

    /// Keeps the in-memory waiting queue in step with a room's state.
    func track(_ room: Room) {
        if room.state == .waiting { waiting[room.id] = room.createdAt } else { waiting[room.id] = nil }
    }

    /// The room with the stored end request: only events set or withdraw it, so the stored one is the truth.
    // MARK: Removed integrations

    /// Applies the removal of integrations (their files were deleted; SPEC §5): every open room one of them
    /// serves (a host leased, a create sent, or a meeting made) becomes `unavailable` with the reason, its host
    /// is freed and its work stopped. The meeting itself is left alone in Zoom: people may be in it, and the
    /// integration's tokens are gone. No new room goes through them, as they are no longer configured.
    /// - Parameter names: the removed integrations (``IntegrationRegistry/configure(_:)`` returns them).
    /// - Complexity: O(rooms).
    public func integrationsRemoved(_ names: [String]) async {
        for integration in names {
            do {
                try await markUnavailable(
                    integration: integration,
                    reason: "integration \(integration) was removed (etc/integrations/\(integration).yaml is gone); "
                        + "sitroom can no longer manage this room's meeting")
            } catch {
                logger.error(
                    "cannot mark the rooms of a removed integration unavailable",
                    metadata: ["integration": "\(integration)", "error": "\(error)"])
            }
        }
    }

    /// The integrations that may serve an incident, in order: the event's `integration`, else the first
    /// matching rule's list, else `conference.integrations`, else all by `priority`.
    func candidates(for record: IncidentRecord) -> [String] {
        if let chosen = record.integration { return [chosen] }
        let conference = configuration.daemon.conference
        for rule in conference.rules {
            let matches = rule.match.allSatisfy { key, value in
                switch key {
                case "team": return record.info.team == value
                case "severity": return record.info.severity == value
                default: return false
                }
            }
            if matches { return rule.integrations }
        }
        if !conference.integrations.isEmpty { return conference.integrations }
        return configuration.integrations.values.sorted { ($0.priority, $0.name) < ($1.priority, $1.name) }.map(\.name)
    }

    /// The client and a valid token for a room's integration and host, after waiting for a request slot
    /// within the integration's rate (`rate_limit.medium_per_second`).
    /// - Throws: ``ZoomError`` from the token endpoint (or a 401 when the registry has no token it may use).
    func token(_ integration: String, host: String?) async throws -> (ZoomClient, String) {
        guard let client = await registry.client(integration) else {
            throw SitroomError(.notFound, "integration \(integration) is not configured")
        }
        let token: String
        do {
            token = try await registry.accessToken(integration, host: host)
        } catch let error as SitroomError where error.code == .notAuthorized {
            // The registry has no token it may use (refused before, not yet authorized): a refusal of the credentials.
            throw ZoomError(.oauth(status: 401, code: nil, message: error.message))
        }
        try await pace(integration)
        return (client, token)
    }

    /// Waits for the integration's next request slot.
    func pace(_ integration: String) async throws {
        let wait = await registry.reserveRequestSlot(integration)
        if wait > 0 { try await clock.sleep(seconds: wait) }
    }

    /// Looks for the room's marker among the host's meetings (a create whose outcome is unknown).
    /// - Returns: true when the meeting was found and the room is now `ready`.
    func meetingRequest(_ settings: MeetingSettings, record: IncidentRecord, room: Room) -> MeetingRequest {
        let topicTemplate = room.integration.flatMap { topicTemplates[$0] }
        let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: nil)
        let topic = topicTemplate?.render(.roomReady, .chat, context)?.body ?? record.info.title
        let commanders = record.participants.filter { $0.role == .commander }.compactMap(\.email)
        // Zoom's limits, cut at a character boundary; the marker stays first in the agenda (list answers keep only
        // its first 250 characters).
        return MeetingRequest(
            topic: MeetingRequest.cut(topic, to: ZoomLimits.topic), startTime: rfc3339UTC(clock.now()), duration: 60,
            password: settings.passcode == .random ? MeetingRequest.passcode(length: settings.passcodeLength) : nil,
            agenda: MeetingRequest.cut(
                "\(room.marker)\nIncident \(record.info.id): \(record.info.title)", to: ZoomLimits.agenda),
            settings: .init(
                waitingRoom: settings.waitingRoom, joinBeforeHost: settings.joinBeforeHost,
                autoRecording: settings.autoRecording.rawValue,
                alternativeHosts: settings.commanderAsAlternativeHost && !room.withoutAlternativeHosts
                    ? MeetingRequest.alternativeHosts(commanders, excluding: room.hostUser) : nil))
    }

    // MARK: Deleting meetings after the hold-down

    /// Deletes an ended room's meeting at `time` (seconds since 1970), unless the room is reopened first.
    func scheduleDeletion(_ id: String, at time: Double) {
        guard !stopped else { return }
        deletions[id]?.cancel()
        let clock = self.clock
        deletions[id] = Task {
            let wait = time - clock.now()
            if wait > 0 {
                do { try await clock.sleep(seconds: wait) } catch { return }
            }
            await self.deleteHeldMeeting(id)
        }
    }

    /// Deletes the meeting of an ended room whose hold-down has passed. The decision is committed first (the
    /// room can no longer be reopened with it), then `DELETE /meetings/{id}` is sent (3001 counts as done),
    /// retried with backoff on transient failures.
    private func deleteHeldMeeting(_ id: String) async {
        deletions[id] = nil
        let store = self.store
        var attempt = 0
        while !stopped && !Task.isCancelled {
            let now = clock.now()
            let decided: Room?
            do {
                decided = try store.write { txn -> Room? in
                    guard let stored = try store.room(id, txn), let due = RoomRules.deletionDue(stored, now: now) else {
                        return nil
                    }
                    if due != stored { try store.putRoom(due, txn) }
                    return due
                }
            } catch {
                // Never dropped: tried again after a pause (a full reader table, a full disk).
                logger.error(
                    "cannot record a meeting deletion; trying again", metadata: ["room.id": "\(id)", "error": "\(error)"])
                scheduleDeletion(id, at: now + maxBackoff)
                return
            }
            guard let room = decided, let meetingID = room.meetingID, let integration = room.integration else {
                if let room = readRoom(id), room.state == .ended, let after = room.deleteAfter, after > now {
                    scheduleDeletion(id, at: after)  // ended again later: a new hold-down
                }
                return
            }
            var reason: String? = nil
            do {
                let (client, token) = try await self.token(integration, host: room.hostID)
                do {
                    try await client.deleteMeeting(token: token, meetingID: meetingID)
                } catch {
                    // 3001 gone, 3007 ended and not deletable: done (the table of Zoom answers).
                    if error.answer.rule.request != .done { throw error }
                }
            } catch let error as ZoomError where error.answer.rule.room == .retryLater && attempt < maxTransientAttempts {
                attempt += 1
                let backoff =
                    error.retryAfter?.seconds(from: clock.now())
                    ?? min(maxBackoff, firstBackoff * Double(1 << min(attempt - 1, 20)))
                do { try await clock.sleep(seconds: backoff) } catch { return }
                continue
            } catch {
                reason = "meeting \(meetingID) could not be deleted: \(error)"
            }
            do {
                try store.write { txn in
                    guard let stored = try store.room(id, txn) else { return }
                    try store.putRoom(RoomRules.deletionDone(stored, problem: reason), txn)
                }
            } catch {
                logger.error("cannot record a meeting deletion's end", metadata: ["room.id": "\(id)", "error": "\(error)"])
            }
            if let reason {
                logger.error("meeting not deleted", metadata: ["room.id": "\(id)", "reason": "\(reason)"])
            } else {
                logger.info(
                    "meeting deleted after the reopen hold-down",
                    metadata: ["room.id": "\(id)", "meeting": "\(meetingID)"])
            }
            return
        }
    }

    /// Ends a meeting (`PUT /meetings/{id}/status`), then deletes it when asked; an answer the table of Zoom
    /// answers counts as done (3001 gone; on delete, 3007 ended and not deletable) is success.
    static func endMeeting(client: ZoomClient, token: String, meetingID: Int64, delete: Bool) async throws(ZoomError) {
        do {
            try await client.endMeeting(token: token, meetingID: meetingID)
        } catch {
            if error.answer.rule.request != .done { throw error }
        }
        guard delete else { return }
        do {
            try await client.deleteMeeting(token: token, meetingID: meetingID)
        } catch {
            if error.answer.rule.request != .done { throw error }
        }
    }

    // MARK: Notices

    /// What plans the notices of rooms (SPEC §6), for the live configuration and templates.
    var planner: NoticePlanner {
        NoticePlanner(configuration: configuration, templates: templates, store: store)
    }

    /// Queues notices for the admins (their own transaction).
    /// - Parameter advice: what the admins should do (`room.advice` in the templates); a room's own when `nil`.
    func queueAdminNotices(
        kind: NoticeKind, room: Room?, integration: String?, reason: String, advice: String? = nil
    ) {
        let now = clock.now()
        let admins = configuration.daemon.notify.admins
        guard !admins.isEmpty else { return }
        var subject = room ?? Room(id: "integration-\(integration ?? "-")-\(Int64(now))", incidentID: "", createdAt: now)
        subject.integration = integration
        subject.reason = reason
        if let advice { subject.advice = advice }
        let store = self.store
        let target = subject
        let planner = self.planner
        do {
            let queued: [Notice] = try store.write { txn in
                let record = target.incidentID.isEmpty ? nil : try store.incident(target.incidentID, txn)
                return try planner.admins(kind, room: target, record: record, now: now, txn)
            }
            if !queued.isEmpty { Task { await notifier.enqueued(queued) } }
        } catch {
            logger.error("cannot queue admin notices", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Ids

    /// A new room id: `r` and 16 random hex digits.
    static func newRoomID() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return "r" + String(repeating: "0", count: 16 - hex.count) + hex
    }

}
