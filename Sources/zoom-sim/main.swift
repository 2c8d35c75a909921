import ArgumentParser
import Foundation
import Logging
import ZoomSim

/// `zoom-sim [--port N] [--host 127.0.0.1] [--config FILE]`: the Zoom API simulator (SPEC §10).
@main
struct ZoomSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoom-sim",
        abstract: "A Zoom API simulator for sitroom's tests and demos (loopback only)."
    )

    @Option(help: "TCP port; 0 binds an ephemeral port and prints `listening on 127.0.0.1:PORT`.")
    var port: Int = 0

    @Option(help: "Address to bind; only loopback addresses are accepted.")
    var host: String = "127.0.0.1"

    @Option(help: "Configuration file (YAML or JSON): apps, users, limits.")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard host == "127.0.0.1" || host == "localhost" || host == "::1" || host.hasPrefix("127.") else {
            throw ValidationError("--host must be a loopback address (127.0.0.0/8 or ::1)")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "zoom-sim")
        let simConfiguration: SimConfiguration
        if let config {
            do {
                simConfiguration = try SimConfiguration.load(path: config)
            } catch {
                FileHandle.standardError.write(Data("zoom-sim: \(error)\n".utf8))
                throw ExitCode(78)  // EX_CONFIG
            }
        } else {
            simConfiguration = .default
        }
        let host = self.host
        try await ZoomSimulator.run(configuration: simConfiguration, host: host, port: port, logger: logger) { bound in
            // One unbuffered write(2): a parent reading the pipe sees the whole line at once.
            FileHandle.standardOutput.write(Data("listening on \(host):\(bound)\n".utf8))
        }
    }
}
