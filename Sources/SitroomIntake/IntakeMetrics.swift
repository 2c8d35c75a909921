import Foundation
import PosixIO
import SitroomCore
import SitroomService
import Synchronization

/// sitroom-intake's counters and histograms, and its state for sitroomd's `status` (SPEC §9): the metrics file
/// `var/metrics/sitroom-intake.prom` (node_exporter's textfile collector) and the state file
/// `var/run/sitroom-intake.state` (``IntakeState``).
public final class IntakeMetrics: MetricsRegistry, IntakeEvents, @unchecked Sendable {
    // Why @unchecked Sendable is sound: the registry is Sendable; `state` and `dirty` sit in a Mutex.
    private let status: Mutex<(state: IntakeState, dirty: Bool)>
    private let connections = Atomic<Int>(0)

    /// Bounds of the spool write latency histogram, in seconds (request in the queue to file and directory fsynced).
    public static let writeBuckets: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    /// Bounds of the files-per-group-commit histogram.
    public static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]

    /// Every family of the file, with the help text of its `# HELP` line.
    public static let families: [MetricFamily] = [
        MetricFamily(
            name: "sitroom_intake_build_info",
            type: "gauge",
            help: "Always 1; the version label says which sitroom-intake runs."
        ),
        MetricFamily(
            name: "sitroom_intake_start_time_seconds",
            type: "gauge",
            help: "When this sitroom-intake started (seconds since 1970)."
        ),
        MetricFamily(
            name: "sitroom_intake_requests_total",
            type: "counter",
            help: "Requests by route (the configured path, /healthz, or other) and answer (HTTP status code)."
        ),
        MetricFamily(
            name: "sitroom_intake_spool_write_seconds",
            type: "histogram",
            help: "Time from a request's file handed to the spool writer to it and new/ fsynced (group commit).",
            buckets: writeBuckets
        ),
        MetricFamily(
            name: "sitroom_intake_group_commit_files",
            type: "histogram",
            help: "Files made durable together, with one directory fsync (group commit).",
            buckets: batchBuckets
        ),
        MetricFamily(name: "sitroom_intake_open_connections", type: "gauge", help: "Connections open now."),
        MetricFamily(
            name: "sitroom_intake_spool_writable",
            type: "gauge",
            help:
                "1 when the last write into the spool succeeded (or none was tried), 0 when it failed (answers are 503)."
        ),
        MetricFamily(
            name: "sitroom_intake_config_generation",
            type: "gauge",
            help: "The live configuration generation (1 at start)."
        ),
        MetricFamily(
            name: "sitroom_intake_config_reloads_total",
            type: "counter",
            help: "Reloads of etc/intake.yaml by outcome (applied, unchanged, rejected)."
        ),
    ]

    /// - Parameter state: the state at start (pid, version, start time, routes).
    public init(state: IntakeState) {
        status = Mutex((state, true))
        super.init(families: Self.families)
        for outcome in ["applied", "unchanged", "rejected"] {
            increment("sitroom_intake_config_reloads_total", [("outcome", outcome)], by: 0)
        }
    }

    // MARK: Events

    /// A request was answered.
    public func answered(route: String, status code: Int) {
        increment("sitroom_intake_requests_total", [("route", route), ("code", "\(code)")])
    }

    /// A group commit ended: `files` files, each waiting `seconds`.
    public func groupCommit(files: Int, seconds: [Double]) {
        observe("sitroom_intake_group_commit_files", Double(files))
        for value in seconds { observe("sitroom_intake_spool_write_seconds", value) }
    }

    public func connectionOpened() { connections.add(1, ordering: .relaxed) }
    public func connectionClosed() { connections.subtract(1, ordering: .relaxed) }

    public func spoolWrite(succeeded: Bool) {
        status.withLock {
            if $0.state.spoolWritable != succeeded {
                $0.state.spoolWritable = succeeded
                $0.dirty = true
            }
        }
    }

    public var spoolWritable: Bool { status.withLock { $0.state.spoolWritable } }

    public func problem(_ message: String) {
        status.withLock {
            // The same problem again (every request of an outage) is one entry, with its latest time.
            if let last = $0.state.lastErrors.last, last.message == message {
                $0.state.lastErrors[$0.state.lastErrors.count - 1].at = Date().timeIntervalSince1970
            } else {
                $0.state.record(message, at: Date().timeIntervalSince1970)
            }
            $0.dirty = true
        }
    }

    /// Changes the state (listening address, generation, ...).
    public func update(_ change: (inout IntakeState) -> Void) {
        status.withLock {
            change(&$0.state)
            $0.dirty = true
        }
    }

    /// A reload ended.
    public func reload(_ outcome: String) {
        increment("sitroom_intake_config_reloads_total", [("outcome", outcome)])
    }

    public var state: IntakeState { status.withLock { $0.state } }

    // MARK: Files

    /// Writes the state file when it changed since the last write.
    /// - Throws: what ``IntakeState/write(to:)`` throws (the change stays pending).
    public func writeStateIfChanged(to path: String) throws {
        let (state, dirty) = status.withLock { ($0.state, $0.dirty) }
        guard dirty else { return }
        try state.write(to: path)
        status.withLock { if $0.state == state { $0.dirty = false } }
    }

    /// The metrics file's text: sets the gauges from the state, then emits the registry.
    /// - Returns: Prometheus exposition format 0.0.4.
    public func render() -> String {
        let state = self.state
        setGauge("sitroom_intake_build_info", [("version", sitroomVersion)], 1)
        setGauge("sitroom_intake_start_time_seconds", state.startedAt.rounded(.down))
        setGauge("sitroom_intake_open_connections", Double(connections.load(ordering: .relaxed)))
        setGauge("sitroom_intake_spool_writable", state.spoolWritable ? 1 : 0)
        setGauge("sitroom_intake_config_generation", Double(state.generation))
        return String(decoding: emit(), as: UTF8.self)
    }

    /// The metrics file's name in `var/metrics/`.
    public static let fileName = "sitroom-intake.prom"

    /// Writes `var/metrics/sitroom-intake.prom` (into `.tmp/`, fsynced, renamed; mode 0644 for node_exporter).
    /// - Throws: `PosixError`.
    public func writeMetrics(directory: String) throws {
        try DurableFile.makeDirectory(directory + "/.tmp", mode: 0o700)
        try DurableFile.write(
            Array(render().utf8),
            name: Self.fileName,
            tmpDirectory: directory + "/.tmp",
            finalDirectory: directory,
            mode: 0o644
        )
    }
}
