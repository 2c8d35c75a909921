import Foundation
import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomRuntime
import Synchronization

// Over 500 lines on purpose: the maildir protocol (tmp/, new/, cur/, rejected/) is one state machine over
// one directory; reading, batching, parsing, moving and housekeeping share its claims on files.

/// Receives the Zoom `app_deauthorized` webhooks found in the spool (SPEC §4). Verifying them with the
/// integration's webhook secret and applying them belong to the Zoom integration, which provides this.
///
/// A delivery may be repeated after a crash (the file stays in `new/` until this returns), so it must be
/// idempotent.
public protocol ZoomWebhookSink: Sendable {
    /// Verifies and applies one webhook.
    /// - Parameters:
    ///   - event: the parsed file (headers, raw body, payload fields).
    ///   - fileModifiedAt: the spool file's modification time, seconds since 1970 (SPEC §4: a request timestamp
    ///     more than 5 minutes away from it is refused).
    /// - Returns: what became of it; `.rejected` moves the file to `rejected/` with the reason.
    func deliver(_ event: ZoomWebhookEvent, fileModifiedAt: Double) async -> ZoomWebhookDisposition
}

/// What a ``ZoomWebhookSink`` did with a webhook.
public enum ZoomWebhookDisposition: Sendable, Hashable {
    /// Verified and applied (durably): the file moves to `cur/`.
    case applied
    /// Refused (bad signature, stale timestamp, unknown account...): the file moves to `rejected/`.
    case rejected(reason: String)
}

/// Reads the incident spool (SPEC §4, maildir protocol) and keeps it tidy.
///
/// - Only files in `new/` are read, and only once settled: nobody has them open for writing (a read lease, see
///   `DurableFile.readSettledFile`), and a file that did not arrive by rename (written in place, a protocol
///   violation) must also have gone unmodified for `quietPeriod`. Unsettled files are looked at again when
///   they are closed, and by a timer.
/// - Files are taken in batches (at most ``batchLimit`` files and ``batchBytes`` bytes), parsed (native,
///   Alertmanager, PagerDuty or Zoom webhook, by content), sorted by `occurred_at`, and applied in one LMDB
///   transaction (``RoomProvisioner/apply(batch:)``). Only then do they leave `new/` for `cur/` (`NAME.N` when
///   the name is taken), without fsyncing the directories: a crash before the commit leaves them in `new/` to be
///   applied at the next start; a crash after it (the moves perhaps lost) leaves duplicates (by event id) that go
///   to `cur/` unapplied.
/// - A file that cannot be used moves to `rejected/` with `NAME.error` beside it saying why.
/// - Housekeeping (at start and every `housekeepingInterval`): files left in `tmp/` longer than
///   `spool.tmp_stale_after` move to `rejected/` (with a `.error`); files in `cur/` and `rejected/` whose
///   arrival (their modification time, set when they are moved there) is older than `spool.keep_cur` /
///   `spool.keep_rejected` are deleted, each with a log line.
///
/// Triggers: a scan at start-up, inotify on `new/`, and a periodic rescan (which also covers an inotify queue
/// overflow).
public final class SpoolIntake: Sendable {
    /// The most files applied in one transaction.
    public static let batchLimit = 256
    /// The most bytes of files read into one batch (memory stays bounded whatever the backlog).
    public static let batchBytes = 8 << 20

    /// `var/spool/incidents`, holding `tmp/`, `new/`, `cur/`, `rejected/`.
    public let directory: String
    private let provisioner: RoomProvisioner
    private let zoomWebhooks: (any ZoomWebhookSink)?
    private let logger: Logger
    /// Seconds between rescans of `new/`.
    private let rescanInterval: Double
    /// Seconds between housekeeping runs.
    private let housekeepingInterval: Double
    /// Seconds a file written in place in `new/` must go unmodified before it is read.
    private let quietPeriod: Double
    /// Counts files by outcome (`sitroom_spool_files_total`).
    private let metrics: SitroomMetrics?

