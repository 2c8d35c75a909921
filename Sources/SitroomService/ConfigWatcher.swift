import Foundation
import Logging
import PosixIO

/// How `etc/` is watched for changes, as `status` shows it.
public enum ConfigWatchMode: Sendable, Hashable {
    /// The watcher has not started (or has stopped): only SIGHUP and `reload` reload.
    case off
    /// inotify on these directories (absolute, symbolic links resolved), plus a check every
    /// `safetyInterval` seconds.
    case inotify(directories: [String], safetyInterval: Double)
    /// inotify could not be set up (`reason`): `etc/` is compared every `interval` seconds.
    case polling(interval: Double, reason: String)

    /// `off`, `inotify` or `polling`.
    public var name: String {
        switch self {
        case .off: return "off"
        case .inotify: return "inotify"
        case .polling: return "polling"
        }
    }

    /// One line for `status`, e.g. "inotify on 3 directories (and a check every 30s)".
    public var summary: String {
        switch self {
        case .off: return "off (SIGHUP and `reload` only)"
        case .inotify(let directories, let safety):
            return "inotify on \(directories.count) directories (and a check every \(Int(safety))s)"
        case .polling(let interval, let reason):
            return "polling every \(ConfigWatcher.seconds(interval)) (inotify unavailable: \(reason))"
        }
    }
}

/// Watches all of `etc/` and reloads it once per change, however the change was saved (SPEC §3).
///
/// Triggers:
/// - inotify on the directories (never on single files): `etc/`, `etc/integrations/`, `etc/templates/`, and the
///   directories their symbolic links resolve into (Kubernetes ConfigMaps: `..data` → `..2026_01_01_...`). The
///   watch is re-armed when that set changes (a `..data` swap, a directory created or removed), so the new
///   timestamped directory is watched and the deleted one forgotten.
/// - a check every ``Timing/safetyInterval`` seconds that compares a fingerprint of `etc/` (names, types, sizes,
///   modification and change times, inode numbers, symbolic link targets) with the one taken at the last reload:
///   the safety net for changes inotify cannot see.
/// - when inotify cannot be set up (watch or instance limits), the same fingerprint every
///   ``Timing/pollingInterval`` seconds; a change is reloaded once it looks the same on two checks in a row.
///
/// Bursts are coalesced (``ReloadDebouncer``), by one of two rules, each bounded by ``Timing/maxDelay`` seconds
/// after the burst's first event:
/// - **Published by rename.** When the burst renamed files into place (`IN_MOVED_TO`: `sed -i`, `perl -i`,
///   `mv NAME.new NAME`, Ansible, rsync, the Kubernetes `..data` swap) and did nothing else to what the loader
///   reads (scratch files that came and went, such as sed's `sedXXXXXX`, and dotfiles do not count; the exact
///   rule is ``ReloadDebouncer/isPublished(watching:)``), the reload runs ``Timing/settle`` seconds after the
///   last event, provided the fingerprint of `etc/` stayed the same over that window (else the quiet rule takes
///   over). A rename is atomic and is how writers publish a finished file; the window only coalesces tools that
///   publish several files in a row (`sed -i EXPR a b`: microseconds apart).
/// - **Otherwise** (a file written in place, a created or removed entry, a lost event, a change found by the
///   safety-net check) a reload runs once no event came for ``Timing/quiet`` seconds and the fingerprint stayed
///   the same over one more quiet period.
///
/// Why a file written in place does not take the fast path, although inotify reports it only when its writer
/// closes it (`IN_CLOSE_WRITE`, never on every write, so a single writer's file is never read half-written): a
/// close says that one descriptor is done, not that the file is. A script that writes `> file` and then
/// `>> file`, or a program that truncates and appends through separate opens, closes the file between its parts,
/// and a first part can be valid on its own (the top-level keys of `sitroom.yaml` are optional, and so is an
/// integration's `priority`, so a prefix is often valid). Reloading soon after such a close would apply that
/// part whenever the writer pauses longer than the settle window (a command substitution or a process start
/// between the two redirections). The quiet rule tolerates pauses of up to a quiet period, as before; saving by
/// rename is the way to fast reloads. Editors that write in place (nano, `cp`, vim with `backupcopy=yes`) or
/// rename the old file to `NAME~` and write a new one (vim's and emacs's usual way) reload after the quiet rule,
/// about 0.3 s. Removals wait for the quiet rule too: vim renames the
/// file away before it writes the new one, and a reload in between would see an integration removed (its rooms
/// made unavailable, its tokens deleted). The watch has no `IN_MODIFY` or `IN_OPEN` (``DirectoryWatcher``'s mask),
/// and `IN_OPEN` would not say whether a file was opened for writing; the fingerprint check over the settle
/// window is what catches a writer at work in place while another file is renamed.
///
/// The reload itself (sitroomd's `DaemonCore.reload()`, sitroom-intake's own) applies nothing unless what it reads
/// is valid, and makes no new generation when nothing changed, so an extra reload is harmless.
public final class ConfigWatcher: Sendable {
    /// Timing of the watcher, in seconds.
    public struct Timing: Sendable {
        /// A burst ends when no event came for this long (and the files looked the same over one more).
        public var quiet: Double
        /// A burst that only published entries by rename ends when no event came for this long and the files
        /// looked the same over it. 20 ms: far more than the microseconds between the renames of one tool
        /// (`sed -i EXPR a b`), small against the p50 ≤ 50 ms target of an edit becoming live.
        public var settle: Double
        /// A burst is reloaded at the latest this long after its first event.
        public var maxDelay: Double
        /// With inotify: how often the fingerprint of `etc/` is compared anyway (the safety net).
        public var safetyInterval: Double
        /// Without inotify: how often the fingerprint of `etc/` is compared.
        public var pollingInterval: Double

