import Foundation
import SitroomCore
import SitroomService
import SitroomStore
import SitroomZoom

/// The counters and the histogram that events move (SPEC §9), kept in memory for ``MetricsFile``.
///
/// Gauges (rooms by state, pool usage, outbox depth, ...) are not kept here: they are read from the actors and
/// the store each time the file is written (series of removed hosts then simply disappear). The storage is
/// ``MetricsRegistry``, shared with sitroom-intake.
public final class SitroomMetrics: MetricsRegistry, @unchecked Sendable {
    /// Bucket bounds of the provisioning latency histogram, in seconds: a room is usually ready in a second or
    /// two; minutes mean waiting for a host.
    public static let provisioningBuckets: [Double] = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]
    /// Bounds of the live room's histograms (`sitroom_meeting_first_join_seconds`, `..._assembled_seconds`), seconds
    /// from the room ready (the link sent) on: people join within minutes, or much later.
    public static let joinBuckets: [Double] = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600]
    /// Bounds of `sitroom_room_group_commit_writes` (room writes per synced commit).
    public static let groupCommitBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]

    /// A registry whose counters with known label values start at 0, so `increase()` sees their first event.
    public override init() {
        super.init()
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
        observe("sitroom_room_provisioning_seconds", max(0, seconds), bounds: Self.provisioningBuckets)
    }

    /// The room provisioner committed `writes` rooms' writes in one synced LMDB transaction (group commit).
    public func groupCommit(writes: Int) {
        observe("sitroom_room_group_commit_writes", Double(writes), bounds: Self.groupCommitBuckets)
    }

    /// A spool file was handled: `applied`, `duplicate`, `webhook` or `rejected`.
    public func spoolFile(_ outcome: String) {
        increment("sitroom_spool_files_total", [("outcome", outcome)])
    }

    /// A reload of etc/ ended: `applied`, `unchanged` or `rejected`.
    public func reload(_ outcome: String) {
        increment("sitroom_config_reloads_total", [("outcome", outcome)])
    }
}

