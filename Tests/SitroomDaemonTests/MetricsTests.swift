import Logging
import SitroomCore
import SitroomStore
import SitroomTestFixtures
import SitroomZoom
import Testing

@testable import SitroomDaemon
@testable import SitroomService

/// The metrics file's text (Prometheus exposition format 0.0.4, from swift-prometheus) and the log handler's line
/// rules. The text is read by prometheus_client's parser and `promtool check metrics` here and in the end-to-end tests.
@Suite("metrics text and log lines")
struct MetricsTests {
    func gauges(now: Double = 1_800_000_100) -> MetricsGauges {
        MetricsGauges(
            startedAt: 1_800_000_000.5,
            integrations: [(name: "zoom-main", state: .needsReauthorization)],
            pool: [
                PoolHostSnapshot(
                    integration: "zoom-main",
                    host: "bridge-1",
                    user: "b1@example.com",
                    openRooms: 1,
                    concurrentMeetings: 1,
                    createsToday: 7,
                    dailyCreateLimit: 100,
                    state: "busy",
                    detail: "1/1 meetings open"
                )
            ],
            spoolBacklog: 3,
            generation: 2,
            lastReloadSuccessful: false,
            lastReloadSuccessAt: 1_800_000_050,
            store: StoreCounts(
                rooms: [.ready: 1, .waiting: 2],
                oldestWaitingSince: now - 42.7,
                notices: [.dead: 1, .sent: 5]
            ),
            now: now
        )
    }

    func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    /// Families with no series until an event or a state adds one: counters whose labels are only known then, and
    /// the event subscriptions (none in ``gauges(now:)``).
    static let eventFamilies: Set<String> = [
        "sitroom_zoom_requests_total", "sitroom_token_requests_total",
        "sitroom_zoom_event_subscription_reconnects_total", "sitroom_zoom_event_subscription_connected",
    ]

    @Test("every family has HELP and TYPE once, before its samples; gauges come from the state")
    func families() {
        let text = SitroomMetrics().render(gauges())
        let all = lines(text)
        for family in MetricsCatalog.families {
            let types = all.filter { $0.hasPrefix("# TYPE \(family.name) ") }
            if Self.eventFamilies.contains(family.name) {
                #expect(types.isEmpty, "\(family.name) has no series yet")
                continue
            }
            #expect(types == ["# TYPE \(family.name) \(family.type)"])
            let help = all.firstIndex(of: "# HELP \(family.name) \(family.help)")
            let type = all.firstIndex(of: "# TYPE \(family.name) \(family.type)")
            let samples = all.indices.filter { index in
                ["{", " ", "_"].contains { all[index].hasPrefix(family.name + $0) }
            }
            #expect(help != nil && type == help.map { $0 + 1 }, "\(family.name): HELP, then TYPE")
            #expect(!samples.isEmpty, "\(family.name) has samples")
            // The family's lines are together, right after its TYPE line.
            if let type { #expect(samples == Array(type + 1..<type + 1 + samples.count), "\(family.name)") }
        }
        // Gauges print as swift-prometheus writes a Double; counters as integers.
        #expect(all.contains("sitroom_build_info{version=\"\(sitroomVersion)\"} 1.0"))
        #expect(all.contains("sitroom_start_time_seconds 1800000000.0"))
        #expect(all.contains("sitroom_rooms{state=\"ready\"} 1.0"))
        #expect(all.contains("sitroom_rooms{state=\"failed\"} 0.0"))
        #expect(all.contains("sitroom_room_oldest_waiting_seconds 42.0"))
        #expect(
            all.contains("sitroom_integration_state{integration=\"zoom-main\",state=\"needs_reauthorization\"} 1.0")
        )
        #expect(all.contains("sitroom_integration_state{integration=\"zoom-main\",state=\"active\"} 0.0"))
        #expect(all.contains("sitroom_pool_open_rooms{integration=\"zoom-main\",host=\"bridge-1\"} 1.0"))
        #expect(all.contains("sitroom_pool_creates_today{integration=\"zoom-main\",host=\"bridge-1\"} 7.0"))
        #expect(all.contains("sitroom_pool_host_available{integration=\"zoom-main\",host=\"bridge-1\"} 0.0"))
        #expect(all.contains("sitroom_outbox_notices{state=\"dead\"} 1.0"))
        #expect(all.contains("sitroom_outbox_notices{state=\"pending\"} 0.0"))
        #expect(all.contains("sitroom_spool_backlog 3.0"))
        #expect(all.contains("sitroom_config_generation 2.0"))
        #expect(all.contains("sitroom_config_last_reload_successful 0.0"))
        #expect(all.contains("sitroom_config_last_reload_success_timestamp_seconds 1800000050.0"))
        // Counters with known labels start at 0, and so do the unlabeled ones.
        #expect(all.contains("sitroom_spool_files_total{outcome=\"rejected\"} 0"))
        #expect(all.contains("sitroom_config_reloads_total{outcome=\"applied\"} 0"))
        #expect(all.contains("sitroom_meeting_joins_total 0"))
        // Histograms exist before their first observation, with the catalog's buckets.
        #expect(all.contains("sitroom_room_group_commit_writes_bucket{le=\"256.0\"} 0"))
        #expect(all.contains("sitroom_meeting_first_join_seconds_bucket{le=\"3600.0\"} 0"))
    }