    /// - Parameters:
    ///   - directory: the spool (`var/spool/incidents`).
    ///   - provisioner: applies the events; its live configuration gives `spool`, `feeds` and the roster.
    ///   - zoomWebhooks: where Zoom `app_deauthorized` files go; `nil` rejects them as not supported yet.
    ///   - logger: the daemon's logger.
    ///   - rescanInterval: seconds between rescans of `new/` (30).
    ///   - housekeepingInterval: seconds between housekeeping runs (60).
    ///   - quietPeriod: seconds a file written in place must go unmodified before it is read (1).
    ///   - metrics: counts files by outcome, if given.
    public init(
        directory: String,
        provisioner: RoomProvisioner,
        zoomWebhooks: (any ZoomWebhookSink)? = nil,
        logger: Logger,
        rescanInterval: Double = 30,
        housekeepingInterval: Double = 60,
        quietPeriod: Double = 1,
        metrics: SitroomMetrics? = nil
    ) {
        self.metrics = metrics
        self.directory = directory
        self.provisioner = provisioner
        self.zoomWebhooks = zoomWebhooks
        self.logger = logger
        self.rescanInterval = rescanInterval
        self.housekeepingInterval = housekeepingInterval
        self.quietPeriod = quietPeriod
    }

    /// Creates the spool directories (mode 0700).
    public static func prepare(_ directory: String) throws {
        for sub in ["tmp", "new", "cur", "rejected"] {
            try DurableFile.makeDirectory("\(directory)/\(sub)", mode: 0o700)
        }
    }

    /// What makes the intake look at the spool.
    enum Trigger: Sendable {
        /// Renamed into `new/` (`IN_MOVED_TO`): the maildir delivery.
        case renamed([String])
        /// Created or closed after writing in `new/` (`IN_CREATE`, `IN_CLOSE_WRITE`): written in place.
        case written([String])
        /// Look at everything in `new/`.
        case scan
        /// Stale `tmp/` files and purges.
        case housekeeping
        /// Look again at files that were still being written.
        case recheck
    }

    /// Runs until cancelled: housekeeping and a scan, then inotify events, rescans and housekeeping.
    /// - Parameters:
    ///   - watcher: inotify on `new/` (made by the caller, so a failure to set it up is told at start), handing its
    ///     batches to `inbox` with ``post(_:to:)`` (`DirectoryWatcher(directories:deliver:)`); stopped on return.
    ///   - inbox: where the watcher's batches, the rescans and the housekeeping are posted.
    public func run(watcher: DirectoryWatcher, inbox: Inbox) async throws {
        defer { watcher.stop() }
        defer { inbox.finish() }
        let rescan = rescanInterval
        let housekeeping = housekeepingInterval
        let feeders = Task {
            await withTaskGroup(of: Void.self) { group in
                for (interval, trigger) in [(rescan, Trigger.scan), (housekeeping, Trigger.housekeeping)] {
                    group.addTask {
                        while !Task.isCancelled {
                            do { try await Task.sleep(for: .milliseconds(Int64(interval * 1000))) } catch { return }
                            inbox.post(trigger)
                        }
                    }
                }
            }
        }
        defer { feeders.cancel() }
        try await run(inbox: inbox)
    }

    /// Posts a batch of inotify events on `new/` to `inbox`: names moved in, names written in place, or a rescan
    /// when the kernel's queue overflowed. Called on the watcher's thread.
    public static func post(_ batch: [DirectoryEvent], to inbox: Inbox) {
        if batch.contains(where: { $0.kind == .overflow }) {
            inbox.post(.scan)
            return
        }
        var renamed: [String] = []
        var written: [String] = []
        for event in batch {
            guard let name = event.name else { continue }
            switch event.kind {
            case .movedIn: renamed.append(name)
            case .closedWrite, .created: written.append(name)
            default: break
            }
        }
        if !renamed.isEmpty { inbox.post(.renamed(renamed)) }
        if !written.isEmpty { inbox.post(.written(written)) }
    }

