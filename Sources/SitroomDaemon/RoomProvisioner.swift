import Foundation
import LMDB
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
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

    private let store: Store
    private let pool: AccountPool
    private let registry: IntegrationRegistry
    private let notifier: Notifier
    private let clock: any WallClock
    private let logger: Logger
    private var configuration: Configuration
    private var templates: NoticeTemplates
    private var running: [String: Task<Void, Never>] = [:]
    /// Meetings waiting out the reopen hold-down before they are deleted, by room id.
    private var deletions: [String: Task<Void, Never>] = [:]
    private var rerun: Set<String> = []
    /// Rooms whose work has news it has not looked at yet (``drive(_:)`` while it runs): a ``pause(_:seconds:)``
    /// that starts after the news came (the work was awaiting a commit or a Zoom call) returns at once.
    private var news: Set<String> = []
    private var stopped = false
    /// Rooms in `waiting`: id → when the room was made (the queue is served oldest first).
    private var waiting: [String: Double] = [:]
    private var retrying = false
    private var retryAgain = false
    /// Rooms backing off, woken early by news (``drive(_:)``) or shutdown.
    private var wakers: [String: CheckedContinuation<Void, Never>] = [:]
    /// Room writes waiting for the next group commit (``commit(_:)``), in the order they were asked for.
    private var pendingWrites: [PendingWrite] = []
    private var flushScheduled = false

    private let metrics: SitroomMetrics

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
    public func apply(_ event: IncidentEvent) throws -> ApplyOutcome {
        try apply(batch: [event])[0]
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
    /// - Parameter events: the events, in the order to apply them (the spool sorts a batch by `occurred_at`).
    /// - Returns: one outcome per event, in order.
    /// - Throws: store errors; nothing of the batch is applied then.
    /// - Complexity: O(events) reads and writes in one transaction.
    public func apply(batch events: [IncidentEvent]) throws -> [ApplyOutcome] {
        let now = clock.now()
        let store = self.store
        var batch = BatchEffects()
        let outcomes: [ApplyOutcome] = try store.write { txn in
            // The closure may run again (the map grown): start over each time.
            batch = BatchEffects()
            var results: [ApplyOutcome] = []
            results.reserveCapacity(events.count)
            for (index, event) in events.enumerated() {
                // Rooms made by one batch keep the batch's order: each is 1 ms "younger" than the one before, so
                // the waiting queue (oldest first) and `created_at` agree with the order events were applied.
                results.append(try applyOne(event, now: now + Double(index) / 1000, txn, &batch))
            }
            return results
        }
        for (event, outcome) in zip(events, outcomes) {
            logger.info(
                outcome == .duplicate ? "duplicate event ignored" : "event applied",
                metadata: [
                    "event.id": "\(event.eventID)", "incident.id": "\(event.incident.id)",
                    "stage": "\(event.stage.rawValue)",
                ])
        }
        if !batch.queued.isEmpty {
            let queued = batch.queued
            Task { await notifier.enqueued(queued) }
        }
        for (id, time) in batch.deletions { scheduleDeletion(id, at: time) }
        for id in batch.drives { drive(id) }
        return outcomes
    }

    /// What a batch does besides its writes, collected inside the transaction and carried out after the commit.
    private struct BatchEffects {
        /// Rooms to drive, in order.
        var drives: [String] = []
        var queued: [Notice] = []
        /// Meetings to delete after their hold-down: room id → when.
        var deletions: [(String, Double)] = []
        /// Rooms made by this batch → the incident's room before.
        var created: [String: String?] = [:]

        mutating func drive(_ id: String) { if !drives.contains(id) { drives.append(id) } }
        mutating func undrive(_ id: String) { drives.removeAll { $0 == id } }
    }

    private func applyOne(
        _ event: IncidentEvent, now: Double, _ txn: borrowing Transaction, _ batch: inout BatchEffects
    ) throws -> ApplyOutcome {
        guard try store.markEventSeen(event.eventID, at: now, txn) else { return .duplicate }
        var record =
            try store.incident(event.incident.id, txn)
            ?? IncidentRecord(
                info: event.incident, stage: event.stage, participants: [], integration: event.integration,
                roomID: nil, lastOccurredAt: event.occurredAt)
        let stale = event.occurredAt < record.lastOccurredAt
        record.merge(participants: event.participants)
        if !stale {
            record.info = event.incident
            record.stage = event.stage
            record.lastOccurredAt = event.occurredAt
            if let integration = event.integration { record.integration = integration }
        }
        var room = try record.roomID.flatMap { try store.room($0, txn) }

        switch event.stage {
        case .situationRoom, .reopened:
            if stale { break }
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
            } else if isReusable(current, now: now) {
                current.state = .provisioning
                current.reason = "reopened: taking back meeting \(current.meetingID.map(String.init) ?? "")"
                current.endRequested = false
                current.closedByOperator = false
                current.attempts = 0
                current.updatedAt = now
                try store.putRoom(current, txn)
                room = current
                batch.drive(current.id)
            } else {
                room = try newRoom(for: &record, now: now, txn, &batch)
            }
        case .resolved, .closed:
            if stale { break }
            if var failed = room, failed.state == .failed, failed.sweepMarker, !failed.endRequested {
                // Its create's outcome was unknown: sweep Zoom for the room's marker now that it is over.
                failed.endRequested = true
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
            } else if isRevivalPending(open), running[open.id] == nil {
                // Reopened and resolved again before any Zoom call: it is ended as it was.
                open.state = .ended
                open.reason = nil
                open.endedAt = now
                open.updatedAt = now
                if let after = deletionTime(for: open, endedAt: now) {
                    open.deleteAfter = after
                    batch.deletions.append((open.id, after))
                }
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
            batch.queued += try queueReadyNotices(room: room, record: record, now: now, txn)
        }
        try store.putIncident(record, txn)
        return .applied
    }

    /// Makes a new room for the incident in the batch's transaction and remembers the room it had before.
    private func newRoom(
        for record: inout IncidentRecord, now: Double, _ txn: borrowing Transaction, _ batch: inout BatchEffects
    ) throws -> Room {
        let fresh = Room(id: Self.newRoomID(), incidentID: record.info.id, createdAt: now)
        batch.created.updateValue(record.roomID, forKey: fresh.id)  // keeps a nil previous room
        record.roomID = fresh.id
        try store.putRoom(fresh, txn)
        batch.drive(fresh.id)
        return fresh
    }

    /// Whether an ended room can be reopened with its meeting (SPEC §5): ended less than `reopen_hold_down`
    /// ago, its meeting not deleted, its integration still configured.
    private func isReusable(_ room: Room, now: Double) -> Bool {
        guard room.state == .ended, room.meetingID != nil, room.meetingDeletedAt == nil, let endedAt = room.endedAt,
            let integration = room.integration, configuration.integrations[integration] != nil
        else { return false }
        return now - endedAt <= configuration.daemon.reopenHoldDown
    }

    /// A room reopened by an event whose meeting has not been checked with Zoom yet.
    private func isRevivalPending(_ room: Room) -> Bool {
        room.state == .provisioning && room.createPhase == .done && room.meetingID != nil
    }

    /// When an ended room's meeting is to be deleted: after the hold-down, for `on_resolve: end_and_delete`
    /// (`nil` when it is kept, or already deleted).
    private func deletionTime(for room: Room, endedAt: Double) -> Double? {
        guard room.meetingID != nil, room.meetingDeletedAt == nil, let integration = room.integration,
            configuration.integrations[integration]?.meeting.onResolve == .endAndDelete
        else { return nil }
        return endedAt + configuration.daemon.reopenHoldDown
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
            for id in waiting.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }).map(\.key) {
                guard !stopped, running[id] == nil, var room = load(id), room.state == .waiting else { continue }
                if room.endRequested {
                    drive(id)
                    continue
                }
                do {
                    if try await leaseHost(&room, excluded: [], queued: true) { drive(id) }
                } catch {
                    logger.error("cannot lease a host for a waiting room", metadata: ["room.id": "\(id)", "error": "\(error)"])
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
            guard let room = load(id), room.state == .waiting, let since = room.waitingSince, now - since >= limit else {
                continue
            }
            queueAdminNotices(kind: .adminWaiting, room: room, integration: room.integration, reason: room.reason ?? "waiting")
        }
        await retryWaiting()
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
            for var room in try store.rooms(where: { $0.state.isOpen }, txn)
            where room.state.isOpen && room.integration == integration && (host == nil || room.hostID == host)
                && (room.state == .ready || room.hostID != nil || room.meetingID != nil || room.createPhase == .inFlight)
            {
                room.state = .unavailable
                room.reason = reason
                room.updatedAt = now
                if room.createPhase == .inFlight { room.createPhase = .notSent }
                try store.putRoom(room, txn)
                changed.append(room)
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
    public func notifyAdminsReauthorize(integration: String, reason: String) {
        queueAdminNotices(kind: .adminReauthorize, room: nil, integration: integration, reason: reason)
    }

    /// `room retry INCIDENT`: a `failed` or `unavailable` room is tried again from the start (a new lease;
    /// its integration may have been re-authorized meanwhile); a `waiting` room is given a host if one is free.
    /// - Returns: a line for the admin.
    /// - Throws: ``SitroomError`` `.notFound` (no such incident or room) or `.badCommand` (the room is fine).
    public func retry(incident: String) async throws -> String {
        guard let (_, found) = try show(incident: incident), var room = found else {
            throw SitroomError(.notFound, "no room for incident \(incident)")
        }
        switch room.state {
        case .failed, .unavailable:
            if room.createPhase == .inFlight {
                throw SitroomError(
                    .badCommand, "room \(room.id) may have a meeting whose creation could not be checked; end it first")
            }
            room.state = .provisioning
            room.reason = nil
            room.attempts = 0
            room.hostID = nil
            room.hostUser = nil
            room.integration = nil
            room.createPhase = .notSent
            room.updatedAt = clock.now()
            // Written at once, not through ``save(_:creates:)``: that refuses to bring back an `unavailable`
            // room (work still in flight for it must not), which is exactly what this command is asked to do.
            // The stored end request is kept: only events set or withdraw it.
            let store = self.store
            let retried = room
            try store.write { txn in
                var current = retried
                if let stored = try store.room(current.id, txn) { current.endRequested = stored.endRequested }
                try store.putRoom(current, txn)
            }
            track(room)
            drive(room.id)
            return "room \(room.id) of \(incident) is being provisioned again"
        case .waiting:
            await retryWaiting()
            return "room \(room.id) of \(incident) is waiting: \(load(room.id)?.reason ?? "")"
        case .provisioning, .ready, .ended:
            throw SitroomError(.badCommand, "room \(room.id) of \(incident) is \(room.state.rawValue): nothing to retry")
        }
    }

    /// `room end INCIDENT`: an operator closes the room now: the meeting is ended (and deleted per
    /// `on_resolve`) as a `resolved` event would, but the incident stays as it is, and the `room-ended` notices
    /// say that an operator closed the room (``Room/closedByOperator``).
    /// - Throws: ``SitroomError`` `.notFound` (no such incident or room) or `.badCommand` (not open).
    public func end(incident: String) throws -> String {
        guard let (_, found) = try show(incident: incident), var room = found else {
            throw SitroomError(.notFound, "no room for incident \(incident)")
        }
        guard room.state.isOpen else {
            throw SitroomError(.badCommand, "room \(room.id) of \(incident) is \(room.state.rawValue), not open")
        }
        room.endRequested = true
        room.closedByOperator = true
        room.updatedAt = clock.now()
        // Written as is: ``save(_:)`` keeps the stored end request, which this command is setting.
        let store = self.store
        let ending = room
        try store.write { txn in try store.putRoom(ending, txn) }
        drive(room.id)
        return "room \(room.id) of \(incident) is being closed; its participants are told an operator closed it"
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

    // MARK: Driving a room

    private func drive(_ id: String) {
        guard !stopped else { return }
        if running[id] != nil {
            rerun.insert(id)
            news.insert(id)
            wake(id)  // a room backing off looks again now (e.g. its incident was resolved meanwhile)
            return
        }
        running[id] = Task { await self.work(id) }
    }

    /// Backs off for `seconds`, or until ``drive(_:)`` has news for the room, or until the daemon stops.
    private func pause(_ id: String, seconds: Double) async {
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

    private func finished(_ id: String) {
        running[id] = nil
        news.remove(id)
        if rerun.remove(id) != nil { drive(id) }
    }

    private func work(_ id: String) async {
        defer { finished(id) }
        var excluded: Set<String> = []
        var refreshedToken: Set<String> = []
        while !stopped && !Task.isCancelled {
            news.remove(id)  // what came so far is in the room loaded now
            guard var room = load(id) else { return }
            if !room.state.isOpen {
                // A failed room whose create had an unknown outcome: on resolve, sweep Zoom for its marker.
                if room.state == .failed, room.endRequested, room.sweepMarker, let integration = room.integration,
                    !excluded.contains(integration)
                {
                    do { try await sweep(&room, keeping: nil) } catch {
                        logger.warning("cannot sweep a failed room's meetings", metadata: ["room.id": "\(id)", "error": "\(error)"])
                    }
                }
                return
            }
            do {
                if room.endRequested {
                    if let integration = room.integration, excluded.contains(integration) {
                        // Zoom refuses the integration: the meeting cannot be ended from here. End the room, say
                        // so, and free the host rather than asking Zoom again and again.
                        await endWithoutZoom(&room, reason: "Zoom refused \(integration)")
                        return
                    }
                    try await end(&room)
                    return
                }
                if room.state == .ready { return }
                if isRevivalPending(room) {
                    try await revive(&room)
                    return
                }
                if room.createPhase == .inFlight, let integration = room.integration, excluded.contains(integration) {
                    await fail(
                        id,
                        reason: "a create request's outcome cannot be checked: \(integration) was refused by Zoom; "
                            + "ask your admin to re-integrate Zoom")
                    return
                }
                if room.createPhase == .inFlight {
                    if try await settle(&room) { return }
                }
                if room.hostID == nil {
                    guard try await leaseHost(&room, excluded: excluded) else { return }
                }
                try await create(&room)
                return
            } catch let failure as ZoomFailure {
                switch failure.step {
                case .retryNow:
                    continue
                case .tokenRejected(let integration):
                    let host = load(id)?.hostID
                    if refreshedToken.insert(integration).inserted {
                        try? await registry.invalidateToken(integration, host: host, ifValue: failure.token)
                        continue
                    }
                    switch await integrationRefused(integration, reason: failure.error.description, room: id) {
                    case .excludeIntegration: excluded.insert(integration)
                    case .tryAnotherHost: break
                    case .failed: return
                    }
                    continue
                case .integrationRefused(let integration):
                    switch await integrationRefused(integration, reason: failure.error.description, room: id) {
                    case .excludeIntegration: excluded.insert(integration)
                    case .tryAnotherHost: break
                    case .failed: return
                    }
                    continue
                case .dropHost(let key, let dailyLimit):
                    if dailyLimit {
                        await pool.exhaustQuota(key)
                    } else {
                        await pool.markUnusable(key, reason: failure.reason)
                    }
                    await pool.release(key, room: id)
                    continue
                case .backoff(let seconds):
                    // Circuit breaker: other rooms avoid this host for a while; this one retries it (a create
                    // whose outcome is unknown must be settled on the same host).
                    if let room = load(id), let integration = room.integration, let host = room.hostID {
                        await pool.coolDown(HostKey(integration: integration, host: host), seconds: Self.coolDown)
                    }
                    await pause(id, seconds: seconds)
                    continue
                case .fail:
                    await fail(id, reason: failure.reason)
                    return
                }
            } catch is CancellationError {
                return
            } catch is RoomGone {
                return
            } catch {
                logger.error("room work failed", metadata: ["room.id": "\(id)", "error": "\(error)"])
                await pause(id, seconds: maxBackoff)
            }
        }
    }

    /// What to do after a failed Zoom step.
    struct ZoomFailure: Error {
        enum Step {
            case retryNow
            case tokenRejected(String)
            case integrationRefused(String)
            case backoff(Double)
            /// The host cannot take rooms (unusable, or out of daily quota): free it and lease another.
            case dropHost(HostKey, dailyLimit: Bool)
            case fail
        }
        var step: Step
        var error: ZoomError
        var reason: String
        /// The access token Zoom refused, so only that one is dropped (not a newer one another room fetched).
        var token: String? = nil
    }

    private func load(_ id: String) -> Room? {
        let store = self.store
        return try? store.read { txn in try store.room(id, txn) }
    }

    /// Writes the room. An end requested meanwhile (an event applied while a Zoom call was awaited) is kept.
    /// - Throws: ``RoomGone`` when the room became `unavailable` meanwhile (its integration was removed): work
    ///   still in flight for it must not bring it back.
    /// - Parameter creates: a lease's daily create count (``AccountPool/Lease``), committed with the room.
    private func save(_ room: Room, creates: (key: HostKey, count: Int, day: String)? = nil) async throws {
        let store = self.store
        try await commit { txn in
            try store.putRoom(Self.keepingEndRequest(room, txn, store), txn)
            if let creates {
                try store.recordCreates(
                    atLeast: creates.count, day: creates.day, integration: creates.key.integration,
                    host: creates.key.host, txn)
            }
        }
        track(room)
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
    private func commit<R: Sendable>(_ body: @escaping (borrowing Transaction) throws -> R) async throws -> R {
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
    private func track(_ room: Room) {
        if room.state == .waiting { waiting[room.id] = room.createdAt } else { waiting[room.id] = nil }
    }

    /// The room with the stored end request: only events set or withdraw it, so the stored one is the truth.
    private static func keepingEndRequest(_ room: Room, _ txn: borrowing Transaction, _ store: Store) throws -> Room {
        var room = room
        if let stored = try store.room(room.id, txn) {
            if stored.state == .unavailable && room.state != .unavailable { throw RoomGone(roomID: room.id) }
            room.endRequested = stored.endRequested
            room.closedByOperator = stored.closedByOperator
        }
        return room
    }

    /// The room became `unavailable` (its integration was removed) while work for it was in flight.
    struct RoomGone: Error, CustomStringConvertible {
        var roomID: String
        var description: String { "room \(roomID) is unavailable: its integration was removed" }
    }

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

    /// Leases a host from the first integration that has one; otherwise the room waits (or fails when no
    /// integration can ever serve it).
    /// - Returns: false when the room now waits or failed.
    /// - Parameter queued: true when called by ``retryWaiting()`` for the oldest waiting rooms; a room not yet
    ///   queued waits behind older waiting rooms rather than jumping the queue.
    private func leaseHost(_ room: inout Room, excluded: Set<String>, queued: Bool = false) async throws -> Bool {
        let store = self.store
        let incidentID = room.incidentID
        guard let record = try store.read({ txn in try store.incident(incidentID, txn) }) else { return false }
        var reasons: [String] = []
        var anyServable = false
        let roomID = room.id
        let createdAt = room.createdAt
        if !queued, waiting.contains(where: { $0.key != roomID && ($0.value, $0.key) < (createdAt, roomID) }) {
            room.state = .waiting
            room.waitingSince = room.waitingSince ?? clock.now()
            room.reason = room.reason ?? "queued behind \(waiting.count) older waiting room(s)"
            room.updatedAt = clock.now()
            try await save(room)
            Task { await self.retryWaiting() }
            return false
        }
        for name in candidates(for: record) {
            guard configuration.integrations[name] != nil, let state = await registry.state(name) else {
                reasons.append("integration \(name) is not configured")
                continue
            }
            if state.state == .needsReauthorization {
                reasons.append("\(name) needs re-authorization: \(state.reason ?? "refused by Zoom")")
                continue
            }
            if excluded.contains(name) {
                reasons.append("\(name) refused this room")
                continue
            }
            var unauthorized: Set<String> = []
            if let authorized = try await registry.authorizedHosts(name), let hosts = configuration.integrations[name]?.hosts {
                unauthorized = Set(hosts.map(\.id)).subtracting(authorized)
            }
            switch await pool.lease(room: room.id, integration: name, unauthorized: unauthorized) {
            case .leased(let key, let limits, let creates, let day):
                room.integration = key.integration
                room.hostID = key.host
                room.hostUser = limits.user
                room.createPhase = .notSent
                room.state = .provisioning
                room.reason = nil
                room.waitingSince = nil
                room.updatedAt = clock.now()
                do { try await save(room, creates: (key, creates, day)) } catch {
                    await pool.release(key, room: room.id)
                    throw error
                }
                return true
            case .unavailable(let reason, let permanent):
                reasons.append(reason)
                if !permanent { anyServable = true }
            }
        }
        room.updatedAt = clock.now()
        if anyServable {
            let reason = reasons.joined(separator: "; ")
            if room.state != .waiting || room.reason != reason {
                room.state = .waiting
                room.waitingSince = room.waitingSince ?? clock.now()
                room.reason = reason
                room.updatedAt = clock.now()
                try await save(room)
                logger.info(
                    "room waiting",
                    metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "reason": "\(reason)"])
            }
        } else {
            let reason =
                (reasons.isEmpty ? "no integration serves this incident" : reasons.joined(separator: "; "))
                + "; ask your admin to re-integrate Zoom or fix the pool"
            await fail(room.id, reason: reason)
        }
        return false
    }

    /// The client and a valid token for a room's integration and host, after waiting for a request slot
    /// within the integration's rate (`rate_limit.medium_per_second`).
    private func token(_ integration: String, host: String?) async throws -> (ZoomClient, String) {
        guard let client = await registry.client(integration) else {
            throw SitroomError(.notFound, "integration \(integration) is not configured")
        }
        let token: String
        do {
            token = try await registry.accessToken(integration, host: host)
        } catch let error as SitroomError where error.code == .notAuthorized {
            throw ZoomFailure(
                step: .integrationRefused(integration), error: ZoomError(.oauth(status: 401, code: nil, message: error.message)),
                reason: error.message)
        }
        try await pace(integration)
        return (client, token)
    }

    /// Waits for the integration's next request slot.
    private func pace(_ integration: String) async throws {
        let wait = await registry.reserveRequestSlot(integration)
        if wait > 0 { try await clock.sleep(seconds: wait) }
    }

    /// Looks for the room's marker among the host's meetings (a create whose outcome is unknown).
    /// - Returns: true when the meeting was found and the room is now `ready`.
    private func settle(_ room: inout Room) async throws -> Bool {
        guard let integration = room.integration, let user = room.hostUser else {
            room.createPhase = .notSent
            try await save(room)
            return false
        }
        var usedToken: String? = nil
        do {
            let (client, token) = try await self.token(integration, host: room.hostID)
            usedToken = token
            var found: Meeting? = nil
            for type in ["scheduled", "live"] where found == nil {
                found = try await client.listMeetings(token: token, userID: user, type: type).first {
                    $0.agenda?.contains(room.marker) == true
                }
            }
            if let found {
                let meeting = try await client.getMeeting(token: token, meetingID: found.id)
                logger.info(
                    "meeting adopted after an unknown create outcome",
                    metadata: ["room.id": "\(room.id)", "integration": "\(integration)", "host": "\(room.hostID ?? "")"])
                try await ready(&room, meeting)
                return true
            }
            room.createPhase = .notSent
            try await save(room)
            return false
        } catch let error as ZoomError {
            throw await classify(error, integration: integration, room: &room, token: usedToken)
        }
    }

    private func create(_ room: inout Room) async throws {
        guard let integration = room.integration, let settings = configuration.integrations[integration],
            let user = room.hostUser
        else {
            if let integration = room.integration, configuration.integrations[integration] == nil, let host = room.hostID,
                room.meetingID == nil, room.createPhase != .inFlight
            {
                // The integration was removed after this room leased a host there (the reload ran while the lease
                // awaited its commit) and before any create was sent: nothing exists at Zoom, so the room leases
                // again elsewhere, unless the removal made it `unavailable` first (``RoomGone``).
                room.integration = nil
                room.hostID = nil
                room.hostUser = nil
                room.updatedAt = clock.now()
                try await save(room)
                await pool.release(HostKey(integration: integration, host: host), room: room.id)
                throw ZoomFailure(
                    step: .retryNow, error: ZoomError(.invalidResponse(message: "")),
                    reason: "integration \(integration) was removed before the create was sent")
            }
            throw ZoomFailure(step: .fail, error: ZoomError(.invalidResponse(message: "")), reason: "integration removed")
        }
        let store = self.store
        let incidentID = room.incidentID
        guard let record = try store.read({ txn in try store.incident(incidentID, txn) }) else { return }
        var usedToken: String? = nil
        do {
            let (client, token) = try await self.token(integration, host: room.hostID)
            usedToken = token
            room.createPhase = .inFlight
            room.updatedAt = clock.now()
            try await save(room)
            let meeting = meetingRequest(settings.meeting, record: record, room: room)
            logger.debug(
                "creating meeting",
                metadata: [
                    "room.id": "\(room.id)", "incident.id": "\(incidentID)", "integration": "\(integration)",
                    "host": "\(room.hostID ?? "")",
                ])
            let created = try await client.createMeeting(token: token, userID: user, meeting)
            try await ready(&room, created)
            if room.sweepMarker {
                // An earlier attempt's outcome was unknown and the marker was not found: if it completed at
                // Zoom after all, delete it now so the room keeps one meeting.
                do { try await sweep(&room, keeping: created.id) } catch {
                    logger.warning("cannot sweep for duplicate meetings", metadata: ["room.id": "\(room.id)", "error": "\(error)"])
                }
            }
        } catch let error as ZoomError {
            throw await classify(error, integration: integration, room: &room, token: usedToken)
        }
    }

    private func meetingRequest(_ settings: MeetingSettings, record: IncidentRecord, room: Room) -> MeetingRequest {
        let topicTemplate = room.integration.flatMap { topicTemplates[$0] }
        let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: nil)
        let topic = topicTemplate?.render(.roomReady, .chat, context)?.body ?? record.info.title
        let commanders = record.participants.filter { $0.role == .commander }.compactMap(\.email)
        return MeetingRequest(
            topic: String(topic.prefix(200)), startTime: rfc3339UTC(clock.now()), duration: 60,
            password: settings.passcode == .random ? Self.passcode() : nil,
            agenda: "\(room.marker)\nIncident \(record.info.id): \(record.info.title)",
            settings: .init(
                waitingRoom: settings.waitingRoom, joinBeforeHost: settings.joinBeforeHost,
                autoRecording: settings.autoRecording.rawValue,
                alternativeHosts: settings.commanderAsAlternativeHost && !commanders.isEmpty
                    ? commanders.joined(separator: ",") : nil))
    }

    private func ready(_ room: inout Room, _ meeting: Meeting) async throws {
        let now = clock.now()
        room.state = .ready
        room.createPhase = .done
        room.meetingID = meeting.id
        room.joinURL = meeting.joinURL
        room.passcode = meeting.password
        room.reason = nil
        room.attempts = 0
        room.updatedAt = now
        let store = self.store
        let current = room
        let queued: [Notice]
        track(current)
        let planner = self.planner
        do {
            queued = try await commit { txn in
                let current = try Self.keepingEndRequest(current, txn, store)
                try store.putRoom(current, txn)
                guard let record = try store.incident(current.incidentID, txn), !current.endRequested else { return [] }
                return try planner.roomReady(room: current, record: record, now: now, txn)
            }
        } catch let gone as RoomGone {
            logger.warning(
                "meeting made after its integration was removed; it is left in Zoom",
                metadata: ["room.id": "\(room.id)", "integration": "\(room.integration ?? "")", "meeting": "\(meeting.id)"])
            throw gone
        }
        metrics.roomReady(after: now - room.createdAt)
        logger.info(
            "room ready",
            metadata: [
                "room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "integration": "\(room.integration ?? "")",
                "host": "\(room.hostID ?? "")", "meeting": "\(meeting.id)",
            ])
        if !queued.isEmpty { Task { await notifier.enqueued(queued) } }
    }

    /// Ends the meeting (and deletes it per `on_resolve`, after `reopen_hold_down`), marks the room `ended` and
    /// frees its host. When the incident was reopened meanwhile (the end request withdrawn), the room stays: with
    /// its meeting when that still exists, else a new room is made.
    private func end(_ room: inout Room) async throws {
        if room.createPhase == .inFlight {
            if try await !settle(&room) { room.createPhase = .notSent }
        }
        let now = clock.now()
        if let meetingID = room.meetingID, let integration = room.integration,
            configuration.integrations[integration] != nil
        {
            let holdDown = configuration.daemon.reopenHoldDown
            let delete = configuration.integrations[integration]?.meeting.onResolve == .endAndDelete
            let deleteNow = delete && holdDown <= 0 && room.meetingDeletedAt == nil
            var usedToken: String? = nil
            do {
                let (client, token) = try await self.token(integration, host: room.hostID)
                usedToken = token
                try await Self.endMeeting(client: client, token: token, meetingID: meetingID, delete: deleteNow)
                if deleteNow { room.meetingDeletedAt = now }
                room.deleteAfter = delete && !deleteNow && room.meetingDeletedAt == nil ? now + holdDown : nil
            } catch let error as ZoomError {
                let failure = await classify(error, integration: integration, room: &room, token: usedToken)
                if case .fail = failure.step {
                    // Nothing more can be done with this meeting: record why, and end the room anyway.
                    room.reason = "meeting \(meetingID) could not be ended: \(failure.reason)"
                } else {
                    throw failure
                }
            }
        }
        if room.sweepMarker {
            do { try await sweep(&room, keeping: nil) } catch {
                logger.warning("cannot sweep a room's meetings", metadata: ["room.id": "\(room.id)", "error": "\(error)"])
            }
        }
        let host = room.integration.flatMap { integration in
            room.hostID.map { HostKey(integration: integration, host: $0) }
        }
        let store = self.store
        let planner = self.planner
        let ending = room
        var replacement: Room? = nil
        var told: [Notice] = []
        /// Writes the room `ended` and queues its `room-ended` notices, in the caller's transaction.
        func markEnded(_ current: inout Room, _ txn: borrowing Transaction) throws -> [Notice] {
            if let stored = try store.room(current.id, txn) { current.closedByOperator = stored.closedByOperator }
            current.state = .ended
            current.endedAt = now
            current.updatedAt = now
            try store.putRoom(current, txn)
            guard let record = try store.incident(current.incidentID, txn) else { return [] }
            return try planner.roomEnded(room: current, record: record, now: now, txn)
        }
        let outcome: EndOutcome = try store.write { txn in
            replacement = nil
            told = []
            var current = ending
            if let stored = try store.room(current.id, txn), !stored.endRequested {
                // Reopened while the meeting was being ended.
                current.endRequested = false
                if current.meetingID != nil && current.meetingDeletedAt == nil && current.state == .ready {
                    current.deleteAfter = nil
                    current.updatedAt = now
                    try store.putRoom(current, txn)
                    return .kept
                }
                if current.meetingID == nil || current.meetingDeletedAt == nil {
                    // Nothing made yet, or a reopened room whose host is not taken back yet: carry on.
                    try store.putRoom(current, txn)
                    return .resume
                }
                told = try markEnded(&current, txn)
                if var record = try store.incident(current.incidentID, txn), record.roomID == current.id {
                    let fresh = Room(id: Self.newRoomID(), incidentID: current.incidentID, createdAt: now)
                    record.roomID = fresh.id
                    try store.putRoom(fresh, txn)
                    try store.putIncident(record, txn)
                    replacement = fresh
                }
                return .ended
            }
            told = try markEnded(&current, txn)
            return .ended
        }
        if !told.isEmpty {
            let queued = told
            Task { await notifier.enqueued(queued) }
        }
        switch outcome {
        case .kept:
            room.state = .ready
            logger.info(
                "incident reopened while its room was ending; the room keeps its meeting",
                metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)"])
            return
        case .resume:
            return  // the withdrawal re-drives the room
        case .ended:
            room.state = .ended
            room.endedAt = now
        }
        track(room)
        if let host { await pool.release(host, room: room.id) }
        logger.info("room ended", metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)"])
        if let after = room.deleteAfter { scheduleDeletion(room.id, at: after) }
        if let replacement {
            logger.info(
                "incident reopened after its meeting was deleted; a new room is made",
                metadata: ["room.id": "\(replacement.id)", "incident.id": "\(room.incidentID)"])
            drive(replacement.id)
        }
        Task { await self.retryWaiting() }
    }

    /// Ends and deletes every meeting of the room's host that carries the room's marker, but `keeping`: the
    /// repair for a create whose outcome was unknown and that completed at Zoom after all.
    private func sweep(_ room: inout Room, keeping: Int64?) async throws {
        guard let integration = room.integration, let user = room.hostUser else { return }
        let (client, token) = try await self.token(integration, host: room.hostID)
        var stray: [Int64] = []
        for type in ["scheduled", "live"] {
            for meeting in try await client.listMeetings(token: token, userID: user, type: type)
            where meeting.agenda?.contains(room.marker) == true && meeting.id != keeping && meeting.id != room.meetingID
                && !stray.contains(meeting.id)
            {
                stray.append(meeting.id)
            }
        }
        for id in stray {
            try await pace(integration)
            try await Self.endMeeting(client: client, token: token, meetingID: id, delete: true)
            logger.warning(
                "stray meeting of a room ended and deleted",
                metadata: ["room.id": "\(room.id)", "integration": "\(integration)", "meeting": "\(id)"])
        }
        if room.endRequested {
            room.sweepMarker = false
            try await save(room)
        }
    }

    /// Ends a room whose meeting Zoom will not let sitroom end (the integration was refused): the room is
    /// `ended` with the reason, and its host freed.
    private func endWithoutZoom(_ room: inout Room, reason: String) async {
        room.state = .ended
        room.endedAt = clock.now()
        room.updatedAt = room.endedAt!
        if let meetingID = room.meetingID {
            room.reason = "meeting \(meetingID) could not be ended (\(reason)); end it in Zoom, and ask your admin to re-integrate Zoom"
        }
        // The end request is checked in the commit itself: an incident reopened while this write awaited its group
        // commit has withdrawn it, and the room must then stay open (the withdrawal re-drives it).
        let store = self.store
        let ending = room
        let withdrawn =
            (try? await commit { txn -> Bool in
                if let stored = try store.room(ending.id, txn), !stored.endRequested { return true }
                try store.putRoom(Self.keepingEndRequest(ending, txn, store), txn)
                return false
            }) ?? false
        if withdrawn {
            logger.info("incident reopened while its room was ending; the room stays open", metadata: ["room.id": "\(room.id)"])
            return
        }
        track(room)
        if let integration = room.integration, let host = room.hostID {
            await pool.release(HostKey(integration: integration, host: host), room: room.id)
        }
        logger.warning("room ended without Zoom", metadata: ["room.id": "\(room.id)", "reason": "\(reason)"])
        Task { await self.retryWaiting() }
    }

    private enum EndOutcome { case ended, kept, resume }

    /// Takes an ended room back for its reopened incident (SPEC §5 hold-down): the same host is taken again and
    /// the meeting checked with Zoom (`GET /meetings/{id}`); the room is `ready` again with the same link, and
    /// only people who have not had the link are told. When the host cannot take it or the meeting is gone, the
    /// room ends for good and a new room is made.
    private func revive(_ room: inout Room) async throws {
        guard let integration = room.integration, let hostID = room.hostID, let meetingID = room.meetingID,
            configuration.integrations[integration] != nil
        else {
            try replace(room.id, reason: "its integration or host is no longer configured")
            return
        }
        let key = HostKey(integration: integration, host: hostID)
        guard await pool.reclaim(key, room: room.id) else {
            try replace(room.id, reason: "host \(hostID) of \(integration) cannot take it back now")
            return
        }
        do {
            let (client, token) = try await self.token(integration, host: room.hostID)
            let meeting = try await client.getMeeting(token: token, meetingID: meetingID)
            room.deleteAfter = nil
            room.endedAt = nil
            logger.info(
                "room reopened with its meeting",
                metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "meeting": "\(meetingID)"])
            try await ready(&room, meeting)
        } catch let error as ZoomError where error.isMeetingGone {
            await pool.release(key, room: room.id)
            try replace(room.id, reason: "meeting \(meetingID) no longer exists")
        } catch let error as ZoomError {
            throw await classify(error, integration: integration, room: &room, token: nil)
        }
    }

    /// Ends a room that could not be reopened (`reason` says why) and makes a new room for its incident, unless
    /// the incident was resolved meanwhile.
    private func replace(_ id: String, reason: String) throws {
        let now = clock.now()
        let store = self.store
        let fresh: Room? = try store.write { txn in
            guard var old = try store.room(id, txn) else { return nil }
            let wanted = !old.endRequested
            old.state = .ended
            old.endRequested = false
            old.reason = "not reopened: \(reason)"
            old.endedAt = old.endedAt ?? now
            old.updatedAt = now
            try store.putRoom(old, txn)
            guard wanted, var record = try store.incident(old.incidentID, txn), record.roomID == old.id else {
                return nil
            }
            let fresh = Room(id: Self.newRoomID(), incidentID: old.incidentID, createdAt: now)
            record.roomID = fresh.id
            try store.putRoom(fresh, txn)
            try store.putIncident(record, txn)
            return fresh
        }
        logger.info("room not reopened", metadata: ["room.id": "\(id)", "reason": "\(reason)"])
        if let stored = load(id), let after = stored.deleteAfter { scheduleDeletion(id, at: after) }
        if let fresh { drive(fresh.id) }
    }

    // MARK: Deleting meetings after the hold-down

    /// Deletes an ended room's meeting at `time` (seconds since 1970), unless the room is reopened first.
    private func scheduleDeletion(_ id: String, at time: Double) {
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
                    guard var room = try store.room(id, txn), room.state == .ended, let after = room.deleteAfter,
                        room.meetingID != nil, now >= after
                    else { return nil }
                    if room.meetingDeletedAt == nil {
                        room.meetingDeletedAt = now
                        try store.putRoom(room, txn)
                    }
                    return room
                }
            } catch {
                logger.error("cannot record a meeting deletion", metadata: ["room.id": "\(id)", "error": "\(error)"])
                return
            }
            guard let room = decided, let meetingID = room.meetingID, let integration = room.integration else {
                if let room = load(id), room.state == .ended, let after = room.deleteAfter, after > now {
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
                    if !error.isMeetingGone { throw error }
                }
            } catch let error as ZoomError where error.isTransient && attempt < maxTransientAttempts {
                attempt += 1
                let backoff = error.retryAfter ?? min(maxBackoff, firstBackoff * Double(1 << min(attempt - 1, 20)))
                do { try await clock.sleep(seconds: backoff) } catch { return }
                continue
            } catch {
                reason = "meeting \(meetingID) could not be deleted: \(error)"
            }
            _ = try? store.write { txn in
                guard var stored = try store.room(id, txn) else { return }
                stored.deleteAfter = nil
                if let reason { stored.reason = reason }
                try store.putRoom(stored, txn)
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

    /// Ends a meeting (`PUT /meetings/{id}/status`), then deletes it when asked; a meeting already gone
    /// (3001) counts as done.
    private static func endMeeting(client: ZoomClient, token: String, meetingID: Int64, delete: Bool) async throws(ZoomError) {
        do {
            try await client.endMeeting(token: token, meetingID: meetingID)
        } catch {
            if !error.isMeetingGone { throw error }
        }
        guard delete else { return }
        do {
            try await client.deleteMeeting(token: token, meetingID: meetingID)
        } catch {
            if !error.isMeetingGone { throw error }
        }
    }

    /// Maps a Zoom API error to the next step (SPEC §5 failures; shared/zoom-api/README.md codes), updating
    /// and saving the room where the step changes it (host dropped, attempt counted, create phase settled).
    private func classify(_ error: ZoomError, integration: String, room: inout Room, token: String?) async -> ZoomFailure {
        let reason = error.description
        if error.needsReauthorization {
            return ZoomFailure(step: .integrationRefused(integration), error: error, reason: reason)
        }
        if error.isInvalidAccessToken {
            // A 401 is a definite refusal: nothing was created.
            if room.createPhase == .inFlight, error.status == 401 {
                room.createPhase = .notSent
                try? await save(room)
            }
            return ZoomFailure(step: .tokenRejected(integration), error: error, reason: reason, token: token)
        }
        let key = room.hostID.map { HostKey(integration: integration, host: $0) }
        if error.isHostUnusable || error.isDailyLimit, let key {
            room.hostID = nil
            room.hostUser = nil
            room.createPhase = .notSent
            try? await save(room)
            logger.warning("host refused by Zoom", metadata: ["room.id": "\(room.id)", "host": "\(key.host)", "error": "\(reason)"])
            return ZoomFailure(step: .dropHost(key, dailyLimit: error.isDailyLimit), error: error, reason: reason)
        }
        if error.isTransient {
            room.attempts += 1
            if !error.outcomeUnknown, room.createPhase == .inFlight { room.createPhase = .notSent }
            // A create whose outcome is unknown may yet complete at Zoom after a later create: remember to
            // sweep the host's meetings for this room's marker (after the next create, and when it ends).
            if error.outcomeUnknown, room.createPhase == .inFlight { room.sweepMarker = true }
            try? await save(room)
            if room.attempts > maxTransientAttempts {
                return ZoomFailure(step: .fail, error: error, reason: "\(reason) (after \(room.attempts) attempts)")
            }
            // Retry-After is Zoom's word, but capped: a room must not hold its host for hours on one answer.
            let backoff = min(
                2 * maxBackoff, error.retryAfter ?? min(maxBackoff, firstBackoff * Double(1 << min(room.attempts - 1, 20))))
            logger.warning("Zoom call failed, retrying", metadata: ["room.id": "\(room.id)", "error": "\(reason)", "retry_in": "\(backoff)"])
            return ZoomFailure(step: .backoff(backoff), error: error, reason: reason)
        }
        if room.createPhase == .inFlight {
            room.createPhase = .notSent
            try? await save(room)
        }
        return ZoomFailure(step: .fail, error: error, reason: reason)
    }

    /// Zoom refused an integration's credentials: mark it, tell the admins once, and free the room's host
    /// there so the room can fail over to the next integration.
    /// What a room does after its integration (or host) was refused by Zoom.
    enum AfterRefusal {
        /// zoom-s2s: the whole integration is out; fail over to the next one.
        case excludeIntegration
        /// zoom-oauth: only this host is out; lease another.
        case tryAnotherHost
        /// The room failed (a create whose outcome cannot be checked any more).
        case failed
    }

    /// Zoom refused an integration's credentials (zoom-s2s) or a host's (zoom-oauth): mark it
    /// `needs_reauthorization`, tell the admins once, and free the room's host there so the room can fail over.
    private func integrationRefused(_ integration: String, reason: String, room id: String) async -> AfterRefusal {
        let perHost = configuration.integrations[integration]?.kind == .zoomOAuth
        let roomHost = load(id)?.integration == integration ? load(id)?.hostID : nil
        let changed =
            (try? await registry.markNeedsReauthorization(integration, host: perHost ? roomHost : nil, reason: reason)) ?? false
        if changed { queueAdminNotices(kind: .adminReauthorize, room: nil, integration: integration, reason: reason) }
        guard var room = load(id), room.integration == integration, let host = room.hostID,
            room.meetingID == nil, room.state != .ready
        else {
            return perHost ? .tryAnotherHost : .excludeIntegration
        }
        if room.createPhase == .inFlight {
            if perHost {
                await fail(
                    id,
                    reason: "a create request's outcome cannot be checked: host \(host) of \(integration) was refused by Zoom "
                        + "(\(reason)); ask your admin to re-integrate Zoom")
                return .failed
            }
            return .excludeIntegration  // work() fails it: the meeting may exist but cannot be looked for
        }
        room.hostID = nil
        room.hostUser = nil
        try? await save(room)
        await pool.release(HostKey(integration: integration, host: host), room: id)
        return perHost ? .tryAnotherHost : .excludeIntegration
    }

    /// Marks a room `failed` with its reason, frees its host and tells the admins.
    private func fail(_ id: String, reason: String) async {
        guard var room = load(id), room.state.isOpen else { return }
        let hadHost = room.integration.flatMap { integration in room.hostID.map { HostKey(integration: integration, host: $0) } }
        room.state = .failed
        room.reason = reason
        room.updatedAt = clock.now()
        if room.createPhase == .inFlight {
            // The meeting may exist at Zoom: sweep for the marker when the incident is resolved.
            room.sweepMarker = true
            room.createPhase = .notSent
        }
        do { try saveTelling(room) } catch {
            logger.error("cannot record a failed room", metadata: ["room.id": "\(id)", "error": "\(error)"])
            return
        }
        track(room)
        if let key = hadHost {
            await pool.release(key, room: id)
            Task { await self.retryWaiting() }
        }
        logger.error("room failed", metadata: ["room.id": "\(id)", "incident.id": "\(room.incidentID)", "reason": "\(reason)"])
        queueAdminNotices(kind: .adminRoomFailed, room: room, integration: room.integration, reason: reason)
    }

    // MARK: Notices

    /// Queues the notices of a ready room (SPEC §6; see ``NoticePlanner/roomReady(room:record:now:_:)``); the
    /// outbox key (room, person, kind, channel) makes a second call a no-op for people already told.
    private func queueReadyNotices(
        room: Room, record: IncidentRecord, now: Double, _ txn: borrowing Transaction
    ) throws -> [Notice] {
        try planner.roomReady(room: room, record: record, now: now, txn)
    }

    private var planner: NoticePlanner {
        NoticePlanner(configuration: configuration, templates: templates, store: store)
    }

    /// Writes an ended or failed room and, in the same transaction, the notices that tell people about it.
    private func saveTelling(_ room: Room) throws {
        let store = self.store
        let planner = self.planner
        let now = clock.now()
        let queued: [Notice] = try store.write { txn in
            let room = try Self.keepingEndRequest(room, txn, store)
            try store.putRoom(room, txn)
            guard let record = try store.incident(room.incidentID, txn) else { return [] }
            return room.state == .ended
                ? try planner.roomEnded(room: room, record: record, now: now, txn)
                : try planner.roomFailed(room: room, record: record, now: now, txn)
        }
        if !queued.isEmpty { Task { await notifier.enqueued(queued) } }
    }

    private func queueAdminNotices(kind: NoticeKind, room: Room?, integration: String?, reason: String) {
        let now = clock.now()
        let admins = configuration.daemon.notify.admins
        guard !admins.isEmpty else { return }
        var subject = room ?? Room(id: "integration-\(integration ?? "-")-\(Int64(now))", incidentID: "", createdAt: now)
        subject.integration = integration
        subject.reason = reason
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

    /// A random 10-character passcode (Zoom's maximum length), letters and digits.
    static func passcode() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<10).map { _ in alphabet.randomElement(using: &generator)! })
    }
}
