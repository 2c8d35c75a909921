import Foundation
import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomStore
import SitroomZoom
import Synchronization
import Testing

@testable import SitroomDaemon
@testable import SitroomService

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` until it returns a value, or throws after `timeout` seconds. Each step waits 10 ms for the
/// event being polled; there is no fixed wait for something to have happened.
func waitFor<T>(_ what: String, timeout: Double = 10, _ condition: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(10))  // waits-on-purpose: the step of a bounded poll
    }
    if let value = try await condition() { return value }
    throw TimedOut(what: what)
}

/// Log records kept in memory: tests read the log through this handler, never `LoggingSystem.bootstrap`.
final class LogRecorder: Sendable {
    private let records = Mutex<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>([])

    func append(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        records.withLock { $0.append((level, message, metadata)) }
    }

    /// Every record as `level message key=value ...`.
    var lines: [String] {
        records.withLock { records in
            records.map { record in
                let pairs = record.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                return (["\(record.level)", record.message] + pairs).joined(separator: " ")
            }
        }
    }

    var logger: Logger {
        Logger(label: "test") { _ in RecordingLogHandler(recorder: self) }
    }
}

struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        recorder.append(event.level, "\(event.message)", metadata.merging(event.metadata ?? [:]) { $1 })
    }
}

/// Counts calls, safely from any task.
actor Counter {
    private(set) var value = 0
    func increment() { value += 1 }
}

/// A temporary root with a real `etc/` and `var/`, a real LMDB store, a real ``DaemonCore`` and, once started,
/// a real ``ConfigWatcher`` (inotify) feeding its reloads.
final class ReloadFixture: @unchecked Sendable {
    // Invariant: used by one test; `watcherTask` is only touched from that test's task.
    let root: String
    let store: Store
    let http = ZoomHTTPClient()
    let core: DaemonCore
    let log = LogRecorder()
    let reloads = Counter()
    let timing: ConfigWatcher.Timing
    var watcherTask: Task<Void, Never>?

    var etc: String { root + "/etc" }

    /// The coalescing timing of these tests: production's quiet period, a shorter safety net.
    static let timing = ConfigWatcher.Timing(quiet: 0.15, maxDelay: 2, safetyInterval: 30, pollingInterval: 0.25)

    static let sitroom = """
        # settings for the reload tests
        notify:
          admins: [{ name: Ops Admin, email: ops-admin@example.org }]
        reopen_hold_down: 15m
        store: { map_size: 64MiB }

        """

    /// An integration pointing at a closed port on 127.0.0.1 (nothing is ever sent in these tests).
    static func integration(
        client: String = "test-client",
        priority: Int = 10,
        hosts: [String] = ["bridge-1", "bridge-2"]
    )
        -> String
    {
        """
        kind: zoom-s2s
        api_url: http://127.0.0.1:9/v2
        oauth_url: http://127.0.0.1:9/oauth
        account_id: AcctTest
        client_id: \(client)
        client_secret_file: ../../secrets/zoom.secret
        hosts:
        \(hosts.map { "  - { id: \($0), user: \($0)@example.com }" }.joined(separator: "\n"))
        priority: \(priority)

        """
    }

    static let smsTemplate = "{{incident.title}}: {{room.join_url}}\n"

    /// The files of the default `etc/`, by path relative to it.
    static var defaultFiles: [String: String] {
        [
            "sitroom.yaml": sitroom, "integrations/zoom-main.yaml": integration(),
            "templates/room-ready.sms.mustache": smsTemplate,
        ]
    }

    /// Makes the root and its `etc/`, seeds the store, and starts the daemon core (generation 1).
    /// - Parameters:
    ///   - layout: writes `etc/` given the root (default: plain files).
    ///   - seed: writes into the store before the core reads it.
    init(
        timing: ConfigWatcher.Timing = ReloadFixture.timing,
        layout: (String) throws -> Void = { root in try writeFiles(ReloadFixture.defaultFiles, under: root + "/etc") },
        seed: (Store) throws -> Void = { _ in },
        providers: (any MeetingProviderSource)? = nil
    ) async throws {
        var template = Array((NSTemporaryDirectory() + "/sitroom-reload-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        root = ConfigWatcher.realPath(String(cString: made))!
        self.timing = timing
        try writeFiles(["zoom.secret": "reload-test-secret\n"], under: root + "/secrets", mode: 0o600)
        try layout(root)
        let paths = DaemonPaths(root: root)
        for directory in [
            paths.store, paths.run, paths.mail + "/tmp", paths.mail + "/new", paths.sms + "/tmp", paths.sms + "/new",
        ] {
            try DurableFile.makeDirectory(directory, mode: 0o700)
        }
        let configuration = try ConfigLoader.load(etcDirectory: paths.etc)
        store = try Store(directory: paths.store, mapSize: 64 << 20)
        try seed(store)
        core = try await DaemonCore(
            paths: paths,
            configuration: configuration,
            store: store,
            http: http,
            clock: SystemWallClock(),
            logger: log.logger,
            providers: providers
        )
    }

    /// Starts the watcher and waits until it watches (inotify or polling).
    /// - Parameter makeWatcher: sets up inotify (tests of the fallback hand in one that fails).
    func startWatching(
        makeWatcher: @escaping @Sendable ([String]) throws -> DirectoryWatcher = {
            try DirectoryWatcher(directories: $0)
        }
    ) async throws {
        let watcher = ConfigWatcher(etcDirectory: etc, timing: timing, logger: log.logger, makeWatcher: makeWatcher)
        let core = self.core
        let reloads = self.reloads
        watcherTask = Task {
            await watcher.run(
                reload: {
                    _ = await core.reload()
                    await reloads.increment()
                },
                report: { await core.setConfigWatch($0) }
            )
        }
        // The watcher reloads once when it starts (unchanged here): wait for that, so edits come after it.
        _ = try await waitFor("the watcher to start") { await reloads.value >= 1 ? true : nil }
    }

    func generation() async -> GenerationStatus { await core.generationStatus() }

    /// Waits until generation `number` (or a later one) is live.
    @discardableResult
    func waitForGeneration(_ number: Int, timeout: Double = 10) async throws -> GenerationStatus {
        try await waitFor("generation \(number)", timeout: timeout) {
            let status = await core.generationStatus()
            return status.number >= number ? status : nil
        }
    }

    /// Waits until the watcher has finished a reload after its `count`th.
    func waitForReload(after count: Int) async throws {
        _ = try await waitFor("a reload after the \(count)th") { await reloads.value > count ? true : nil }
    }

    /// Checks that no further generation comes after `number` once the watcher had every chance to make one.
    func expectNoFurtherGeneration(after number: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        // waits-on-purpose: "exactly once" means that nothing more happens, which only time can show. The edit is
        // complete; a reload caused by its last events would start at the latest two quiet periods after them
        // (one without events, one more to see the files unchanged). Wait that long plus a margin for a loaded
        // machine, then check the generation did not move.
        try await Task.sleep(for: .milliseconds(Int64((2 * timing.quiet + 0.6) * 1000)))  // waits-on-purpose
        #expect(await core.generationStatus().number == number, sourceLocation: sourceLocation)
    }

    /// Runs `body` over the fixture, then tears it down; the log is shown when it fails.
    func running(_ body: (ReloadFixture) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            Issue.record("log:\n\(log.lines.joined(separator: "\n"))")
            await tearDown()
            throw error
        }
        await tearDown()
    }

    /// Stops the watcher and removes the root.
    func tearDown() async {
        watcherTask?.cancel()
        await watcherTask?.value
        await core.provisioner.stop()
        await core.notifier.stop()
        http.shutdown()
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Writes files (path relative to `directory` → content), creating directories.
func writeFiles(_ files: [String: String], under directory: String, mode: Int = 0o644) throws {
    for (relative, text) in files {
        let path = directory + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}

/// Saves a file the ways editors and tools do. Each writes real files with the real system calls.
enum Save {
    /// In place, as `echo ... > file` or nano do: `open(O_WRONLY|O_TRUNC)`, `write`, `close`.
    static func inPlace(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw PosixError(call: "open", path: path, errno: errno) }
        defer { close(fd) }
        try writeAll(fd, Array(text.utf8), path: path)
    }

    /// Vim's rename-and-replace (`:help backupcopy`, value "no", its usual choice for a plain file): the swap
    /// file `.NAME.swp` exists while editing; on `:w` vim probes the directory with a file named `4913`, renames
    /// the file to the backup `NAME~`, writes a new file under the name (`O_CREAT|O_EXCL`, fsync), then deletes
    /// the backup; on quit it deletes the swap file.
    static func vim(_ path: String, _ text: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let swap = "\(directory)/.\(name).swp"
        try writeNew(swap, Array(repeating: 0, count: 4096))
        try writeNew("\(directory)/4913", [])
        try check(unlink("\(directory)/4913"), "unlink", directory + "/4913")
        try check(rename(path, path + "~"), "rename", path)
        try writeNew(path, Array(text.utf8), sync: true)
        try check(unlink(path + "~"), "unlink", path + "~")
        try check(unlink(swap), "unlink", swap)
    }

    /// `sed -i EXPRESSION FILE` (GNU sed writes `./sedXXXXXX` beside the file, then renames it over the file).
    static func sedInPlace(_ path: String, _ expression: String) throws {
        try run("sed", ["-i", expression, path])
    }

    /// `sed -i -e EXPRESSION... FILE...`: one sed process edits the files one after the other, each through its
    /// own `sedXXXXXX` renamed over it (microseconds apart).
    static func sedInPlace(_ paths: [String], expressions: [String]) throws {
        try run("sed", ["-i"] + expressions.flatMap { ["-e", $0] } + paths)
    }

    /// `cp SOURCE FILE` over an existing file (cp opens it with `O_TRUNC` and writes into it).
    static func cpOver(_ path: String, _ text: String, scratch: String) throws {
        try writeFiles(
            [(scratch as NSString).lastPathComponent: text],
            under: (scratch as NSString).deletingLastPathComponent
        )
        try run("cp", [scratch, path])
    }

    /// Truncates the file, then writes `text` in `pieces` writes through the same descriptor, pausing `pause`
    /// seconds between them (longer than the coalescing quiet period), then closes it: a slow writer.
    static func truncateThenWriteSlowly(_ path: String, _ text: String, pieces: Int, pause: Double) async throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PosixError(call: "open", path: path, errno: errno) }
        defer { close(fd) }
        try check(ftruncate(fd, 0), "ftruncate", path)
        let bytes = Array(text.utf8)
        let size = (bytes.count + pieces - 1) / pieces
        for start in stride(from: 0, to: bytes.count, by: size) {
            if start > 0 {
                // waits-on-purpose: the slow writer's pace is the scenario under test.
                try await Task.sleep(for: .milliseconds(Int64(pause * 1000)))  // waits-on-purpose
            }
            try writeAll(fd, Array(bytes[start..<min(start + size, bytes.count)]), path: path)
        }
    }

    /// Projects `files` into `etc` the way the kubelet's AtomicWriter updates a ConfigMap volume: the files go into
    /// a new directory `..STAMP`, a symbolic link `..data_tmp` → `..STAMP` is renamed over `..data`, every
    /// top-level entry is a symbolic link through `..data` (made once), and the previous `..STAMP` is removed.
    static func kubernetesProject(_ files: [String: String], into etc: String, stamp: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: etc, withIntermediateDirectories: true)
        let old = (try? fm.destinationOfSymbolicLink(atPath: etc + "/..data"))
        try writeFiles(files, under: "\(etc)/..\(stamp)")
        try fm.createSymbolicLink(atPath: etc + "/..data_tmp", withDestinationPath: "..\(stamp)")
        try check(rename(etc + "/..data_tmp", etc + "/..data"), "rename", etc + "/..data")
        for top in Set(files.keys.map { String($0.split(separator: "/")[0]) }) where !linkExists(etc + "/" + top) {
            try fm.createSymbolicLink(atPath: etc + "/" + top, withDestinationPath: "..data/" + top)
        }
        if let old { try fm.removeItem(atPath: etc + "/" + old) }
    }

    private static func linkExists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    private static func writeNew(_ path: String, _ bytes: [UInt8], sync: Bool = false) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PosixError(call: "open", path: path, errno: errno) }
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
        if sync { try check(fsync(fd), "fsync", path) }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw PosixError(call: "write", path: path, errno: errno)
            }
            offset += written
        }
    }

    private static func check(_ result: Int32, _ call: String, _ path: String) throws {
        if result != 0 { throw PosixError(call: call, path: path, errno: errno) }
    }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TimedOut(what: "\(tool) to succeed (exit \(process.terminationStatus))")
        }
    }
}
