import Logging
import SitroomCore
import SitroomStore
import SitroomZoom
import Testing

@testable import SitroomDaemon
@testable import SitroomService

/// The metrics file's text (Prometheus exposition format 0.0.4) and the log handler's line rules. The file is
/// also read by prometheus_client's parser in the end-to-end tests.
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

    @Test("every family has HELP and TYPE once, before its samples; gauges come from the state")
    func families() {
        let text = SitroomMetrics().render(gauges())
        let all = lines(text)
        for family in MetricsCatalog.families {
            #expect(all.filter { $0.hasPrefix("# TYPE \(family.name) ") }.count == 1)
            let type = all.firstIndex(of: "# TYPE \(family.name) \(family.type)")
            let firstSample = all.firstIndex { !$0.hasPrefix("#") && $0.hasPrefix(family.name) }
            if let type, let firstSample { #expect(type < firstSample) }
        }
        #expect(all.contains("sitroom_build_info{version=\"\(sitroomVersion)\"} 1"))
        #expect(all.contains("sitroom_start_time_seconds 1800000000"))
        #expect(all.contains("sitroom_rooms{state=\"ready\"} 1"))
        #expect(all.contains("sitroom_rooms{state=\"failed\"} 0"))
        #expect(all.contains("sitroom_room_oldest_waiting_seconds 42"))
        #expect(all.contains("sitroom_integration_state{integration=\"zoom-main\",state=\"needs_reauthorization\"} 1"))
        #expect(all.contains("sitroom_integration_state{integration=\"zoom-main\",state=\"active\"} 0"))
        #expect(all.contains("sitroom_pool_open_rooms{integration=\"zoom-main\",host=\"bridge-1\"} 1"))
        #expect(all.contains("sitroom_pool_creates_today{integration=\"zoom-main\",host=\"bridge-1\"} 7"))
        #expect(all.contains("sitroom_pool_host_available{integration=\"zoom-main\",host=\"bridge-1\"} 0"))
        #expect(all.contains("sitroom_outbox_notices{state=\"dead\"} 1"))
        #expect(all.contains("sitroom_outbox_notices{state=\"pending\"} 0"))
        #expect(all.contains("sitroom_spool_backlog 3"))
        #expect(all.contains("sitroom_config_generation 2"))
        #expect(all.contains("sitroom_config_last_reload_successful 0"))
        #expect(all.contains("sitroom_config_last_reload_success_timestamp_seconds 1800000050"))
        // Counters with known labels start at 0.
        #expect(all.contains("sitroom_spool_files_total{outcome=\"rejected\"} 0"))
        #expect(all.contains("sitroom_config_reloads_total{outcome=\"applied\"} 0"))
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
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"1\"} 1"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"30\"} 1"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"60\"} 2"))
        #expect(all.contains("sitroom_room_provisioning_seconds_bucket{le=\"+Inf\"} 2"))
        #expect(all.contains("sitroom_room_provisioning_seconds_sum 45.7"))
        #expect(all.contains("sitroom_room_provisioning_seconds_count 2"))
        #expect(all.contains("sitroom_spool_files_total{outcome=\"applied\"} 1"))
        #expect(all.contains("sitroom_config_reloads_total{outcome=\"rejected\"} 1"))
    }

    @Test("label values and help text are escaped as the exposition format says")
    func escaping() {
        var text = PrometheusText()
        text.family(.init(name: "x", type: "gauge", help: "a \\ b\nc"))
        text.sample("x", [("host", "a\"b\\c\nd")], 1.5)
        text.sample("x", [], .infinity)
        #expect(text.output == "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{host=\"a\\\"b\\\\c\\nd\"} 1.5\nx +Inf\n")
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