/// The metric families sitroomd writes, with their help text and type, in the order of the file.
public enum MetricsCatalog {
    /// A family: name, `counter`/`gauge`/`histogram`, help text.
    public typealias Family = MetricFamily

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
            help: "Time from a situation_room event applied to its room ready."
        ),
        Family(
            name: "sitroom_room_group_commit_writes",
            type: "histogram",
            help: "Room writes committed together in one synced LMDB transaction (group commit)."
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
            name: "sitroom_lmdb_readers", type: "gauge",
            help: "LMDB reader-table slots in use, by any process (stale ones of dead processes until cleared)."),
        Family(name: "sitroom_lmdb_reader_slots", type: "gauge", help: "LMDB reader-table size (maxreaders)."),
        Family(
            name: "sitroom_lmdb_stale_readers_cleared_total", type: "counter",
            help: "Reader slots of dead processes freed (mdb_reader_check), at start and every 10 seconds."),
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
            name: "sitroom_meeting_first_join_seconds", type: "histogram",
            help: "Time from a room ready (its link sent) to the first of its participants joining the meeting."),
        Family(
            name: "sitroom_meeting_assembled_seconds", type: "histogram",
            help: "Time from a room ready to all of its participants with an email being in the meeting at once."),
        Family(
            name: "sitroom_zoom_event_subscription_connected", type: "gauge",
            help: "1 while the integration's Zoom WebSocket event subscription is connected, else 0."),
        Family(
            name: "sitroom_zoom_event_subscription_reconnects_total", type: "counter",
            help: "Connections of Zoom WebSocket event subscriptions after the first (each one after a drop)."),
        Family(
            name: "sitroom_meeting_joins_total", type: "counter",
            help: "Participants joining sitroom's meetings, from Zoom's meeting.participant_joined events."),
        Family(
            name: "sitroom_meeting_leaves_total", type: "counter",
            help: "Participants leaving sitroom's meetings, from Zoom's meeting.participant_left events."),
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
    /// The whole metrics file: every family of ``MetricsCatalog``, counters from this registry, gauges from
    /// `gauges`. Families whose series depend on events (a counter nothing moved yet) have no samples.
    public func render(_ gauges: MetricsGauges) -> String {
        let (counters, histograms) = snapshot()
        var out = PrometheusText()
        func sorted(_ series: [Labels: Double]) -> [(Labels, Double)] {
            series.sorted { $0.key.pairs.map { $0.1 }.lexicographicallyPrecedes($1.key.pairs.map { $0.1 }) }
        }
        for family in MetricsCatalog.families {
            out.family(family)
            let name = family.name
            switch name {
            case "sitroom_build_info":
                out.sample(name, [("version", sitroomVersion)], 1)
            case "sitroom_start_time_seconds":
                out.sample(name, [], gauges.startedAt.rounded(.down))
            case "sitroom_rooms":
                for state in RoomState.allCases {
                    out.sample(name, [("state", state.rawValue)], Double(gauges.store.rooms[state] ?? 0))
                }
            case "sitroom_room_oldest_waiting_seconds":
                out.sample(
                    name,
                    [],
                    gauges.store.oldestWaitingSince.map { max(0, gauges.now - $0).rounded(.down) } ?? 0
                )
            case "sitroom_room_provisioning_seconds", "sitroom_room_group_commit_writes":
                let bounds = name == "sitroom_room_provisioning_seconds" ? Self.provisioningBuckets : Self.groupCommitBuckets
                out.histogram(name, [], histograms[name]?[Labels([])] ?? Histogram(bounds: bounds))
            case "sitroom_meeting_first_join_seconds", "sitroom_meeting_assembled_seconds":
                out.histogram(name, [], histograms[name]?[Labels([])] ?? Histogram(bounds: Self.joinBuckets))
            case "sitroom_zoom_event_subscription_connected":
                for (integration, connected) in gauges.eventSubscriptions {
                    out.sample(name, [("integration", integration)], connected ? 1 : 0)
                }
            case "sitroom_integration_state":
                for entry in gauges.integrations {
                    for state in IntegrationState.allCases {
                        out.sample(
                            name,
                            [("integration", entry.name), ("state", state.rawValue)],
                            entry.state == state ? 1 : 0
                        )
                    }
                }
            case "sitroom_pool_open_rooms", "sitroom_pool_concurrent_meetings", "sitroom_pool_creates_today",
                "sitroom_pool_daily_create_limit", "sitroom_pool_host_available":
                for host in gauges.pool {
                    let value: Int
                    switch name {
                    case "sitroom_pool_open_rooms": value = host.openRooms
                    case "sitroom_pool_concurrent_meetings": value = host.concurrentMeetings
                    case "sitroom_pool_creates_today": value = host.createsToday
                    case "sitroom_pool_daily_create_limit": value = host.dailyCreateLimit
                    default: value = host.state == "healthy" ? 1 : 0
                    }
                    out.sample(name, [("integration", host.integration), ("host", host.host)], Double(value))
                }
            case "sitroom_outbox_notices":
                for state in NoticeState.allCases {
                    out.sample(name, [("state", state.rawValue)], Double(gauges.store.notices[state] ?? 0))
                }
            case "sitroom_spool_backlog":
                out.sample(name, [], Double(gauges.spoolBacklog))
            case "sitroom_lmdb_readers":
                out.sample(name, [], Double(gauges.readers.used))
            case "sitroom_lmdb_reader_slots":
                out.sample(name, [], Double(gauges.readers.size))
            case "sitroom_config_generation":
                out.sample(name, [], Double(gauges.generation))
            case "sitroom_config_last_reload_successful":
                out.sample(name, [], gauges.lastReloadSuccessful ? 1 : 0)
            case "sitroom_config_last_reload_success_timestamp_seconds":
                out.sample(name, [], gauges.lastReloadSuccessAt.rounded(.down))
            default:
                for (labels, value) in sorted(counters[name] ?? [:]) { out.sample(name, labels.pairs, value) }
            }
        }
        return out.output
    }
}
