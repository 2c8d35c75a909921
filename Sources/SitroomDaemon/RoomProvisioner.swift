import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomRuntime
import SitroomStore

/// Turns incident events into rooms and rooms into Zoom meetings (SPEC §5).
///
/// Every event is applied in one LMDB transaction (incident, room, seen event id, notices) before its spool
/// file leaves `new/`. A room is written `provisioning` with its create phase `in_flight` *before* the create
/// request is sent; a create whose outcome is unknown (lost reply, crash) is settled by looking for the
/// room's marker `sitroom:room=<id>` among the host's meetings before creating again, so no room ever gets
/// two meetings.
///
/// This file holds the actor's state, driving a room's run (``RoomRun``), reading the store and the group commit;
/// the rest is split by responsibility: `IncidentEventBatch.swift` (events applied in batches),
/// `RoomRecovery.swift` (start-up), `WaitingQueue.swift` (waiting rooms and the tick), `UnavailableRooms.swift`
/// (integrations deauthorized or removed), `MeetingEventHandling.swift` (Zoom's meeting events, reconciliation),
/// `RoomCommands.swift` (admin commands and listings) and `HeldMeetingDeletion.swift` (deletes after the hold-down).
public actor RoomProvisioner {
    private let executor: ThreadExecutor
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
    /// Where provider calls go (the registry, or a test's double).
    let providers: any MeetingProviderSource
    let notifier: Notifier
    let clock: any WallClock
    let logger: Logger
    var configuration: Configuration
    private var templates: NoticeTemplates
    var running: [String: Task<Void, Never>] = [:]
    /// Meetings waiting out the reopen hold-down before they are deleted, by room id.
    var deletions: [String: Task<Void, Never>] = [:]
    private var rerun: Set<String> = []
    /// Rooms whose work has news it has not looked at yet (``drive(_:)`` while it runs): a ``pause(_:seconds:)``
    /// that starts after the news came (the work was awaiting a commit or a Zoom call) returns at once.
    var news: Set<String> = []
    var stopped = false
    /// Rooms in `waiting`: id → when the room was made (the queue is served oldest first).
    var waiting: [String: Double] = [:]
    var retrying = false
    var retryAgain = false
    /// Rooms backing off, woken early by news (``drive(_:)``) or shutdown.
    private var wakers: [String: CheckedContinuation<Void, Never>] = [:]
    /// Room writes waiting for the next group commit (``commit(_:)``), in the order they were asked for.
    private var pendingWrites = GroupCommit()
    /// When the idle zoom-oauth hosts were last looked at (seconds since 1970), and whether a look is under way.
    var idleRefreshCheckedAt = 0.0
    var idleRefreshRunning = false

    let metrics: SitroomMetrics

    /// - Parameters:
    ///   - metrics: records how long rooms take from their event to `ready`.
    ///   - providers: where provider calls go; `nil` for the registry (a test hands in a double).
    ///   - executor: the thread the provisioner runs on; `nil` for a thread of its own.
    public init(
        store: Store,
        pool: AccountPool,
        registry: IntegrationRegistry,
        notifier: Notifier,
        configuration: Configuration,
        clock: any WallClock,
        logger: Logger,
        metrics: SitroomMetrics = SitroomMetrics(),
        providers: (any MeetingProviderSource)? = nil,
        executor: ThreadExecutor? = nil
    ) throws {
        self.executor = executor ?? ThreadExecutor(name: "sitroom-rooms")
        self.metrics = metrics
        self.providers = providers ?? registry
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

    /// Returns at once: that it returns shows the actor's thread is not stuck (the systemd watchdog).
    public func heartbeat() {}

    /// Stops starting new work; in-flight Zoom calls are cancelled, their rooms stay durable in LMDB.
    public func stop() {
        stopped = true
        for task in running.values { task.cancel() }
        for id in Array(wakers.keys) { wake(id) }
        for task in deletions.values { task.cancel() }
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
            return try store.read { txn in try txn.rooms.get(id) }
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
                return try store.read { txn in try txn.rooms.get(id) }
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
        return try store.read { txn in try txn.incidents.get(id) }
    }

    // MARK: Group commit

    /// Runs `body` in the next group commit (``GroupCommit``) and returns once that commit is synced to disk
    /// (issue 9: "group commit"). Writes asked for while a commit is being synced, or before the actor gets to the
    /// flush, go in one write transaction (one `fdatasync` for all of them), each in its own nested transaction:
    /// one that throws is undone alone and its caller gets the error. So many rooms in flight share each sync, and
    /// nothing is acted on (a create sent, a notice queued) before the write that records it is durable.
    /// - Parameter body: the write; it runs on this actor, later, maybe more than once (the map grown).
    /// - Returns: what `body` returned in the committed run.
    /// - Throws: what `body` threw, or the store's error when the whole commit failed.
    func commit<R: Sendable>(_ body: @escaping (borrowing StoreTransaction) throws -> R) async throws -> R {
        let value = try await withCheckedThrowingContinuation { (done: CheckedContinuation<any Sendable, any Error>) in
            if pendingWrites.add({ txn in try body(txn) }, done: done) {
                // Behind the jobs already queued on this actor: their writes join this commit.
                Task { self.flushWrites() }
            }
        }
        guard let result = value as? R else { preconditionFailure("a group commit returned another write's value") }
        return result
    }

    /// Commits every pending write in one synced transaction and resumes their writers.
    private func flushWrites() {
        let metrics = self.metrics
        pendingWrites.flush(into: store) { metrics.groupCommit(writes: $0) }
    }

    /// Keeps the in-memory waiting queue in step with a room's state.
    func track(_ room: Room) {
        if room.state == .waiting { waiting[room.id] = room.createdAt } else { waiting[room.id] = nil }
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

    /// The provider for a room's integration and host (``MeetingProvider``), after waiting for a request slot
    /// within the integration's rate (`rate_limit.medium_per_second`).
    /// - Throws: ``ProviderFailure`` when no token may be had (nothing was sent);
    ///   ``SitroomError`` `.notFound` for an integration not configured.
    func provider(for room: Room) async throws -> any MeetingProvider {
        guard let integration = room.integration else {
            throw SitroomError(.notFound, "room \(room.id) has no integration")
        }
        let provider = try await providers.meetings(
            integration,
            host: room.hostID,
            user: room.hostUser,
            incident: room.incidentID
        )
        try await pace(integration)
        return provider
    }

    /// Waits for the integration's next request slot.
    func pace(_ integration: String) async throws {
        let wait = await registry.reserveRequestSlot(integration)
        if wait > 0 { try await clock.sleep(seconds: wait) }
    }

    /// Looks for the room's marker among the host's meetings (a create whose outcome is unknown).
    /// - Returns: true when the meeting was found and the room is now `ready`.
    func meetingPlan(_ settings: MeetingSettings, record: IncidentRecord, room: Room) -> MeetingPlan {
        let topicTemplate = room.integration.flatMap { topicTemplates[$0] }
        let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: nil)
        let topic = topicTemplate?.render(.roomReady, .chat, context)?.body ?? record.info.title
        let commanders = record.participants.filter { $0.role == .commander }.compactMap(\.email)
        return MeetingPlan(
            topic: topic,
            startTime: clock.now(),
            marker: room.marker,
            description: "Incident \(record.info.id): \(record.info.title)",
            alternativeHosts: settings.commanderAsAlternativeHost && !room.withoutAlternativeHosts ? commanders : []
        )
    }

    // MARK: Notices

    /// What plans the notices of rooms (SPEC §6), for the live configuration and templates.
    var planner: NoticePlanner {
        NoticePlanner(configuration: configuration, templates: templates, store: store)
    }

    /// Queues notices for the admins (their own transaction).
    /// - Parameter advice: what the admins should do (`room.advice` in the templates); a room's own when `nil`.
    func queueAdminNotices(
        kind: NoticeKind,
        room: Room?,
        integration: String?,
        reason: String,
        advice: String? = nil
    ) {
        let now = clock.now()
        let admins = configuration.daemon.notify.admins
        guard !admins.isEmpty else { return }
        var subject =
            room ?? Room(id: "integration-\(integration ?? "-")-\(Int64(now))", incidentID: "", createdAt: now)
        subject.integration = integration
        subject.reason = reason
        if let advice { subject.advice = advice }
        let store = self.store
        let target = subject
        let planner = self.planner
        do {
            let queued: [Notice] = try store.write { txn in
                let record = target.incidentID.isEmpty ? nil : try txn.incidents.get(target.incidentID)
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