    /// The intake loop over an inbox of triggers (tests post their own): housekeeping and a scan first, then,
    /// each time the inbox is signalled, everything posted since the last time, at once. A storm of renames thus
    /// reaches ``process(_:_:)`` in large groups while a batch is being committed, and is applied in large
    /// batches.
    func run(inbox: Inbox) async throws {
        var deferred = Deferred()
        defer { deferred.pending?.cancel() }
        await housekeep()
        await scan(&deferred)
        deferred.scheduleRecheck(inbox)
        for await _ in inbox.signals {
            try Task.checkCancellation()
            let work = inbox.take()
            if work.housekeeping { await housekeep() }
            if work.scan {
                await scan(&deferred, renamed: Set(work.files.filter(\.renamed).map(\.name)))
            } else {
                await process(work.files, &deferred)
            }
            if work.recheck {
                let due = deferred.takeAll()
                await process(due.map { ($0, false) }, &deferred)
            }
            deferred.scheduleRecheck(inbox)
        }
    }

    /// Triggers posted while the intake loop is busy, taken all at once.
    public final class Inbox: Sendable {
        /// What has been posted since the last ``take()``.
        struct Work: Sendable {
            /// Files in arrival order, each once; `renamed` when it arrived by rename.
            var files: [(name: String, renamed: Bool)] = []
            var index: [String: Int] = [:]
            var scan = false
            var housekeeping = false
            var recheck = false

            mutating func add(_ names: [String], renamed: Bool) {
                for name in names {
                    if let at = index[name] {
                        files[at].renamed = files[at].renamed || renamed
                    } else {
                        index[name] = files.count
                        files.append((name, renamed))
                    }
                }
            }
        }

        private let work = Mutex(Work())
        /// Yields when work was posted (one pending signal at most).
        let signals: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation

        public init() {
            (signals, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        }

        func post(_ trigger: Trigger) {
            work.withLock { work in
                switch trigger {
                case .renamed(let names): work.add(names, renamed: true)
                case .written(let names): work.add(names, renamed: false)
                case .scan: work.scan = true
                case .housekeeping: work.housekeeping = true
                case .recheck: work.recheck = true
                }
            }
            continuation.yield()
        }

        func take() -> Work {
            work.withLock { work in
                defer { work = Work() }
                return work
            }
        }

        func finish() { continuation.finish() }
    }

    /// Files found still being written, to be looked at again.
    struct Deferred {
        /// Name → seconds (`CLOCK_REALTIME`) when to look again.
        var due: [String: Double] = [:]
        /// The pending recheck, if any.
        var pending: Task<Void, Never>?

        mutating func add(_ name: String, after seconds: Double) {
            due[name] = DurableFile.now() + seconds
        }

        mutating func takeAll() -> [String] {
            pending = nil
            defer { due = [:] }
            return due.keys.sorted()
        }

        /// Asks for one recheck at the earliest due time (within 50 ms to 5 s), unless one is pending already.
        mutating func scheduleRecheck(_ inbox: Inbox) {
            guard pending == nil, let earliest = due.values.min() else { return }
            let delay = min(max(earliest - DurableFile.now(), 0.05), 5)
            pending = Task {
                do { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) } catch { return }
                inbox.post(.recheck)
            }
        }
    }

    /// Processes every file in `new/`, oldest modification first; `renamed` names are known to have arrived by
    /// rename.
    /// - Complexity: O(n log n) in the files in `new/`.
    func scan(_ deferred: inout Deferred, renamed: Set<String> = []) async {
        guard let entries = try? DurableFile.list("\(directory)/new") else { return }
        let names = entries.sorted { ($0.modified, $0.name) < ($1.modified, $1.name) }.map(\.name)
        await process(names.map { ($0, renamed.contains($0)) }, &deferred)
    }

