import Foundation
import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRuntime
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
    let clock: any WallClock
    let logger: Logger
    let startedAt: Double
    var generation = 1
    var appliedAt: Double
    var live: Configuration
    var lastRejected: RejectedGeneration? = nil
    var watch = ConfigWatchMode.off
    /// The reload running or last run: reloads (SIGHUP, `reload`, the watcher) run one after the other.
    var reloadTail: Task<ControlReply, Never>? = nil
    var spoolBacklog: @Sendable () -> Int = { 0 }
    var spoolRejections: @Sendable (Double) -> SpoolRejections = { _ in SpoolRejections() }
    /// The counters the actors move, written to the metrics file.
    public let metrics: SitroomMetrics
    /// Tells systemd about reloads (`RELOADING=1` … `READY=1`); `nil` without `$NOTIFY_SOCKET`.
    let serviceNotifier: ServiceNotifier?
    /// Whether the last reload found etc/ valid (true until one is rejected), and when etc/ was last found valid.
    var lastReloadSuccessful = true
    var lastReloadSuccessAt: Double

    /// Wires the actors over an open store and applies the first generation.
    /// - Parameters:
    ///   - metrics: the counters the actors move (the metrics file renders them).
    ///   - serviceNotifier: systemd's notification socket, told about reloads.
    ///   - providers: where rooms' provider calls go; `nil` for the integration registry (Zoom). A test hands in a
    ///     double to drive the actors in-process without a provider.
    /// - Throws: store errors, template errors.
    public init(
        paths: DaemonPaths,
        configuration: Configuration,
        store: Store,
        http: ZoomHTTPClient,
        clock: any WallClock,
        logger: Logger,
        metrics: SitroomMetrics = SitroomMetrics(),
        serviceNotifier: ServiceNotifier? = nil,
        providers: (any MeetingProviderSource)? = nil
    ) async throws {
        self.paths = paths
        self.store = store
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
        self.serviceNotifier = serviceNotifier
        // The provisioner, the pool and the registry share one thread: a room's calls between them are then switches
        // on that thread rather than hand-offs that wake another (each costs two context switches and a futex wake).
        // What blocks among them is the provisioner's group commit, which the other two wait for anyway.
        let core = ThreadExecutor(name: "sitroom-core")
        registry = IntegrationRegistry(
            store: store,
            http: http,
            clock: clock,
            logger: logger,
            metrics: metrics,
            executor: core
        )
        pool = AccountPool(store: store, clock: clock, logger: logger, executor: core)
        notifier = Notifier(store: store, clock: clock, logger: logger)
        provisioner = try RoomProvisioner(
            store: store,
            pool: pool,
            registry: registry,
            notifier: notifier,
            configuration: configuration,
            clock: clock,
            logger: logger,
            metrics: metrics,
            providers: providers,
            executor: core
        )
        meetingEvents = MeetingEventSubscriptions(
            provisioner: provisioner,
            registry: registry,
            metrics: metrics,
            logger: logger
        )
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
                logger.warning(
                    "app_deauthorized from the Zoom event subscription applied",
                    metadata: ["effect": "\(done)"]
                )
            } catch {
                logger.error(
                    "cannot apply app_deauthorized from the Zoom event subscription",
                    metadata: ["error": "\(error)"]
                )
            }
        }
        await meetingEvents.configure(configuration)
    }

    /// Tells `status` how to count the spool backlog.
    public func setSpoolBacklog(_ count: @escaping @Sendable () -> Int) { spoolBacklog = count }

    /// Tells `status` how to sum up the spool's `rejected/` (given the time now, seconds since 1970).
    public func setSpoolRejections(_ summary: @escaping @Sendable (Double) -> SpoolRejections) {
        spoolRejections = summary
    }

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
    func reloadNow() async -> ControlReply {
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
            logger.warning(
                "cannot notify systemd",
                metadata: ["socket": "\(serviceNotifier.address)", "error": "\(error)"]
            )
        }
    }

    func reloadGeneration() async -> ControlReply {
        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(etcDirectory: paths.etc)
        } catch {
            lastRejected = RejectedGeneration(at: clock.now(), errors: error.errors.map(\.description))
            lastReloadSuccessful = false
            metrics.reload("rejected")
            logger.error(
                "configuration rejected; the live generation stays",
                metadata: ["generation": "\(generation)", "errors": "\(error.description)"]
            )
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
            ]
        )
        await provisioner.retryWaiting()
        return .ok("generation \(generation) applied")
    }

    /// What the metrics file shows of the daemon's state, without the store's counts (``Housekeeper`` adds them).
    public func gauges(spoolBacklog: Int, store counts: StoreCounts) async -> MetricsGauges {
        let integrations = await registry.snapshot().map { (name: $0.name, state: $0.record.state) }
        var gauges = MetricsGauges(
            startedAt: startedAt,
            integrations: integrations,
            pool: await pool.snapshot(),
            spoolBacklog: spoolBacklog,
            generation: generation,
            lastReloadSuccessful: lastReloadSuccessful,
            lastReloadSuccessAt: lastReloadSuccessAt,
            store: counts,
            now: clock.now()
        )
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
            number: generation,
            appliedAt: appliedAt,
            configuration: live,
            lastRejected: lastRejected,
            watch: watch
        )
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
