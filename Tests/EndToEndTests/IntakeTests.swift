import Curl
import Foundation
import Glibc
import SitroomZoom
import Testing

/// sitroom-intake against real senders on 127.0.0.1 (SPEC §11): Debian's Alertmanager posting firing and resolved
/// alerts, PagerDuty payloads signed with one and two secrets and forged, zoom-sim's webhooks (URL validation, a
/// signed `app_deauthorized`, retries after a 503), a SIGKILL in the middle of a burst, clients that misbehave on
/// purpose, and the shipped unit file.
@Suite("sitroom-intake end to end", .serialized)
struct IntakeTests {
    /// Every secret the intake was given; none may appear in any log line.
    func expectNoSecrets(_ sandbox: Sandbox) {
        let logs = sandbox.allLogs()
        for name in Sandbox.intakeSecrets.keys {
            let secret = sandbox.intakeSecret(name)
            if !secret.isEmpty { #expect(!logs.contains(secret), "\(name) appears in a log line") }
        }
    }

    // MARK: Alertmanager

    @Test(
        "Alertmanager's webhook_config with a bearer credentials_file: a firing alert opens a meeting (after 503s while the spool cannot be written), the resolved one ends it",
        .enabled(
            if: Tools.path("prometheus-alertmanager") != nil || ProcessInfo.processInfo.environment["CI"] != nil,
            "prometheus-alertmanager (Debian) is needed"
        )
    )
    func alertmanager() async throws {
        let alertmanager = try #require(
            Tools.path("prometheus-alertmanager"),
            "prometheus-alertmanager is needed in CI"
        )
        let amtool = try #require(Tools.path("amtool"), "amtool (Debian prometheus-alertmanager) is needed")
        let sandbox = try Sandbox(settings: "feeds: { alertmanager: { situation_room_when: { severity: critical } } }")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.write(
                "etc/roster.yaml",
                "teams:\n  payments-sre:\n    - { name: Ada Lovelace, email: ada@example.com, role: commander }\n"
            )
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try sandbox.writeIntake()
            try await sandbox.startDaemon()
            let intake = try await sandbox.startIntake()

            let amPort = try freePort()
            try sandbox.write(
                "alertmanager/alertmanager.yml",
                """
                route:
                  receiver: sitroom
                  group_by: [alertname]
                  group_wait: 1s
                  group_interval: 1s
                  repeat_interval: 1h
                receivers:
                  - name: sitroom
                    webhook_configs:
                      - url: \(intake.url("/hooks/alertmanager"))
                        send_resolved: true
                        http_config:
                          authorization:
                            type: Bearer
                            credentials_file: \(sandbox.root)/etc/secrets/alertmanager.token

                """
            )
            let am = try Child(
                alertmanager,
                [
                    "--config.file=\(sandbox.root)/alertmanager/alertmanager.yml",
                    "--storage.path=\(sandbox.root)/alertmanager/data", "--web.listen-address=127.0.0.1:\(amPort)",
                    "--cluster.listen-address=", "--log.level=debug",
                ],
                logs: "\(sandbox.root)/logs",
                name: "alertmanager"
            )
            sandbox.children.append(am)
            _ = try await waitFor("Alertmanager to be ready") { () -> Bool? in
                if !am.process.isRunning { throw TimedOut(what: "alertmanager (it exited: \(am.stderr))") }
                let ready = try? await sandbox.http.send(
                    Curl.HTTPRequest(method: .get, url: "http://127.0.0.1:\(amPort)/-/ready")
                )
                return ready?.status == 200 ? true : nil
            }

            // The spool cannot be written (its tmp/ is gone): the intake answers 503, Alertmanager retries.
            let spool = "\(sandbox.root)/var/spool/incidents"
            try FileManager.default.moveItem(atPath: spool + "/tmp", toPath: spool + "/tmp.away")
            let labels = ["alertname=PaymentsDown", "severity=critical", "team=payments-sre"]
            let fired = Date()
            let add = try Tools.run(
                amtool,
                ["--alertmanager.url=http://127.0.0.1:\(amPort)", "alert", "add"] + labels + [
                    "--annotation=summary=Payments API down"
                ]
            )
            #expect(add.code == 0, "\(add.out)")
            _ = try await waitFor("the intake to refuse Alertmanager with 503", timeout: 30) {
                sandbox.intakeLogs().contains("cannot write into the spool; answered 503") ? true : nil
            }
            #expect(sandbox.spoolFiles("new").isEmpty && sandbox.spoolFiles("cur").isEmpty)
            _ = try await waitFor("status to show the intake's error") { () -> Bool? in
                try await sandbox.ctl(["status"]).out.contains("intake's last errors:") ? true : nil
            }
            try FileManager.default.moveItem(atPath: spool + "/tmp.away", toPath: spool + "/tmp")

            // Alertmanager's retry gets through: a meeting for the incident.
            let meeting = try await waitFor("a meeting in zoom-sim", timeout: 60) { () -> [String: Any]? in
                let all = (try await sandbox.simGET("/_sim/meetings") as? [[String: Any]]) ?? []
                return all.first { ($0["topic"] as? String)?.contains("Payments API down") == true }
            }
            #expect(["waiting", "started"].contains(meeting["status"] as? String))
            let rooms = try await sandbox.ctl(["rooms"])
            #expect(rooms.out.contains("ready"), "\(rooms.out)")

            // Resolved by hand with times before the firing (issue 15: a clock, or a hand, that says "it ended before it
            // started"): Alertmanager keeps the earlier start and sends the resolved group (send_resolved), whose end is
            // before the firing's start. A resolve still ends the meeting.
            let format = ISO8601DateFormatter()
            let start = format.string(from: fired.addingTimeInterval(-120))
            let ended = format.string(from: fired.addingTimeInterval(-60))
            let end = try Tools.run(
                amtool,
                ["--alertmanager.url=http://127.0.0.1:\(amPort)", "alert", "add"] + labels + [
                    "--start=\(start)", "--end=\(ended)",
                ]
            )
            #expect(end.code == 0, "\(end.out)")
            _ = try await waitFor("the meeting to end", timeout: 60) { () -> Bool? in
                let all = (try await sandbox.simGET("/_sim/meetings") as? [[String: Any]]) ?? []
                let status = all.first { ($0["id"] as? NSNumber) == (meeting["id"] as? NSNumber) }?["status"] as? String
                return status == "ended" || status == "deleted" ? true : nil
            }
            #expect(sandbox.spoolFiles("rejected").isEmpty, "\(sandbox.spoolFiles("rejected"))")
            #expect(
                sandbox.daemonLogs().contains("a resolve always ends the open room"),
                "the log says what the resolve did"
            )
            #expect(
                am.stderr.contains("Notify success") || am.stderr.contains("component=dispatcher"),
                "Alertmanager sent"
            )
            expectNoSecrets(sandbox)
        }
    }

    // MARK: PagerDuty

    @Test(
        "PagerDuty: signed with one secret, with two during a rotation, forged, unsigned; sitroomd applies what was accepted"
    )
    func pagerDuty() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try sandbox.writeIntake()
            try await sandbox.startDaemon()
            let intake = try await sandbox.startIntake()
            let secret = sandbox.intakeSecret("pagerduty.secret")
            let url = intake.url("/hooks/pagerduty")
            let triggered = Array(
                try Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/examples/pagerduty-triggered.json"))
            )
            let escalated = Array(
                try Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/examples/pagerduty-escalated.json"))
            )
            func signature(_ body: [UInt8], _ key: String) -> String { PagerDutySigner.sign(body, key) }

            let one = try await sandbox.post(
                url,
                triggered,
                headers: [("X-PagerDuty-Signature", signature(triggered, secret))]
            )
            #expect(one.status == 200, "\(String(decoding: one.body, as: UTF8.self))")
            // During a rotation PagerDuty signs with the old and the new secret.
            let two = try await sandbox.post(
                url,
                escalated,
                headers: [
                    (
                        "X-PagerDuty-Signature",
                        "\(signature(escalated, "retired-secret")),\(signature(escalated, secret))"
                    )
                ]
            )
            #expect(two.status == 200)
            var forgedBody = escalated
            forgedBody[forgedBody.count / 2] ^= 0x01
            let forged = try await sandbox.post(
                url,
                forgedBody,
                headers: [("X-PagerDuty-Signature", signature(escalated, secret))]
            )
            #expect(forged.status == 403)
            let wrongKey = try await sandbox.post(
                url,
                escalated,
                headers: [("X-PagerDuty-Signature", signature(escalated, "guess"))]
            )
            #expect(wrongKey.status == 403)
            let unsigned = try await sandbox.post(url, escalated)
            #expect(unsigned.status == 401)

            // Both accepted events reach sitroomd and are applied; nothing is rejected.
            _ = try await waitFor("both events applied") { sandbox.spoolFiles("cur").count == 2 ? true : nil }
            #expect(sandbox.spoolFiles("rejected").isEmpty)
            #expect(sandbox.daemonLogs().contains("pd-01F1BWW3CBE6DM1CSGQ4VJXR1A"))
            expectNoSecrets(sandbox)
        }
    }

    // MARK: Zoom

    @Test(
        "Zoom: zoom-sim validates the endpoint, then a signed app_deauthorized (retried after a 503) makes zoom-main need re-authorization"
    )
    func zoom() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntake(zoom: true)
            try sandbox.writeIntegration(extra: "webhook_secret_file: ../secrets/zoom.webhook")
            try await sandbox.startDaemon()
            let intake = try await sandbox.startIntake()
            let url = intake.url("/hooks/zoom/zoom-main")
            let secretFile = "\(sandbox.root)/etc/secrets/zoom.webhook"

            // A subscription with the wrong secret fails Zoom's validation; the right one passes.
            let wrong = try await sandbox.simPOST(
                "/_sim/webhooks",
                #"{"client_id": "e2e-client", "url": "\#(url)", "secret_token": "not-the-secret"}"#
            )
            #expect(wrong == 400)
            let subscribed = try await sandbox.simPOST(
                "/_sim/webhooks",
                #"{"client_id": "e2e-client", "url": "\#(url)", "secret_token_file": "\#(secretFile)", "verification_token": "legacy-token", "retry_delays": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}"#
            )
            #expect(subscribed == 201)
            #expect(
                sandbox.spoolFiles("new").isEmpty && sandbox.spoolFiles("cur").isEmpty,
                "the validation is not spooled"
            )

            // The spool cannot be written when Zoom delivers: 503, and zoom-sim retries as Zoom does.
            let spool = "\(sandbox.root)/var/spool/incidents"
            try FileManager.default.moveItem(atPath: spool + "/tmp", toPath: spool + "/tmp.away")
            let removed = try await sandbox.http.send(
                Curl.HTTPRequest(
                    method: .post,
                    url: "http://127.0.0.1:\(sandbox.simPort)/_sim/apps/e2e-client/deauthorize",
                    body: Array(#"{"user": "bridge-1@example.com"}"#.utf8)
                )
            )
            let first = try JSONSerialization.jsonObject(with: Data(removed.body)) as? [String: Any]
            let delivery = first?["delivery"] as? [String: Any]
            #expect(delivery?["state"] as? String == "retrying", "\(String(decoding: removed.body, as: UTF8.self))")
            #expect(((delivery?["attempts"] as? [[String: Any]])?.first?["status"] as? NSNumber)?.intValue == 503)
            try FileManager.default.moveItem(atPath: spool + "/tmp.away", toPath: spool + "/tmp")
            _ = try await waitFor("zoom-sim's retry to be delivered") { () -> Bool? in
                let list = try await sandbox.simGET("/_sim/webhooks") as? [String: Any]
                let deliveries = list?["deliveries"] as? [[String: Any]] ?? []
                return deliveries.first?["state"] as? String == "delivered" ? true : nil
            }

            // sitroomd verifies the spooled file with the same secret and applies it.
            _ = try await waitFor("zoom-main to need re-authorization") { () -> Bool? in
                let out = try await sandbox.ctl(["integrations"]).out
                return out.contains("needs_reauthorization") ? true : nil
            }
            #expect(sandbox.spoolFiles("rejected").isEmpty, "\(sandbox.spoolFiles("rejected"))")
            let file = try #require(sandbox.spoolFiles("cur").first)
            let text = sandbox.read("var/spool/incidents/cur/\(file)")
            #expect(text.hasPrefix("POST /hooks/zoom/zoom-main HTTP/1.1\n"))
            #expect(!text.lowercased().contains("authorization:"), "the legacy verification token is not stored")
            expectNoSecrets(sandbox)
        }
    }

    @Test("Zoom: meeting events as zoom-sim's signed webhooks through sitroom-intake update the live room")
    func zoomMeetingEvents() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntake(zoom: true)
            try sandbox.writeIntegration(
                extra: "webhook_secret_file: ../secrets/zoom.webhook\nevents: { webhook: true }"
            )
            try await sandbox.startDaemon()
            let intake = try await sandbox.startIntake()
            let url = intake.url("/hooks/zoom/zoom-main")
            let secretFile = "\(sandbox.root)/etc/secrets/zoom.webhook"
            #expect(
                try await sandbox.simPOST(
                    "/_sim/webhooks",
                    #"{"client_id": "e2e-client", "url": "\#(url)", "secret_token_file": "\#(secretFile)"}"#
                )
                    == 201
            )
            try sandbox.submit("m1.yaml", incidentEvent(id: "evt-m1", stage: "situation_room", incident: "INC-M"))
            let ready = try await sandbox.waitForRoom("INC-M", state: "ready")
            let meeting = try #require((ready["meeting_id"] as? NSNumber)?.int64Value)
            #expect(
                try await sandbox.simPOST(
                    "/_sim/meetings/\(meeting)/participants",
                    #"{"action":"join","email":"grace@example.com"}"#
                )
                    < 300
            )
            let room = try await waitFor("Grace in the room, through the intake") { () -> [String: Any]? in
                let room = try await sandbox.room("INC-M")
                return room?["present"] as? Int == 1 ? room : nil
            }
            let attendance = try #require(room["attendance"] as? [[String: Any]])
            #expect(
                attendance.first { $0["email"] as? String == "grace@example.com" }?["standing"] as? String == "joined"
            )
            #expect((room["meeting"] as? [String: Any])?["status"] as? String == "started")
            // Both events (started, joined) went through the intake into cur/, none rejected.
            _ = try await waitFor("both files applied") { sandbox.spoolFiles("cur").count >= 3 ? true : nil }
            #expect(sandbox.spoolFiles("rejected").isEmpty, "\(sandbox.spoolFiles("rejected"))")
        }
    }

    // MARK: Durability

    @Test("SIGKILL during a burst: every request answered 200 is a whole file in new/")
    func sigkill() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            try sandbox.writeIntake()
            let intake = try await sandbox.startIntake(logLevel: "info")
            // A bounded client: 8 threads, at most 400 requests each, each thread stopping at its first error.
            try sandbox.write(
                "burst.py",
                """
                import http.client, json, sys, threading
                port, token, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
                acked, lock = [], threading.Lock()
                def run(worker):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    for n in range(400):
                        event = "burst-%d-%d" % (worker, n)
                        body = json.dumps({"event_id": event, "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened",
                                           "incident": {"id": "INC-B%d" % worker, "title": "burst"}, "participants": []})
                        try:
                            conn.request("POST", "/hooks/native", body, {"Authorization": "Bearer " + token,
                                                                        "Content-Type": "application/json"})
                            response = conn.getresponse()
                            response.read()
                        except Exception:
                            return
                        if response.status == 200:
                            with lock:
                                acked.append(event)
                                if len(acked) % 50 == 0:
                                    print("acked", len(acked), flush=True)
                threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
                for t in threads: t.start()
                for t in threads: t.join()
                json.dump(acked, open(out, "w"))
                print("done", len(acked), flush=True)

                """
            )
            let python = try #require(Tools.path("python3"))
            let client = try Child(
                python,
                [
                    "\(sandbox.root)/burst.py", "\(intake.port)", sandbox.intakeSecret("native.token"),
                    "\(sandbox.root)/acked.json",
                ],
                logs: "\(sandbox.root)/logs",
                name: "burst"
            )
            sandbox.children.append(client)
            _ = try await waitFor("300 acknowledged requests") { () -> Bool? in
                let acked =
                    client.stdout.split(separator: "\n").compactMap { Int($0.split(separator: " ").last ?? "") }.last
                    ?? 0
                return acked >= 300 ? true : nil
            }
            intake.child.signal(SIGKILL)
            #expect(try await client.waitForExit(timeout: 30) == 0, "\(client.stderr)")
            let acked = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: "\(sandbox.root)/acked.json"))
                ) as? [String]
            )
            #expect(acked.count >= 300)
            var spooled: Set<String> = []
            for name in sandbox.spoolFiles("new") {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(sandbox.root)/var/spool/incidents/new/\(name)"))
                let object = try #require(
                    try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    "\(name) is whole"
                )
                if let id = object["event_id"] as? String { spooled.insert(id) }
            }
            let lost = acked.filter { !spooled.contains($0) }
            #expect(lost.isEmpty, "acknowledged but not in the spool: \(lost.prefix(10))")

            // status: the intake is down and did not stop cleanly (its lock went with it).
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let status = try await sandbox.ctl(["status", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any])
            let report = try #require(object["intake"] as? [String: Any])
            #expect(report["running"] as? Bool == false)
            let text = try await sandbox.ctl(["status"]).out
            #expect(text.contains("intake: not running (it did not stop cleanly"), "\(text)")
        }
    }

    /// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, as on CI's machine): for a real full disk.
    static let canMount: Bool = {
        guard getuid() == 0, let mount = Tools.path("mount"), let umount = Tools.path("umount") else { return false }
        let directory = NSTemporaryDirectory() + "sitroom-mount-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard (try? Tools.run(mount, ["-t", "tmpfs", "-o", "size=64k", "tmpfs", directory]))?.code == 0 else {
            return false
        }
        _ = try? Tools.run(umount, [directory])
        return true
    }()

    @Test(
        "a full disk and a read-only spool: 503 with Retry-After, nothing half-written; the event lands once it can",
        .enabled(if: IntakeTests.canMount, "needs root to mount a small tmpfs")
    )
    func fullAndReadOnly() async throws {
        let mount = try #require(Tools.path("mount"))
        let umount = try #require(Tools.path("umount"))
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        let spool = "\(sandbox.root)/var/spool/incidents"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        #expect(try Tools.run(mount, ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", spool]).code == 0)
        defer { _ = try? Tools.run(umount, ["-l", spool]) }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            try sandbox.writeIntake()
            let intake = try await sandbox.startIntake()
            let url = intake.url("/hooks/native")
            let auth = [("Authorization", "Bearer \(sandbox.intakeSecret("native.token"))")]
            let padding = String(repeating: "x", count: 3000)
            let event = Array(
                #"{"event_id": "full-1", "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened", "incident": {"id": "INC-5", "title": "\#(padding)"}, "participants": []}"#
                    .utf8
            )

            // Full: a filler takes every block.
            let filler = "\(spool)/filler"
            #expect(FileManager.default.createFile(atPath: filler, contents: nil))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
            while (try? handle.write(contentsOf: Data(repeating: 0, count: 4096))) != nil {}
            try? handle.close()
            let full = try await sandbox.post(url, event, headers: auth)
            #expect(full.status == 503)
            #expect(full.headers["retry-after"] == "10")
            #expect(
                sandbox.spoolFiles("new").isEmpty && sandbox.spoolFiles("tmp").isEmpty,
                "nothing half-written is left"
            )
            try FileManager.default.removeItem(atPath: filler)
            #expect(try await sandbox.post(url, event, headers: auth).status == 200, "delivered again, it lands")

            // Read-only: the same.
            #expect(try Tools.run(mount, ["-o", "remount,ro", spool]).code == 0)
            let readOnly = try await sandbox.post(url, event, headers: auth)
            #expect(readOnly.status == 503)
            let health = try await sandbox.http.send(Curl.HTTPRequest(method: .get, url: intake.url("/healthz")))
            #expect(health.status == 503)
            #expect(try Tools.run(mount, ["-o", "remount,rw", spool]).code == 0)
            #expect(try await sandbox.post(url, event, headers: auth).status == 200)
            #expect(sandbox.spoolFiles("new").count == 2)
            let errors = sandbox.intakeLogs()
            #expect(errors.contains("No space left on device") && errors.contains("Read-only file system"), "\(errors)")
        }
    }

    // MARK: Bounds

    @Test(
        "an early answer (404, 401) to a request with a body is sent at once, saying Connection: close, even when the body never comes"
    )
    func earlyAnswers() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            try sandbox.writeIntake()
            let intake = try await sandbox.startIntake()
            for request in [
                "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n",
                "POST /hooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789",
            ] {
                // The body is declared and never (wholly) sent: the answer must not wait for it.
                let connection = try RawConnection(port: intake.port)
                #expect(connection.send(request))
                let answer = try #require(connection.readUntilClosed(timeout: 10), "closed after the answer")
                #expect(
                    (answer.hasPrefix("HTTP/1.1 404") || answer.hasPrefix("HTTP/1.1 401"))
                        && answer.lowercased().contains("connection: close"),
                    "\(answer)"
                )
                // One answer: the body cut short is not answered again (HummingbirdCore's own 400 came after it).
                #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "\(answer)")
            }
            #expect(sandbox.spoolFiles("new").isEmpty)
        }
    }

    @Test(
        "a request pipelined behind an early answer is neither answered nor spooled; a missing signature is refused before the body"
    )
    func pipelinedAndUnsigned() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            try sandbox.writeIntake()
            let intake = try await sandbox.startIntake()
            let token = sandbox.intakeSecret("native.token")
            let event =
                #"{"event_id": "pipe-1", "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened", "incident": {"id": "INC-P", "title": "x"}, "participants": []}"#
            // A wrong token with a body, and at once a good request on the same connection.
            let connection = try RawConnection(port: intake.port)
            #expect(
                connection.send(
                    "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 4\r\n\r\nnope"
                        + "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"
                        + "Content-Length: \(event.utf8.count)\r\n\r\n\(event)"
                )
            )
            let answer = try #require(connection.readUntilClosed(timeout: 15), "closed after the answer")
            #expect(answer.hasPrefix("HTTP/1.1 401"), "\(answer)")
            #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "\(answer)")
            // The sender was told nothing of the second request: once it is dropped, nothing of it may be on disk.
            _ = try await waitFor("the pipelined request dropped") {
                sandbox.intakeLogs().contains("dropped: a request sent behind an early answer") ? true : nil
            }
            #expect(sandbox.spoolFiles("new").isEmpty)

            // No X-PagerDuty-Signature: 401 with a challenge at once, no 100 Continue, the body never read.
            let unsigned = try RawConnection(port: intake.port)
            #expect(
                unsigned.send(
                    "POST /hooks/pagerduty HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
                )
            )
            let refused = try #require(unsigned.readUntilClosed(timeout: 10), "closed after the answer")
            #expect(refused.hasPrefix("HTTP/1.1 401"), "\(refused)")
            #expect(refused.lowercased().contains("www-authenticate: x-pagerduty-signature"), "\(refused)")
            // Every refusal is in the log with the sender's address.
            _ = try await waitFor("the refusals logged") { () -> Bool? in
                let log = sandbox.intakeLogs()
                return log.contains("no X-PagerDuty-Signature") && log.contains("remote=127.0.0.1:") ? true : nil
            }
            let nowhere = try RawConnection(port: intake.port)
            #expect(nowhere.send("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            #expect(try #require(nowhere.readUntilClosed(timeout: 10)).hasPrefix("HTTP/1.1 404"))
            _ = try await waitFor("the 404 logged") { () -> Bool? in
                sandbox.intakeLogs().split(separator: "\n").contains {
                    $0.contains("refused") && $0.contains("status=404") && $0.contains("remote=127.0.0.1:")
                } ? true : nil
            }
        }
    }

    @Test("a body with broken chunked framing gets a 400 that says so (and a log line); an unknown Expect gets 417")
    func brokenFramingAndExpectations() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            try sandbox.writeIntake()
            let intake = try await sandbox.startIntake()
            let token = sandbox.intakeSecret("native.token")
            let head = "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"

            let chunked = try RawConnection(port: intake.port)
            #expect(chunked.send(head + "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nzz\r\nnot hex\r\n0\r\n\r\n"))
            let refused = try #require(chunked.readUntilClosed(timeout: 10), "closed after the answer")
            #expect(refused.hasPrefix("HTTP/1.1 400"), "\(refused)")
            #expect(
                refused.contains("the body's HTTP framing is broken: invalid character in chunk size header"),
                "\(refused)"
            )
            #expect(refused.components(separatedBy: "HTTP/1.1 ").count == 2, "\(refused)")
            _ = try await waitFor("the refusal logged") {
                sandbox.intakeLogs().contains("HTTP framing is broken: invalid character in chunk size header")
                    ? true : nil
            }

            let expecting = try RawConnection(port: intake.port)
            #expect(expecting.send(head + "Expect: 200-weird\r\nContent-Length: 10\r\n\r\n"))
            let failed = try #require(expecting.readUntilClosed(timeout: 10), "closed after the answer")
            #expect(failed.hasPrefix("HTTP/1.1 417"), "\(failed)")
            #expect(failed.contains("only 100-continue is understood, not '200-weird'"), "\(failed)")
            #expect(sandbox.spoolFiles("new").isEmpty)
        }
    }

    @Test("slow headers and slow bodies lose their connection; max_connections holds; 413 stops reading; 100-continue")
    func bounds() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            try sandbox.writeIntake(
                settings: "max_body_size: 4KiB\nmax_connections: 2\nheader_timeout: 2s\nbody_timeout: 1s"
            )
            let intake = try await sandbox.startIntake()
            let token = sandbox.intakeSecret("native.token")
            let event =
                #"{"event_id": "bounds-1", "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened", "incident": {"id": "INC-9", "title": "x"}, "participants": []}"#

            // Headers a byte at a time: closed once header_timeout (2 s) has passed, however steady the drip.
            let dripping = try RawConnection(port: intake.port)
            var sent = 0
            for byte
                in "POST /hooks/native HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                .utf8
            {
                guard dripping.send(String(UnicodeScalar(byte))) else { break }
                sent += 1
                if dripping.readAvailable(timeout: 0.1) != "" { break }  // waits-on-purpose: the drip
            }
            #expect(dripping.readUntilClosed(timeout: 5) != nil, "the dripping client was cut off")
            #expect(sent < 70, "cut off after \(sent) bytes")

            // A body slower than body_timeout: closed without an answer, nothing spooled.
            let slowBody = try RawConnection(port: intake.port)
            slowBody.send(
                "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 100\r\n\r\n{\"event_id\""
            )
            let cut = try #require(slowBody.readUntilClosed(timeout: 5), "closed after body_timeout")
            #expect(!cut.contains("200 OK"))

            // max_connections 2: two idle connections hold both slots; a third waits until one is given up.
            let first = try RawConnection(port: intake.port)
            let second = try RawConnection(port: intake.port)
            first.send("POST /hooks/native HTTP/1.1\r\n")
            second.send("POST /hooks/native HTTP/1.1\r\n")
            let third = try RawConnection(port: intake.port)
            third.send(
                "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(event.utf8.count)\r\nConnection: close\r\n\r\n\(event)"
            )
            // Proving an absence: nothing is read from the third while the two hold the slots.
            #expect(third.readAvailable(timeout: 0.3) == "")  // waits-on-purpose: nothing may arrive
            first.shut()  // a slot frees
            let answer = try #require(third.readUntilClosed(timeout: 10))
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")

            // A declared body over max_body_size: 413 at once, the body never read.
            let big = try RawConnection(port: intake.port)
            big.send(
                "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 100000\r\n\r\n{"
            )
            let refused = try #require(big.readUntilClosed(timeout: 5))
            #expect(refused.hasPrefix("HTTP/1.1 413"), "\(refused)")
            // A chunked body that grows past it: 413 when it does, and the connection closed.
            let chunked = try RawConnection(port: intake.port)
            chunked.send(
                "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for _ in 0..<5 where chunked.send("400\r\n" + String(repeating: "a", count: 1024) + "\r\n") {}
            let grown = try #require(chunked.readUntilClosed(timeout: 5))
            #expect(grown.hasPrefix("HTTP/1.1 413"), "\(grown)")

            // Expect: 100-continue is answered once the credentials pass, and refused without it when they do not.
            let continued = try RawConnection(port: intake.port)
            continued.send(
                "POST /hooks/native HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nExpect: 100-continue\r\nContent-Length: \(event.utf8.count + 1)\r\nConnection: close\r\n\r\n"
            )
            let interim = continued.readAvailable(timeout: 5)
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
            continued.send(event.replacingOccurrences(of: "bounds-1", with: "bounds-22"))
            #expect(continued.readUntilClosed(timeout: 5)?.contains("HTTP/1.1 200") == true)
            let noCredentials = try RawConnection(port: intake.port)
            noCredentials.send(
                "POST /hooks/native HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"
            )
            let denied = try #require(noCredentials.readUntilClosed(timeout: 5))
            #expect(denied.hasPrefix("HTTP/1.1 401"), "\(denied)")
            #expect(sandbox.spoolFiles("new").count == 2)

            // The metrics file as Prometheus' own parser reads it.
            _ = try await waitFor("the metrics file to count the 413s") { () -> [String: Double]? in
                let samples = try Metrics.parse("\(sandbox.root)/var/metrics/sitroom-intake.prom")
                return samples["sitroom_intake_requests_total{code=\"413\",route=\"/hooks/native\"}"] == 2
                    ? samples : nil
            }
            expectNoSecrets(sandbox)
        }
    }

    // MARK: TLS

    @Test(
        "tls: HTTPS with the configured certificate (curl verifies it); a renewed certificate counts after SIGHUP",
        .enabled(if: Tools.path("openssl") != nil && Tools.path("curl") != nil, "openssl and curl are needed")
    )
    func tls() async throws {
        let openssl = try #require(Tools.path("openssl"))
        let curl = try #require(Tools.path("curl"))
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.makeSpool()
            func certificate(_ name: String) throws {
                let made = try Tools.run(
                    openssl,
                    [
                        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
                        "2",
                        "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", "\(sandbox.root)/etc/secrets/\(name).key", "-out", "\(sandbox.root)/etc/\(name).pem",
                    ]
                )
                #expect(made.code == 0, "\(made.out)")
                chmod("\(sandbox.root)/etc/secrets/\(name).key", 0o600)
            }
            try certificate("first")
            try certificate("second")
            try sandbox.writeIntake(settings: "tls: { cert_file: intake.pem, key_file: secrets/intake.key }")
            for (from, to) in [("first.pem", "intake.pem"), ("secrets/first.key", "secrets/intake.key")] {
                try FileManager.default.copyItem(
                    atPath: "\(sandbox.root)/etc/\(from)",
                    toPath: "\(sandbox.root)/etc/\(to)"
                )
            }
            chmod("\(sandbox.root)/etc/secrets/intake.key", 0o600)
            let intake = try await sandbox.startIntake()
            let event =
                #"{"event_id": "tls-1", "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened", "incident": {"id": "INC-7", "title": "x"}, "participants": []}"#
            func post(trusting ca: String, id: String) throws -> String {
                try Tools.run(
                    curl,
                    [
                        "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "\(sandbox.root)/etc/\(ca).pem",
                        "-H", "Authorization: Bearer \(sandbox.intakeSecret("native.token"))", "--data-binary",
                        event.replacingOccurrences(of: "tls-1", with: id),
                        "https://127.0.0.1:\(intake.port)/hooks/native",
                    ]
                ).out
            }
            #expect(try post(trusting: "first", id: "tls-1") == "200")
            #expect(try post(trusting: "second", id: "tls-2") != "200", "the other certificate is not the one served")
            let plain = try Tools.run(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", intake.url("/healthz")]).out
            #expect(plain != "200", "plain HTTP is not served on a TLS port")

            // Renewal: new files in place, then SIGHUP; new connections get the new certificate.
            for (from, to) in [("second.pem", "intake.pem"), ("secrets/second.key", "secrets/intake.key")] {
                let target = "\(sandbox.root)/etc/\(to)"
                try FileManager.default.copyItem(atPath: "\(sandbox.root)/etc/\(from)", toPath: target + ".new")
                chmod(target + ".new", to.hasSuffix(".key") ? 0o600 : 0o644)
                #expect(rename(target + ".new", target) == 0)
            }
            intake.child.signal(SIGHUP)
            _ = try await waitFor("the renewed certificate to be served") {
                try post(trusting: "second", id: "tls-3") == "200" ? true : nil
            }
            #expect(sandbox.spoolFiles("new").count == 2)
            #expect(!sandbox.allLogs().contains("PRIVATE KEY"))
        }
    }

    // MARK: Reload and status

    @Test(
        "a route added to etc/intake.yaml serves without a restart; a bad edit keeps the last good routes and shows in status"
    )
    func reload() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try sandbox.writeIntake(
                routes: "  /hooks/native: { format: native, bearer_token_file: secrets/native.token }"
            )
            try await sandbox.startDaemon()
            let intake = try await sandbox.startIntake()
            let status = try await sandbox.ctl(["status"])
            #expect(status.out.contains("intake: up since"), "\(status.out)")
            #expect(status.out.contains("on 127.0.0.1:\(intake.port)"))
            let health = try await sandbox.http.send(Curl.HTTPRequest(method: .get, url: intake.url("/healthz")))
            #expect(health.status == 200)
            let body = Array(
                try Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/examples/alertmanager-firing.json"))
            )
            let auth = [("Authorization", "Bearer \(sandbox.intakeSecret("alertmanager.token"))")]
            #expect(try await sandbox.post(intake.url("/hooks/alertmanager"), body, headers: auth).status == 404)

            try sandbox.writeIntake()  // every route
            _ = try await waitFor("the new route to serve") { () -> Bool? in
                try await sandbox.post(intake.url("/hooks/alertmanager"), body, headers: auth).status == 200
                    ? true : nil
            }
            try sandbox.write("etc/intake.yaml", sandbox.read("etc/intake.yaml") + "  /hooks/bad: { format: native }\n")
            _ = try await waitFor("status to show the rejected edit") { () -> String? in
                let out = try await sandbox.ctl(["status"]).out
                return out.contains("etc/intake.yaml rejected") ? out : nil
            }
            #expect(try await sandbox.post(intake.url("/hooks/alertmanager"), body, headers: auth).status == 200)
            expectNoSecrets(sandbox)
        }
    }

    @Test("sitroom-intake exits 78 on a bad intake.yaml (printing file:line:col) and 75 when another one runs")
    func exitCodes() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try sandbox.makeSpool()
        try sandbox.write("etc/intake.yaml", "listen: 127.0.0.1:0\nroutes:\n  /x: { format: native }\n")
        let bad = try Child("sitroom-intake", ["--root", sandbox.root], logs: "\(sandbox.root)/logs", name: "bad")
        #expect(try await bad.waitForExit() == 78)
        #expect(
            bad.stderr.contains("etc/intake.yaml:3:7: routes./x: format native needs bearer_token_file"),
            "\(bad.stderr)"
        )
        let check = try Child(
            "sitroom-intake",
            ["--root", sandbox.root, "--check-config"],
            logs: "\(sandbox.root)/logs",
            name: "check"
        )
        #expect(try await check.waitForExit() == 1)
        try sandbox.writeIntake()
        _ = try await sandbox.startIntake()
        let second = try Child(
            "sitroom-intake",
            ["--root", sandbox.root],
            logs: "\(sandbox.root)/logs",
            name: "second"
        )
        #expect(try await second.waitForExit() == 75)
    }

    // MARK: Shipped files

    @Test(
        "etc/systemd/sitroom-intake.service: systemd-analyze verify accepts it; the store is out of its reach",
        .enabled(
            if: Tools.path("systemd-analyze") != nil || ProcessInfo.processInfo.environment["CI"] != nil,
            "systemd-analyze (Debian package systemd) is needed"
        )
    )
    func unitFile() throws {
        let analyze = try #require(Tools.path("systemd-analyze"), "systemd-analyze is needed in CI")
        let unit = try String(contentsOfFile: "\(repositoryRoot)/etc/systemd/sitroom-intake.service", encoding: .utf8)
        for line in [
            "Type=notify", "ExecStart=/usr/local/bin/sitroom-intake --etc /etc/sitroom --var /var/lib/sitroom",
            "ExecReload=/bin/kill -HUP $MAINPID", "User=sitroom", "ProtectSystem=strict", "NoNewPrivileges=yes",
            "ReadWritePaths=/var/lib/sitroom/spool/incidents/tmp /var/lib/sitroom/spool/incidents/new",
            "InaccessiblePaths=-/var/lib/sitroom/lib", "RestartPreventExitStatus=75 78", "CapabilityBoundingSet=\n",
        ] {
            #expect(unit.contains(line), "the unit lacks \(line)")
        }
        let directory = NSTemporaryDirectory() + "sitroom-unit-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try unit.replacingOccurrences(of: "/usr/local/bin/sitroom-intake", with: "\(binDirectory)/sitroom-intake")
            .write(toFile: "\(directory)/sitroom-intake.service", atomically: false, encoding: .utf8)
        let verify = try Tools.run(analyze, ["verify", "\(directory)/sitroom-intake.service"])
        let complaints = verify.out.split(separator: "\n").filter { $0.contains("sitroom-intake.service") }
        #expect(verify.code == 0 && complaints.isEmpty, "\(verify.out)")
    }
}

/// PagerDuty's v1 signature, computed by Python's `hmac` (another implementation than the intake's).
enum PagerDutySigner {
    static func sign(_ body: [UInt8], _ secret: String) -> String {
        let python = Tools.path("python3") ?? "/usr/bin/python3"
        let directory = NSTemporaryDirectory() + "pd-sign-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = FileManager.default.createFile(atPath: directory + "/body", contents: Data(body))
        _ = FileManager.default.createFile(atPath: directory + "/key", contents: Data(secret.utf8))
        let script =
            "import hmac,hashlib,sys; print('v1=' + hmac.new(open(sys.argv[2],'rb').read(), open(sys.argv[1],'rb').read(), hashlib.sha256).hexdigest())"
        let result = try? Tools.run(python, ["-c", script, directory + "/body", directory + "/key"])
        return result?.out.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }
}
