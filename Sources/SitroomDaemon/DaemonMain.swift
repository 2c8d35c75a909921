import Foundation
import Logging
import PosixIO
import ServiceLifecycle
import SitroomConfig
import SitroomCore
import SitroomService
import SitroomStore
import SitroomZoom
import UnixSignals

/// Starts sitroomd and runs it until SIGTERM/SIGINT.
public enum DaemonMain {
    /// Validates all of `etc/`, printing `file:line:col: message` lines (like `nginx -t`) on standard error, and
    /// `file:line:col: warning: message` lines for what is valid but probably not meant; that includes
    /// sitroom-intake's `intake.yaml` when there is one (``IntakeCheck``).
    /// - Returns: 0 when valid (warnings or not), 1 otherwise.
    public static func checkConfig(paths: DaemonPaths) -> Int32 {
        do {
            let configuration = try ConfigLoader.load(etcDirectory: paths.etc)
            for warning in configuration.warnings {
                FileHandle.standardError.write(Data((warning.description + "\n").utf8))
            }
            let count = configuration.integrations.count
            guard let intake = IntakeCheck.check(etc: paths.etc, spool: configuration.daemon.spool) else { return 1 }
            print("\(paths.etc): configuration is valid (\(count) integration\(count == 1 ? "" : "s")\(intake))")
            return 0
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            return 1
        }
    }

    /// Runs the daemon in the foreground.
    /// - Returns: the exit code (``ExitCode``).
    public static func run(paths: DaemonPaths, logger: Logger) async -> Int32 {
        ignoreSIGPIPE()
        umask(0o077)
        // systemd's notification socket (Type=notify); without it nothing is sent.
        var serviceNotifier: ServiceNotifier? = nil
        do { serviceNotifier = try ServiceNotifier.fromEnvironment() } catch {
            logger.warning(
                "NOTIFY_SOCKET is unusable; systemd will not hear from sitroomd",
                metadata: ["error": "\(error)"]
            )
        }
        do {
            try DurableFile.makeDirectory(paths.varDirectory, mode: 0o755)
            try DurableFile.makeDirectory(paths.store, mode: 0o700)
            try DurableFile.makeDirectory(paths.run, mode: 0o700)
            try SpoolIntake.prepare(paths.spool)
            for sub in ["tmp", "new", "cur"] { try DurableFile.makeDirectory("\(paths.mail)/\(sub)", mode: 0o700) }
            for sub in ["tmp", "new"] { try DurableFile.makeDirectory("\(paths.sms)/\(sub)", mode: 0o700) }
            try Housekeeper.prepare(paths.metrics)
        } catch {
            logger.critical(
                "cannot create the state directories",
                metadata: ["var": "\(paths.varDirectory)", "error": "\(error)"]
            )
            return ExitCode.cannotCreate
        }
        let lock: FileLock
        switch acquireProcessLock(path: paths.lock, program: "sitroomd", logger: logger) {
        case .success(let acquired): lock = acquired
        case .failure(let exit): return exit.code
        }
        defer { lock.release() }

        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(etcDirectory: paths.etc)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            logger.critical("bad configuration", metadata: ["etc": "\(paths.etc)", "errors": "\(error.errors.count)"])
            return ExitCode.config
        }

        logWarnings(configuration, logger: logger)

        let store: Store
        do {
            let growthLogger = logger
            store = try Store(
                directory: paths.store,
                mapSize: configuration.daemon.storeMapSize,
                onMapGrowth: { old, new in
                    growthLogger.notice(
                        "LMDB map grown",
                        metadata: ["store": "\(paths.store)", "old_bytes": "\(old)", "new_bytes": "\(new)"]
                    )
                }
            )
        } catch {
            logger.critical("cannot open the store", metadata: ["store": "\(paths.store)", "error": "\(error)"])
            return ExitCode.cannotCreate
        }
        if store.staleReadersClearedAtOpen > 0 {
            logger.warning(
                "stale LMDB readers cleared",
                metadata: [
                    "store": "\(paths.store)", "cleared": "\(store.staleReadersClearedAtOpen)",
                    "detail": "reader slots of processes that died inside a read transaction",
                ]
            )
        }
        for step in store.migrated {
            logger.notice("store schema migrated", metadata: ["store": "\(paths.store)", "step": "\(step)"])
        }

        let control: ControlFIFO
        let watcher: DirectoryWatcher
        let inbox = SpoolIntake.Inbox()
        do {
            if let group = configuration.daemon.controlGroup {
                // SPEC §7: the FIFO 0620 for the group, in a directory it may enter but not list.
                control = try ControlFIFO(path: paths.controlFIFO, mode: 0o620, directoryMode: 0o710)
                guard let entry = getgrnam(group) else {
                    throw SitroomError(.badConfig, "control.group: no group named \(group)")
                }
                for path in [paths.run, paths.controlFIFO] where chown(path, uid_t.max, entry.pointee.gr_gid) != 0 {
                    throw SitroomError(
                        .cannotCreateState,
                        "chown \(path) to group \(group): \(String(cString: strerror(errno)))"
                    )
                }
                _ = chmod(paths.controlFIFO, 0o620)  // mkfifo's mode went through the umask
            } else {
                control = try ControlFIFO(path: paths.controlFIFO)
            }
        } catch {
            logger.critical(
                "cannot create the control FIFO",
                metadata: ["fifo": "\(paths.controlFIFO)", "error": "\(error)"]
            )
            return ExitCode.cannotCreate
        }
        do {
            // Batches go straight into the intake's inbox from the watcher's thread; files arriving while sitroomd
            // starts wait there. In a storm the watcher reads at most every millisecond (a batch of many files, not
            // a wake-up per file); a file after a quiet spell is read at once.
            watcher = try DirectoryWatcher(directories: ["\(paths.spool)/new"], coalescing: 0.001) {
                SpoolIntake.post($0, to: inbox)
            }
        } catch {
            logger.critical("cannot watch the spool", metadata: ["spool": "\(paths.spool)", "error": "\(error)"])
            return ExitCode.unavailable
        }

