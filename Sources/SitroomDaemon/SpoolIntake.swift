import Foundation
import Logging
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomZoom

/// Reads the incident spool (SPEC §4, maildir protocol): files renamed into `new/` are parsed and applied;
/// a file moves to `cur/` only after its effect is committed to LMDB, or to `rejected/` with `NAME.error`
/// beside it saying why. Triggers: a scan at start-up, inotify on `new/`, and a periodic rescan (which also
/// covers an inotify queue overflow).
public final class SpoolIntake: Sendable {
    /// `var/spool/incidents`, holding `tmp/`, `new/`, `cur/`, `rejected/`.
    public let directory: String
    private let provisioner: RoomProvisioner
    private let logger: Logger
    private let maxFileSize: Int
    /// Seconds between rescans of `new/`.
    private let rescanInterval: Double
    /// Applies a Zoom webhook file (verified there); returns what it did.
    private let webhooks: (@Sendable (ZoomWebhookFile, Double) async throws -> String)?

    /// Counts files by outcome (`sitroom_spool_files_total`).
    private let metrics: SitroomMetrics?

    public init(
        directory: String, provisioner: RoomProvisioner, maxFileSize: Int, logger: Logger, rescanInterval: Double = 30,
        webhooks: (@Sendable (ZoomWebhookFile, Double) async throws -> String)? = nil, metrics: SitroomMetrics? = nil
    ) {
        self.metrics = metrics
        self.directory = directory
        self.provisioner = provisioner
        self.webhooks = webhooks
        self.maxFileSize = maxFileSize
        self.logger = logger
        self.rescanInterval = rescanInterval
    }

    /// Creates the spool directories (mode 0700 for the spool itself, 0770-free).
    public static func prepare(_ directory: String) throws {
        for sub in ["tmp", "new", "cur", "rejected"] {
            try DurableFile.makeDirectory("\(directory)/\(sub)", mode: 0o700)
        }
    }

    /// What makes the intake look at the spool.
    enum Trigger: Sendable {
        case names([String])
        case scan
    }

