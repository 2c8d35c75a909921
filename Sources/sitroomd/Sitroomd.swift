import ArgumentParser
import Foundation
import Logging
import SitroomCore
import SitroomDaemon
import SitroomService

/// `sitroomd [--root DIR] [--etc DIR] [--var DIR] [--check-config] [--log-format F] [--log-level L]` (SPEC §2).
@main
struct Sitroomd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitroomd",
        abstract:
            "Opens a Zoom situation room for each incident that needs one and tells its responders where to join.",
        discussion: """
            Runs in the foreground and logs to standard error, one line per event. SIGHUP reloads etc/ (it is also \
            reloaded when it changes, and by `sitroomctl reload`); SIGTERM and SIGINT stop it gracefully. Control it \
            with sitroomctl through var/run/sitroom.ctl; metrics are written to var/metrics/sitroom.prom every 5 s.

            Under systemd (Type=notify) it tells the service manager READY=1 once it serves, RELOADING=1 and READY=1 \
            around each reload, STOPPING=1 when it stops, and WATCHDOG=1 every half WatchdogSec (through \
            $NOTIFY_SOCKET); log lines get the journal's <N> priority prefix when standard error is the journal \
            ($JOURNAL_STREAM). A secret file may be named $CREDENTIALS_DIRECTORY/NAME (systemd's LoadCredential=).

            Exit codes (sysexits): 0 stopped on SIGTERM/SIGINT, or --check-config found etc/ valid; 1 --check-config \
            found errors; 64 bad command-line usage; 69 a needed service is unavailable (inotify); 73 cannot create \
            or open state (var/, the LMDB store, a store written by a newer sitroomd, the control FIFO); 75 another \
            sitroomd runs on this var/; 78 bad configuration at start (every error printed as file:line:col: message).
            """,
        version: sitroomVersion
    )

    @OptionGroup var options: RootOptions

    @OptionGroup var log: LogOptions

    func run() async throws {
        let paths = options.paths
        if options.checkConfig { throw ExitCode(DaemonMain.checkConfig(paths: paths)) }
        let code = await DaemonMain.run(paths: paths, logger: log.makeLogger(label: "sitroomd"))
        throw ExitCode(code)
    }
}