    /// Number of files waiting in `new/`.
    public func backlog() -> Int {
        ((try? DurableFile.list("\(directory)/new")) ?? []).count
    }

    /// The files in `rejected/` (not their `.error` files): how many, how many arrived in the last hour (a
    /// rejected file's modification time is when it was moved there), and the newest one with the first line
    /// of its `.error`.
    /// - Parameter now: seconds since 1970.
    /// - Complexity: O(files in rejected/).
    public func rejections(now: Double) -> SpoolRejections {
        let entries = ((try? DurableFile.list("\(directory)/rejected", includeHidden: true)) ?? [])
            .filter { $0.kind != .directory && !$0.name.hasSuffix(".error") }
        var summary = SpoolRejections(
            lastHour: entries.filter { now - $0.modified <= 3600 }.count,
            total: entries.count
        )
        if let newest = entries.max(by: { ($0.modified, $0.name) < ($1.modified, $1.name) }) {
            let text =
                (try? String(contentsOfFile: "\(directory)/rejected/\(newest.name).error", encoding: .utf8)) ?? ""
            let reason = text.split(separator: "\n").first.map(String.init) ?? "(no .error file beside it)"
            summary.newest = SpoolRejections.Newest(file: newest.name, at: rfc3339UTC(newest.modified), reason: reason)
        }
        return summary
    }

    // MARK: Processing

    /// What reading and parsing one file gave.
    private enum Read: Sendable {
        case event(IncidentEvent)
        case zoomWebhook(ZoomWebhookEvent)
        case ignored(String)
        case rejected(String)
        /// Still being written: look again after this many seconds.
        case notSettled(Double)
        /// Gone (taken by an earlier trigger) or unreadable now (left for the next scan).
        case skip
    }

    /// Applies files of `new/` in batches. `renamed` marks files that arrived by rename (no quiet period).
    ///
    /// A batch is at most ``batchLimit`` files and ``batchBytes`` bytes (sizes from `lstat`); its files are read
    /// and parsed on up to ``parseWorkers`` tasks at once (only the events are kept, never more than one file's
    /// bytes per worker), applied in one transaction, then moved; rejections are moved with one fsync of each
    /// directory per batch.
    private func process(_ names: [(name: String, renamed: Bool)], _ deferred: inout Deferred) async {
        guard !names.isEmpty else { return }
        let configuration = await provisioner.currentConfiguration()
        let context = FeedContext(feeds: configuration.daemon.feeds, roster: configuration.roster)
        let maxSize = configuration.daemon.spool.maxFileSize
        var seen: Set<String> = []
        var index = 0
        func nextSlice() -> [(name: String, renamed: Bool)] {
            var slice: [(name: String, renamed: Bool)] = []
            var bytes = 0
            while index < names.count, slice.count < Self.batchLimit, bytes < Self.batchBytes {
                let item = names[index]
                index += 1
                guard !item.name.hasPrefix("."), !item.name.contains("/"), seen.insert(item.name).inserted else {
                    continue
                }
                var status = stat()
                bytes += lstat("\(directory)/new/\(item.name)", &status) == 0 ? Int(status.st_size) : 0
                slice.append(item)
            }
            return slice
        }
        func startReading(_ slice: [(name: String, renamed: Bool)]) -> Task<[Read], Never>? {
            slice.isEmpty ? nil : Task { await self.readAll(slice, maxSize: maxSize, context: context) }
        }
        var slice = nextSlice()
        var reading = startReading(slice)
        while let current = reading {
            let reads = await current.value
            let done = slice
            // The next batch is read and parsed while this one is applied and moved (files of different batches
            // are different files; batches are still applied in order).
            slice = nextSlice()
            reading = startReading(slice)
            var batch: [(name: String, event: IncidentEvent)] = []
            var rejections: [(name: String, reason: String)] = []
            var ignored: [String] = []
            for (item, result) in zip(done, reads) {
                switch result {
                case .event(let event):
                    batch.append((item.name, event))
                case .zoomWebhook(let webhook):
                    await deliver(webhook, name: item.name)
                case .ignored(let reason):
                    logger.info("spool file ignored", metadata: ["file": "new/\(item.name)", "reason": "\(reason)"])
                    ignored.append(item.name)
                case .rejected(let reason):
                    rejections.append((item.name, reason))
                case .notSettled(let seconds):
                    deferred.add(item.name, after: seconds)
                case .skip:
                    continue
                }
            }
            if !batch.isEmpty || !ignored.isEmpty { await commit(batch, ignored: ignored) }
            if !rejections.isEmpty { await reject(rejections, from: "new") }
        }
    }

