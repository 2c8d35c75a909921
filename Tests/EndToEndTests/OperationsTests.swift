import Curl
import Foundation
import Glibc
import SitroomCore
import SitroomStore
import Testing

/// Running sitroomd as a Linux service: systemd's notification protocol, exit codes, --help/--version, backups
/// under load, the metrics file (read by prometheus_client's parser), secrets kept out of the logs, systemd
/// credentials, and the shipped unit file and alerting rules (systemd-analyze, promtool).
@Suite("operations end to end", .serialized)
struct OperationsTests {
    // MARK: systemd notification protocol

    @Test(
        "NOTIFY_SOCKET: READY=1 when serving, RELOADING=1 then READY=1 around reloads, WATCHDOG=1, STOPPING=1, in order"
    )
    func notifyProtocol() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            let socket = "\(sandbox.root)/notify.sock"
            let listener = try NotifyListener(address: socket)
            try await sandbox.startDaemon(environment: ["NOTIFY_SOCKET": socket, "WATCHDOG_USEC": "400000"])

            // The first message says READY=1, once the FIFO, the spool watch and the store are up (status answered).
            let first = try #require(listener.receive())
            #expect(first.hasPrefix("READY=1\nSTATUS=serving; config generation 1"), "\(first)")
            // The watchdog is fed every half WATCHDOG_USEC.
            let ping = listener.next { $0 == "WATCHDOG=1" }
            #expect(ping != nil)

