import Curl
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
        paths: DaemonPaths, configuration: Configuration, store: Store, http: HTTPClient, clock: any WallClock, logger: Logger,
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
        startedAt = clock.now()
        appliedAt = startedAt
        lastReloadSuccessAt = startedAt
        live = configuration
        // Integrations whose files were removed while sitroomd was not running are removed now.
        let removed = try await registry.configure(configuration)
        await pool.configure(configuration)
        await notifier.configure(configuration, varDirectory: paths.varDirectory)
        try await pool.restore()
        try await notifier.restore()
        if !removed.isEmpty { await provisioner.integrationsRemoved(removed) }
        try await provisioner.recover()
    }

    /// Tells `status` how to count the spool backlog.
    public func setSpoolBacklog(_ count: @escaping @Sendable () -> Int) { spoolBacklog = count }

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
            lastRejected = RejectedGeneration(at: clock.now(), errors: error.description)
            lastReloadSuccessful = false
            metrics.reload("rejected")
            logger.error(
                "configuration rejected; the live generation stays",
                metadata: ["generation": "\(generation)", "errors": "\(error.description)"])
            return .error("configuration rejected; generation \(generation) stays live:\n\(error.description)")
        }
        if lastRejected != nil, lastRejected?.validAgainAt == nil { lastRejected?.validAgainAt = clock.now() }
        lastReloadSuccessful = true
        lastReloadSuccessAt = clock.now()
        if configuration.sameValues(as: live) {
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
        generation += 1
        appliedAt = clock.now()
        live = configuration
        if !removed.isEmpty { await provisioner.integrationsRemoved(removed) }
        metrics.reload("applied")
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
    /// Only `app_deauthorized` is acted on: verified with the webhook secret of the integration whose
    /// `client_id` it names, it deletes the tokens it covers, marks the integration (or the host of that user)
    /// `needs_reauthorization`, makes the rooms of open incidents on it `unavailable`, and tells the admins.
    /// Applying the same delivery twice (after a crash) changes nothing more.
    /// - Parameters:
    ///   - event: the parsed delivery (SitroomConfig's spool parser).
    ///   - receivedAt: the spool file's modification time (seconds since 1970); the request timestamp must be
    ///     within 5 minutes of it.
    /// - Returns: what was done, for the log.
    /// - Throws: ``WebhookError`` (forged, stale, unknown app): the file is rejected.
    public func applyZoomWebhook(_ event: ZoomWebhookEvent, receivedAt: Double) async throws -> String {
        guard let clientID = event.clientID else { throw WebhookError("payload.client_id: missing") }
        let file = ZoomWebhookFile(
            headers: Dictionary(event.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first }),
            body: event.body)
        let candidates = live.integrations.values.filter { $0.clientID == clientID }.sorted { $0.name < $1.name }
        guard !candidates.isEmpty else {
            throw WebhookError("payload.client_id: no integration has client_id \(clientID)")
        }
        var verified = false
        var problems: [String] = []
        for integration in candidates {
            guard let secretFile = integration.webhookSecretFile else {
                problems.append("\(integration.name) has no webhook_secret_file")
                continue
            }
            do {
                let secret = try IntegrationRegistry.readSecret(secretFile, key: "webhook_secret_file")
                try file.verify(secret: secret, receivedAt: receivedAt)
                verified = true
                break
            } catch {
                problems.append("\(integration.name): \(error)")
            }
        }
        guard verified else { throw WebhookError(problems.joined(separator: "; ")) }
        let affected = try await registry.deauthorize(
            AppDeauthorized(accountID: event.accountID, userID: event.userID, clientID: clientID))
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

    /// What the metrics file shows of the daemon's state, without the store's counts (``Housekeeper`` adds them).
    public func gauges(spoolBacklog: Int, store counts: StoreCounts) async -> MetricsGauges {
        let integrations = await registry.snapshot().map { (name: $0.name, state: $0.record.state) }
        return MetricsGauges(
            startedAt: startedAt, integrations: integrations, pool: await pool.snapshot(), spoolBacklog: spoolBacklog,
            generation: generation, lastReloadSuccessful: lastReloadSuccessful, lastReloadSuccessAt: lastReloadSuccessAt,
            store: counts, now: clock.now())
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

    /// Runs one control command (SPEC §7).
    /// - Parameter privileged: whether the caller may change things (the daemon's user or root); members of
    ///   `control.group` may only run read-only commands (``isReadOnly(_:)``).
    public func execute(_ command: ControlCommand, uid: UInt32?, privileged: Bool = true) async -> ControlReply {
        if !privileged && !Self.isReadOnly(command.words) {
            audit(command, uid: uid, outcome: "refused: read-only for control.group members")
            return .error(
                "\(command.words.first ?? "") changes things: only sitroomd's user or root may run it "
                    + "(control.group members may run: status, rooms, room show, pool NAME, integrations, "
                    + "integration show, outbox, audit, help)")
        }
        do {
            switch command.words {
            case ["help"]:
                return .ok(Self.help)
            case ["status"]:
                return try await status(json: command.json)
            case ["reload"]:
                let reply = await reload()
                audit(command, uid: uid, outcome: reply.ok ? "ok" : "error")
                return reply
            case ["rooms"], ["rooms", "open"], ["rooms", "all"]:
                return try await rooms(all: command.words.last == "all", json: command.json)
            case let words where words.count == 3 && words[0] == "room" && words[1] == "show":
                return try await roomShow(words[2], json: command.json)
            case let words where words.count == 3 && words[0] == "room" && (words[1] == "retry" || words[1] == "end"):
                do {
                    let text =
                        words[1] == "retry"
                        ? try await provisioner.retry(incident: words[2]) : try await provisioner.end(incident: words[2])
                    audit(command, uid: uid, outcome: "ok")
                    return .ok(text)
                } catch {
                    audit(command, uid: uid, outcome: "error: \(error)")
                    throw error
                }
            case ["outbox"], ["outbox", "pending"], ["outbox", "dead"], ["outbox", "all"]:
                let filter = command.words.count == 2 ? command.words[1] : "pending"
                let states: Set<NoticeState> =
                    switch filter {
                    case "dead": [.dead]
                    case "all": Set(NoticeState.allCases)
                    default: [.pending, .sending, .retrying]
                    }
                return try await outbox(states: states, json: command.json)
            case let words where (words.count == 3 || words.count == 4) && words[0] == "notify" && words[1] == "resend":
                do {
                    let resent = try await notifier.resend(incident: words[2], person: words.count == 4 ? words[3] : nil)
                    audit(command, uid: uid, outcome: "ok: \(resent.count) notice(s)")
                    if resent.isEmpty {
                        return .ok("nothing to resend for \(words[2])\(words.count == 4 ? " and \(words[3])" : "")")
                    }
                    return .ok(
                        "queued again:\n"
                            + Self.table(
                                ["NOTICE", "KIND", "CHANNEL", "TO"],
                                resent.map { [$0.id, $0.kind.rawValue, $0.channel.rawValue, $0.recipient] }
                            ).joined(separator: "\n"))
                } catch {
                    audit(command, uid: uid, outcome: "error: \(error)")
                    throw error
                }
            case ["audit"]:
                return try audit(last: 20, json: command.json)
            case let words where words.count == 2 && words[0] == "audit":
                guard let count = Int(words[1]), count > 0, count <= 10_000 else {
                    return .error("audit N: N must be a whole number from 1 to 10000, not \(words[1])")
                }
                return try audit(last: count, json: command.json)
            case ["integrations"]:
                return try await integrationsList(json: command.json)
            case let words where words.count == 3 && words[0] == "integration" && words[1] == "show":
                return try await integrationShow(words[2], json: command.json)
            case let words where words.count == 4 && words[0] == "integration" && words[1] == "authorize":
                let url = try await registry.beginAuthorization(words[2], host: words[3])
                audit(command, uid: uid, outcome: "ok")
                return .ok(
                    "open this URL as the Zoom user of \(words[3]) and approve:\n\(url)\n"
                        + "then: sitroomctl integration authorize \(words[2]) \(words[3]) --code -   (the code on standard input)")
            case let words where words.count == 5 && words[0] == "integration" && words[1] == "authorize" && words[4].hasPrefix("code="):
                do {
                    let line = try await registry.completeAuthorization(
                        words[2], host: words[3], code: String(words[4].dropFirst("code=".count)))
                    audit(command, uid: uid, outcome: "ok")
                    await provisioner.retryWaiting()
                    return .ok(line)
                } catch {
                    audit(command, uid: uid, outcome: "error: \(error)")
                    throw error
                }
            case let words where words.count == 3 && words[0] == "integration" && words[1] == "reauthorize":
                do {
                    let text = try await registry.reauthorize(words[2])
                    audit(command, uid: uid, outcome: "ok")
                    await provisioner.retryWaiting()
                    return .ok(text)
                } catch {
                    audit(command, uid: uid, outcome: "error: \(error)")
                    throw error
                }
            case let words where words.count == 2 && words[0] == "backup":
                let reply = await backup(to: words[1])
                audit(command, uid: uid, outcome: reply.ok ? "ok" : "error: \(reply.text)")
                return reply
            case let words where words.count == 2 && words[0] == "pool":
                return try await poolShow(words[1], json: command.json)
            case let words where words.count == 4 && words[0] == "pool" && (words[1] == "drain" || words[1] == "resume"):
                let key = HostKey(integration: words[2], host: words[3])
                do {
                    try await pool.setDrained(key, words[1] == "drain")
                } catch {
                    audit(command, uid: uid, outcome: "error: \(error)")
                    throw error
                }
                audit(command, uid: uid, outcome: "ok")
                if words[1] == "resume" { await provisioner.retryWaiting() }
                return .ok("\(key.host) of \(key.integration) \(words[1] == "drain" ? "drained: it takes no new rooms and keeps its open ones" : "resumed")")
            default:
                return .error("unknown command: \(Self.redacted(command.words)) (try `help`)")
            }
        } catch let error as ZoomError {
            // Zoom refused an `integration authorize` or `reauthorize`: say what to do (the table of Zoom answers).
            let words = command.words
            let integration = words.count > 2 && words[0] == "integration" ? words[2] : nil
            let decision = error.decision(
                now: clock.now(), integration: integration, host: words.count > 3 ? words[3] : nil)
            return .error("\(error)\nwhat to do: \(decision.advice)")
        } catch {
            return .error("\(error)")
        }
    }

    /// Commands that change nothing, open to `control.group` members.
    static func isReadOnly(_ words: [String]) -> Bool {
        switch words.first {
        case "help", "status", "rooms", "integrations", "outbox", "audit": return true
        case "room": return words.count > 1 && words[1] == "show"
        case "pool": return words.count == 2
        case "integration": return words.count > 1 && words[1] == "show"
        default: return false
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

    /// The command as the audit log keeps it: authorization codes and other `key=value` secrets redacted.
    static func redacted(_ words: [String]) -> String {
        words.map { word in
            for key in ["code=", "token=", "secret=", "password="] where word.hasPrefix(key) { return key + "REDACTED" }
            return word
        }.joined(separator: " ")
    }

    static let help = """
        commands:
          status                 generation, integrations, pool usage, rooms, outbox, spool, uptime
          reload                 read etc/ again; applied only if all of it is valid
          rooms [open|all]       rooms, open ones by default
          room show INCIDENT     one incident's room (add --json for JSON)
          integrations           integrations and their states
          integration show NAME  one integration: kind, state, hosts and their authorization
          integration authorize NAME HOST
                                 (zoom-oauth) prints the URL that authorizes HOST; then pass the code with
                                 `sitroomctl integration authorize NAME HOST --code -` on standard input
          integration reauthorize NAME
                                 zoom-s2s: get a token again now; zoom-oauth: authorize every host again
          room retry INCIDENT    try the room of a failed, unavailable or waiting incident again
          room end INCIDENT      end the incident's meeting and room now (as if it were resolved)
          outbox [pending|dead|all]
                                 notices not yet delivered (default), parked dead, or all
          notify resend INCIDENT [PERSON]
                                 queue an incident's dead notices again (with PERSON: that person's, sent ones too)
          audit [N]              the last N (20) audited commands: time, uid, command, outcome
          pool NAME              the hosts of an integration: open rooms, creates today, state and why
          pool drain NAME HOST   the host takes no new rooms (keeps its open ones)
          pool resume NAME HOST  the host takes rooms again
          backup /ABS/PATH       a consistent, compacted copy of the store into a new (or empty) directory
          help                   this text
        """

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

    private func audit(_ command: ControlCommand, uid: UInt32?, outcome: String) {
        let entry = AuditEntry(time: clock.now(), uid: uid, command: Self.redacted(command.words), outcome: outcome)
        let store = self.store
        do { try store.write { txn in try store.appendAudit(entry, txn) } } catch {
            logger.error("cannot append to the audit log", metadata: ["error": "\(error)"])
        }
    }

    private func status(json: Bool) async throws -> ControlReply {
        let integrations = await registry.snapshot()
        let hosts = await pool.snapshot()
        let counts = try await provisioner.roomCounts()
        let depth = await notifier.depth
        let backlog = spoolBacklog()
        let uptime = Int(clock.now() - startedAt)
        var byState: [String: Int] = [:]
        for (state, count) in counts { byState[state.rawValue] = count }
        let open = counts.filter { $0.key.isOpen }.values.reduce(0, +)
        if json {
            let object: [String: Any] = [
                "version": sitroomVersion, "uptime_seconds": uptime,
                "generation": [
                    "number": generation, "applied_at": rfc3339UTC(appliedAt),
                    "last_rejected": lastRejected.map {
                        [
                            "at": rfc3339UTC($0.at), "errors": $0.errors,
                            "valid_again_at": $0.validAgainAt.map(rfc3339UTC) as Any? ?? NSNull(),
                        ] as Any
                    } ?? NSNull(),
                    "watch": Self.watchObject(watch),
                ],
                "integrations": integrations.map(Self.integrationObject),
                "pool": try hosts.map { try JSONSerialization.jsonObject(with: JSONEncoder().encode($0)) },
                "rooms": ["open": open, "by_state": byState],
                "outbox": ["pending": depth], "spool": ["backlog": backlog],
                "intake": IntakeState.report(paths: paths)?.json ?? NSNull(),
            ]
            return .ok(try Self.json(object))
        }
        var lines = [
            "sitroomd \(sitroomVersion), up \(uptime)s, config generation \(generation) applied \(rfc3339UTC(appliedAt))",
            "config watch: \(watch.summary)",
        ]
        if let lastRejected {
            let since = lastRejected.validAgainAt.map { "; etc/ is valid again since \(rfc3339UTC($0))" } ?? ""
            lines.append("last rejected config (\(rfc3339UTC(lastRejected.at))\(since)):")
            lines.append(contentsOf: lastRejected.errors.split(separator: "\n").map { "  \($0)" })
        }
        lines.append("")
        lines.append(
            contentsOf: Self.table(
                ["INTEGRATION", "KIND", "STATE", "REASON"],
                integrations.map { [$0.name, $0.kind, $0.record.state.rawValue, $0.record.reason ?? ""] }))
        lines.append("")
        lines.append(
            contentsOf: Self.table(
                ["INTEGRATION", "HOST", "USER", "OPEN", "CREATES TODAY", "STATE"],
                hosts.map {
                    [
                        $0.integration, $0.host, $0.user, "\($0.openRooms)/\($0.concurrentMeetings)",
                        "\($0.createsToday)/\($0.dailyCreateLimit)", $0.state,
                    ]
                }))
        lines.append("")
        let states = byState.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("rooms: \(open) open (\(states.isEmpty ? "none" : states))")
        lines.append("outbox: \(depth) pending")
        lines.append("spool: \(backlog) waiting in new/")
        if let intake = IntakeState.report(paths: paths) { lines.append(contentsOf: intake.lines) }
        // What an admin should do now, from the table of Zoom answers (docs/zoom.md).
        var steps = integrations.compactMap { entry in
            entry.record.state == .active
                ? nil
                : entry.record.nextStep(integration: entry.name, kind: entry.kind).map {
                    "\(entry.name) (\(entry.record.state.rawValue)): \($0)"
                }
        }
        for host in hosts where host.state == "out of quota" {
            steps.append("\(host.integration)/\(host.host) is out of its daily create quota until 00:00 UTC: other hosts take rooms")
        }
        if let failed = byState[RoomState.failed.rawValue], failed > 0 {
            steps.append("\(failed) room(s) failed: `sitroomctl rooms all` lists them, `sitroomctl room show INCIDENT` says what to do")
        }
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

    private func rooms(all: Bool, json: Bool) async throws -> ControlReply {
        let rooms = try await provisioner.rooms(openOnly: !all)
        if json { return .ok(try Self.json(rooms.map(Self.roomObject))) }
        return .ok(
            Self.table(
                ["INCIDENT", "ROOM", "STATE", "INTEGRATION", "HOST", "JOIN URL"],
                rooms.map { [$0.incidentID, $0.id, $0.state.rawValue, $0.integration ?? "", $0.hostID ?? "", $0.joinURL ?? ""] }
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
            return .ok(try Self.json(object))
        }
        let rows: [(String, String)] = [
            ("incident", "\(record.info.id): \(record.info.title)"), ("stage", record.stage.rawValue), ("room", room.id),
            ("state", room.state.rawValue), ("reason", room.reason ?? ""),
            ("what to do", Self.nextStep(room) ?? "nothing"), ("note", room.note ?? ""), ("integration", room.integration ?? ""),
            ("host", room.hostUser.map { "\(room.hostID ?? "") (\($0))" } ?? ""),
            ("meeting id", room.meetingID.map(String.init) ?? ""), ("join url", room.joinURL ?? ""),
            ("passcode", room.passcode ?? ""), ("participants", "\(record.participants.count)"),
        ]
        return .ok(rows.map { "\($0.0.padding(toLength: 13, withPad: " ", startingAt: 0))\($0.1)" }.joined(separator: "\n"))
    }

    /// `generation.watch` of `status --json`: `mode` (`inotify`, `polling`, `off`), `directories` and
    /// `check_interval_seconds` (inotify), `interval_seconds` and `reason` (polling); the others are `null`.
    static func watchObject(_ mode: ConfigWatchMode) -> [String: Any] {
        var object: [String: Any] = [
            "mode": mode.name, "directories": NSNull(), "check_interval_seconds": NSNull(), "interval_seconds": NSNull(),
            "reason": NSNull(),
        ]
        switch mode {
        case .off: break
        case .inotify(let directories, let safety):
            object["directories"] = directories
            object["check_interval_seconds"] = safety
        case .polling(let interval, let reason):
            object["interval_seconds"] = interval
            object["reason"] = reason
        }
        return object
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

    static func json(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]), as: UTF8.self)
    }

    /// Left-aligned columns separated by two spaces.
    static func table(_ header: [String], _ rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                column == row.count - 1 ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }
}

/// A generation that was read and refused.
public struct RejectedGeneration: Sendable, Hashable {
    /// Seconds since 1970 when it was refused.
    public var at: Double
    /// Every error, one `file:line:col: message` a line.
    public var errors: String
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