        let http = ZoomHTTPClient()
        defer { http.shutdown() }
        let metrics = SitroomMetrics()
        let clock = SystemWallClock()
        let core: DaemonCore
        do {
            core = try await DaemonCore(
                paths: paths,
                configuration: configuration,
                store: store,
                http: http,
                clock: clock,
                logger: logger,
                metrics: metrics,
                serviceNotifier: serviceNotifier
            )
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            return ExitCode.cannotCreate
        }
        let intake = SpoolIntake(
            directory: paths.spool,
            provisioner: core.provisioner,
            zoomWebhooks: ZoomWebhookApplier(core: core),
            logger: logger,
            metrics: metrics
        )
        await core.setSpoolBacklog { intake.backlog() }
        await core.setSpoolRejections { intake.rejections(now: $0) }
        let server = ControlServer(
            control: control,
            daemon: core,
            logger: logger,
            groupMode: configuration.daemon.controlGroup != nil
        )
        let configWatcher = ConfigWatcher(etcDirectory: paths.etc, logger: logger)
        let housekeeper = Housekeeper(
            core: core,
            store: store,
            metrics: metrics,
            metricsDirectory: paths.metrics,
            clock: clock,
            logger: logger,
            runDirectory: paths.run
        )
        if store.staleReadersClearedAtOpen > 0 {
            metrics.staleReadersCleared(store.staleReadersClearedAtOpen)
        }
        await housekeeper.writeMetrics()

        var services: [any Service] = [
            TaskService(name: "spool") {
                try await cancelWhenGracefulShutdown { try await intake.run(watcher: watcher, inbox: inbox) }
            },
            TaskService(name: "control") { await cancelWhenGracefulShutdown { await server.run() } },
            TaskService(name: "config-watch") {
                await cancelWhenGracefulShutdown {
                    await configWatcher.run(
                        reload: { _ = await core.reload() },
                        report: { await core.setConfigWatch($0) }
                    )
                }
            },
            TaskService(name: "sighup") {
                await cancelWhenGracefulShutdown {
                    for await _ in await UnixSignalsSequence(trapping: .sighup) { _ = await core.reload() }
                }
            },
            TaskService(name: "rooms-timer") {
                // Waiting rooms are served when hosts come back (cool-downs end, the UTC day turns) and admins
                // are told about rooms that wait too long.
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: .seconds(5)) } catch { return }
                        await core.provisioner.tick()
                        await core.notifier.tick()
                    }
                }
            },
            TaskService(name: "housekeeping") {
                // The metrics file every 5 s (and once more on the way out), the purge a minute after the start
                // and then every hour.
                await cancelWhenGracefulShutdown { await housekeeper.run() }
            },
            TaskService(name: "actors") {
                // The actors work from their own tasks; on shutdown they stop taking work. Everything they
                // hold is durable in LMDB, so in-flight Zoom calls are safely parked and resumed at start.
                try? await gracefulShutdown()
                await core.notifyService([("STOPPING", "1"), ("STATUS", "stopping")])
                await core.meetingEvents.stop()
                await core.provisioner.stop()
                await core.notifier.stop()
            },
        ]
        if let interval = ServiceNotifier.watchdogInterval(), serviceNotifier != nil {
            // WatchdogSec=: a ping every half interval, sent only when every actor answers.
            services.append(
                TaskService(name: "watchdog") {
                    await cancelWhenGracefulShutdown {
                        while !Task.isCancelled {
                            await core.heartbeat()
                            await core.notifyService([("WATCHDOG", "1")])
                            do { try await Task.sleep(for: .milliseconds(Int64(interval * 500))) } catch { return }
                        }
                    }
                }
            )
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info(
            "sitroomd ready",
            metadata: [
                "version": "\(sitroomVersion)", "etc": "\(paths.etc)", "var": "\(paths.varDirectory)",
                "integrations": "\(configuration.integrations.keys.sorted().joined(separator: ","))",
            ]
        )
        // The FIFO, the spool watch and the store are up: systemd may start what depends on sitroomd.
        await core.notifyService([("READY", "1"), ("STATUS", await core.serviceStatus())])
        do {
            try await group.run()
        } catch {
            await core.notifyService([("STOPPING", "1"), ("STATUS", "stopped on an error: \(error)")])
            logger.critical("stopped on an error", metadata: ["error": "\(error)"])
            return ExitCode.unavailable
        }
        logger.info("sitroomd stopped")
        return ExitCode.ok
    }
}

/// Logs each warning of a generation (``ConfigWarning``) at warning level; they do not block it.
func logWarnings(_ configuration: Configuration, logger: Logger) {
    for warning in configuration.warnings {
        logger.warning(
            "configuration warning",
            metadata: ["file": "\(warning.file)", "line": "\(warning.line)", "warning": "\(warning.message)"]
        )
    }
}
