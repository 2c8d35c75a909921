import ArgumentParser
import Foundation
import SitroomCore
import SitroomIntake
import SitroomService

/// `sitroom-intake [--root DIR] [--etc DIR] [--var DIR] [--check-config] [--log-format F] [--log-level L]` (SPEC §11).
@main
struct SitroomIntakeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitroom-intake",
        abstract:
            "Receives incident webhooks over HTTP (Alertmanager, PagerDuty, Zoom, native) and puts them into sitroom's spool.",
        discussion: """
            Listens where etc/intake.yaml says (default 127.0.0.1:8470) and serves its routes. Its only power is to put \
            complete files into VAR/spool/incidents/ (tmp/, fsync, rename into new/, directory fsync); it answers 2xx \
            only after that, 503 with Retry-After when the spool cannot be written, 401/403 on credentials and \
            signatures, 400/404/405/413 as HTTP means them. It never opens sitroomd's store. GET /healthz answers \
            200 while the spool can be written. Prints `listening on HOST:PORT` once it serves.

            Runs in the foreground and logs to standard error, one line per event. SIGHUP reloads etc/intake.yaml (it \
            is also reloaded when etc/ changes); SIGTERM and SIGINT stop it after the requests in flight. Metrics go \
            to VAR/metrics/sitroom-intake.prom every 5 s; VAR/run/sitroom-intake.state is what `sitroomctl status` \
            shows of it. Under systemd (Type=notify) it says READY=1 once it listens.

            Exit codes (sysexits): 0 stopped on SIGTERM/SIGINT, or --check-config found etc/intake.yaml valid; 1 \
            --check-config found errors; 64 bad command-line usage; 69 the address cannot be bound; 73 VAR/run cannot \
            be made; 75 another sitroom-intake runs on this var/; 78 bad configuration at start (every error printed \
            as file:line:col: message).
            """,
        version: sitroomVersion
    )

    @OptionGroup var options: RootOptions

    @OptionGroup var log: LogOptions

    func run() async throws {
        let paths = options.paths
        if options.checkConfig { throw ExitCode(IntakeMain.checkConfig(paths: paths)) }
        let code = await IntakeMain.run(paths: paths, logger: log.makeLogger(label: "sitroom-intake")) { address in
            // One unbuffered write(2): a parent reading the pipe sees the whole line at once.
            FileHandle.standardOutput.write(Data("listening on \(address)\n".utf8))
        }
        throw ExitCode(code)
    }
}
