import ArgumentParser
import Foundation
import Logging
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
            root: Self.absolute(root ?? FileManager.default.currentDirectoryPath), etc: etc.map(Self.absolute),
            varDirectory: varDirectory.map(Self.absolute))
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

/// `--log-format` and `--log-level`, shared by sitroomd and sitroom-intake.
public struct LogOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Log line format: logfmt (key=value) or json (one object a line).", valueName: "logfmt|json"))
    public var logFormat: String = "logfmt"

    @Option(
        help: ArgumentHelp(
            "Lowest level written: trace, debug, info (what an operator wants to see), notice, warning, error, critical.",
            valueName: "level"))
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
