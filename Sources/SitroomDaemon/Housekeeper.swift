import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomRuntime
import SitroomStore

/// The daemon's chores that read or write a lot at once, on a thread of their own so they never hold up rooms:
/// the metrics file (every few seconds) and the purge of old rooms, contacts and audit entries (SPEC §8, §9).
public actor Housekeeper {
    private let executor = ThreadExecutor(name: "sitroom-house")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let core: DaemonCore
    private let store: Store
    private let metrics: SitroomMetrics
    private let directory: String
    private let clock: any WallClock
    private let logger: Logger
    private let runDirectory: String?
    private var lastWriteFailed = false

    /// The metrics file's name in its directory (node_exporter's textfile collector reads `*.prom`).
    public static let metricsFileName = "sitroom.prom"
    /// Seconds between ``chores()`` (stale LMDB readers, abandoned reply directories); the first run is at start.
    static let choresInterval: Double = 10

    /// - Parameters:
    ///   - core: the daemon, asked for its state.
    ///   - metricsDirectory: where `sitroom.prom` is written (`var/metrics`); made (mode 0755) when missing.
    ///   - runDirectory: the control FIFO's directory (`var/run`), where killed `sitroomctl`s leave their reply
    ///     directories; `nil` to leave it alone.
    public init(
        core: DaemonCore,
        store: Store,
        metrics: SitroomMetrics,
        metricsDirectory: String,
        clock: any WallClock,
        logger: Logger,
        runDirectory: String? = nil
    ) {
        self.runDirectory = runDirectory
        self.core = core
        self.store = store
        self.metrics = metrics
        self.directory = metricsDirectory
        self.clock = clock
        self.logger = logger
    }

    /// Makes the metrics directory (mode 0755, readable by node_exporter) and its private `.tmp/`.
    /// - Throws: `PosixError` from `mkdir` or `chmod`.
    public static func prepare(_ directory: String) throws {
        try DurableFile.makeDirectory(directory, mode: 0o755)
        try DurableFile.makeDirectory(directory + "/.tmp", mode: 0o700)
    }

    /// Writes the metrics file now: rendered into `var/metrics/.tmp/sitroom.prom`, fsynced, renamed over
    /// `var/metrics/sitroom.prom` (so a reader sees the old file or the new one, never half of one), mode 0644 so
    /// node_exporter may read it. A failure is logged once (until a write succeeds again) and retried next time.
    /// - Complexity: O(rooms + outbox) index entries to count them (``Store/counts()``), no room decoded.
    public func writeMetrics() async {
        do {
            let counts = try store.counts()
            var gauges = await core.gauges(spoolBacklog: await core.spoolBacklogCount(), store: counts)
            gauges.readers = store.readerTable
            let text = metrics.render(gauges)
            if lastWriteFailed { try Self.prepare(directory) }
            try DurableFile.write(
                Array(text.utf8),
                name: Self.metricsFileName,
                tmpDirectory: directory + "/.tmp",
                finalDirectory: directory,
                mode: 0o644
            )
            lastWriteFailed = false
        } catch {
            if !lastWriteFailed {
                logger.error("cannot write the metrics file", metadata: ["path": "\(directory)", "error": "\(error)"])
            }
            lastWriteFailed = true
        }
    }

    /// Deletes ended rooms with their notices and contacts, and audit entries, past the live configuration's ages
    /// (`store.keep_ended_rooms`, `store.keep_audit`), in batches until nothing is left to purge.
    /// - Returns: what was deleted.
    @discardableResult
    public func purge() async -> PurgeCounts {
        let retention = await core.retention()
        var total = PurgeCounts()
        let batch = 2_000
        for _ in 0..<1_000 {
            do {
                let counts = try store.purge(
                    now: clock.now(),
                    keepEndedRooms: retention.keepEndedRooms,
                    keepAudit: retention.keepAudit,
                    limit: batch
                )
                total.rooms += counts.rooms
                total.notices += counts.notices
                total.incidents += counts.incidents
                total.auditEntries += counts.auditEntries
                total.usageEntries += counts.usageEntries
                if counts.rooms < batch { break }
            } catch {
                logger.error("purge failed", metadata: ["error": "\(error)"])
                break
            }
        }
        for (what, count) in [
            ("rooms", total.rooms), ("notices", total.notices), ("incidents", total.incidents),
            ("audit_entries", total.auditEntries),
        ] where count > 0 {
            metrics.increment("sitroom_purged_total", [("what", what)], by: count)
        }
        if total.isEmpty {
            logger.debug("purge: nothing old enough")
        } else {
            logger.info(
                "purged old data",
                metadata: [
                    "rooms": "\(total.rooms)", "notices": "\(total.notices)", "incidents": "\(total.incidents)",
                    "audit_entries": "\(total.auditEntries)",
                ]
            )
        }
        return total
    }

    /// Frees LMDB reader slots of dead processes (`mdb_reader_check`, LMDB's documented remedy; at start the store
    /// did it once already) and removes reply directories of killed `sitroomctl`s; both logged with their counts.
    /// - Returns: the reader slots freed and the reply directories removed.
    @discardableResult
    public func chores() -> (readers: Int, replyDirectories: Int) {
        var readers = 0
        do {
            readers = try store.clearStaleReaders()
            if readers > 0 {
                metrics.staleReadersCleared(readers)
                logger.warning(
                    "stale LMDB readers cleared",
                    metadata: [
                        "cleared": "\(readers)",
                        "detail": "reader slots of processes that died inside a read transaction",
                    ]
                )
            }
        } catch {
            logger.error("cannot check the LMDB reader table", metadata: ["error": "\(error)"])
        }
        var removed: [String] = []
        if let runDirectory {
            removed = ControlClient.removeAbandonedReplyDirectories(in: runDirectory, now: clock.now())
            if !removed.isEmpty {
                logger.info(
                    "removed reply directories of killed sitroomctl clients",
                    metadata: ["directory": "\(runDirectory)", "count": "\(removed.count)"]
                )
            }
        }
        return (readers, removed.count)
    }

    /// Writes the metrics file every `interval` seconds and purges every `purgeInterval` seconds, until
    /// cancelled; then writes the metrics file a last time.
    ///
    /// The first purge runs `firstPurgeAfter` seconds after the start rather than at once: it reads every
    /// incident and the room and outbox indexes in one write transaction, which at start would delay the
    /// recovery's and the intake's first commits and the first `status` answer (README, "Performance"). Nothing
    /// is kept longer than `store.keep_*` allow by more than that delay.
    /// - Parameters:
    ///   - interval: seconds between metrics files.
    ///   - purgeInterval: seconds between purges.
    ///   - firstPurgeAfter: seconds from the start to the first purge.
    public func run(interval: Double = 5, purgeInterval: Double = 3_600, firstPurgeAfter: Double = 60) async {
        var nextPurge = clock.now() + firstPurgeAfter
        var nextChores = clock.now()
        while !Task.isCancelled {
            if clock.now() >= nextChores {
                chores()
                nextChores = clock.now() + Self.choresInterval
            }
            await writeMetrics()
            if clock.now() >= nextPurge {
                await purge()
                nextPurge = clock.now() + purgeInterval
            }
            do { try await clock.sleep(seconds: interval) } catch { break }
        }
        await writeMetrics()
    }
}
