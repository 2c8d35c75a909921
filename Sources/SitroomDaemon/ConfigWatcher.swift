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
/// Bursts are coalesced: a reload runs once no event came for ``Timing/quiet`` seconds and the fingerprint
/// stayed the same over that time, or ``Timing/maxDelay`` seconds after the first event of the burst. inotify
/// reports a file written in place when its writer closes it (`IN_CLOSE_WRITE`), not on every write, so a file
/// being written is not read before its writer is done. The reload itself (``DaemonCore/reload()``) applies
/// nothing unless all of `etc/` is valid, and makes no new generation when nothing changed.
public final class ConfigWatcher: Sendable {
    /// Timing of the watcher, in seconds.
    public struct Timing: Sendable {
        /// A burst ends when no event came for this long (and the files looked the same over it).
        public var quiet: Double
        /// A burst is reloaded at the latest this long after its first event.
        public var maxDelay: Double
        /// With inotify: how often the fingerprint of `etc/` is compared anyway (the safety net).
        public var safetyInterval: Double
        /// Without inotify: how often the fingerprint of `etc/` is compared.
        public var pollingInterval: Double

        /// - Parameters: see the properties; all in seconds.
        public init(
            quiet: Double = 0.15,
            maxDelay: Double = 2,
            safetyInterval: Double = 30,
            pollingInterval: Double = 2
        ) {
            self.quiet = quiet
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
    ///   - reload: reads and applies `etc/` (``DaemonCore/reload()``); called once per change, never concurrently.
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
        var burst = ReloadDebouncer(quiet: timing.quiet, maxDelay: timing.maxDelay)
        /// The fingerprint the pending burst saw last; it must hold for `quiet` before the reload.
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
        func changed() {
            settling = nil
            schedule(burst.changed(at: now()))
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
                if !batch.isEmpty { changed() }
            case .due:
                guard burst.isPending else { continue }
                let current = EtcFingerprint.take(etc: etcDirectory)
                let forced = burst.isOverdue(at: now())
                if current != settling && !forced {
                    // Not stable for one quiet period yet: look again after it.
                    settling = current
                    schedule(burst.settle(at: now()))
                    continue
                }
                if let due = burst.due(at: now()), !forced {
                    schedule(due)
                    continue
                }
                burst.reset()
                settling = nil
                await reloadNow(forced ? "burst (max delay reached)" : "burst")
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

/// Coalesces a burst of change signals into one reload: due when no signal came for `quiet` seconds, or
/// `maxDelay` seconds after the burst's first signal, whichever is first. Times are seconds on any monotonic
/// scale. A value type with no I/O, so its decisions are testable without time passing.
struct ReloadDebouncer: Sendable {
    let quiet: Double
    let maxDelay: Double
    private var first: Double? = nil
    private var last: Double = 0

    init(quiet: Double, maxDelay: Double) {
        self.quiet = quiet
        self.maxDelay = maxDelay
    }

    /// Whether a burst waits to be reloaded.
    var isPending: Bool { first != nil }

    /// Records a change signal. - Returns: when the burst is due.
    mutating func changed(at now: Double) -> Double {
        if first == nil { first = now }
        last = now
        return min(last + quiet, first! + maxDelay)
    }

    /// Starts another quiet period without a new signal (the files were still changing).
    /// - Returns: when the burst is due.
    mutating func settle(at now: Double) -> Double {
        last = now
        return min(last + quiet, (first ?? now) + maxDelay)
    }

    /// When the pending burst is due if that is still in the future, else `nil` (due now, or nothing pending).
    func due(at now: Double) -> Double? {
        guard let first else { return nil }
        let due = min(last + quiet, first + maxDelay)
        return due > now ? due : nil
    }

    /// Whether the pending burst has waited `maxDelay` since its first signal.
    func isOverdue(at now: Double) -> Bool {
        guard let first else { return false }
        return now >= first + maxDelay
    }

    /// Forgets the burst (it is being reloaded).
    mutating func reset() { first = nil }
}

/// What `etc/` looks like on disk, cheaply: for every entry of `etc/`, `etc/integrations/` and `etc/templates/`
/// its name, type, inode, size, modification and change times (nanoseconds), and for a symbolic link its target
/// and the same of what it points to. Two equal fingerprints mean nothing was saved in between (as far as
/// `stat` can tell).
struct EtcFingerprint: Hashable, Sendable {
    var lines: [String]

    /// - Complexity: O(entries of the three directories).
    static func take(etc: String) -> EtcFingerprint {
        var lines: [String] = []
        for base in [etc, etc + "/integrations", etc + "/templates"] {
            lines.append("dir \(base) \(describe(base, follow: true))")
            for name in list(base) {
                let path = base + "/" + name
                var line = "\(path) \(describe(path, follow: false))"
                if let target = linkTarget(path) { line += " -> \(target) \(describe(path, follow: true))" }
                lines.append(line)
            }
        }
        return EtcFingerprint(lines: lines)
    }

    private static func describe(_ path: String, follow: Bool) -> String {
        var info = stat()
        guard (follow ? stat(path, &info) : lstat(path, &info)) == 0 else { return "missing" }
        return "\(info.st_mode) \(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) "
            + "\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
    }

    private static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory (without `.` and `..`), sorted; none when it cannot be listed.
    static func list(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }
}