    @Test("counters and the histogram move with events")
    func counters() {
        let metrics = SitroomMetrics()
        metrics.zoomCall(
            integration: "zoom-main",
            ZoomCall(endpoint: "token", grant: "account_credentials", status: 200)
        )
        metrics.zoomCall(integration: "zoom-main", ZoomCall(endpoint: "create_meeting", grant: nil, status: 201))
        metrics.zoomCall(integration: "zoom-main", ZoomCall(endpoint: "create_meeting", grant: nil, status: 503))
        metrics.zoomCall(integration: "zoom-main", ZoomCall(endpoint: "create_meeting", grant: nil, status: nil))
        metrics.roomReady(after: 0.7)
        metrics.roomReady(after: 45)
        metrics.spoolFile("applied")
        metrics.reload("rejected")
        metrics.staleReadersCleared(2)
        metrics.staleReadersCleared(1)
        let all = lines(metrics.render(gauges()))
        #expect(
            all.contains(
                "sitroom_zoom_requests_total{integration=\"zoom-main\",endpoint=\"create_meeting\",outcome=\"ok\"} 1"
            )
        )
        #expect(
            all.contains(
                "sitroom_zoom_requests_total{integration=\"zoom-main\",endpoint=\"create_meeting\",outcome=\"server_error\"} 1"
            )
        )
        #expect(
            all.contains(
                "sitroom_zoom_requests_total{integration=\"zoom-main\",endpoint=\"create_meeting\",outcome=\"transport_error\"} 1"
            )
        )
        #expect(
            all.contains(
                "sitroom_token_requests_total{integration=\"zoom-main\",grant=\"account_credentials\",outcome=\"ok\"} 1"
            )
        )
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"0.5\"} 0"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"1.0\"} 1"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"30.0\"} 1"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"60.0\"} 2"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"+Inf\"} 2"))
        #expect(all.contains("sitroom_room_provisioning_seconds_sum 45.7"))
        #expect(all.contains("sitroom_room_provisioning_seconds_count 2"))
        #expect(all.contains("sitroom_spool_files_total{outcome=\"applied\"} 1"))
        #expect(all.contains("sitroom_config_reloads_total{outcome=\"rejected\"} 1"))
        #expect(all.contains("sitroom_lmdb_stale_readers_cleared_total 3"))
        #expect(metrics.staleReadersClearedTotal == 3)
        // Each registry is its own: a second one saw none of this.
        #expect(lines(SitroomMetrics().render(gauges())).contains("sitroom_spool_files_total{outcome=\"applied\"} 0"))
    }

    @Test("the series of a removed host or integration leave the file at the next write")
    func removedSeries() {
        let metrics = SitroomMetrics()
        var state = gauges()
        var second = state.pool[0]
        second.host = "bridge-2"
        state.pool.append(second)
        state.integrations.append((name: "zoom-old", state: .active))
        state.eventSubscriptions = [(integration: "zoom-main", connected: true)]
        let before = metrics.render(state)
        #expect(before.contains("sitroom_pool_open_rooms{integration=\"zoom-main\",host=\"bridge-2\"} 1.0"))
        #expect(before.contains("sitroom_integration_state{integration=\"zoom-old\",state=\"active\"} 1.0"))
        #expect(before.contains("sitroom_zoom_event_subscription_connected{integration=\"zoom-main\"} 1.0"))
        let after = lines(metrics.render(gauges()))
        #expect(!after.contains { $0.contains("bridge-2") || $0.contains("zoom-old") })
        #expect(after.contains("sitroom_pool_open_rooms{integration=\"zoom-main\",host=\"bridge-1\"} 1.0"))
        // A family left with no series leaves altogether (HELP and TYPE too).
        #expect(!after.contains { $0.contains("sitroom_zoom_event_subscription_connected") })
    }

    @Test("label values are escaped as the exposition format says; the text parses with prometheus_client and promtool")
    func realParsers() throws {
        let metrics = SitroomMetrics()
        var state = gauges()
        state.pool[0].host = "a\"b\\c\nd"
        metrics.zoomCall(integration: "zoom-main", ZoomCall(endpoint: "create_meeting", grant: nil, status: 201))
        metrics.roomReady(after: 3)
        let text = metrics.render(state)
        #expect(lines(text).contains("sitroom_pool_open_rooms{integration=\"zoom-main\",host=\"a\\\"b\\\\c\\nd\"} 1.0"))
        let samples = try PrometheusParser.samples(text: text)
        #expect(samples["sitroom_pool_open_rooms{host=\"a\"b\\c\nd\",integration=\"zoom-main\"}"] == 1)
        #expect(samples["sitroom_build_info{version=\"\(sitroomVersion)\"}"] == 1)
        #expect(samples["sitroom_room_provisioning_seconds_bucket{le=\"5.0\"}"] == 1)
        #expect(samples["sitroom_room_provisioning_seconds_sum"] == 3)
        #expect(
            samples["sitroom_zoom_requests_total{endpoint=\"create_meeting\",integration=\"zoom-main\",outcome=\"ok\"}"]
                == 1
        )
        if let check = try PrometheusParser.promtoolCheck(text: text) {
            #expect(check.code == 0, "promtool check metrics: \(check.out)")
        }
    }

    @Test(
        "Zoom outcomes",
        arguments: [
            (200, "ok"), (204, "ok"), (401, "unauthorized"), (429, "rate_limited"), (404, "client_error"),
            (502, "server_error"),
        ]
    )
    func outcomes(status: Int, outcome: String) {
        #expect(ZoomCall(endpoint: "get_meeting", grant: nil, status: status).outcome == outcome)
    }

    @Test("log values with spaces, quotes or line breaks are quoted and escaped: one event, one line")
    func logfmt() {
        #expect(StderrLogHandler.logfmtValue("INC-1") == "INC-1")
        #expect(StderrLogHandler.logfmtValue("a b") == "\"a b\"")
        #expect(StderrLogHandler.logfmtValue("line1\nline2\r\nx=\"y\"") == "\"line1\\nline2\\r\\nx=\\\"y\\\"\"")
        #expect(StderrLogHandler.logfmtValue("") == "\"\"")
    }

    @Test("journald priorities follow the level (sd-daemon(3))")
    func priorities() {
        #expect(StderrLogHandler.syslogPriority(.debug) == 7)
        #expect(StderrLogHandler.syslogPriority(.info) == 6)
        #expect(StderrLogHandler.syslogPriority(.notice) == 5)
        #expect(StderrLogHandler.syslogPriority(.warning) == 4)
        #expect(StderrLogHandler.syslogPriority(.error) == 3)
        #expect(StderrLogHandler.syslogPriority(.critical) == 2)
    }
}
