import Foundation
import SitroomCore
import SitroomService
import SitroomStore
import SitroomZoom
import Synchronization

/// sitroomd's metrics (SPEC §9): the counters and histograms that events move, and the gauges ``render(_:)`` sets
/// from the state each time the file is written (series of removed hosts then simply disappear). The storage is
/// ``MetricsRegistry`` (swift-metrics over swift-prometheus), shared with sitroom-intake.
public final class SitroomMetrics: MetricsRegistry, @unchecked Sendable {
    // Why @unchecked Sendable is sound: the registry is; `staleReadersCleared` is an Atomic.
    /// Slots freed by `mdb_reader_check`, for `status` (a Prometheus counter cannot be read back).
    private let staleReaders = Atomic<Int>(0)

    /// Bucket bounds of the provisioning latency histogram, in seconds: a room is usually ready in a second or
    /// two; minutes mean waiting for a host.
    public static let provisioningBuckets: [Double] = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]
    /// Bounds of the live room's histograms (`sitroom_meeting_first_join_seconds`, `..._assembled_seconds`), seconds
    /// from the room ready (the link sent) on: people join within minutes, or much later.
    public static let joinBuckets: [Double] = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600]
    /// Bounds of `sitroom_room_group_commit_writes` (room writes per synced commit).
    public static let groupCommitBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]

    /// A registry of ``MetricsCatalog``'s families whose counters with known label values (and the unlabeled ones)
    /// start at 0, so `increase()` sees their first event.
    public init() {
        super.init(families: MetricsCatalog.families)
        for outcome in ["applied", "duplicate", "webhook", "rejected"] {
            increment("sitroom_spool_files_total", [("outcome", outcome)], by: 0)
        }
        for outcome in ["applied", "unchanged", "rejected"] {
            increment("sitroom_config_reloads_total", [("outcome", outcome)], by: 0)
        }
        for what in ["rooms", "notices", "incidents", "audit_entries"] {
            increment("sitroom_purged_total", [("what", what)], by: 0)
        }
        for outcome in ["ok", "error"] {
            increment("sitroom_backups_total", [("outcome", outcome)], by: 0)
        }
        for name in [
            "sitroom_lmdb_stale_readers_cleared_total", "sitroom_meeting_joins_total", "sitroom_meeting_leaves_total",
        ] {
            increment(name, by: 0)
        }
    }

    /// A Zoom request's outcome (`sitroom_zoom_requests_total`); token requests also count in
    /// `sitroom_token_requests_total`.
    public func zoomCall(integration: String, _ call: ZoomCall) {
        increment(
            "sitroom_zoom_requests_total",
            [("integration", integration), ("endpoint", call.endpoint), ("outcome", call.outcome)]
        )
        if let grant = call.grant {
            increment(
                "sitroom_token_requests_total",
                [("integration", integration), ("grant", grant), ("outcome", call.outcome)]
            )
        }
    }

    /// A room became `ready`, `seconds` after its `situation_room` (or `reopened`) event was applied.
    public func roomReady(after seconds: Double) {
        observe("sitroom_room_provisioning_seconds", max(0, seconds))
    }

    /// The room provisioner committed `writes` rooms' writes in one synced LMDB transaction (group commit).
    public func groupCommit(writes: Int) {
        observe("sitroom_room_group_commit_writes", Double(writes))
    }

    /// A spool file was handled: `applied`, `duplicate`, `webhook` or `rejected`.
    public func spoolFile(_ outcome: String) {
        increment("sitroom_spool_files_total", [("outcome", outcome)])
    }

    /// A reload of etc/ ended: `applied`, `unchanged` or `rejected`.
    public func reload(_ outcome: String) {
        increment("sitroom_config_reloads_total", [("outcome", outcome)])
    }

    /// `mdb_reader_check` freed `count` reader slots of dead processes (`sitroom_lmdb_stale_readers_cleared_total`).
    public func staleReadersCleared(_ count: Int) {
        staleReaders.add(count, ordering: .relaxed)
        increment("sitroom_lmdb_stale_readers_cleared_total", by: count)
    }

    /// Reader slots freed since this process started, for `status`.
    public var staleReadersClearedTotal: Int { staleReaders.load(ordering: .relaxed) }
}

/// The metric families sitroomd writes, with their help text and type, in the order of the file.
public enum MetricsCatalog {
    /// A family: name, `counter`/`gauge`/`histogram`, help text, a histogram's buckets.
    public typealias Family = MetricFamily