    /// Runs until cancelled: scan, then react to inotify batches and periodic rescans, one file at a time.
    /// - Parameter watcher: inotify on `new/` (made by the caller, so a failure to set it up is told at start).
    public func run(watcher: DirectoryWatcher) async throws {
        defer { watcher.stop() }
        let (triggers, continuation) = AsyncStream<Trigger>.makeStream()
        let interval = rescanInterval
        let feeders = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await batch in watcher.events {
                        if batch.contains(where: { $0.kind == .overflow }) {
                            continuation.yield(.scan)
                            continue
                        }
                        var names: [String] = []
                        for event in batch where [.movedIn, .closedWrite, .created].contains(event.kind) {
                            if let name = event.name, !names.contains(name) { names.append(name) }
                        }
                        if !names.isEmpty { continuation.yield(.names(names)) }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: .milliseconds(Int64(interval * 1000))) } catch { return }
                        continuation.yield(.scan)
                    }
                }
            }
        }
        defer { feeders.cancel() }
        try await run(triggers: triggers)
    }

    /// The intake loop over any source of triggers (tests hand in their own); starts with a scan.
    func run(triggers: some AsyncSequence<Trigger, Never>) async throws {
        await scan()
        for await trigger in triggers {
            try Task.checkCancellation()
            switch trigger {
            case .scan: await scan()
            case .names(let names): for name in names { await process(name) }
            }
        }
    }

    /// Processes every file in `new/`, oldest modification first.
    /// - Complexity: O(n log n) in the files in `new/`.
    public func scan() async {
        let newDirectory = "\(directory)/new"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: newDirectory) else { return }
        let dated = names.filter { !$0.hasPrefix(".") }.map { name -> (String, Double) in
            var info = stat()
            let time = lstat("\(newDirectory)/\(name)", &info) == 0 ? Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9 : 0
            return (name, time)
        }
        for (name, _) in dated.sorted(by: { ($0.1, $0.0) < ($1.1, $1.0) }) {
            await process(name)
        }
    }

    /// Number of files waiting in `new/`.
    public func backlog() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/new")) ?? []).filter { !$0.hasPrefix(".") }.count
    }

    /// Applies one file of `new/`, then moves it to `cur/` (or `rejected/`).
    func process(_ name: String) async {
        guard !name.hasPrefix("."), !name.contains("/") else { return }
        let path = "\(directory)/new/\(name)"
        guard FileManager.default.fileExists(atPath: path) || isSymlink(path) else { return }
        let bytes: [UInt8]
        do {
            bytes = try DurableFile.readRegularFile(path, maxSize: maxFileSize)
        } catch let refusal as ReadRefusal {
            reject(name, reason: "new/\(name): \(refusal)")
            return
        } catch {
            // Gone meanwhile (processed by a rescan) or unreadable now: leave it for the next scan.
            if FileManager.default.fileExists(atPath: path) {
                logger.warning("cannot read spool file", metadata: ["file": "\(path)", "error": "\(error)"])
            }
            return
        }
        if let webhook = ZoomWebhookFile.parse(bytes) {
            await applyWebhook(webhook, name: name, path: path)
            return
        }
        let event: IncidentEvent
        do {
            event = try IncidentEventParser.parse(bytes, file: "new/\(name)")
        } catch {
            reject(name, reason: error.description)
            return
        }
        do {
            let outcome = try await provisioner.apply(event)
            let final = try DurableFile.moveNoReplace(from: path, to: "\(directory)/cur/\(name)")
            metrics?.spoolFile(outcome.rawValue)
            logger.debug(
                "spool file done",
                metadata: ["file": "\(final)", "event.id": "\(event.eventID)", "outcome": "\(outcome.rawValue)"])
        } catch {
            logger.error(
                "cannot apply spool event; it stays in new/",
                metadata: ["file": "\(path)", "event.id": "\(event.eventID)", "error": "\(error)"])
        }
    }

    /// A Zoom webhook file: applied then moved to `cur/`, or rejected with the reason (forged, stale, ...).
    private func applyWebhook(_ webhook: ZoomWebhookFile, name: String, path: String) async {
        guard let webhooks else {
            reject(name, reason: "new/\(name): Zoom webhook files are not handled by this daemon")
            return
        }
        var info = stat()
        let modified = lstat(path, &info) == 0 ? Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9 : 0
        do {
            let outcome = try await webhooks(webhook, modified)
            let final = try DurableFile.moveNoReplace(from: path, to: "\(directory)/cur/\(name)")
            metrics?.spoolFile("webhook")
            logger.info("Zoom webhook applied", metadata: ["file": "\(final)", "outcome": "\(outcome)"])
        } catch let error as WebhookError {
            reject(name, reason: "new/\(name): Zoom webhook refused: \(error)")
        } catch {
            logger.error("cannot apply a Zoom webhook; it stays in new/", metadata: ["file": "\(path)", "error": "\(error)"])
        }
    }

    private func reject(_ name: String, reason: String) {
        do {
            let final = try DurableFile.moveNoReplace(from: "\(directory)/new/\(name)", to: "\(directory)/rejected/\(name)")
            let finalName = (final as NSString).lastPathComponent
            try DurableFile.write(
                Array((reason.hasSuffix("\n") ? reason : reason + "\n").utf8), name: "\(finalName).error",
                tmpDirectory: "\(directory)/tmp", finalDirectory: "\(directory)/rejected")
            metrics?.spoolFile("rejected")
            logger.warning("spool file rejected", metadata: ["file": "\(final)", "reason": "\(reason)"])
        } catch {
            logger.error("cannot move a rejected spool file", metadata: ["file": "\(name)", "error": "\(error)"])
        }
    }

    private func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }
}
