import Foundation
import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomService
import SitroomStore
import SitroomZoom

/// The wired actors and the live configuration generation; answers control commands.
public actor DaemonCore {
    public let paths: DaemonPaths
    public let store: Store
    public let registry: IntegrationRegistry
    public let pool: AccountPool
    public let notifier: Notifier
    public let provisioner: RoomProvisioner
    /// The integrations' WebSocket event subscriptions (the live room).
    public let meetingEvents: MeetingEventSubscriptions
    private let clock: any WallClock
    private let logger: Logger
    private let startedAt: Double
    private var generation = 1
    private var appliedAt: Double
    private var live: Configuration
    private var lastRejected: RejectedGeneration? = nil
    private var watch = ConfigWatchMode.off
    /// The reload running or last run: reloads (SIGHUP, `reload`, the watcher) run one after the other.
    private var reloadTail: Task<ControlReply, Never>? = nil
    private var spoolBacklog: @Sendable () -> Int = { 0 }
    private var spoolRejections: @Sendable (Double) -> SpoolRejections = { _ in SpoolRejections() }
    /// The counters the actors move, written to the metrics file.
    public let metrics: SitroomMetrics
    /// Tells systemd about reloads (`RELOADING=1` … `READY=1`); `nil` without `$NOTIFY_SOCKET`.
    private let serviceNotifier: ServiceNotifier?
    /// Whether the last reload found etc/ valid (true until one is rejected), and when etc/ was last found valid.
    private var lastReloadSuccessful = true
    private var lastReloadSuccessAt: Double

    /// Wires the actors over an open store and applies the first generation.
    /// - Parameters:
    ///   - metrics: the counters the actors move (the metrics file renders them).
    ///   - serviceNotifier: systemd's notification socket, told about reloads.
    /// - Throws: store errors, template errors.
    public init(
        paths: DaemonPaths, configuration: Configuration, store: Store, http: ZoomHTTPClient, clock: any WallClock, logger: Logger,
        metrics: SitroomMetrics = SitroomMetrics(), serviceNotifier: ServiceNotifier? = nil
    ) async throws {
        self.paths = paths
        self.store = store
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
        self.serviceNotifier = serviceNotifier
        registry = IntegrationRegistry(store: store, http: http, clock: clock, logger: logger, metrics: metrics)
        pool = AccountPool(store: store, clock: clock, logger: logger)
        notifier = Notifier(store: store, clock: clock, logger: logger)
        provisioner = try RoomProvisioner(
            store: store, pool: pool, registry: registry, notifier: notifier, configuration: configuration, clock: clock,
            logger: logger, metrics: metrics)
        meetingEvents = MeetingEventSubscriptions(provisioner: provisioner, registry: registry, metrics: metrics, logger: logger)
        startedAt = clock.now()
        appliedAt = startedAt
        lastReloadSuccessAt = startedAt
        live = configuration
        // Integrations whose files were removed while sitroomd was not running are removed now.
        let removed = try await registry.configure(configuration)
        await pool.configure(configuration)
        await notifier.configure(configuration, varDirectory: paths.varDirectory)
        try await pool.restore()
        // Before the outbox is restored: a nudge due now must wait for its integration's subscription to connect and
        // reconcile (people may have joined while sitroomd was down).
        let readiness = meetingEvents.readiness
        for (name, integration) in configuration.integrations where integration.events.websocket != nil {
            readiness.set(name, complete: false)
        }
        await notifier.setEventsReadiness { readiness.isComplete($0) }
        try await notifier.restore()
        if !removed.isEmpty { await provisioner.integrationsRemoved(removed) }
        try await provisioner.recover()
        let logger = self.logger
        await meetingEvents.setDeauthorizationHandler { [weak self] event in
            guard let self else { return }
            do {
                let done = try await self.applyAppDeauthorized(event)
                logger.warning("app_deauthorized from the Zoom event subscription applied", metadata: ["effect": "\(done)"])
            } catch {
                logger.error("cannot apply app_deauthorized from the Zoom event subscription", metadata: ["error": "\(error)"])
            }
        }
        await meetingEvents.configure(configuration)
    }

    /// Tells `status` how to count the spool backlog.
    public func setSpoolBacklog(_ count: @escaping @Sendable () -> Int) { spoolBacklog = count }

    /// Tells `status` how to sum up the spool's `rejected/` (given the time now, seconds since 1970).
    public func setSpoolRejections(_ summary: @escaping @Sendable (Double) -> SpoolRejections) { spoolRejections = summary }

    /// Reads all of `etc/` again and applies it to every actor as a new generation, or keeps the live generation
    /// when it is invalid (recorded as the last rejected one, with every error as `file:line:col: message`) or
    /// when it decodes to the same configuration (comments and layout do not count). Reloads run one at a time,
    /// in the order asked (SIGHUP, `reload`, the watcher).
    ///
    /// A removed integration file removes the integration: no new rooms through it, its open rooms become
    /// `unavailable`, its tokens are deleted (SPEC §5). Other changes apply to the next room or notice.
    /// - Returns: the reply for `reload`.
    public func reload() async -> ControlReply {
        let previous = reloadTail
        let task = Task {
            _ = await previous?.value
            return await self.reloadNow()
        }
        reloadTail = task
        return await task.value
    }

    /// Tells systemd a reload runs (`RELOADING=1` with `MONOTONIC_USEC`), then that the daemon is ready again
    /// with the outcome as `STATUS`, whatever it was (systemd waits for `READY=1` to finish `systemctl reload`).
    private func reloadNow() async -> ControlReply {
        notifyService([
            ("RELOADING", "1"), ("MONOTONIC_USEC", String(ServiceNotifier.monotonicMicroseconds())),
            ("STATUS", "reloading etc/"),
        ])
        let reply = await reloadGeneration()
        notifyService([("READY", "1"), ("STATUS", serviceStatus())])
        return reply
    }

    /// `STATUS=` for systemd: the live generation and whether the last reload was refused.
    func serviceStatus() -> String {
        "serving; config generation \(generation)"
            + (lastReloadSuccessful ? "" : "; the last reload was rejected (see sitroomctl status)")
    }

    /// Sends a message to systemd's notification socket, if any; a failure is logged, never fatal.
    func notifyService(_ fields: [(String, String)]) {
        guard let serviceNotifier else { return }
        do { try serviceNotifier.send(fields) } catch {
            logger.warning("cannot notify systemd", metadata: ["socket": "\(serviceNotifier.address)", "error": "\(error)"])
        }
    }

    private func reloadGeneration() async -> ControlReply {
        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(etcDirectory: paths.etc)
        } catch {
            lastRejected = RejectedGeneration(at: clock.now(), errors: error.errors.map(\.description))
            lastReloadSuccessful = false
            metrics.reload("rejected")
            logger.error(
                "configuration rejected; the live generation stays",
                metadata: ["generation": "\(generation)", "errors": "\(error.description)"])
            return .error("configuration rejected; generation \(generation) stays live:\n\(error.description)")
        }
        let validAgain = !lastReloadSuccessful
        if lastRejected != nil, lastRejected?.validAgainAt == nil { lastRejected?.validAgainAt = clock.now() }
        lastReloadSuccessful = true
        lastReloadSuccessAt = clock.now()
        /// The rejection was logged as an error; its end gets a line at info level, naming the live generation.
        func logValidAgain() {
            guard validAgain else { return }
            logger.info("etc/ valid again", metadata: ["generation": "\(generation)", "etc": "\(paths.etc)"])
        }
        if configuration.sameValues(as: live) {
            logValidAgain()
            metrics.reload("unchanged")
            logger.debug("configuration unchanged", metadata: ["generation": "\(generation)"])
            return .ok("configuration unchanged; generation \(generation) stays live")
        }
        let removed: [String]
        do {
            // Everything that can fail comes first: the templates compile, then the registry's one transaction.
            _ = try NoticeTemplates(configuration.templates)
            removed = try await registry.configure(configuration)
            try await provisioner.configure(configuration)
        } catch {
            lastReloadSuccessful = false
            metrics.reload("rejected")
            logger.error("cannot apply configuration", metadata: ["error": "\(error)"])
            return .error("cannot apply configuration: \(error)")
        }
        await pool.configure(configuration)
        await notifier.configure(configuration, varDirectory: paths.varDirectory)
        await meetingEvents.configure(configuration)
        logWarnings(configuration, logger: logger)
        generation += 1
        appliedAt = clock.now()
        live = configuration
        if !removed.isEmpty { await provisioner.integrationsRemoved(removed) }
        metrics.reload("applied")
        logValidAgain()
        logger.info(
            "configuration applied",
            metadata: [
                "generation": "\(generation)",
                "integrations": "\(configuration.integrations.keys.sorted().joined(separator: ","))",
                "removed": "\(removed.joined(separator: ","))",
            ])
        await provisioner.retryWaiting()
        return .ok("generation \(generation) applied")
    }

    /// Applies a Zoom webhook delivery from the spool (SPEC §4: header lines, a blank line, the raw body).
    /// A meeting event (``ZoomMeetingEvent``), verified with the webhook secret of an integration of its account,
    /// updates the live meeting of the open room it names (``RoomProvisioner/applyMeetingEvent(_:via:)``).
    /// `app_deauthorized`, verified with the webhook secret of the integration whose `client_id` it names, it deletes the tokens it covers, marks the integration (or the host of that user)
    /// `needs_reauthorization`, makes the rooms of open incidents on it `unavailable`, and tells the admins.
    /// Applying the same delivery twice (after a crash) changes nothing more.
    /// - Parameters:
    ///   - event: the parsed delivery (SitroomConfig's spool parser).
    ///   - receivedAt: the spool file's modification time (seconds since 1970); the request timestamp must be
    ///     within 5 minutes of it.
    /// - Returns: what was done, for the log.
    /// - Throws: ``WebhookError`` (forged, stale, unknown app): the file is rejected.
    public func applyZoomWebhook(_ event: ZoomWebhookEvent, receivedAt: Double) async throws -> String {
        let file = ZoomWebhookFile(
            headers: Dictionary(event.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first }),
            body: event.body)
        if let meeting = event.meeting {
            // A meeting event names no app: any integration of its account (or without an account_id set) whose
            // webhook secret verifies it. Only meetings sitroom made change anything.
            let candidates = live.integrations.values.filter { $0.accountID == nil || $0.accountID == event.accountID }
                .sorted { $0.name < $1.name }
            _ = try verifiedIntegration(file, candidates: candidates, receivedAt: receivedAt)
            return await provisioner.applyMeetingEvent(meeting, via: "webhook")
        }
        guard let clientID = event.clientID else { throw WebhookError("payload.client_id: missing") }
        let candidates = live.integrations.values.filter { $0.clientID == clientID }.sorted { $0.name < $1.name }
        guard !candidates.isEmpty else {
            throw WebhookError("payload.client_id: no integration has client_id \(clientID)")
        }
        _ = try verifiedIntegration(file, candidates: candidates, receivedAt: receivedAt)
        return try await applyAppDeauthorized(AppDeauthorized(accountID: event.accountID, userID: event.userID, clientID: clientID))
    }

    /// Zoom's `app_deauthorized` (a verified webhook, or an event of an integration's WebSocket subscription): deletes
    /// the tokens it covers, marks the integration (or the host of that user) `needs_reauthorization`, makes the
    /// rooms of open incidents on it `unavailable`, and tells the admins. Applying it twice changes nothing more.
    /// - Returns: what was done, for the log.
    /// - Throws: store errors.
    public func applyAppDeauthorized(_ event: AppDeauthorized) async throws -> String {
        let affected = try await registry.deauthorize(event)
        var lines: [String] = []
        for (integration, host) in affected {
            let reason =
                "Zoom deauthorized \(integration)\(host.map { " for host \($0)" } ?? ""); ask your admin to re-integrate Zoom"
            let rooms = try await provisioner.markUnavailable(integration: integration, host: host, reason: reason)
            let advice =
                host.map { "the host's user must approve the app again: `sitroomctl integration authorize \(integration) \($0)`" }
                ?? "authorize the app again in the Zoom App Marketplace, then `sitroomctl integration reauthorize \(integration)`"
            await provisioner.notifyAdminsReauthorize(integration: integration, reason: reason, advice: advice)
            lines.append("\(integration)\(host.map { "/\($0)" } ?? ""): needs_reauthorization, \(rooms.count) room(s) unavailable")
        }
        return lines.isEmpty ? "app_deauthorized verified; no integration or host matched" : lines.joined(separator: "; ")
    }

    /// The first of `candidates` whose `webhook_secret_file` verifies `file`.
    /// - Throws: ``WebhookError`` naming each candidate's problem when none does.
    private func verifiedIntegration(
        _ file: ZoomWebhookFile, candidates: [IntegrationConfig], receivedAt: Double
    ) throws -> IntegrationConfig {
        var problems: [String] = []
        for integration in candidates {
            guard let secretFile = integration.webhookSecretFile else {
                problems.append("\(integration.name) has no webhook_secret_file")
                continue
            }
            do {
                let secret = try IntegrationRegistry.readSecret(secretFile, key: "webhook_secret_file")
                try file.verify(secret: secret, receivedAt: receivedAt)
                return integration
            } catch {
                problems.append("\(integration.name): \(error)")
            }
        }
        throw WebhookError(problems.isEmpty ? "no integration of this Zoom account" : problems.joined(separator: "; "))
    }

    /// What the metrics file shows of the daemon's state, without the store's counts (``Housekeeper`` adds them).
    public func gauges(spoolBacklog: Int, store counts: StoreCounts) async -> MetricsGauges {
        let integrations = await registry.snapshot().map { (name: $0.name, state: $0.record.state) }
        var gauges = MetricsGauges(
            startedAt: startedAt, integrations: integrations, pool: await pool.snapshot(), spoolBacklog: spoolBacklog,
            generation: generation, lastReloadSuccessful: lastReloadSuccessful, lastReloadSuccessAt: lastReloadSuccessAt,
            store: counts, now: clock.now())
        gauges.eventSubscriptions = await meetingEvents.snapshot().map { ($0.integration, $0.state == .connected) }
        return gauges
    }

    /// The live `store.keep_*` settings, for the purge.
    public func retention() -> RetentionSettings { live.daemon.retention }

    /// Counts the files waiting in the spool (the intake tells how).
    public func spoolBacklogCount() -> Int { spoolBacklog() }

    /// Answers when every actor's executor answers, for the systemd watchdog: a thread stuck in a commit or a
    /// call that never returns stops the pings, and systemd restarts the daemon.
    public func heartbeat() async {
        _ = await registry.snapshot().count
        _ = await pool.hasPool("")
        _ = await notifier.depth
        await provisioner.heartbeat()
    }

    /// Tells `status` how `etc/` is watched (``ConfigWatcher`` reports it).
    public func setConfigWatch(_ mode: ConfigWatchMode) { watch = mode }

    /// The live generation, the last rejected one and the watch mode.
    public func generationStatus() -> GenerationStatus {
        GenerationStatus(
            number: generation, appliedAt: appliedAt, configuration: live, lastRejected: lastRejected, watch: watch)
    }

    /// Runs one control command (SPEC §7): its words are parsed into an ``AdminCommand`` (bad usage is an error
    /// with the command's usage line, and changes nothing); a command that changes something is recorded in the
    /// audit log with its outcome, refusals included.
    /// - Parameter privileged: whether the caller may change things (the daemon's user or root); members of
    ///   `control.group` may only run read-only commands (``AdminCommand/isReadOnly``).
    public func execute(_ line: ControlCommand, uid: UInt32?, privileged: Bool = true) async -> ControlReply {
        let command: AdminCommand
        do { command = try AdminCommand.parse(line.words) } catch { return .error(error.description) }
        if !privileged && !command.isReadOnly {
            audit(command, uid: uid, outcome: "refused: read-only for control.group members")
            let open = AdminCommand.syntaxes.filter(\.readOnly).map(\.usage).joined(separator: ", ")
            return .error(
                "\(command.words.first ?? "") changes things: only sitroomd's user or root may run it "
                    + "(control.group members may run: \(open))")
        }
        let reply: ControlReply
        do {
            reply = try await run(command, json: line.json)
        } catch let error as ZoomError {
            // Zoom refused an `integration authorize` or `reauthorize`: say what to do (the table of Zoom answers).
            let words = line.words
            let integration = words.count > 2 && words[0] == "integration" ? words[2] : nil
            let decision = error.decision(
                now: clock.now(), integration: integration, host: words.count > 3 ? words[3] : nil)
            reply = .error("\(error)\nwhat to do: \(decision.advice)")
        } catch {
            reply = .error("\(error)")
        }
        if !command.isReadOnly {
            // The first line says what happened; a rejected reload's list of errors stays in the log and `status`.
            audit(command, uid: uid, outcome: reply.ok ? "ok" : "error: \(reply.text.prefix { $0 != "\n" })")
        }
        return reply
    }

    /// Carries out a parsed command. - Throws: what the actors throw (the reply is then an error).
    private func run(_ command: AdminCommand, json: Bool) async throws -> ControlReply {
        switch command {
        case .help:
            return .ok(AdminCommand.helpText)
        case .status:
            return try await status(json: json)
        case .reload:
            return await reload()
        case .rooms(let all):
            return try await rooms(all: all, json: json)
        case .roomShow(let incident):
            return try await roomShow(incident, json: json)
        case .roomRetry(let incident):
            return .ok(try await provisioner.retry(incident: incident))
        case .roomEnd(let incident):
            return .ok(try await provisioner.end(incident: incident))
        case .incidents(let all):
            return try await incidents(all: all, json: json)
        case .outbox(let filter):
            let states: Set<NoticeState> =
                switch filter {
                case .dead: [.dead]
                case .all: Set(NoticeState.allCases)
                case .pending: [.pending, .sending, .retrying]
                }
            return try await outbox(states: states, json: json)
        case .notifyResend(let incident, let person):
            let resent = try await notifier.resend(incident: incident, person: person)
            if resent.isEmpty {
                return .ok("nothing to resend for \(incident)\(person.map { " and \($0)" } ?? "")")
            }
            return .ok(
                "queued again:\n"
                    + Self.table(
                        ["NOTICE", "KIND", "CHANNEL", "TO"],
                        resent.map { [$0.id, $0.kind.rawValue, $0.channel.rawValue, $0.recipient] }
                    ).joined(separator: "\n"))
        case .audit(let count):
            return try audit(last: count, json: json)
        case .integrations:
            return try await integrationsList(json: json)
        case .integrationShow(let name):
            return try await integrationShow(name, json: json)
        case .integrationAuthorize(let name, let host):
            let url = try await registry.beginAuthorization(name, host: host)
            return .ok(
                "open this URL as the Zoom user of \(host) and approve:\n\(url)\n"
                    + "then: sitroomctl integration authorize \(name) \(host) --code -   (the code on standard input)")
        case .integrationAuthorizeCode(let name, let host, let code):
            let line = try await registry.completeAuthorization(name, host: host, code: code)
            await provisioner.retryWaiting()
            return .ok(line)
        case .integrationReauthorize(let name):
            let text = try await registry.reauthorize(name)
            await provisioner.retryWaiting()
            return .ok(text)
        case .backup(let path):
            return await backup(to: path)
        case .pool(let name):
            return try await poolShow(name, json: json)
        case .poolDrain(let name, let host), .poolResume(let name, let host):
            let drain = command == .poolDrain(name: name, host: host)
            let changed = try await pool.setDrained(HostKey(integration: name, host: host), drain)
            if !drain && changed { await provisioner.retryWaiting() }
            switch (drain, changed) {
            case (true, true): return .ok("\(host) of \(name) drained: it takes no new rooms and keeps its open ones")
            case (true, false): return .ok("\(host) of \(name) is already drained")
            case (false, true): return .ok("\(host) of \(name) resumed: it takes rooms again")
            case (false, false): return .ok("\(host) of \(name) is not drained: nothing to resume")
            }
        }
    }

    /// The outbox's notices in `states`, oldest first (`outbox [pending|dead|all]`).
    private func outbox(states: Set<NoticeState>, json: Bool) async throws -> ControlReply {
        let notices = try await notifier.outbox(states: states)
        if json {
            return .ok(
                try Self.json(
                    notices.map {
                        [
                            "id": $0.id, "incident": $0.incidentID, "room_id": $0.roomID, "person": $0.personID,
                            "kind": $0.kind.rawValue, "channel": $0.channel.rawValue, "recipient": $0.recipient,
                            "state": $0.state.rawValue, "attempts": $0.attempts,
                            "created_at": rfc3339UTCMillis($0.createdAt), "next_attempt_at": rfc3339UTCMillis($0.nextAttemptAt),
                            "detail": $0.detail ?? NSNull(),
                        ] as [String: Any]
                    }))
        }
        return .ok(
            Self.table(
                ["NOTICE", "INCIDENT", "KIND", "CHANNEL", "TO", "STATE", "ATTEMPTS", "DETAIL"],
                notices.map {
                    [
                        $0.id, $0.incidentID, $0.kind.rawValue, $0.channel.rawValue, $0.recipient, $0.state.rawValue,
                        "\($0.attempts)", $0.detail ?? "",
                    ]
                }
            ).joined(separator: "\n"))
    }

    /// The last `count` audit entries, oldest first.
    private func audit(last count: Int, json: Bool) throws -> ControlReply {
        let store = self.store
        var entries: [AuditEntry] = []
        try store.read { txn in
            var all: [AuditEntry] = []
            try txn.forEach(store.tables.audit, prefix: "") { _, value in
                all.append(try Store.decode(AuditEntry.self, value))
                if all.count > count { all.removeFirst(all.count - count) }
                return true
            }
            entries = all
        }
        if json {
            return .ok(
                try Self.json(
                    entries.map {
                        [
                            "time": rfc3339UTCMillis($0.time), "uid": $0.uid.map { Int($0) as Any } ?? NSNull(),
                            "command": $0.command, "outcome": $0.outcome,
                        ] as [String: Any]
                    }))
        }
        return .ok(
            Self.table(
                ["TIME", "UID", "COMMAND", "OUTCOME"],
                entries.map { [rfc3339UTCMillis($0.time), $0.uid.map(String.init) ?? "-", $0.command, $0.outcome] }
            ).joined(separator: "\n"))
    }

    /// `backup PATH`: copies the LMDB environment into `path` while the daemon runs (a consistent snapshot,
    /// compacted), then syncs it. `path` must be absolute and either not exist (it is made, mode 0700, in an
    /// existing directory) or be an empty directory. The copy runs on a thread of its own.
    func backup(to path: String) async -> ControlReply {
        guard path.hasPrefix("/") else { return .error("backup: the path must be absolute: \(path)") }
        let store = self.store
        let metrics = self.metrics
        let started = clock.now()
        let outcome: Result<Int, any Error> = await withCheckedContinuation { continuation in
            Self.backupQueue.async {
                continuation.resume(
                    returning: Result {
                        try Self.prepareBackupDirectory(path)
                        return try store.backup(to: path)
                    })
            }
        }
        switch outcome {
        case .success(let bytes):
            metrics.increment("sitroom_backups_total", [("outcome", "ok")])
            let seconds = String(format: "%.1f", clock.now() - started)
            logger.info("backup written", metadata: ["path": "\(path)", "bytes": "\(bytes)", "seconds": "\(seconds)"])
            return .ok("backup written to \(path)/data.mdb (\(bytes) bytes, \(seconds)s); open it with mdb_stat \(path)")
        case .failure(let error):
            metrics.increment("sitroom_backups_total", [("outcome", "error")])
            logger.error("backup failed", metadata: ["path": "\(path)", "error": "\(error)"])
            return .error("backup to \(path) failed: \(error)")
        }
    }

    /// Makes the backup directory, or accepts an existing empty one; refuses anything else.
    private static func prepareBackupDirectory(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SitroomError(.badCommand, "\(path) exists and is not a directory; name a new one")
            }
            let entries = try FileManager.default.contentsOfDirectory(atPath: path)
            guard entries.isEmpty else {
                throw SitroomError(.badCommand, "\(path) is not empty; name a new or empty directory")
            }
            return
        }
        guard mkdir(path, 0o700) == 0 else {
            throw SitroomError(.cannotCreateState, "\(path): cannot make the directory: \(String(cString: strerror(errno)))")
        }
    }

    private static let backupQueue = DispatchQueue(label: "sitroom.backup")

    private func audit(_ command: AdminCommand, uid: UInt32?, outcome: String) {
        let entry = AuditEntry(time: clock.now(), uid: uid, command: command.auditText, outcome: outcome)
        let store = self.store
        do { try store.write { txn in try store.appendAudit(entry, txn) } } catch {
            logger.error("cannot append to the audit log", metadata: ["error": "\(error)"])
        }
    }

    /// The state at a glance (`status`), as one value.
    public func statusReport() async throws -> StatusReport {
        let integrations = await registry.snapshot()
        let readers = store.environment.readerTable
        // The counter has the slots freed at the start too (DaemonMain adds them).
        let staleReadersCleared = Int(
            metrics.snapshot().counters["sitroom_lmdb_stale_readers_cleared_total"]?.values.reduce(0, +) ?? 0)
        var byState: [String: Int] = [:]
        for (state, count) in try await provisioner.roomCounts() { byState[state.rawValue] = count }
        let open = RoomState.allCases.filter(\.isOpen).map { byState[$0.rawValue] ?? 0 }.reduce(0, +)
        var report = StatusReport(
            version: sitroomVersion, uptimeSeconds: Int(clock.now() - startedAt),
            generation: StatusReport.Generation(
                number: generation, appliedAt: rfc3339UTC(appliedAt),
                lastRejected: lastRejected.map {
                    StatusReport.Rejected(at: rfc3339UTC($0.at), errors: $0.errors, validAgainAt: $0.validAgainAt.map(rfc3339UTC))
                },
                watch: StatusReport.Watch(watch)),
            integrations: integrations.map {
                StatusReport.Integration(
                    name: $0.name, kind: $0.kind, state: $0.record.state.rawValue, reason: $0.record.reason,
                    since: rfc3339UTC($0.record.since),
                    advice: $0.record.nextStep(integration: $0.name, kind: $0.kind),
                    missingScopes: $0.record.missingScopes ?? [])
            },
            pool: await pool.snapshot(),
            rooms: StatusReport.Rooms(open: open, byState: byState),
            outbox: StatusReport.Outbox(pending: await notifier.depth),
            spool: StatusReport.Spool(backlog: spoolBacklog(), rejected: spoolRejections(clock.now())),
            store: StatusReport.StoreState(
                readersInUse: readers.used, readerSlots: readers.size,
                staleReadersCleared: staleReadersCleared))
        report.eventSubscriptions = await meetingEvents.snapshot().map {
            StatusReport.EventSubscription(integration: $0.integration, state: $0.state.rawValue)
        }
        return report
    }

    private func status(json: Bool) async throws -> ControlReply {
        let report = try await statusReport()
        let intake = IntakeState.report(paths: paths)
        if json { return .ok(try Self.json(StatusJSON(report: report, intake: intake))) }
        var lines = [report.text]
        if let intake { lines.append(contentsOf: intake.lines) }
        let steps = report.nextSteps
        if !steps.isEmpty {
            lines.append("")
            lines.append("what to do:")
            lines.append(contentsOf: steps.map { "  \($0)" })
        }
        return .ok(lines.joined(separator: "\n"))
    }

    private func integrationsList(json: Bool) async throws -> ControlReply {
        let all = await registry.snapshot()
        if json { return .ok(try Self.json(all.map(Self.integrationObject))) }
        return .ok(
            Self.table(
                ["INTEGRATION", "KIND", "STATE", "SINCE", "REASON"],
                all.map { [$0.name, $0.kind, $0.record.state.rawValue, rfc3339UTC($0.record.since), $0.record.reason ?? ""] }
            ).joined(separator: "\n"))
    }

    private func integrationShow(_ name: String, json: Bool) async throws -> ControlReply {
        guard let entry = await registry.snapshot().first(where: { $0.name == name }) else {
            return .error("no integration named \(name)")
        }
        let hosts = await pool.snapshot(integration: name)
        let authorizations = try await registry.hostAuthorizations(name)
        let perHost = entry.kind == "zoom-oauth"
        func authorization(_ host: String) -> String {
            guard perHost else { return "by the app (server-to-server)" }
            guard let record = authorizations[host] else { return "pending_authorization" }
            return record.state.rawValue + (record.reason.map { ": \($0)" } ?? "")
        }
        if json {
            var object = Self.integrationObject(entry)
            object["hosts"] = hosts.map {
                [
                    "host": $0.host, "user": $0.user, "state": $0.state, "authorization": authorization($0.host),
                    "open_rooms": $0.openRooms, "creates_today": $0.createsToday,
                ] as [String: Any]
            }
            return .ok(try Self.json(object))
        }
        var lines = [
            "integration  \(name)", "kind         \(entry.kind)", "state        \(entry.record.state.rawValue)",
            "since        \(rfc3339UTC(entry.record.since))",
        ]
        if let reason = entry.record.reason { lines.append("reason       \(reason)") }
        if let scopes = entry.record.missingScopes, entry.record.state == .missingScope {
            lines.append("missing      \(scopes.joined(separator: ", "))")
        }
        if let step = entry.record.nextStep(integration: name, kind: entry.kind) { lines.append("what to do   \(step)") }
        for (host, record) in authorizations.sorted(by: { $0.key < $1.key }) where perHost && record.state != .active {
            lines.append("what to do   host \(host): `sitroomctl integration authorize \(name) \(host)`")
        }
        lines.append("")
        lines.append(
            contentsOf: Self.table(
                ["HOST", "USER", "AUTHORIZATION", "OPEN", "CREATES TODAY", "STATE"],
                hosts.map {
                    [
                        $0.host, $0.user, authorization($0.host), "\($0.openRooms)/\($0.concurrentMeetings)",
                        "\($0.createsToday)/\($0.dailyCreateLimit)", $0.state,
                    ]
                }))
        return .ok(lines.joined(separator: "\n"))
    }

    private func poolShow(_ integration: String, json: Bool) async throws -> ControlReply {
        guard await pool.hasPool(integration) else { return .error("no integration named \(integration)") }
        let hosts = await pool.snapshot(integration: integration)
        if json { return .ok(try Self.json(try hosts.map { try JSONSerialization.jsonObject(with: JSONEncoder().encode($0)) })) }
        return .ok(
            Self.table(
                ["HOST", "USER", "OPEN", "CREATES TODAY", "STATE", "WHY"],
                hosts.map {
                    [
                        $0.host, $0.user, "\($0.openRooms)/\($0.concurrentMeetings)", "\($0.createsToday)/\($0.dailyCreateLimit)",
                        $0.state, $0.detail,
                    ]
                }
            ).joined(separator: "\n"))
    }

    /// `rooms [open|all]`: a table with the room's age (since it was made) and reason, `-` in empty cells; an
    /// empty listing says so.
    private func rooms(all: Bool, json: Bool) async throws -> ControlReply {
        let rooms = try await provisioner.rooms(openOnly: !all)
        let people = try await provisioner.participants(of: rooms.filter { $0.live != nil }.map(\.incidentID))
        func presence(_ room: Room) -> LivePresence? {
            room.live.map { LivePresence($0, participants: people[room.incidentID] ?? []) }
        }
        if json {
            return .ok(
                try Self.json(
                    rooms.map { room in
                        var object = Self.roomObject(room)
                        object["present"] = presence(room)?.present ?? NSNull()
                        return object
                    }))
        }
        if rooms.isEmpty { return .ok(all ? "no rooms" : "no open rooms (`rooms all` lists ended ones too)") }
        let now = clock.now()
        return .ok(
            Self.table(
                ["INCIDENT", "ROOM", "STATE", "AGE", "PRESENT", "INTEGRATION", "HOST", "JOIN URL", "REASON"],
                rooms.map {
                    [
                        $0.incidentID, $0.id, $0.state.rawValue, TextTable.age(now - $0.createdAt),
                        presence($0)?.column ?? "", $0.integration ?? "", $0.hostID ?? "", $0.joinURL ?? "", $0.reason ?? "",
                    ]
                }
            ).joined(separator: "\n"))
    }

    /// `incidents [open|all]`: incidents with their room's state, or `-` for those without a room (an `opened`
    /// PagerDuty incident, say); open ones are those not resolved or closed.
    private func incidents(all: Bool, json: Bool) async throws -> ControlReply {
        let listed = try await provisioner.incidents(openOnly: !all)
        if json {
            return .ok(
                try Self.json(
                    listed.map { record, room in
                        IncidentListing(
                            incident: record.info.id, title: record.info.title, severity: record.info.severity,
                            team: record.info.team, stage: record.stage.rawValue,
                            lastEventAt: rfc3339UTCMillis(record.lastOccurredAt), participants: record.participants.count,
                            roomID: room?.id, roomState: room?.state.rawValue)
                    }))
        }
        if listed.isEmpty { return .ok(all ? "no incidents" : "no open incidents (`incidents all` lists resolved ones too)") }
        let now = clock.now()
        return .ok(
            Self.table(
                ["INCIDENT", "STAGE", "SEVERITY", "ROOM", "LAST EVENT", "PEOPLE", "TITLE"],
                listed.map { record, room in
                    [
                        record.info.id, record.stage.rawValue, record.info.severity ?? "",
                        room.map { "\($0.state.rawValue) (\($0.id))" } ?? "", TextTable.age(now - record.lastOccurredAt) + " ago",
                        "\(record.participants.count)", record.info.title,
                    ]
                }
            ).joined(separator: "\n"))
    }

    private func roomShow(_ incident: String, json: Bool) async throws -> ControlReply {
        guard let (record, room) = try await provisioner.show(incident: incident) else {
            return .error("no incident \(incident)")
        }
        guard let room else { return .error("incident \(incident) has no room (stage \(record.stage.rawValue))") }
        if json {
            var object = Self.roomObject(room)
            object["incident_title"] = record.info.title
            object["stage"] = record.stage.rawValue
            object["participants"] = record.participants.count
            object["unreachable"] = record.unreachable.map { ["name": $0.name, "reason": $0.reason] }
            if let live = room.live {
                let presence = LivePresence(live, participants: record.participants, readyAt: room.readyAt, roomOpen: room.state.isOpen)
                object["meeting"] = presence.meetingObject
                object["present"] = presence.present
                object["attendance"] = presence.attendanceObjects
                object["others_present"] = presence.others.map { ["name": $0.name, "email": $0.email ?? NSNull()] as [String: Any] }
            } else {
                object["meeting"] = NSNull()
                object["present"] = NSNull()
            }
            return .ok(try Self.json(object))
        }
        let live = room.live.map { LivePresence($0, participants: record.participants, readyAt: room.readyAt, roomOpen: room.state.isOpen) }
        let rows: [(String, String)] = [
            ("incident", "\(record.info.id): \(record.info.title)"), ("stage", record.stage.rawValue), ("room", room.id),
            ("state", room.state.rawValue), ("reason", room.reason ?? ""),
            ("what to do", Self.nextStep(room) ?? "nothing"), ("note", room.note ?? ""), ("integration", room.integration ?? ""),
            ("host", room.hostUser.map { "\(room.hostID ?? "") (\($0))" } ?? ""),
            ("meeting id", room.meetingID.map(String.init) ?? ""), ("join url", room.joinURL ?? ""),
            ("passcode", room.passcode ?? ""), ("participants", "\(record.participants.count)"),
        ] + record.unreachable.enumerated().map { index, person in
            (index == 0 ? "not told" : "", "\(person.name): \(person.reason)")
        } + (live?.rows ?? [("meeting", "no event from Zoom yet")])
        return .ok(rows.map { "\($0.0.padding(toLength: 13, withPad: " ", startingAt: 0))\($0.1.isEmpty ? "-" : $0.1)" }.joined(separator: "\n"))
    }

    /// What people should do about a room: its own advice (from the table of Zoom answers), else what its state
    /// calls for; `nil` when nothing.
    static func nextStep(_ room: Room) -> String? {
        if let advice = room.advice { return advice }
        switch room.state {
        case .provisioning: return "wait: the meeting is being created"
        case .waiting: return "none: it is retried by itself when a host can take it (the reason says what it waits for)"
        case .ready, .ended: return nil
        case .failed: return "fix what the reason names, then `sitroomctl room retry \(room.incidentID)`"
        case .unavailable: return "re-integrate Zoom, then `sitroomctl room retry \(room.incidentID)`"
        }
    }

    /// An integration as `status --json`, `integrations --json` and `integration show --json` give it.
    static func integrationObject(_ entry: (name: String, kind: String, record: IntegrationRecord)) -> [String: Any] {
        [
            "name": entry.name, "kind": entry.kind, "state": entry.record.state.rawValue,
            "reason": entry.record.reason ?? NSNull(), "since": rfc3339UTC(entry.record.since),
            "advice": entry.record.nextStep(integration: entry.name, kind: entry.kind) ?? NSNull(),
            "missing_scopes": entry.record.missingScopes ?? [],
        ]
    }

    /// The JSON of a room, as `room show --json` and `rooms --json` give it (documented in docs/control.md).
    static func roomObject(_ room: Room) -> [String: Any] {
        [
            "incident": room.incidentID, "room_id": room.id, "state": room.state.rawValue, "reason": room.reason as Any,
            "advice": nextStep(room) as Any, "note": room.note as Any,
            "join_url": room.joinURL as Any, "meeting_id": room.meetingID as Any, "passcode": room.passcode as Any,
            "host": room.hostUser as Any, "host_id": room.hostID as Any, "integration": room.integration as Any,
            "created_at": rfc3339UTCMillis(room.createdAt), "updated_at": rfc3339UTCMillis(room.updatedAt),
        ].mapValues { value in
            if case Optional<Any>.none = value { return NSNull() }
            return value
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func json(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]), as: UTF8.self)
    }

    /// Left-aligned columns separated by two spaces, `-` in empty cells (``TextTable``).
    static func table(_ header: [String], _ rows: [[String]]) -> [String] { TextTable.render(header, rows) }
}