    /// Every family, with the help text of its `# HELP` line.
    public static let families: [Family] = [
        Family(
            name: "sitroom_build_info",
            type: "gauge",
            help: "Always 1; the version label says which sitroomd runs."
        ),
        Family(
            name: "sitroom_start_time_seconds",
            type: "gauge",
            help: "When this sitroomd started (seconds since 1970)."
        ),
        Family(name: "sitroom_rooms", type: "gauge", help: "Rooms in the store by state."),
        Family(
            name: "sitroom_room_oldest_waiting_seconds",
            type: "gauge",
            help: "How long the longest-waiting room has waited for a host (0 when none waits)."
        ),
        Family(
            name: "sitroom_room_provisioning_seconds",
            type: "histogram",
            help: "Time from a situation_room event applied to its room ready.",
            buckets: SitroomMetrics.provisioningBuckets
        ),
        Family(
            name: "sitroom_room_group_commit_writes",
            type: "histogram",
            help: "Room writes committed together in one synced LMDB transaction (group commit).",
            buckets: SitroomMetrics.groupCommitBuckets
        ),
        Family(
            name: "sitroom_integration_state",
            type: "gauge",
            help:
                "1 for the state each integration is in (pending_authorization, active, needs_reauthorization), else 0."
        ),
        Family(
            name: "sitroom_zoom_requests_total",
            type: "counter",
            help:
                "Requests to Zoom by integration, endpoint and outcome (ok, unauthorized, rate_limited, client_error, server_error, transport_error)."
        ),
        Family(
            name: "sitroom_token_requests_total",
            type: "counter",
            help: "OAuth token requests by integration, grant type and outcome."
        ),
        Family(name: "sitroom_pool_open_rooms", type: "gauge", help: "Open rooms held by each host of a pool."),
        Family(
            name: "sitroom_pool_concurrent_meetings",
            type: "gauge",
            help: "Meetings each host may run at once (its limit)."
        ),
        Family(
            name: "sitroom_pool_creates_today",
            type: "gauge",
            help: "Meeting creates counted against each host this UTC day."
        ),
        Family(
            name: "sitroom_pool_daily_create_limit",
            type: "gauge",
            help: "Meeting creates each host may make per UTC day."
        ),
        Family(
            name: "sitroom_pool_host_available",
            type: "gauge",
            help:
                "1 when the host can take a new room now (healthy), else 0 (busy, cooling down, drained, out of quota, unusable, removed)."
        ),
        Family(
            name: "sitroom_outbox_notices",
            type: "gauge",
            help: "Notices in the outbox by state (pending, sending, sent, retrying, dead)."
        ),
        Family(name: "sitroom_spool_backlog", type: "gauge", help: "Incident files waiting in the spool's new/."),
        Family(
            name: "sitroom_lmdb_readers",
            type: "gauge",
            help: "LMDB reader-table slots in use, by any process (stale ones of dead processes until cleared)."
        ),
        Family(name: "sitroom_lmdb_reader_slots", type: "gauge", help: "LMDB reader-table size (maxreaders)."),
        Family(
            name: "sitroom_lmdb_stale_readers_cleared_total",
            type: "counter",
            help: "Reader slots of dead processes freed (mdb_reader_check), at start and every 10 seconds."
        ),
        Family(
            name: "sitroom_spool_files_total",
            type: "counter",
            help: "Spool files handled by outcome (applied, duplicate, webhook, rejected)."
        ),
        Family(
            name: "sitroom_config_generation",
            type: "gauge",
            help: "The live configuration generation (1 at start)."
        ),
        Family(
            name: "sitroom_config_last_reload_successful",
            type: "gauge",
            help: "1 when the last reload of etc/ found it valid (or none was tried), 0 when it was rejected."
        ),
        Family(
            name: "sitroom_config_last_reload_success_timestamp_seconds",
            type: "gauge",
            help: "When etc/ was last found valid: at start or at a reload (seconds since 1970)."
        ),
        Family(
            name: "sitroom_config_reloads_total",
            type: "counter",
            help: "Reloads of etc/ by outcome (applied, unchanged, rejected)."
        ),
        Family(
            name: "sitroom_purged_total",
            type: "counter",
            help: "Entries deleted by the purge (rooms, notices, incidents, audit)."
        ),
        Family(name: "sitroom_backups_total", type: "counter", help: "Backups by outcome (ok, error)."),
        Family(
            name: "sitroom_meeting_first_join_seconds",
            type: "histogram",
            help: "Time from a room ready (its link sent) to the first of its participants joining the meeting.",
            buckets: SitroomMetrics.joinBuckets
        ),
        Family(
            name: "sitroom_meeting_assembled_seconds",
            type: "histogram",
            help: "Time from a room ready to all of its participants with an email being in the meeting at once.",
            buckets: SitroomMetrics.joinBuckets
        ),
        Family(
            name: "sitroom_zoom_event_subscription_connected",
            type: "gauge",
            help: "1 while the integration's Zoom WebSocket event subscription is connected, else 0."
        ),
        Family(
            name: "sitroom_zoom_event_subscription_reconnects_total",
            type: "counter",
            help: "Connections of Zoom WebSocket event subscriptions after the first (each one after a drop)."
        ),
        Family(
            name: "sitroom_meeting_joins_total",
            type: "counter",
            help: "Participants joining sitroom's meetings, from Zoom's meeting.participant_joined events."
        ),
        Family(
            name: "sitroom_meeting_leaves_total",
            type: "counter",
            help: "Participants leaving sitroom's meetings, from Zoom's meeting.participant_left events."
        ),
    ]
}