    /// Tasks reading and parsing the files of a batch at once: the processors, at most 4.
    static let parseWorkers = min(4, max(1, ProcessInfo.processInfo.activeProcessorCount))

    /// Reads and parses the files of a batch on up to ``parseWorkers`` tasks. - Returns: the results, in order.
    private func readAll(
        _ slice: [(name: String, renamed: Bool)],
        maxSize: Int,
        context: FeedContext
    ) async -> [Read] {
        let workers = slice.count < 16 ? 1 : Self.parseWorkers
        guard workers > 1 else {
            return slice.map { read($0.name, renamed: $0.renamed, maxSize: maxSize, context: context) }
        }
        var results = [Read](repeating: .skip, count: slice.count)
        await withTaskGroup(of: [(Int, Read)].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    stride(from: worker, to: slice.count, by: workers).map {
                        ($0, self.read(slice[$0].name, renamed: slice[$0].renamed, maxSize: maxSize, context: context))
                    }
                }
            }
            for await part in group {
                for (position, result) in part { results[position] = result }
            }
        }
        return results
    }

    private func read(_ name: String, renamed: Bool, maxSize: Int, context: FeedContext) -> Read {
        let path = "\(directory)/new/\(name)"
        let bytes: [UInt8]
        do {
            bytes = try DurableFile.readSettledFile(path, maxSize: maxSize, quietPeriod: renamed ? nil : quietPeriod)
        } catch let refusal as ReadRefusal {
            return .rejected("new/\(name): \(refusal)")
        } catch let unsettled as FileNotSettled {
            logger.debug(
                "spool file still being written; it is read later",
                metadata: ["file": "new/\(name)", "why": "\(unsettled)"]
            )
            switch unsettled.reason {
            case .openForWriting: return .notSettled(0.5)
            case .modifiedRecently(let age): return .notSettled(quietPeriod - age + 0.05)
            }
        } catch let error as PosixError where error.errno == ENOENT {
            return .skip
        } catch {
            logger.warning(
                "cannot read spool file; it is tried again",
                metadata: ["file": "\(path)", "error": "\(error)"]
            )
            return .skip
        }
        do {
            switch try SpoolFileParser.parse(bytes, file: "new/\(name)", context: context, maxFileSize: maxSize) {
            case .event(let event, let format, let notes):
                for note in notes {
                    logger.warning(
                        "spool event note",
                        metadata: [
                            "file": "new/\(name)", "event.id": "\(event.eventID)", "format": "\(format.rawValue)",
                            "note": "\(note)",
                        ]
                    )
                }
                return .event(event)
            case .zoomWebhook(let webhook):
                return .zoomWebhook(webhook)
            case .ignored(_, let reason):
                return .ignored(reason)
            }
        } catch {
            return .rejected(error.description)
        }
    }

    /// The order a batch is applied in: by `occurred_at` (then as found), except that an incident's `resolved` or
    /// `closed` goes after its `opened`, `situation_room` and `updated` events of the same batch whatever their times
    /// (no sender's clock can keep a meeting alive: the incident ends resolved), but not after a `reopened`, which
    /// says the incident came back after it was resolved.
    static func order<T>(_ batch: [(name: T, event: IncidentEvent)]) -> [(name: T, event: IncidentEvent)] {
        // Indices are sorted, not the (large) events: each event is moved once.
        let times = batch.map(\.event.occurredAt)
        var ordered = batch.indices.sorted { (times[$0], $0) < (times[$1], $1) }.map { batch[$0] }
        func closing(_ stage: IncidentStage) -> Bool { stage == .resolved || stage == .closed }
        func opening(_ stage: IncidentStage) -> Bool {
            stage == .opened || stage == .situationRoom || stage == .updated
        }
        // Where each incident's last opening event is; computed again after a move (rare).
        func lastOpenings() -> [String: Int] {
            var last: [String: Int] = [:]
            for (index, item) in ordered.enumerated() where opening(item.event.stage) {
                last[item.event.incident.id] = index
            }
            return last
        }
        var lastOpening = lastOpenings()
        var index = 0
        var moves = 0
        while index < ordered.count, moves <= ordered.count {
            let event = ordered[index].event
            if closing(event.stage), let last = lastOpening[event.incident.id], last > index,
                !ordered[index..<last].contains(where: {
                    $0.event.incident.id == event.incident.id && $0.event.stage == .reopened
                })
            {
                let item = ordered.remove(at: index)
                ordered.insert(item, at: last)
                moves += 1
                lastOpening = lastOpenings()
                continue
            }
            index += 1
        }
        return ordered
    }

    /// Applies a batch in one transaction (in ``order(_:)``), then moves its files and the `ignored` ones
    /// (nothing to apply) to `cur/` (not fsynced: a move lost to a crash is a duplicate at the next start).
    private func commit(_ batch: [(name: String, event: IncidentEvent)], ignored: [String] = []) async {
        let ordered = Self.order(batch)
        logger.debug(
            "applying spool batch",
            metadata: ["files": "\(ordered.map(\.name).joined(separator: ","))", "count": "\(ordered.count)"]
        )
        let outcomes: [RoomProvisioner.ApplyOutcome?]
        do {
            outcomes = ordered.isEmpty ? [] : try await provisioner.apply(batch: ordered.map(\.event))
        } catch {
            logger.error(
                "cannot apply a spool batch; applying its files one by one",
                metadata: ["count": "\(ordered.count)", "error": "\(error)"]
            )
            var single: [RoomProvisioner.ApplyOutcome?] = []
            for item in ordered {
                do {
                    single.append(try await provisioner.apply(item.event))
                } catch {
                    logger.error(
                        "cannot apply spool event; it stays in new/",
                        metadata: [
                            "file": "new/\(item.name)", "event.id": "\(item.event.eventID)", "error": "\(error)",
                        ]
                    )
                    single.append(nil)
                }
            }
            outcomes = single
        }
        let done = zip(ordered, outcomes).compactMap { item, outcome in
            outcome.map { (item.name, item.event.eventID, $0) }
        }
        // The moves are not fsynced: the commit above is what counts. A move lost to a crash leaves the file in new/,
        // where it is read again at the start and found a duplicate by its event id (or ignored again), then moved
        // (docs/feeds.md); two directory fsyncs per batch saved (docs/performance.md).
        _ = try? await BlockingWorker.spool.run {
            for name in ignored { _ = self.finishNow(name, sync: false) }
            for (name, eventID, outcome) in done {
                _ = self.finishNow(name, sync: false)
                self.metrics?.spoolFile(outcome.rawValue)
                if outcome == .duplicate {
                    self.logger.info(
                        "spool file was a duplicate",
                        metadata: ["file": "new/\(name)", "event.id": "\(eventID)"]
                    )
                }
            }
        }
    }

    /// Hands a Zoom webhook to the sink; without one it is rejected as not supported yet.
    private func deliver(_ webhook: ZoomWebhookEvent, name: String) async {
        guard let sink = zoomWebhooks else {
            let reason =
                "new/\(name): a Zoom \(webhook.event) webhook for account \(webhook.accountID) was recognised, but "
                + "sitroom does not apply Zoom webhooks yet (verifying them with the integration's "
                + "webhook_secret_file comes with the Zoom integration work); submit it again from rejected/ then"
            await reject([(name, reason)], from: "new")
            return
        }
        var status = stat()
        let modified =
            lstat("\(directory)/new/\(name)", &status) == 0
            ? Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9 : DurableFile.now()
        switch await sink.deliver(webhook, fileModifiedAt: modified) {
        case .applied:
            logger.info("Zoom webhook applied", metadata: ["file": "new/\(name)", "event": "\(webhook.event)"])
            metrics?.spoolFile("webhook")
            await finish(name)
        case .rejected(let reason):
            await reject([(name, "new/\(name): \(reason)")], from: "new")
        }
    }

    /// ``finishNow(_:sync:)`` on ``BlockingWorker/spool``, off the cooperative pool.
    private func finish(_ name: String) async {
        _ = try? await BlockingWorker.spool.run { self.finishNow(name) }
    }

    /// ``rejectNow(_:from:)`` on ``BlockingWorker/spool``, off the cooperative pool.
    private func reject(_ rejections: [(name: String, reason: String)], from sub: String) async {
        _ = try? await BlockingWorker.spool.run { self.rejectNow(rejections, from: sub) }
    }

    /// Moves a processed file from `new/` to `cur/`, marking its arrival time. - Returns: its new path.
    @discardableResult
    private func finishNow(_ name: String, sync: Bool = true) -> String? {
        let path = "\(directory)/new/\(name)"
        do {
            try DurableFile.touch(path)
            let final = try DurableFile.moveNoReplace(from: path, to: "\(directory)/cur/\(name)", syncDirectories: sync)
            logger.debug("spool file done", metadata: ["file": "\(final)"])
            return final
        } catch {
            logger.error("cannot move a spool file to cur/", metadata: ["file": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// Moves files to `rejected/`, each with `NAME.error` beside it holding its reason, then fsyncs the
    /// directories once. The reason is written first, under the name the file is about to take (`NAME`, or `NAME.N`
    /// when that is taken), so `rejected/NAME` never stands without its `NAME.error`: a process killed in between
    /// leaves the file where it was, rejected again (its reason rewritten) at the next start.
    private func rejectNow(_ rejections: [(name: String, reason: String)], from sub: String) {
        for (name, reason) in rejections {
            do {
                let source = "\(directory)/\(sub)/\(name)"
                try DurableFile.touch(source)
                // sitroomd alone writes rejected/ (it holds the spool's lock): a name free now is free at the move.
                var finalName = name
                var taken = 0
                var status = stat()
                while lstat("\(directory)/rejected/\(finalName)", &status) == 0 {
                    taken += 1
                    finalName = "\(name).\(taken)"
                }
                try DurableFile.write(
                    Array((reason.hasSuffix("\n") ? reason : reason + "\n").utf8),
                    name: "\(finalName).error",
                    tmpDirectory: "\(directory)/tmp",
                    finalDirectory: "\(directory)/rejected",
                    syncDirectory: false
                )
                let final = try DurableFile.moveNoReplace(
                    from: source,
                    to: "\(directory)/rejected/\(finalName)",
                    syncDirectories: false
                )
                metrics?.spoolFile("rejected")
                logger.warning("spool file rejected", metadata: ["file": "\(final)", "reason": "\(reason)"])
            } catch {
                logger.error(
                    "cannot move a rejected spool file",
                    metadata: ["file": "\(sub)/\(name)", "error": "\(error)"]
                )
            }
        }
        for sub in Set(["rejected", sub, "tmp"]) {
            do { try DurableFile.fsyncDirectory("\(directory)/\(sub)") } catch {
                logger.error("cannot fsync the spool", metadata: ["directory": "\(sub)", "error": "\(error)"])
            }
        }
    }

    // MARK: Housekeeping

    /// Puts back the reasons of rejections cut short before stop 26, which moved a file into `rejected/` first and
    /// wrote its `NAME.error` through `tmp/` after: a `tmp/NAME.error` whose `rejected/NAME` stands without one goes
    /// beside it (a reason left empty by the cut says so instead).
    /// - Parameter entries: `tmp/`'s entries. - Returns: those still in `tmp/`.
    private func completeRejections(_ entries: [DirectoryEntry]) -> [DirectoryEntry] {
        entries.filter { entry in
            guard entry.kind == .regular, entry.name.hasSuffix(".error") else { return true }
            let rejectedFile = "\(directory)/rejected/\(entry.name.dropLast(".error".count))"
            let reasonFile = "\(directory)/rejected/\(entry.name)"
            var status = stat()
            guard lstat(rejectedFile, &status) == 0, lstat(reasonFile, &status) != 0 else { return true }
            do {
                if entry.size > 0 {
                    _ = try DurableFile.moveNoReplace(
                        from: "\(directory)/tmp/\(entry.name)",
                        to: reasonFile,
                        syncDirectories: true
                    )
                } else {
                    try DurableFile.write(
                        Array("the reason was lost: sitroomd stopped while rejecting this file; see its log\n".utf8),
                        name: entry.name,
                        tmpDirectory: "\(directory)/tmp",
                        finalDirectory: "\(directory)/rejected"
                    )
                }
                logger.warning(
                    "a rejection cut short is completed",
                    metadata: ["file": "rejected/\(entry.name)"]
                )
                return false  // moved, or (empty) written over and renamed: gone from tmp/
            } catch {
                logger.error(
                    "cannot complete a rejection cut short",
                    metadata: ["file": "tmp/\(entry.name)", "error": "\(error)"]
                )
                return true
            }
        }
    }

    /// Moves stale `tmp/` files to `rejected/` and purges old files of `cur/` and `rejected/`, each with a log line.
    /// - Complexity: O(files in tmp/, cur/ and rejected/).
    func housekeep() async {
        let spool = await provisioner.currentConfiguration().daemon.spool
        let now = DurableFile.now()
        if let listed = try? DurableFile.list("\(directory)/tmp", includeHidden: true) {
            let entries = completeRejections(listed)
            let stale = entries.filter { now - $0.modified > spool.tmpStaleAfter }.map { entry in
                (
                    entry.name,
                    "tmp/\(entry.name): left in tmp/ for \(Int(now - entry.modified))s, longer than "
                        + "spool.tmp_stale_after (\(Int(spool.tmpStaleAfter))s); a feed wrote it but never renamed it "
                        + "into new/ (write into tmp/, fsync, rename into new/; `sitroomctl submit` does this)"
                )
            }
            if !stale.isEmpty { await reject(stale, from: "tmp") }
        }
        for (sub, keep) in [("cur", spool.keepCur), ("rejected", spool.keepRejected)] {
            guard let entries = try? DurableFile.list("\(directory)/\(sub)", includeHidden: true) else { continue }
            var purged = 0
            for entry in entries where now - entry.modified > keep {
                guard entry.kind != .directory else {
                    logger.warning("a directory in the spool is not purged", metadata: ["file": "\(sub)/\(entry.name)"])
                    continue
                }
                do {
                    try DurableFile.remove("\(directory)/\(sub)/\(entry.name)")
                    purged += 1
                    logger.info(
                        "spool file purged",
                        metadata: [
                            "file": "\(sub)/\(entry.name)", "age_seconds": "\(Int(now - entry.modified))",
                            "keep_seconds": "\(Int(keep))",
                        ]
                    )
                } catch {
                    logger.error(
                        "cannot purge a spool file",
                        metadata: ["file": "\(sub)/\(entry.name)", "error": "\(error)"]
                    )
                }
            }
            if purged > 0 {
                try? DurableFile.fsyncDirectory("\(directory)/\(sub)")
                logger.info("spool purged", metadata: ["directory": "\(sub)", "files": "\(purged)"])
            }
        }
    }
}
