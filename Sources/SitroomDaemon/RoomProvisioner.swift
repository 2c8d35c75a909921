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
    private var stopped = false

    public init(
        store: Store, pool: AccountPool, registry: IntegrationRegistry, notifier: Notifier, configuration: Configuration,
        clock: any WallClock, logger: Logger
    ) throws {
        self.store = store
        self.pool = pool
        self.registry = registry
        self.notifier = notifier
        self.configuration = configuration
        self.templates = try NoticeTemplates(configuration.templates)
        self.clock = clock
        self.logger = logger
    }

    /// Applies a configuration generation to the next room and notice.
    public func configure(_ configuration: Configuration) throws {
        templates = try NoticeTemplates(configuration.templates)
        self.configuration = configuration
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
            for event in events {
                results.append(try applyOne(event, now: now, txn, &batch))
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
                    current.updatedAt = now
                    try store.putRoom(current, txn)
                    room = current
                    batch.drive(current.id)
                }
            } else if isReusable(current, now: now) {
                current.state = .provisioning
                current.reason = "reopened: taking back meeting \(current.meetingID.map(String.init) ?? "")"
                current.endRequested = false
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
            guard var open = room, open.state.isOpen, !open.endRequested else { break }
            if let previous = batch.created[open.id] {
                // Made by this batch and never worked on: nobody ever saw it.
                _ = try txn.delete(store.tables.rooms, open.id)
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

    /// Starts work on every room left unfinished by the last run (start-up recovery) and on waiting rooms.
    /// - Complexity: O(rooms).
    public func recover() throws {
        let store = self.store
        let rooms = try store.read { txn in try store.all(Room.self, store.tables.rooms, txn) }
        for room in rooms.sorted(by: { $0.createdAt < $1.createdAt }) {
            if room.state.isOpen, room.state != .ready || room.endRequested { drive(room.id) }
            if room.state == .ended, let after = room.deleteAfter {
                scheduleDeletion(room.id, at: room.meetingDeletedAt == nil ? after : 0)
            }
        }
    }

    /// Stops starting new work; in-flight Zoom calls are cancelled, their rooms stay durable in LMDB.
    public func stop() {
        stopped = true
        for task in running.values { task.cancel() }
        for task in deletions.values { task.cancel() }
    }

    /// Gives waiting rooms another try, oldest first (a host was freed, a cool-down or the day ended).
    public func retryWaiting() {
        let store = self.store
        guard let rooms = try? store.read({ txn in try store.all(Room.self, store.tables.rooms, txn) }) else { return }
        for room in rooms.sorted(by: { $0.createdAt < $1.createdAt }) where room.state == .waiting {
            drive(room.id)
        }
    }

    /// A room and its incident, for `room show`.
    public func show(incident id: String) throws -> (IncidentRecord, Room?)? {
        let store = self.store
        return try store.read { txn in
            guard let record = try store.incident(id, txn) else { return nil }
            return (record, try record.roomID.flatMap { try store.room($0, txn) })
        }
    }

    /// All rooms, oldest first.
    public func rooms() throws -> [Room] {
        let store = self.store
        return try store.read { txn in try store.all(Room.self, store.tables.rooms, txn) }.sorted { $0.createdAt < $1.createdAt }
    }

    // MARK: Driving a room

    private func drive(_ id: String) {
        guard !stopped else { return }
        if running[id] != nil {
            rerun.insert(id)
            return
        }
        running[id] = Task { await self.work(id) }
    }

    private func finished(_ id: String) {
        running[id] = nil
        if rerun.remove(id) != nil { drive(id) }
    }

    private func work(_ id: String) async {
        defer { finished(id) }
        var excluded: Set<String> = []
        var refreshedToken: Set<String> = []
        while !stopped && !Task.isCancelled {
            guard var room = load(id) else { return }
            if !room.state.isOpen { return }
            do {
                if room.endRequested {
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
                    if refreshedToken.insert(integration).inserted {
                        try? await registry.invalidateToken(integration)
                        continue
                    }
                    await integrationRefused(integration, reason: failure.error.description, room: id)
                    excluded.insert(integration)
                    continue
                case .integrationRefused(let integration):
                    await integrationRefused(integration, reason: failure.error.description, room: id)
                    excluded.insert(integration)
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
                    do { try await clock.sleep(seconds: seconds) } catch { return }
                    continue
                case .fail:
                    await fail(id, reason: failure.reason)
                    return
                }
            } catch is CancellationError {
                return
            } catch {
                logger.error("room work failed", metadata: ["room.id": "\(id)", "error": "\(error)"])
                do { try await clock.sleep(seconds: maxBackoff) } catch { return }
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
    }

    private func load(_ id: String) -> Room? {
        let store = self.store
        return try? store.read { txn in try store.room(id, txn) }
    }

    /// Writes the room. An end requested meanwhile (an event applied while a Zoom call was awaited) is kept.
    private func save(_ room: Room) throws {
        let store = self.store
        try store.write { txn in try store.putRoom(Self.keepingEndRequest(room, txn, store), txn) }
    }

    /// The room with the stored end request: only events set or withdraw it, so the stored one is the truth.
    private static func keepingEndRequest(_ room: Room, _ txn: borrowing Transaction, _ store: Store) throws -> Room {
        var room = room
        if let stored = try store.room(room.id, txn) { room.endRequested = stored.endRequested }
        return room
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
    private func leaseHost(_ room: inout Room, excluded: Set<String>) async throws -> Bool {
        let store = self.store
        let incidentID = room.incidentID
        guard let record = try store.read({ txn in try store.incident(incidentID, txn) }) else { return false }
        var reasons: [String] = []
        var anyServable = false
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
            switch try await pool.lease(room: room.id, integration: name) {
            case .leased(let key, let limits):
                room.integration = key.integration
                room.hostID = key.host
                room.hostUser = limits.user
                room.createPhase = .notSent
                room.state = .provisioning
                room.reason = nil
                room.updatedAt = clock.now()
                try save(room)
                return true
            case .unavailable(let reason, let permanent):
                reasons.append(reason)
                if !permanent { anyServable = true }
            }
        }
        room.updatedAt = clock.now()
        if anyServable {
            room.state = .waiting
            room.reason = reasons.joined(separator: "; ")
            try save(room)
            logger.info("room waiting", metadata: ["room.id": "\(room.id)", "reason": "\(room.reason ?? "")"])
        } else {
            let reason =
                (reasons.isEmpty ? "no integration serves this incident" : reasons.joined(separator: "; "))
                + "; ask your admin to re-integrate Zoom or fix the pool"
            await fail(room.id, reason: reason)
        }
        return false
    }

    private func token(_ integration: String) async throws -> (ZoomClient, String) {
        guard let client = await registry.client(integration) else {
            throw SitroomError(.notFound, "integration \(integration) is not configured")
        }
        return (client, try await registry.accessToken(integration))
    }

    /// Looks for the room's marker among the host's meetings (a create whose outcome is unknown).
    /// - Returns: true when the meeting was found and the room is now `ready`.
    private func settle(_ room: inout Room) async throws -> Bool {
        guard let integration = room.integration, let user = room.hostUser else {
            room.createPhase = .notSent
            try save(room)
            return false
        }
        do {
            let (client, token) = try await self.token(integration)
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
                try ready(&room, meeting)
                return true
            }
            room.createPhase = .notSent
            try save(room)
            return false
        } catch let error as ZoomError {
            throw classify(error, integration: integration, room: &room)
        }
    }

    private func create(_ room: inout Room) async throws {
        guard let integration = room.integration, let settings = configuration.integrations[integration],
            let user = room.hostUser
        else {
            throw ZoomFailure(step: .fail, error: ZoomError(.invalidResponse(message: "")), reason: "integration removed")
        }
        let store = self.store
        let incidentID = room.incidentID
        guard let record = try store.read({ txn in try store.incident(incidentID, txn) }) else { return }
        do {
            let (client, token) = try await self.token(integration)
            room.createPhase = .inFlight
            room.updatedAt = clock.now()
            try save(room)
            let meeting = meetingRequest(settings.meeting, record: record, room: room)
            logger.info(
                "creating meeting",
                metadata: [
                    "room.id": "\(room.id)", "incident.id": "\(incidentID)", "integration": "\(integration)",
                    "host": "\(room.hostID ?? "")",
                ])
            let created = try await client.createMeeting(token: token, userID: user, meeting)
            try ready(&room, created)
        } catch let error as ZoomError {
            throw classify(error, integration: integration, room: &room)
        }
    }

    private func meetingRequest(_ settings: MeetingSettings, record: IncidentRecord, room: Room) -> MeetingRequest {
        let topicTemplate = (try? NoticeTemplates(["topic.chat": settings.topic]))
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

    private func ready(_ room: inout Room, _ meeting: Meeting) throws {
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
        var queued: [Notice] = []
        try store.write { txn in
            let current = try Self.keepingEndRequest(current, txn, store)
            try store.putRoom(current, txn)
            queued = []
            if let record = try store.incident(current.incidentID, txn), !current.endRequested {
                queued = try self.queueReadyNotices(room: current, record: record, now: now, txn)
            }
        }
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
            do {
                let (client, token) = try await self.token(integration)
                try await Self.endMeeting(client: client, token: token, meetingID: meetingID, delete: deleteNow)
                if deleteNow { room.meetingDeletedAt = now }
                room.deleteAfter = delete && !deleteNow && room.meetingDeletedAt == nil ? now + holdDown : nil
            } catch let error as ZoomError {
                let failure = classify(error, integration: integration, room: &room)
                if case .fail = failure.step {
                    // Nothing more can be done with this meeting: record why, and end the room anyway.
                    room.reason = "meeting \(meetingID) could not be ended: \(failure.reason)"
                } else {
                    throw failure
                }
            }
        }
        let host = room.integration.flatMap { integration in
            room.hostID.map { HostKey(integration: integration, host: $0) }
        }
        let store = self.store
        let ending = room
        var replacement: Room? = nil
        let outcome: EndOutcome = try store.write { txn in
            replacement = nil
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
                current.state = .ended
                current.endedAt = now
                current.updatedAt = now
                try store.putRoom(current, txn)
                if var record = try store.incident(current.incidentID, txn), record.roomID == current.id {
                    let fresh = Room(id: Self.newRoomID(), incidentID: current.incidentID, createdAt: now)
                    record.roomID = fresh.id
                    try store.putRoom(fresh, txn)
                    try store.putIncident(record, txn)
                    replacement = fresh
                }
                return .ended
            }
            current.state = .ended
            current.endedAt = now
            current.updatedAt = now
            try store.putRoom(current, txn)
            return .ended
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
        }
        if let host { await pool.release(host, room: room.id) }
        logger.info("room ended", metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)"])
        if let after = room.deleteAfter { scheduleDeletion(room.id, at: after) }
        if let replacement {
            logger.info(
                "incident reopened after its meeting was deleted; a new room is made",
                metadata: ["room.id": "\(replacement.id)", "incident.id": "\(room.incidentID)"])
            drive(replacement.id)
        }
        retryWaiting()
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
            let (client, token) = try await self.token(integration)
            let meeting = try await client.getMeeting(token: token, meetingID: meetingID)
            room.deleteAfter = nil
            room.endedAt = nil
            logger.info(
                "room reopened with its meeting",
                metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "meeting": "\(meetingID)"])
            try ready(&room, meeting)
        } catch let error as ZoomError where error.isMeetingGone {
            await pool.release(key, room: room.id)
            try replace(room.id, reason: "meeting \(meetingID) no longer exists")
        } catch let error as ZoomError {
            throw classify(error, integration: integration, room: &room)
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
                let (client, token) = try await self.token(integration)
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
    private func classify(_ error: ZoomError, integration: String, room: inout Room) -> ZoomFailure {
        let reason = error.description
        if error.needsReauthorization {
            return ZoomFailure(step: .integrationRefused(integration), error: error, reason: reason)
        }
        if error.isInvalidAccessToken {
            return ZoomFailure(step: .tokenRejected(integration), error: error, reason: reason)
        }
        let key = room.hostID.map { HostKey(integration: integration, host: $0) }
        if error.isHostUnusable || error.isDailyLimit, let key {
            room.hostID = nil
            room.hostUser = nil
            room.createPhase = .notSent
            try? save(room)
            logger.warning("host refused by Zoom", metadata: ["room.id": "\(room.id)", "host": "\(key.host)", "error": "\(reason)"])
            return ZoomFailure(step: .dropHost(key, dailyLimit: error.isDailyLimit), error: error, reason: reason)
        }
        if error.isTransient {
            room.attempts += 1
            if !error.outcomeUnknown, room.createPhase == .inFlight { room.createPhase = .notSent }
            try? save(room)
            if room.attempts > maxTransientAttempts {
                return ZoomFailure(step: .fail, error: error, reason: "\(reason) (after \(room.attempts) attempts)")
            }
            let backoff = error.retryAfter ?? min(maxBackoff, firstBackoff * Double(1 << min(room.attempts - 1, 20)))
            logger.warning("Zoom call failed, retrying", metadata: ["room.id": "\(room.id)", "error": "\(reason)", "retry_in": "\(backoff)"])
            return ZoomFailure(step: .backoff(backoff), error: error, reason: reason)
        }
        if room.createPhase == .inFlight {
            room.createPhase = .notSent
            try? save(room)
        }
        return ZoomFailure(step: .fail, error: error, reason: reason)
    }

    /// Zoom refused an integration's credentials: mark it, tell the admins once, and free the room's host
    /// there so the room can fail over to the next integration.
    private func integrationRefused(_ integration: String, reason: String, room id: String) async {
        let changed = (try? await registry.markNeedsReauthorization(integration, reason: reason)) ?? false
        if changed { queueAdminNotices(kind: .adminReauthorize, room: nil, integration: integration, reason: reason) }
        guard var room = load(id), room.integration == integration, let host = room.hostID, room.createPhase != .inFlight
        else { return }
        room.hostID = nil
        room.hostUser = nil
        try? save(room)
        await pool.release(HostKey(integration: integration, host: host), room: id)
    }

    /// Marks a room `failed` with its reason, frees its host and tells the admins.
    private func fail(_ id: String, reason: String) async {
        guard var room = load(id) else { return }
        let hadHost = room.integration.flatMap { integration in room.hostID.map { HostKey(integration: integration, host: $0) } }
        room.state = .failed
        room.reason = reason
        room.updatedAt = clock.now()
        if room.createPhase == .inFlight { room.createPhase = .notSent }
        do { try save(room) } catch {
            logger.error("cannot record a failed room", metadata: ["room.id": "\(id)", "error": "\(error)"])
            return
        }
        if let key = hadHost {
            await pool.release(key, room: id)
            retryWaiting()
        }
        logger.error("room failed", metadata: ["room.id": "\(id)", "incident.id": "\(room.incidentID)", "reason": "\(reason)"])
        queueAdminNotices(kind: .adminRoomFailed, room: room, integration: room.integration, reason: reason)
    }

    // MARK: Notices

    /// Queues `room-ready` notices for every participant and configured channel they have a contact for;
    /// the outbox key (room, person, kind, channel) makes a second call a no-op for people already told.
    private func queueReadyNotices(
        room: Room, record: IncidentRecord, now: Double, _ txn: borrowing Transaction
    ) throws -> [Notice] {
        var queued: [Notice] = []
        for person in record.participants {
            let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: person)
            for channel in configuration.daemon.notify.channels {
                let recipient: String?
                switch channel {
                case .email: recipient = person.email
                case .sms: recipient = person.phone
                }
                guard let recipient, let noticeChannel = NoticeChannel(rawValue: channel.rawValue),
                    let rendered = templates.render(.roomReady, noticeChannel, context)
                else { continue }
                let notice = Notice(
                    roomID: room.id, incidentID: record.info.id, personID: person.personID, kind: .roomReady,
                    channel: noticeChannel, recipient: recipient, recipientName: person.name, subject: rendered.subject,
                    body: rendered.body, createdAt: now)
                if try store.enqueue(notice, txn) { queued.append(notice) }
            }
        }
        return queued
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
        let templates = self.templates
        do {
            let queued: [Notice] = try store.write { txn in
                let record = try store.incident(target.incidentID, txn)
                var queued: [Notice] = []
                for admin in admins {
                    guard let email = admin.email else { continue }
                    let context = NoticeContext(
                        incident: record?.info ?? IncidentInfo(id: target.incidentID, title: "-"),
                        stage: record?.stage ?? .opened, room: target, person: nil, admin: (admin.name, email))
                    guard let rendered = templates.render(kind, .email, context) else { continue }
                    let notice = Notice(
                        roomID: target.id, incidentID: target.incidentID, personID: "admin:\(email)", kind: kind,
                        channel: .email, recipient: email, recipientName: admin.name, subject: rendered.subject,
                        body: rendered.body, createdAt: now)
                    if try store.enqueue(notice, txn) { queued.append(notice) }
                }
                return queued
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
