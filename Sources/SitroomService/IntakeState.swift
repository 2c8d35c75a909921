import Foundation
import PosixIO
import SitroomCore
import Synchronization

/// What sitroom-intake tells sitroomd's `status` about itself: a small JSON file, `var/run/sitroom-intake.state`,
/// rewritten (fsynced, renamed into place) when something in it changes. Whether the intake runs is not taken from
/// the file but from its lock, `var/run/sitroom-intake.lock`, which the kernel releases when the process dies (also
/// on `kill -9`), so a stale file never says "up".
public struct IntakeState: Codable, Sendable, Hashable {
    /// One problem the intake ran into (a spool write that failed, a rejected reload, ...).
    public struct Problem: Codable, Sendable, Hashable {
        /// Seconds since 1970.
        public var at: Double
        public var message: String

        public init(at: Double, message: String) {
            self.at = at
            self.message = message
        }
    }

    public var pid: Int32
    public var version: String
    /// Seconds since 1970.
    public var startedAt: Double
    /// The address it listens on (`127.0.0.1:8470`), once bound.
    public var listen: String?
    public var tls: Bool
    /// The configuration generation (1 at start, one more for each applied reload).
    public var generation: Int
    public var routes: Int
    /// Whether the last write into the spool succeeded (or none was tried yet).
    public var spoolWritable: Bool
    /// `true` once it stopped cleanly (SIGTERM); a killed intake leaves `false`.
    public var stopped: Bool
    /// The last problems, oldest first (at most ``maxProblems``).
    public var lastErrors: [Problem]

    /// How many problems the file keeps.
    public static let maxProblems = 5

    public init(
        pid: Int32,
        version: String,
        startedAt: Double,
        listen: String? = nil,
        tls: Bool = false,
        generation: Int = 1,
        routes: Int = 0,
        spoolWritable: Bool = true,
        stopped: Bool = false,
        lastErrors: [Problem] = []
    ) {
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
        self.listen = listen
        self.tls = tls
        self.generation = generation
        self.routes = routes
        self.spoolWritable = spoolWritable
        self.stopped = stopped
        self.lastErrors = lastErrors
    }

    /// Adds a problem, keeping the last ``maxProblems``.
    public mutating func record(_ message: String, at time: Double) {
        lastErrors.append(Problem(at: time, message: message))
        if lastErrors.count > Self.maxProblems { lastErrors.removeFirst(lastErrors.count - Self.maxProblems) }
    }

    enum CodingKeys: String, CodingKey {
        case pid, version, listen, tls, generation, routes, stopped
        case startedAt = "started_at"
        case spoolWritable = "spool_writable"
        case lastErrors = "last_errors"
    }

    /// Writes the state durably: into `RUN/.sitroom-intake.tmp/`, fsynced, renamed over `path`, mode 0600.
    /// - Throws: `PosixError` (`mkdir`, `open`, `write`, `fsync`, `rename`), or an encoding error.
    public func write(to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let scratch = directory + "/.sitroom-intake.tmp"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let bytes = Array(try encoder.encode(self))
        // One writer at a time: the scratch file has one name, and the intake writes at start and on its timer.
        try Self.writing.withLock { _ in
            try DurableFile.makeDirectory(scratch, mode: 0o700)
            try DurableFile.write(
                bytes,
                name: (path as NSString).lastPathComponent,
                tmpDirectory: scratch,
                finalDirectory: directory
            )
        }
    }

    /// Serialises ``write(to:)`` within the process.
    private static let writing = Mutex(())

    /// What `status` shows of the intake; encoded, the `intake` object of `status --json`: `running`, and with a state
    /// file `pid`, `version`, `started_at` (RFC 3339), `listen` (null before it listens), `tls`, `generation`,
    /// `routes`, `spool_writable`, `last_errors` (`[{at, message}]`).
    public struct Report: Sendable, Encodable {
        /// Its lock is held: it runs.
        public var running: Bool
        /// The state file, when there is one.
        public var state: IntakeState?

        private enum CodingKeys: String, CodingKey {
            case running, pid, version, tls, generation, routes, listen
            case startedAt = "started_at"
            case spoolWritable = "spool_writable"
            case lastErrors = "last_errors"
        }

        private struct ErrorEntry: Encodable {
            var at: String
            var message: String
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(running, forKey: .running)
            guard let state else { return }
            try container.encode(Int(state.pid), forKey: .pid)
            try container.encode(state.version, forKey: .version)
            try container.encode(rfc3339UTC(state.startedAt), forKey: .startedAt)
            if let listen = state.listen {
                try container.encode(listen, forKey: .listen)
            } else {
                try container.encodeNil(forKey: .listen)
            }
            try container.encode(state.tls, forKey: .tls)
            try container.encode(state.generation, forKey: .generation)
            try container.encode(state.routes, forKey: .routes)
            try container.encode(state.spoolWritable, forKey: .spoolWritable)
            try container.encode(
                state.lastErrors.map { ErrorEntry(at: rfc3339UTC($0.at), message: $0.message) },
                forKey: .lastErrors
            )
        }

        /// `status` lines: `intake: up since ... on 127.0.0.1:8470 (pid 42, generation 1, 4 routes)`, then the last
        /// errors, indented.
        public var lines: [String] {
            guard let state else { return ["intake: \(running ? "running (no state file yet)" : "not running")"] }
            var lines: [String]
            if running {
                let address = state.listen.map { " on \($0)\(state.tls ? " (TLS)" : "")" } ?? " (not listening yet)"
                lines = [
                    "intake: up since \(rfc3339UTC(state.startedAt))\(address) (pid \(state.pid), generation "
                        + "\(state.generation), \(state.routes) route\(state.routes == 1 ? "" : "s"))"
                ]
                if !state.spoolWritable { lines.append("  the last write into the spool failed: it answers 503") }
            } else {
                lines = [
                    "intake: not running (\(state.stopped ? "stopped" : "it did not stop cleanly"); it last started "
                        + "\(rfc3339UTC(state.startedAt)))"
                ]
            }
            if !state.lastErrors.isEmpty {
                lines.append("intake's last errors:")
                lines += state.lastErrors.map { "  \(rfc3339UTC($0.at)) \($0.message)" }
            }
            return lines
        }
    }

    /// Reads what sitroomd's `status` shows: whether the intake's lock is held, and its state file.
    /// - Parameter paths: the root's paths.
    /// - Returns: `nil` when no intake is configured (`etc/intake.yaml`), none runs and none ever ran on this root.
    public static func report(paths: DaemonPaths) -> Report? {
        let running = FileLock.isHeld(path: paths.intakeLock)
        let state = (try? DurableFile.readRegularFile(paths.intakeState, maxSize: 1 << 16)).flatMap {
            try? JSONDecoder().decode(IntakeState.self, from: Data($0))
        }
        let configured = FileManager.default.fileExists(atPath: paths.etc + "/intake.yaml")
        if !running && state == nil && !configured { return nil }
        return Report(running: running, state: state)
    }
}