        /// - Parameters: see the properties; all in seconds.
        public init(
            quiet: Double = 0.15,
            settle: Double = 0.02,
            maxDelay: Double = 2,
            safetyInterval: Double = 30,
            pollingInterval: Double = 2
        ) {
            self.quiet = quiet
            self.settle = settle
            self.maxDelay = maxDelay
            self.safetyInterval = safetyInterval
            self.pollingInterval = pollingInterval
        }
    }

    /// The most directories watched (etc/ and its two subdirectories, plus link targets).
    static let maxDirectories = 32

    /// The `etc/` directory (as given; symbolic links are resolved when arming).
    public let etcDirectory: String
    public let timing: Timing
    private let logger: Logger
    private let makeWatcher: @Sendable ([String]) throws -> DirectoryWatcher

    /// Creates a watcher; nothing happens until ``run(reload:report:)``.
    /// - Parameters:
    ///   - etcDirectory: the `etc/` directory.
    ///   - timing: coalescing and check intervals.
    ///   - logger: where the watch mode and changes are logged.
    ///   - makeWatcher: sets up inotify on directories (tests hand in one that fails, to see the polling fallback).
    public init(
        etcDirectory: String,
        timing: Timing = Timing(),
        logger: Logger,
        makeWatcher: @escaping @Sendable ([String]) throws -> DirectoryWatcher = {
            try DirectoryWatcher(directories: $0)
        }
    ) {
        self.etcDirectory = etcDirectory
        self.timing = timing
        self.logger = logger
        self.makeWatcher = makeWatcher
    }

    /// What wakes the watcher.
    enum Input: Sendable {
        /// An inotify batch (from the current watch, or from one replaced by a re-arm).
        case events([DirectoryEvent])
        /// The periodic check.
        case tick
        /// The coalescing timer.
        case due
    }