            // A reload by command: RELOADING=1 with MONOTONIC_USEC, then READY=1; no READY before RELOADING.
            let reload = try await sandbox.ctl(["reload"])
            #expect(reload.code == 0, "\(reload.err)")
            let reloading = try #require(listener.next { !$0.hasPrefix("WATCHDOG") })
            let fields = reloading.split(separator: "\n").map(String.init)
            #expect(fields.first == "RELOADING=1", "\(reloading)")
            let usec = try #require(
                fields.first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst(15)) }
            )
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            #expect(usec <= UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000)
            let ready = try #require(listener.next { !$0.hasPrefix("WATCHDOG") })
            #expect(ready.hasPrefix("READY=1\n"), "\(ready)")

            // SIGHUP takes the same path; a rejected generation still ends in READY=1, with the news in STATUS.
            // Saved by rename, as editors do: one reload sees the whole new file.
            try "conference: { component: video, integrations: [zoom-nope] }\n".write(
                toFile: "\(sandbox.root)/etc/sitroom.yaml",
                atomically: true,
                encoding: .utf8
            )
            let bad = try #require(listener.next { $0.hasPrefix("READY=1") && $0.contains("rejected") })
            #expect(bad.contains("the last reload was rejected"), "\(bad)")
            sandbox.daemon?.signal(SIGHUP)
            #expect(listener.next { $0.hasPrefix("RELOADING=1") } != nil)
            #expect(listener.next { $0.hasPrefix("READY=1") } != nil)

            sandbox.daemon?.signal(SIGTERM)
            let stopping = try #require(
                listener.next { !$0.hasPrefix("WATCHDOG") && !$0.hasPrefix("RELOADING") && !$0.hasPrefix("READY") }
            )
            #expect(stopping.hasPrefix("STOPPING=1"), "\(stopping)")
            #expect(try await sandbox.daemon!.waitForExit() == 0)
        }
    }

    @Test("without NOTIFY_SOCKET nothing is sent and the daemon serves as usual")
    func noSystemd() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.startSim()
        try sandbox.writeIntegration()
        try await sandbox.startDaemon(environment: ["NOTIFY_SOCKET": "", "WATCHDOG_USEC": "100000"])
        #expect(try await sandbox.ctl(["reload"]).code == 0)
        sandbox.daemon?.signal(SIGTERM)
        #expect(try await sandbox.daemon!.waitForExit() == 0)
        #expect(!sandbox.logs().contains("cannot notify systemd"))
    }

    // MARK: Exit codes, --help, --version

    func run(
        _ executable: String,
        _ arguments: [String],
        in sandbox: Sandbox,
        environment: [String: String] = [:]
    ) async throws
        -> (code: Int32, out: String, err: String)
    {
        let child = try Child(
            executable,
            arguments,
            logs: "\(sandbox.root)/logs",
            name: "\(executable)-\(sandbox.children.count)",
            environment: environment
        )
        sandbox.children.append(child)
        let code = try await child.waitForExit()
        return (code, child.stdout, child.stderr)
    }

    @Test("exit codes scripts can rely on: 78 bad config, 75 another daemon, 73 no state, 64 bad usage")
    func exitCodes() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            // etc/sitroom.yaml names zoom-main, whose file does not exist yet: bad configuration at start.
            let bad = try await run("sitroomd", ["--root", sandbox.root], in: sandbox)
            #expect(bad.code == 78)
            #expect(bad.err.contains("\(sandbox.root)/etc/sitroom.yaml:1:"), "\(bad.err)")
            #expect(bad.err.contains("no integration named 'zoom-main'"))

            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let second = try await run("sitroomd", ["--root", sandbox.root], in: sandbox)
            #expect(second.code == 75)
            #expect(second.err.contains("another sitroomd is running"))

            // var/lib is a file: the store cannot be created.
            try sandbox.write("var-broken/lib", "not a directory\n")
            let noState = try await run(
                "sitroomd",
                ["--root", sandbox.root, "--var", "\(sandbox.root)/var-broken"],
                in: sandbox
            )
            #expect(noState.code == 73)
            #expect(noState.err.contains("cannot create the state directories"))

            let usage = try await run("sitroomd", ["--no-such-flag"], in: sandbox)
            #expect(usage.code == 64)
            let level = try await run("sitroomd", ["--log-level", "loud"], in: sandbox)
            #expect(level.code == 64)
            #expect(level.err.contains("unknown --log-level loud"))
        }
    }

    @Test("--version prints the version; --help explains every flag and the exit codes")
    func helpAndVersion() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        for tool in ["sitroomd", "sitroomctl"] {
            let version = try await run(tool, ["--version"], in: sandbox)
            #expect(version.code == 0)
            #expect(version.out.trimmingCharacters(in: .whitespacesAndNewlines) == sitroomVersion)
        }
        let daemon = try await run("sitroomd", ["--help"], in: sandbox)
        #expect(daemon.code == 0)
        let daemonHelp = Self.oneLine(daemon.out)
        for flag in [
            "--root", "--etc", "--var", "--check-config", "--log-format", "--log-level", "--version", "--help",
        ] {
            #expect(daemonHelp.contains(flag), "sitroomd --help lacks \(flag)")
        }
        for text in [
            "78 bad configuration", "75 another sitroomd", "73 cannot create", "69 a needed service", "READY=1",
            "LoadCredential=",
        ] {
            #expect(daemonHelp.contains(text), "sitroomd --help lacks \(text)")
        }
        let control = try await run("sitroomctl", ["--help"], in: sandbox)
        #expect(control.code == 0)
        let controlHelp = Self.oneLine(control.out)
        for text in [
            "--root", "--var", "--json", "--timeout", "submit FILE", "backup PATH", "--code -",
            "69 sitroomd is not running", "75 no reply",
        ] {
            #expect(controlHelp.contains(text), "sitroomctl --help lacks \(text)")
        }
    }

    /// Help text with its line wrapping undone (runs of white space become one space).
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
    }

    // MARK: systemd credentials

    @Test("a secret named $CREDENTIALS_DIRECTORY/NAME is read from there; without the variable the config is refused")
    func credentials() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            // As systemd leaves a credential: mode 0400 plus an ACL for the service's user, which stat shows as 0440.
            try sandbox.write("credentials/zoom.secret", sandbox.secret + "\n", mode: 0o440)
            try sandbox.writeIntegration(secretFile: "$CREDENTIALS_DIRECTORY/zoom.secret")
            let environment = ["CREDENTIALS_DIRECTORY": "\(sandbox.root)/credentials"]

            let unset = try await run("sitroomd", ["--root", sandbox.root, "--check-config"], in: sandbox)
            #expect(unset.code == 1)
            #expect(unset.err.contains("integrations/zoom-main.yaml:"))
            #expect(unset.err.contains("names $CREDENTIALS_DIRECTORY, which is not set"))

            let valid = try await run(
                "sitroomd",
                ["--root", sandbox.root, "--check-config"],
                in: sandbox,
                environment: environment
            )
            #expect(valid.code == 0, "\(valid.err)")

            try await sandbox.startDaemon(environment: environment)
            try sandbox.submit("c1.yaml", incidentEvent(id: "evt-c1", stage: "situation_room", incident: "INC-C1"))
            try await sandbox.waitForRoom("INC-C1", state: "ready")
        }
    }

    // MARK: Backups

    @Test("backup under load: mdb_stat opens it, and a daemon started on it shows the same rooms")
    func backupUnderLoad() async throws {
        let sandbox = try Sandbox(hosts: 8, concurrent: 4)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 8, concurrent: 4)
            try await sandbox.startDaemon()

            // Load: 30 incidents at once, and more while the first backup runs.
            let spool = "\(sandbox.root)/var/spool/incidents"
            func submit(_ range: ClosedRange<Int>) throws {
                for index in range {
                    let text = incidentEvent(
                        id: "evt-b\(index)",
                        stage: "situation_room",
                        incident: "INC-B\(index)",
                        participants: "  - { name: Ada Lovelace, email: ada@example.com }"
                    )
                    try text.write(toFile: "\(spool)/tmp/b\(index).yaml", atomically: false, encoding: .utf8)
                    rename("\(spool)/tmp/b\(index).yaml", "\(spool)/new/b\(index).yaml")
                }
            }
            try submit(1...30)
            let during = "\(sandbox.root)/backups/during"
            try FileManager.default.createDirectory(
                atPath: "\(sandbox.root)/backups",
                withIntermediateDirectories: true
            )
            async let backup = sandbox.ctl(["backup", during], timeout: 60)
            try submit(31...32)
            let first = try await backup
            #expect(first.code == 0, "\(first.err)")
            #expect(first.out.contains("backup written to \(during)/data.mdb"))
            try expectMdbStat(during)
            // The copy taken under load is consistent: every room's incident is in it.
            try withStore(during) { store in
                let (rooms, incidents) = try store.read { txn throws in
                    (
                        try txn.rooms.all(),
                        Set(try txn.incidents.all().map(\.info.id))
                    )
                }
                #expect(rooms.allSatisfy { incidents.contains($0.incidentID) })
            }

            // Once everything is ready, a second backup; a daemon on a copy of it shows the same rooms.
            _ = try await waitFor("32 rooms ready", timeout: 60) { () -> Bool? in
                let list = try await roomsJSON(sandbox, [])
                return list.filter { $0["state"] as? String == "ready" }.count == 32 ? true : nil
            }
            let after = "\(sandbox.root)/backups/after"
            let second = try await sandbox.ctl(["backup", after], timeout: 60)
            #expect(second.code == 0, "\(second.err)")
            try expectMdbStat(after)

            // Refused: a non-empty directory, and an existing file.
            let again = try await sandbox.ctl(["backup", after])
            #expect(again.code == 1)
            #expect(again.err.contains("is not empty"))
            try sandbox.write("backups/file", "x\n")
            let file = try await sandbox.ctl(["backup", "\(sandbox.root)/backups/file"])
            #expect(file.code == 1)
            #expect(file.err.contains("is not a directory"))

            let restoredVar = "\(sandbox.root)/var-restored"
            try FileManager.default.createDirectory(
                atPath: "\(restoredVar)/lib/sitroom",
                withIntermediateDirectories: true
            )
            try FileManager.default.copyItem(atPath: "\(after)/data.mdb", toPath: "\(restoredVar)/lib/sitroom/data.mdb")
            let live = try await roomsJSON(sandbox, [])
            try await sandbox.startDaemon(arguments: ["--var", restoredVar])
            let restored = try await roomsJSON(sandbox, ["--var", restoredVar])
            func summary(_ rooms: [[String: Any]]) -> [String] {
                rooms.map {
                    "\($0["room_id"] ?? "") \($0["state"] ?? "") \($0["join_url"] ?? "") \($0["meeting_id"] ?? "")"
                }.sorted()
            }
            #expect(restored.count == 32)
            #expect(summary(restored) == summary(live))

            // Both backups were audited.
            for child in sandbox.children { child.signal(SIGTERM) }
            for child in sandbox.children where child.process.executableURL?.lastPathComponent == "sitroomd" {
                _ = try await child.waitForExit()
            }
            try withStore("\(sandbox.root)/var/lib/sitroom") { store in
                let audit = try store.read { txn throws in try txn.audit.all() }
                #expect(audit.filter { $0.command.hasPrefix("backup ") && $0.outcome == "ok" }.count == 2)
                #expect(audit.contains { $0.command == "backup \(after)" && $0.outcome.hasPrefix("error") })
            }
        }
    }

    func roomsJSON(_ sandbox: Sandbox, _ options: [String]) async throws -> [[String: Any]] {
        let result = try await sandbox.ctl(options + ["rooms", "all", "--json"])
        return (try? JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [[String: Any]]) ?? []
    }

    func expectMdbStat(_ directory: String) throws {
        guard let mdbStat = Tools.path("mdb_stat") else {
            #expect(ProcessInfo.processInfo.environment["CI"] == nil, "mdb_stat (lmdb-utils) is needed in CI")
            return
        }
        let result = try Tools.run(mdbStat, ["-a", directory])
        #expect(result.code == 0, "\(result.out)")
        #expect(result.out.contains("Status of rooms"), "\(result.out)")
    }

    /// Opens a store directory in this process (its daemon stopped, or a backup), and closes it after `body`.
    func withStore(_ directory: String, _ body: (Store) throws -> Void) throws {
        let store = try Store(directory: directory, mapSize: 64 << 20)
        try body(store)
    }

    // MARK: Metrics

    @Test("var/metrics/sitroom.prom parses with prometheus_client, and its counters move as an incident goes through")
    func metricsFile() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let path = "\(sandbox.root)/var/metrics/sitroom.prom"
            let before = try await waitFor("the metrics file") { try? Metrics.parse(path) }
            #expect(before["sitroom_build_info{version=\"\(sitroomVersion)\"}"] == 1)
            #expect(before["sitroom_rooms{state=\"ready\"}"] == 0)
            #expect(before["sitroom_room_provisioning_seconds_count"] == 0)
            #expect(before["sitroom_spool_files_total{outcome=\"applied\"}"] == 0)
            #expect(before["sitroom_config_generation"] == 1)
            #expect(before["sitroom_config_last_reload_successful"] == 1)
            #expect(before["sitroom_pool_open_rooms{host=\"bridge-1\",integration=\"zoom-main\"}"] == 0)
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o644)

            try sandbox.submit("m1.yaml", incidentEvent(id: "evt-m1", stage: "situation_room", incident: "INC-M1"))
            let room = try await sandbox.waitForRoom("INC-M1", state: "ready")
            let ready = try await waitFor("the metrics to show the ready room and its notices") {
                () -> [String: Double]? in
                let metrics = try Metrics.parse(path)
                return metrics["sitroom_rooms{state=\"ready\"}"] == 1
                    && metrics["sitroom_outbox_notices{state=\"sent\"}"] == 3
                    ? metrics : nil
            }
            #expect(ready["sitroom_room_provisioning_seconds_count"] == 1)
            #expect((ready["sitroom_room_provisioning_seconds_sum"] ?? 0) > 0)
            #expect(ready["sitroom_room_provisioning_seconds_bucket{le=\"+Inf\"}"] == 1)
            #expect(ready["sitroom_spool_files_total{outcome=\"applied\"}"] == 1)
            #expect(
                ready[
                    "sitroom_zoom_requests_total{endpoint=\"create_meeting\",integration=\"zoom-main\",outcome=\"ok\"}"
                ] == 1
            )
            #expect(
                ready["sitroom_zoom_requests_total{endpoint=\"token\",integration=\"zoom-main\",outcome=\"ok\"}"] == 1
            )
            #expect(
                ready[
                    "sitroom_token_requests_total{grant=\"account_credentials\",integration=\"zoom-main\",outcome=\"ok\"}"
                ] == 1
            )
            #expect(ready["sitroom_integration_state{integration=\"zoom-main\",state=\"active\"}"] == 1)
            let host = try #require(room["host_id"] as? String)
            #expect(ready["sitroom_pool_open_rooms{host=\"\(host)\",integration=\"zoom-main\"}"] == 1)
            #expect(ready["sitroom_pool_creates_today{host=\"\(host)\",integration=\"zoom-main\"}"] == 1)

            // A rejected file and a rejected reload count too.
            try sandbox.submit("junk.yaml", "event_id: [unclosed\n")
            // Saved by rename, as editors do: one reload sees the whole new file.
            try "conference: { component: video, integrations: [zoom-nope] }\n".write(
                toFile: "\(sandbox.root)/etc/sitroom.yaml",
                atomically: true,
                encoding: .utf8
            )
            try sandbox.submit(
                "m1-end.yaml",
                incidentEvent(id: "evt-m2", stage: "resolved", incident: "INC-M1", at: "2026-11-29T12:30:00Z")
            )
            try await sandbox.waitForRoom("INC-M1", state: "ended")
            let ended = try await waitFor("the metrics to show the ended room") { () -> [String: Double]? in
                let metrics = try Metrics.parse(path)
                return metrics["sitroom_rooms{state=\"ended\"}"] == 1
                    && metrics["sitroom_config_last_reload_successful"] == 0
                    && metrics["sitroom_spool_files_total{outcome=\"rejected\"}"] == 1 ? metrics : nil
            }
            #expect(ended["sitroom_rooms{state=\"ready\"}"] == 0)
            #expect(ended["sitroom_spool_files_total{outcome=\"applied\"}"] == 2)
            #expect(
                ended["sitroom_zoom_requests_total{endpoint=\"end_meeting\",integration=\"zoom-main\",outcome=\"ok\"}"]
                    == 1
            )
            #expect(
                ended[
                    "sitroom_zoom_requests_total{endpoint=\"delete_meeting\",integration=\"zoom-main\",outcome=\"ok\"}"
                ] == 1
            )
            #expect(ended["sitroom_pool_open_rooms{host=\"\(host)\",integration=\"zoom-main\"}"] == 0)
            #expect((ended["sitroom_config_reloads_total{outcome=\"rejected\"}"] ?? 0) >= 1)
            #expect(ended["sitroom_config_generation"] == 1)
        }
    }

    // MARK: Secrets never logged

    @Test("at --log-level trace, no secret, token or authorization code reaches any log line")
    func noSecretsInLogs() async throws {
        let sandbox = try Sandbox(hosts: 2, integrations: ["zoom-main", "zoom-user"])
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            let webhookSecret = "whsec-\(UUID().uuidString)"
            try sandbox.write("etc/secrets/webhook.secret", webhookSecret + "\n", mode: 0o600)
            try sandbox.writeIntegration(extra: "webhook_secret_file: ../secrets/webhook.secret")
            try sandbox.writeIntegration(
                name: "zoom-user",
                oauth: true,
                extra: "webhook_secret_file: ../secrets/webhook.secret"
            )
            try await sandbox.startDaemon(logLevel: "trace")

            // Server-to-server: a room through zoom-main.
            try sandbox.submit("s1.yaml", incidentEvent(id: "evt-s1", stage: "situation_room", incident: "INC-S1"))
            try await sandbox.waitForRoom("INC-S1", state: "ready")

            // User OAuth: authorize bridge-1 of zoom-user (the code on stdin), a room through it, a forced refresh.
            let started = try await sandbox.ctl(["integration", "authorize", "zoom-user", "bridge-1"])
            let url = try #require(started.out.split(separator: "\n").first { $0.hasPrefix("http") }.map(String.init))
            let approval = try await sandbox.http.send(
                HTTPRequest(method: .get, url: url + "&sim_user=bridge-1@example.com")
            )
            let location = try #require(approval.headers["location"])
            let code = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
            let done = try await sandbox.ctl(
                ["integration", "authorize", "zoom-user", "bridge-1", "--code", "-"],
                stdin: code + "\n"
            )
            #expect(done.code == 0, "\(done.err)")
            try sandbox.submit(
                "u1.yaml",
                incidentEvent(id: "evt-u1", stage: "situation_room", incident: "INC-U1") + "integration: zoom-user\n"
            )
            try await sandbox.waitForRoom("INC-U1", state: "ready")
            #expect(
                try await sandbox.simPOST("/_sim/faults", #"{"kind":"expire_tokens","client_id":"e2e-user-app"}"#) < 300
            )
            try sandbox.submit(
                "u1-end.yaml",
                incidentEvent(id: "evt-u1e", stage: "resolved", incident: "INC-U1", at: "2026-11-29T13:00:00Z")
            )
            try await sandbox.waitForRoom("INC-U1", state: "ended")

            // The tokens as LMDB holds them (zoom-sim does not reveal them): stop, read, start again.
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon!.waitForExit() == 0)
            var tokens: [String] = []
            try withStore("\(sandbox.root)/var/lib/sitroom") { store in
                let stored = try store.read { txn throws in try txn.tokens.all().map(\.token) }
                for token in stored { tokens += [token.accessToken] + (token.refreshToken.map { [$0] } ?? []) }
            }
            #expect(tokens.count == 3)  // zoom-main's access token; zoom-user/bridge-1's access and refresh tokens
            try await sandbox.startDaemon(logLevel: "trace")
            // bridge-1's authorization outlives the restart (a start used to delete every per-host record).
            try sandbox.submit(
                "u2.yaml",
                incidentEvent(id: "evt-u2", stage: "situation_room", incident: "INC-U2") + "integration: zoom-user\n"
            )
            try await sandbox.waitForRoom("INC-U2", state: "ready")

            // Webhooks: a forged one is rejected, a genuine one deauthorizes zoom-user.
            let now = Int(Date().timeIntervalSince1970)
            let zoom = ZoomTests()
            try sandbox.submit(
                "forged.webhook",
                zoom.webhookFile(secret: "not-the-secret", timestamp: now, clientID: "e2e-user-app")
            )
            try sandbox.submit(
                "genuine.webhook",
                zoom.webhookFile(secret: webhookSecret, timestamp: now, clientID: "e2e-user-app")
            )
            _ = try await waitFor("both webhooks handled") { () -> Bool? in
                sandbox.files("var/spool/incidents/cur").contains("genuine.webhook")
                    && sandbox.files("var/spool/incidents/rejected").contains("forged.webhook") ? true : nil
            }
            _ = try await sandbox.ctl(["status"])
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon!.waitForExit() == 0)

            let logs = sandbox.children.filter { $0.process.executableURL?.lastPathComponent == "sitroomd" }
                .map { $0.stderr + $0.stdout }.joined(separator: "\n")
            #expect(logs.contains("level=debug"))  // the low levels were written
            #expect(logs.contains("room ready"))
            let secrets =
                [("client secret", sandbox.secret), ("webhook secret", webhookSecret), ("authorization code", code)]
                + tokens.enumerated().map { ("token \($0.offset)", $0.element) }
            for (what, value) in secrets {
                #expect(!value.isEmpty)
                let leaks = logs.split(separator: "\n").filter { $0.contains(value) }
                #expect(leaks.isEmpty, "the \(what) is in the log: \(leaks.first ?? "")")
            }
            #expect(
                logs.split(separator: "\n").allSatisfy { $0.hasPrefix("time=") || $0.isEmpty },
                "one event, one line"
            )
        }
    }

    // MARK: Shipped files

    @Test(
        "etc/prometheus: promtool checks the alerting rules and their unit tests pass",
        .enabled(
            if: Tools.path("promtool") != nil || ProcessInfo.processInfo.environment["CI"] != nil,
            "promtool (Debian package prometheus) is needed"
        )
    )
    func alertingRules() throws {
        let promtool = try #require(Tools.path("promtool"), "promtool (Debian package prometheus) is needed in CI")
        let directory = "\(repositoryRoot)/etc/prometheus"
        let check = try Tools.run(promtool, ["check", "rules", "\(directory)/sitroom.rules.yml"])
        #expect(check.code == 0, "\(check.out)")
        #expect(check.out.contains("SUCCESS"))
        let test = try Tools.run(promtool, ["test", "rules", "\(directory)/sitroom.rules.test.yml"])
        #expect(test.code == 0, "\(test.out)")
        for alert in [
            "SitroomIntegrationNeedsReauthorization", "SitroomRoomFailed", "SitroomRoomWaitingTooLong",
            "SitroomDeadNotices",
            "SitroomSpoolBacklog", "SitroomConfigReloadFailed",
        ] {
            #expect(
                (try? String(contentsOfFile: "\(directory)/sitroom.rules.yml", encoding: .utf8))?.contains(
                    "alert: \(alert)"
                ) == true
            )
        }
    }

    @Test(
        "etc/systemd/sitroomd.service: systemd-analyze verify accepts it; it is Type=notify with the paths of the README",
        .enabled(
            if: Tools.path("systemd-analyze") != nil || ProcessInfo.processInfo.environment["CI"] != nil,
            "systemd-analyze (Debian package systemd) is needed"
        )
    )
    func unitFile() throws {
        let analyze = try #require(Tools.path("systemd-analyze"), "systemd-analyze is needed in CI")
        let unit = try String(contentsOfFile: "\(repositoryRoot)/etc/systemd/sitroomd.service", encoding: .utf8)
        for line in [
            "Type=notify", "ExecStart=/usr/local/bin/sitroomd --etc /etc/sitroom --var /var/lib/sitroom",
            "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=", "StateDirectory=sitroom", "User=sitroom",
            "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes", "RestartPreventExitStatus=75 78",
            "LoadCredential=zoom-main.secret:",
        ] {
            #expect(unit.contains(line), "the unit lacks \(line)")
        }
        // verify needs the ExecStart binary to exist: check a copy naming the one just built.
        let directory = NSTemporaryDirectory() + "sitroom-unit-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try unit.replacingOccurrences(of: "/usr/local/bin/sitroomd", with: "\(binDirectory)/sitroomd")
            .write(toFile: "\(directory)/sitroomd.service", atomically: false, encoding: .utf8)
        let verify = try Tools.run(analyze, ["verify", "\(directory)/sitroomd.service"])
        let complaints = verify.out.split(separator: "\n").filter { $0.contains("sitroomd.service") }
        #expect(verify.code == 0 && complaints.isEmpty, "\(verify.out)")
    }
}
