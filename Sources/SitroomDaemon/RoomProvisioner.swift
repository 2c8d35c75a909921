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

    // MARK: Events

    /// Applies one incident event durably, then starts whatever Zoom work it calls for.
    ///
    /// Rules: `opened` records the incident; `situation_room` and `reopened` open a room unless one is open;
    /// `updated` merges participants (new ones get the notices they missed); `resolved`/`closed` end the room.
    /// An event older (`occurred_at`) than the last applied one for its incident only merges participants:
    /// a late `situation_room` after `resolved` does not reopen the room.
    /// - Returns: `.duplicate` when the event id was applied before (nothing changes).
    /// - Throws: store errors; the event then stays in the spool and is applied again later.
    public func apply(_ event: IncidentEvent) throws -> ApplyOutcome {
        let now = clock.now()
        let store = self.store
        var drive: String? = nil
        var queued: [Notice] = []
        let outcome: ApplyOutcome = try store.write { txn in
            drive = nil
            queued = []
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
                if room == nil || !(room!.state.isOpen && !room!.endRequested) {
                    let fresh = Room(id: Self.newRoomID(), incidentID: event.incident.id, createdAt: now)
                    record.roomID = fresh.id
                    room = fresh
                    try store.putRoom(fresh, txn)
                    drive = fresh.id
                }
            case .resolved, .closed:
                if stale { break }
                if var open = room, open.state.isOpen, !open.endRequested {
                    open.endRequested = true
                    open.updatedAt = now
                    try store.putRoom(open, txn)
                    room = open
                    drive = open.id
                }
            default:
                break
            }
            if let room, room.state == .ready, !room.endRequested {
                queued = try self.queueReadyNotices(room: room, record: record, now: now, txn)
            }
            try store.putIncident(record, txn)
            return .applied
        }
        logger.info(
            outcome == .duplicate ? "duplicate event ignored" : "event applied",
            metadata: [
                "event.id": "\(event.eventID)", "incident.id": "\(event.incident.id)", "stage": "\(event.stage.rawValue)",
            ])
        if !queued.isEmpty { Task { await notifier.enqueued(queued) } }
        if let drive { self.drive(drive) }
        return outcome
    }

    /// Starts work on every room left unfinished by the last run (start-up recovery) and on waiting rooms.
    /// - Complexity: O(rooms).
    public func recover() throws {
        let store = self.store
        let rooms = try store.read { txn in try store.all(Room.self, store.tables.rooms, txn) }
        for room in rooms.sorted(by: { $0.createdAt < $1.createdAt }) where room.state.isOpen {
            if room.state != .ready || room.endRequested { drive(room.id) }
        }
    }

    /// Stops starting new work; in-flight Zoom calls are cancelled, their rooms stay durable in LMDB.
    public func stop() {
        stopped = true
        for task in running.values { task.cancel() }
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

    private static func keepingEndRequest(_ room: Room, _ txn: borrowing Transaction, _ store: Store) throws -> Room {
        var room = room
        if let stored = try store.room(room.id, txn), stored.endRequested { room.endRequested = true }
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

    /// Ends the meeting (and deletes it per `on_resolve`), marks the room `ended` and frees its host.
    private func end(_ room: inout Room) async throws {
        if room.createPhase == .inFlight {
            if try await !settle(&room) { room.createPhase = .notSent }
        }
        if let meetingID = room.meetingID, let integration = room.integration,
            configuration.integrations[integration] != nil
        {
            let delete = configuration.integrations[integration]?.meeting.onResolve == .endAndDelete
            do {
                let (client, token) = try await self.token(integration)
                try await Self.endMeeting(client: client, token: token, meetingID: meetingID, delete: delete)
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
        room.state = .ended
        room.endedAt = clock.now()
        room.updatedAt = room.endedAt!
        try saveTelling(room)
        if let integration = room.integration, let host = room.hostID {
            await pool.release(HostKey(integration: integration, host: host), room: room.id)
        }
        logger.info("room ended", metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)"])
        retryWaiting()
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
        do { try saveTelling(room) } catch {
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
                let record = try store.incident(target.incidentID, txn)
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
