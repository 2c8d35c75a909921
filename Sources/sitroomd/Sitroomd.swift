import ArgumentParser
import Foundation
import Logging
import SitroomDaemon

/// `sitroomd [--root DIR] [--etc DIR] [--var DIR] [--check-config]` (SPEC §2).
@main
struct Sitroomd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitroomd",
        abstract: "Opens a Zoom situation room for each incident that needs one and tells its responders where to join.",
        discussion: """
            Runs in the foreground and logs to standard error. SIGHUP reloads etc/; SIGTERM and SIGINT stop it \
            gracefully. Exit codes (sysexits): 0 ok, 1 --check-config found errors, 69 a needed service is \
            unavailable, 73 cannot create state, 75 another sitroomd runs on this var/, 78 bad configuration.
            """,
        version: sitroomVersion)

    @Option(help: "The root holding etc/ and var/ (default: the current directory).")
    var root: String = FileManager.default.currentDirectoryPath

    @Option(help: "The configuration directory (default: ROOT/etc).")
    var etc: String?

    @Option(name: .customLong("var"), help: "The state directory (default: ROOT/var).")
    var varDirectory: String?

    @Flag(help: "Validate all of etc/, print file:line:col: message for each error, exit 0 (valid) or 1.")
    var checkConfig = false

    @Option(help: "Log line format: logfmt or json.")
    var logFormat: String = "logfmt"

    @Option(help: "Lowest log level written: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard StderrLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be logfmt or json")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() async throws {
        let paths = DaemonPaths(root: Self.absolute(root), etc: etc.map(Self.absolute), varDirectory: varDirectory.map(Self.absolute))
        if checkConfig { throw ExitCode(DaemonMain.checkConfig(paths: paths)) }
        let format = StderrLogHandler.Format(rawValue: logFormat)!
        let level = Logger.Level(rawValue: logLevel)!
        let logger = Logger(label: "sitroomd") { StderrLogHandler(label: $0, format: format, level: level) }
        let code = await DaemonMain.run(paths: paths, logger: logger)
        throw ExitCode(code)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let cwd = FileManager.default.currentDirectoryPath
        return path == "." ? cwd : "\(cwd)/\(path)"
    }
}