    /// Watches until cancelled. Starts by arming the watch and reloading once (an edit made between the
    /// daemon's first load and the arming is not lost; an unchanged `etc/` makes no new generation).
    /// - Parameters:
    ///   - reload: reads and applies `etc/` (sitroomd: `DaemonCore.reload()`); called once per change, never concurrently.
    ///   - report: told the watch mode whenever it changes (for `status`).
    public func run(
        reload: @escaping @Sendable () async -> Void,
        report: @escaping @Sendable (ConfigWatchMode) async -> Void
    )
        async
    {
        let (inputs, continuation) = AsyncStream<Input>.makeStream(bufferingPolicy: .unbounded)
        var watcher: DirectoryWatcher? = nil
        var forwarder: Task<Void, Never>? = nil
        var armed: [String] = []
        var mode = ConfigWatchMode.off
        var timer: Task<Void, Never>? = nil
        var ticker: Task<Void, Never>? = nil
        defer {
            timer?.cancel()
            ticker?.cancel()
            forwarder?.cancel()
            watcher?.stop()
            continuation.finish()
        }

        /// (Re-)arms inotify on the directories `etc/` now consists of; falls back to polling when it cannot.
        func rearm() async {
            if case .polling = mode { return }
            let wanted = Self.watchDirectories(etc: etcDirectory)
            if wanted == armed, watcher != nil { return }
            do {
                let fresh = try makeWatcher(wanted)
                // The old watch finishes its stream after the batches it already read: they are not lost.
                watcher?.stop()
                watcher = fresh
                armed = wanted
                forwarder = Task {
                    for await batch in fresh.events { continuation.yield(.events(batch)) }
                }
                let next = ConfigWatchMode.inotify(directories: wanted, safetyInterval: timing.safetyInterval)
                guard next != mode else { return }
                let first = mode == .off
                mode = next
                logger.info(
                    first ? "watching etc/ by inotify" : "etc/ watch re-armed",
                    metadata: ["directories": "\(wanted.joined(separator: ","))"]
                )
                await report(mode)
                if first { ticker = Self.ticker(every: timing.safetyInterval, continuation) }
            } catch {
                watcher?.stop()
                watcher = nil
                armed = []
                mode = .polling(interval: timing.pollingInterval, reason: "\(error)")
                logger.warning(
                    "inotify unavailable; polling etc/ instead",
                    metadata: [
                        "etc": "\(etcDirectory)", "interval": "\(Self.seconds(timing.pollingInterval))",
                        "error": "\(error)",
                    ]
                )
                await report(mode)
                ticker?.cancel()
                ticker = Self.ticker(every: timing.pollingInterval, continuation)
            }
        }

        let clock = ContinuousClock()
        let start = clock.now
        func now() -> Double {
            let elapsed = (clock.now - start).components
            return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        }
        var burst = ReloadDebouncer(quiet: timing.quiet, settle: timing.settle, maxDelay: timing.maxDelay)
        /// The fingerprint the pending burst must still see when it is due: taken at its last event when it was
        /// published by rename, else when its quiet period ended (it must then hold for one more).
        var settling: EtcFingerprint? = nil
        /// The fingerprint taken just before the last reload read etc/.
        var reloaded = EtcFingerprint.take(etc: etcDirectory)
        /// Polling: the fingerprint of the previous check.
        var previousPoll = reloaded

        func schedule(_ due: Double) {
            timer?.cancel()
            let delay = max(0, due - now())
            timer = Task {
                do { try await Task.sleep(for: .milliseconds(Int64((delay * 1000).rounded(.up)))) } catch { return }
                continuation.yield(.due)
            }
        }
        /// The directories etc/ is read from now (those of a swapped-out `..TIMESTAMP/` no longer count).
        func watching() -> Set<String> { Set(Self.watchDirectories(etc: etcDirectory)) }
        /// A change without events (the safety net): the quiet rule.
        func changed() {
            settling = nil
            schedule(burst.changed(at: now()))
        }
        /// An inotify batch. A burst published by rename must look the same as now when it is due.
        func changed(_ events: [DirectoryEvent]) {
            let directories = watching()
            let due = burst.changed(at: now(), events: events, watching: directories)
            settling = burst.isPublished(watching: directories) ? EtcFingerprint.take(etc: etcDirectory) : nil
            schedule(due)
        }
        func reloadNow(_ why: String) async {
            await rearm()
            reloaded = EtcFingerprint.take(etc: etcDirectory)
            previousPoll = reloaded
            logger.debug("etc/ changed; reloading", metadata: ["trigger": "\(why)"])
            await reload()
        }

        await rearm()
        await reloadNow("start")

        for await input in inputs {
            if Task.isCancelled { break }
            switch input {
            case .events(let batch):
                if !batch.isEmpty { changed(batch) }
            case .due:
                guard burst.isPending else { continue }
                let forced = burst.isOverdue(at: now())
                let directories = watching()
                let published = burst.isPublished(watching: directories)
                if !forced {
                    // A later event moved the burst's end (this wake-up was already on its way).
                    if let due = burst.due(at: now(), watching: directories) {
                        schedule(due)
                        continue
                    }
                    let current = EtcFingerprint.take(etc: etcDirectory)
                    if current != settling {
                        // The files changed without an event (a writer at work in place), or they were not looked
                        // at yet: wait until they look the same over one quiet period.
                        settling = current
                        schedule(burst.stillChanging(at: now()))
                        continue
                    }
                }
                burst.reset()
                settling = nil
                let why = forced ? "burst (max delay reached)" : published ? "burst (renamed into place)" : "burst"
                await reloadNow(why)
            case .tick:
                let current = EtcFingerprint.take(etc: etcDirectory)
                if case .polling = mode {
                    // Reload a change once two checks in a row see the same files.
                    if current != reloaded && current == previousPoll {
                        await reloadNow("poll")
                    } else {
                        previousPoll = current
                    }
                } else {
                    await rearm()
                    if current != reloaded && !burst.isPending {
                        logger.info(
                            "etc/ changed without an inotify event; reloading",
                            metadata: ["etc": "\(etcDirectory)"]
                        )
                        changed()
                    }
                }
            }
        }
        await report(.off)
    }

    /// A task that yields `.tick` every `interval` seconds until cancelled.
    private static func ticker(
        every interval: Double,
        _ continuation: AsyncStream<Input>.Continuation
    ) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                do { try await Task.sleep(for: .milliseconds(Int64(interval * 1000))) } catch { return }
                continuation.yield(.tick)
            }
        }
    }

    /// The directories to watch: `etc/`, `etc/integrations/`, `etc/templates/` (those that exist) and the
    /// directories the symbolic links in them resolve into, all with symbolic links resolved, without
    /// duplicates, at most ``maxDirectories``.
    /// - Complexity: O(entries of the three directories).
    static func watchDirectories(etc: String) -> [String] {
        var result: [String] = []
        func add(_ path: String) {
            guard result.count < maxDirectories, let real = realPath(path), isDirectory(real), !result.contains(real)
            else { return }
            result.append(real)
        }
        let bases = [etc, etc + "/integrations", etc + "/templates"]
        for base in bases { add(base) }
        for base in bases {
            guard let real = realPath(base), isDirectory(real) else { continue }
            for name in EtcFingerprint.list(real) {
                let path = real + "/" + name
                var info = stat()
                guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK, let target = realPath(path) else {
                    continue
                }
                add(isDirectory(target) ? target : (target as NSString).deletingLastPathComponent)
            }
        }
        return result
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// `2s`, `0.5s`.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value))s" : "\(value)s"
    }
}