/// `status --json`: the report's fields, and sitroom-intake's part as its own object (`null` without an intake).
struct StatusJSON: Encodable {
    var report: StatusReport
    var intake: IntakeState.Report?

    private enum CodingKeys: String, CodingKey { case intake }

    func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let intake { try container.encode(intake, forKey: .intake) } else { try container.encodeNil(forKey: .intake) }
    }
}

/// A generation that was read and refused.
public struct RejectedGeneration: Sendable, Hashable {
    /// Seconds since 1970 when it was refused.
    public var at: Double
    /// Every error, `file:line:col: message`, in file order.
    public var errors: [String]
    /// Seconds since 1970 of the first reload after it that found `etc/` valid (applied or unchanged), if any.
    public var validAgainAt: Double? = nil
}

/// The live configuration generation, as `status` shows it.
public struct GenerationStatus: Sendable {
    /// Starts at 1 (the configuration read at start) and grows by one per applied change.
    public var number: Int
    /// Seconds since 1970 when it was applied.
    public var appliedAt: Double
    /// The live configuration.
    public var configuration: Configuration
    /// The last generation refused since start, if any (it stays shown after a later one is applied).
    public var lastRejected: RejectedGeneration?
    /// How `etc/` is watched.
    public var watch: ConfigWatchMode
}

extension Configuration {
    /// Whether two generations decode to the same values (so reloading the second changes nothing).
    func sameValues(as other: Configuration) -> Bool {
        etcDirectory == other.etcDirectory && daemon == other.daemon && integrations == other.integrations
            && roster == other.roster && templates == other.templates
    }
}

/// Hands the spool's Zoom webhook files to ``DaemonCore/applyZoomWebhook(_:receivedAt:)``.
public struct ZoomWebhookApplier: ZoomWebhookSink {
    let core: DaemonCore

    public init(core: DaemonCore) { self.core = core }

    public func deliver(_ event: ZoomWebhookEvent, fileModifiedAt: Double) async -> ZoomWebhookDisposition {
        do {
            _ = try await core.applyZoomWebhook(event, receivedAt: fileModifiedAt)
            return .applied
        } catch {
            return .rejected(reason: "Zoom webhook refused: \(error)")
        }
    }
}
