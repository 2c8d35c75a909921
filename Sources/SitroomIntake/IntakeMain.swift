import Foundation
import Logging
import PosixIO
import ServiceLifecycle
import SitroomConfig
import SitroomCore
import SitroomService
import Synchronization
import UnixSignals

/// Starts sitroom-intake and runs it until SIGTERM/SIGINT (SPEC §11).
public enum IntakeMain {
    /// Validates `etc/intake.yaml` (and the integration files its Zoom routes name), printing `file:line:col:
    /// message` lines.
    /// - Returns: 0 when valid, 1 otherwise.
    public static func checkConfig(paths: DaemonPaths) -> Int32 {
        do {
            let intake = try ConfigLoader.loadIntake(etcDirectory: paths.etc)
            let count = intake.routes.count
            print(
                "\(paths.etc)/\(ConfigLoader.intakeFileName): configuration is valid (\(count) route\(count == 1 ? "" : "s"))"
            )
            return 0
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            return 1
        }
    }

    /// Runs the intake in the foreground.
    /// - Parameter onListening: also told the bound address (the executable prints it).
    /// - Returns: the exit code (sysexits: 78 bad configuration, 75 another intake runs on this var/, 73 var/run or
    ///   var/metrics cannot be made, 69 the address cannot be bound or inotify is unavailable, 0 stopped).
    public static func run(
        paths: DaemonPaths,
        logger: Logger,
        onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) async -> Int32 {
        ignoreSIGPIPE()
        umask(0o077)
        let serviceNotifier: ServiceNotifier?
        do { serviceNotifier = try ServiceNotifier.fromEnvironment() } catch {
            serviceNotifier = nil
            logger.warning(
                "NOTIFY_SOCKET is unusable; systemd will not hear from sitroom-intake",
                metadata: ["error": "\(error)"]
            )
        }
        let configuration: IntakeConfiguration
        do {
            configuration = try ConfigLoader.loadIntake(etcDirectory: paths.etc)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            logger.critical("bad configuration", metadata: ["etc": "\(paths.etc)", "errors": "\(error.errors.count)"])
            return ExitCode.config
        }
        var tls: IntakeTLSContext? = nil
        if let files = configuration.tls {
            do {
                tls = try IntakeTLSContext(files)
            } catch {
                FileHandle.standardError.write(Data("\(configuration.file): \(error)\n".utf8))
                logger.critical("bad configuration", metadata: ["etc": "\(paths.etc)", "error": "\(error)"])
                return ExitCode.config
            }
        }
        do {
            try DurableFile.makeDirectory(paths.run, mode: 0o700)
        } catch {
            logger.critical("cannot create var/run", metadata: ["run": "\(paths.run)", "error": "\(error)"])
            return ExitCode.cannotCreate
        }
        let lock: FileLock
        switch acquireProcessLock(path: paths.intakeLock, program: "sitroom-intake", logger: logger) {
        case .success(let acquired): lock = acquired
        case .failure(let exit): return exit.code
        }
        defer { lock.release() }
        if !IntakeHandler.isDirectory(paths.spool + "/new") {
            logger.warning(
                "the spool is missing; requests are answered 503 until sitroomd makes it",
                metadata: ["spool": "\(paths.spool)"]
            )
        }

        let metrics = IntakeMetrics(
            state: IntakeState(
                pid: getpid(),
                version: sitroomVersion,
                startedAt: Date().timeIntervalSince1970,
                tls: configuration.tls != nil,
                routes: configuration.routes.count
            )
        )
        let live = IntakeLive(configuration)
        let secrets = SecretCache()
        let writer = SpoolWriter(spool: paths.spool) { files, seconds in
            metrics.groupCommit(files: files, seconds: seconds)
        }
        let handler = IntakeHandler(
            live: live,
            secrets: secrets,
            writer: writer,
            spool: paths.spool,
            logger: logger,
            events: metrics
        )
        let reloader = IntakeReloader(
            paths: paths,
            live: live,
            secrets: secrets,
            tls: tls,
            metrics: metrics,
            logger: logger
        )
        let listening = ListeningFlag()
        let server = IntakeServer(handler: handler, metrics: metrics, logger: logger).makeService(
            configuration: configuration,
            tls: tls,
            onListening: { address in
                metrics.update { $0.listen = address }
                try? metrics.writeStateIfChanged(to: paths.intakeState)
                logger.info(
                    "sitroom-intake ready",
                    metadata: [
                        "version": "\(sitroomVersion)", "listen": "\(address)", "etc": "\(paths.etc)",
                        "spool": "\(paths.spool)",
                        "routes": "\(configuration.routes.keys.sorted().joined(separator: ","))",
                    ]
                )
                onListening(address)
                listening.set()
                try? serviceNotifier?.send([("READY", "1"), ("STATUS", "listening on \(address)")])
            }
        )
        let configWatcher = ConfigWatcher(etcDirectory: paths.etc, logger: logger)
        let files = FileWriterService(paths: paths, metrics: metrics, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: files),
                    .init(service: server),
                    .init(
                        service: TaskService(name: "config-watch") {
                            await cancelWhenGracefulShutdown {
                                await configWatcher.run(reload: { await reloader.reload() }, report: { _ in })
                            }
                        }
                    ),
                    .init(
                        service: TaskService(name: "sighup") {
                            await cancelWhenGracefulShutdown {
                                for await _ in await UnixSignalsSequence(trapping: .sighup) { await reloader.reload() }
                            }
                        }
                    ),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            try? serviceNotifier?.send([("STOPPING", "1"), ("STATUS", "stopped on an error: \(error)")])
            metrics.problem("stopped on an error: \(error)")
            metrics.update { $0.stopped = true }
            try? metrics.writeStateIfChanged(to: paths.intakeState)
            logger.critical(
                listening.isSet ? "stopped on an error" : "cannot listen",
                metadata: ["listen": "\(configuration.listen)", "error": "\(error)"]
            )
            return ExitCode.unavailable
        }
        try? serviceNotifier?.send([("STOPPING", "1")])
        logger.info("sitroom-intake stopped")
        return ExitCode.ok
    }
}

