import ArgumentParser
import Foundation
import Logging
import PosixIO
import ServiceLifecycle

/// sysexits(3) codes sitroomd and sitroom-intake exit with (SPEC §2).
public enum ExitCode {
    public static let ok: Int32 = 0
    /// EX_UNAVAILABLE: a needed service is unavailable (inotify; for sitroom-intake also the listening socket).
    public static let unavailable: Int32 = 69
    /// EX_CANTCREAT: cannot create state (var/, LMDB, FIFO).
    public static let cannotCreate: Int32 = 73
    /// EX_TEMPFAIL: another process of the same kind holds the lock of this var/.
    public static let alreadyRunning: Int32 = 75
    /// EX_CONFIG: bad configuration at start.
    public static let config: Int32 = 78
}

/// The file layout of a root (SPEC §2), shared by sitroomd and sitroom-intake.
public struct DaemonPaths: Sendable {
    public var etc: String
    public var varDirectory: String

    public init(root: String, etc: String? = nil, varDirectory: String? = nil) {
        let root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
        self.etc = etc ?? "\(root)/etc"
        self.varDirectory = varDirectory ?? "\(root)/var"
    }

    /// The paths the command-line options name: `--root` (default: the current directory), `--etc` (default
    /// ROOT/etc), `--var` (default ROOT/var); relative paths are taken from the current directory.
    public init(commandLineRoot root: String?, etc: String?, varDirectory: String?) {
        self.init(
            root: Self.absolute(root ?? FileManager.default.currentDirectoryPath),
            etc: etc.map(Self.absolute),
            varDirectory: varDirectory.map(Self.absolute)
        )
    }

    /// `path` made absolute against the current directory.
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let cwd = FileManager.default.currentDirectoryPath
        return path == "." ? cwd : "\(cwd)/\(path)"
    }

    public var store: String { "\(varDirectory)/lib/sitroom" }
    public var spool: String { "\(varDirectory)/spool/incidents" }
    public var run: String { "\(varDirectory)/run" }
    public var controlFIFO: String { "\(run)/sitroom.ctl" }
    public var lock: String { "\(run)/sitroom.lock" }
    public var mail: String { "\(varDirectory)/mail" }
    public var sms: String { "\(varDirectory)/sms" }
    /// The node_exporter textfile directory holding `sitroom.prom` and `sitroom-intake.prom`.
    public var metrics: String { "\(varDirectory)/metrics" }
    /// sitroom-intake's lock: one intake per var/ (held while it runs; sitroomd's `status` tests it).
    public var intakeLock: String { "\(run)/sitroom-intake.lock" }
    /// sitroom-intake's state file (``IntakeState``), read by sitroomd's `status`.
    public var intakeState: String { "\(run)/sitroom-intake.state" }
}

/// A long-running part of a process as a swift-service-lifecycle `Service`.
public struct TaskService: Service, CustomStringConvertible {
    public let name: String
    let body: @Sendable () async throws -> Void

    /// - Parameters:
    ///   - name: shown in ServiceGroup's log lines.
    ///   - body: the work; it returns (or throws) when the service ends.
    public init(name: String, _ body: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.body = body
    }

    public func run() async throws { try await body() }
    public var description: String { name }
}

/// `--root`, `--etc`, `--var` and `--check-config`, shared by sitroomd and sitroom-intake (SPEC §2 root rules).
public struct RootOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The root holding etc/ and var/ (default: the current directory).", valueName: "dir"))
    public var root: String?

    @Option(
        help: ArgumentHelp(
            "The configuration directory (default: ROOT/etc; under systemd /etc/sitroom).",
            valueName: "dir"
        )
    )
    public var etc: String?

    @Option(
        name: .customLong("var"),
        help: ArgumentHelp(
            "The state directory: spool, run/, metrics/ and, for sitroomd, the LMDB store, maildir, SMS (default: ROOT/var; under systemd /var/lib/sitroom).",
            valueName: "dir"
        )
    )
    public var varDirectory: String?

    @Flag(
        help:
            "Validate the configuration, print file:line:col: message for each error, and exit 0 (valid) or 1 (like nginx -t)."
    )
    public var checkConfig = false

    public init() {}

    /// The paths these options name.
    public var paths: DaemonPaths { DaemonPaths(commandLineRoot: root, etc: etc, varDirectory: varDirectory) }
}

/// Takes a process's lock on its `var/` (one sitroomd, one sitroom-intake per root), logging why it cannot.
/// - Parameters:
///   - path: the lock file (`var/run/sitroom.lock`, `var/run/sitroom-intake.lock`).
///   - program: the program's name, for the message.
/// - Returns: the held lock, or the exit code: 75 when another process holds it, 73 when it cannot be taken.
public func acquireProcessLock(path: String, program: String, logger: Logger) -> Result<FileLock, ProcessExit> {
    do {
        guard let acquired = try FileLock.acquire(path: path) else {
            logger.critical("another \(program) is running on this var/", metadata: ["lock": "\(path)"])
            return .failure(ProcessExit(code: ExitCode.alreadyRunning))
        }
        return .success(acquired)
    } catch {
        logger.critical("cannot take the lock", metadata: ["lock": "\(path)", "error": "\(error)"])
        return .failure(ProcessExit(code: ExitCode.cannotCreate))
    }
}

/// A process that must stop at start, with its exit code (``ExitCode``).
public struct ProcessExit: Error {
    public var code: Int32
}

/// `--log-format` and `--log-level`, shared by sitroomd and sitroom-intake.
public struct LogOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Log line format: logfmt (key=value) or json (one object a line).", valueName: "logfmt|json")
    )
    public var logFormat: String = "logfmt"

    @Option(
        help: ArgumentHelp(
            "Lowest level written: trace, debug, info (what an operator wants to see), notice, warning, error, critical.",
            valueName: "level"
        )
    )
    public var logLevel: String = "info"

    public init() {}

    public func validate() throws {
        guard StderrLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be logfmt or json")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    /// A logger writing to standard error in the chosen format, with journald's `<N>` prefixes when standard error
    /// is the journal.
    /// - Parameter label: the logger's label (the program's name).
    public func makeLogger(label: String) -> Logger {
        let format = StderrLogHandler.Format(rawValue: logFormat) ?? .logfmt
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let journal = StderrLogHandler.stderrIsJournal()
        return Logger(label: label) { StderrLogHandler(label: $0, format: format, level: level, syslogPrefix: journal) }
    }
}