/// What the metrics file shows besides the counters: the state at the time of writing.
public struct MetricsGauges: Sendable {
    public var startedAt: Double
    public var integrations: [(name: String, state: IntegrationState)]
    public var pool: [PoolHostSnapshot]
    public var spoolBacklog: Int
    public var generation: Int
    public var lastReloadSuccessful: Bool
    public var lastReloadSuccessAt: Double
    public var store: StoreCounts
    /// The LMDB reader table: slots in use and its size.
    public var readers: (used: Int, size: Int) = (0, 0)
    /// Seconds since 1970, for the age of the longest-waiting room.
    public var now: Double
    /// Each integration's WebSocket event subscription: connected or not.
    public var eventSubscriptions: [(integration: String, connected: Bool)] = []
}

extension SitroomMetrics {
    /// The whole metrics file: sets every gauge family of ``MetricsCatalog`` from `gauges` (series no longer in the
    /// state leave), then emits the registry, counters and histograms included.
    /// - Returns: the text, Prometheus exposition format 0.0.4.
    public func render(_ gauges: MetricsGauges) -> String {
        setGauge("sitroom_build_info", [("version", sitroomVersion)], 1)
        setGauge("sitroom_start_time_seconds", gauges.startedAt.rounded(.down))
        setGauges(
            "sitroom_rooms",
            RoomState.allCases.map { ([("state", $0.rawValue)], Double(gauges.store.rooms[$0] ?? 0)) }
        )
        setGauge(
            "sitroom_room_oldest_waiting_seconds",
            gauges.store.oldestWaitingSince.map { max(0, gauges.now - $0).rounded(.down) } ?? 0
        )
        setGauges(
            "sitroom_zoom_event_subscription_connected",
            gauges.eventSubscriptions.map { ([("integration", $0.integration)], $0.connected ? 1 : 0) }
        )
        setGauges(
            "sitroom_integration_state",
            gauges.integrations.flatMap { entry in
                IntegrationState.allCases.map {
                    ([("integration", entry.name), ("state", $0.rawValue)], entry.state == $0 ? 1 : 0)
                }
            }
        )
        let pool: [(String, (PoolHostSnapshot) -> Int)] = [
            ("sitroom_pool_open_rooms", \.openRooms), ("sitroom_pool_concurrent_meetings", \.concurrentMeetings),
            ("sitroom_pool_creates_today", \.createsToday), ("sitroom_pool_daily_create_limit", \.dailyCreateLimit),
            ("sitroom_pool_host_available", { $0.state == "healthy" ? 1 : 0 }),
        ]
        for (name, value) in pool {
            setGauges(
                name,
                gauges.pool.map { ([("integration", $0.integration), ("host", $0.host)], Double(value($0))) }
            )
        }
        setGauges(
            "sitroom_outbox_notices",
            NoticeState.allCases.map { ([("state", $0.rawValue)], Double(gauges.store.notices[$0] ?? 0)) }
        )
        setGauge("sitroom_spool_backlog", Double(gauges.spoolBacklog))
        setGauge("sitroom_lmdb_readers", Double(gauges.readers.used))
        setGauge("sitroom_lmdb_reader_slots", Double(gauges.readers.size))
        setGauge("sitroom_config_generation", Double(gauges.generation))
        setGauge("sitroom_config_last_reload_successful", gauges.lastReloadSuccessful ? 1 : 0)
        setGauge("sitroom_config_last_reload_success_timestamp_seconds", gauges.lastReloadSuccessAt.rounded(.down))
        return String(decoding: emit(), as: UTF8.self)
    }
}