/// Set once the server listens (to tell a bind failure from a later one).
final class ListeningFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// Writes the metrics file every 5 s and the state file within a second of a change, and both once more on the way
/// out (the state then says `stopped`).
struct FileWriterService: Service, CustomStringConvertible {
    var description: String { "files" }
    let paths: DaemonPaths
    let metrics: IntakeMetrics
    let logger: Logger

    func run() async throws {
        var failed = false
        func write(metricsToo: Bool) {
            do {
                try metrics.writeStateIfChanged(to: paths.intakeState)
                if metricsToo { try metrics.writeMetrics(directory: paths.metrics) }
                failed = false
            } catch {
                if !failed { logger.error("cannot write the state or metrics file", metadata: ["error": "\(error)"]) }
                failed = true
            }
        }
        var tick = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            write(metricsToo: tick % 5 == 0)
            tick += 1
            try? await Task.sleep(for: .seconds(1))
            if Task.isShuttingDownGracefully { break }
        }
        metrics.update { $0.stopped = true }
        write(metricsToo: true)
    }
}

/// Reloads `etc/intake.yaml` on a change (inotify, SIGHUP): a valid file replaces the live routes, secrets and
/// limits at once; an invalid one is logged (every `file:line:col: message`) and recorded for `status`, and the
/// last good generation keeps serving. The TLS certificate and key are read again each time. `listen`, adding or
/// removing `tls`, `max_connections` and the timeouts take effect at the next start.
actor IntakeReloader {
    let paths: DaemonPaths
    let live: IntakeLive
    let secrets: SecretCache
    let tls: IntakeTLSContext?
    let metrics: IntakeMetrics
    let logger: Logger
    private var lastRejected: String?

    init(
        paths: DaemonPaths,
        live: IntakeLive,
        secrets: SecretCache,
        tls: IntakeTLSContext?,
        metrics: IntakeMetrics,
        logger: Logger
    ) {
        self.paths = paths
        self.live = live
        self.secrets = secrets
        self.tls = tls
        self.metrics = metrics
        self.logger = logger
    }

    func reload() {
        let old = live.snapshot.configuration
        let next: IntakeConfiguration
        do {
            next = try ConfigLoader.loadIntake(etcDirectory: paths.etc)
        } catch {
            let text = error.description
            metrics.reload("rejected")
            if text != lastRejected {
                for line in error.errors { logger.error("configuration error", metadata: ["error": "\(line)"]) }
                metrics.problem(
                    "etc/intake.yaml rejected, the last good one serves: \(error.errors.first?.description ?? "")"
                )
            }
            lastRejected = text
            return
        }
        lastRejected = nil
        // The certificate and key are read again whatever changed: a renewal rewrites the files, not the settings.
        if let tls, let files = next.tls, files == old.tls {
            do {
                try tls.reload(files)
            } catch {
                logger.error("cannot reload the TLS certificate; the old one serves", metadata: ["error": "\(error)"])
                metrics.problem("\(error)")
            }
        }
        guard let generation = live.apply(next) else {
            metrics.reload("unchanged")
            return
        }
        metrics.reload("applied")
        metrics.update {
            $0.generation = generation
            $0.routes = next.routes.count
        }
        var secretPaths: Set<String> = []
        for route in next.routes.values {
            switch route.authentication {
            case .bearer(let file), .pagerDutySignature(let file): secretPaths.insert(file)
            case .basic(_, let file): secretPaths.insert(file)
            case .zoomSignature(_, let file): secretPaths.insert(file)
            }
        }
        secrets.keep(only: secretPaths)
        logger.info(
            "configuration applied",
            metadata: ["generation": "\(generation)", "routes": "\(next.routes.keys.sorted().joined(separator: ","))"]
        )
        var restart: [String] = []
        if next.listen != old.listen { restart.append("listen") }
        if next.tls != old.tls { restart.append("tls") }
        if next.maxConnections != old.maxConnections { restart.append("max_connections") }
        if next.headerTimeout != old.headerTimeout { restart.append("header_timeout") }
        if next.bodyTimeout != old.bodyTimeout { restart.append("body_timeout") }
        if !restart.isEmpty {
            let message =
                "\(restart.joined(separator: ", ")) changed: restart sitroom-intake to apply (the rest is applied)"
            logger.warning("some settings apply only at start", metadata: ["keys": "\(restart.joined(separator: ","))"])
            metrics.problem(message)
        }
    }
}
