import Foundation
import SitroomConfig
import SitroomCore
import SitroomZoom
import Synchronization
import Testing

@testable import SitroomIntake

/// What the intake answers, request by request (no sockets: the HTTP side is tested end to end), and what it puts
/// into the spool.
@Suite("intake answers")
struct HandlerTests {
    let fixture: IntakeFixture
    init() throws { fixture = try IntakeFixture() }

    @Test("Alertmanager with the bearer token: 200 only with the payload as received in new/; tmp/ empty")
    func alertmanagerBearer() async throws {
        let (handler, _) = try fixture.handler()
        let body = try example("alertmanager-firing.json")
        let answer = await handler.answer("/am", headers: ["authorization": "Bearer am-token"], body: body)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.json["status"] as? String == "spooled")
        #expect((answer.json["event_id"] as? String)?.hasPrefix("am-") == true)
        let files = fixture.files("new")
        #expect(files.count == 1)
        #expect(files.first?.hasSuffix(".sitroom-intake.alertmanager") == true)
        #expect(fixture.read("new", files[0]) == body)
        #expect(fixture.files("tmp").isEmpty)
    }

    @Test(
        "credentials: none or wrong is 401 with a challenge, before the body is looked at",
        arguments: [
            ("/am", [:], "Bearer"), ("/am", ["authorization": "Bearer wrong"], "Bearer"),
            ("/am-basic", ["authorization": "Basic " + Data("alertmanager:nope".utf8).base64EncodedString()], "Basic"),
            ("/native", ["authorization": "Bearer am-token"], "Bearer"),
        ] as [(String, [String: String], String)]
    )
    func unauthorized(path: String, headers: [String: String], scheme: String) async throws {
        let (handler, _) = try fixture.handler()
        let answer = await handler.answer(path, headers: headers, body: try example("alertmanager-firing.json"))
        #expect(answer.status == 401)
        #expect(answer.header("WWW-Authenticate")?.hasPrefix(scheme) == true)
        #expect(fixture.files("new").isEmpty)
    }

    @Test("Alertmanager with basic auth and a native event with its token are spooled")
    func basicAndNative() async throws {
        let (handler, _) = try fixture.handler()
        let basic = "Basic " + Data("alertmanager:am-password".utf8).base64EncodedString()
        #expect(
            await handler.answer(
                "/am-basic",
                headers: ["authorization": basic],
                body: try example("alertmanager-resolved.json")
            ).status == 200
        )
        let native = await handler.answer(
            "/native",
            headers: ["authorization": "Bearer native-token"],
            body: try example("incident-payments.yaml")
        )
        #expect(native.status == 200, "\(native.text)")
        #expect(fixture.files("new").count == 2)
    }

    @Test("PagerDuty: signed with one secret, with two (rotation), forged, unsigned; not incidents are 200 unspooled")
    func pagerDuty() async throws {
        let (handler, _) = try fixture.handler()
        let body = try example("pagerduty-triggered.json")
        let good = Credentials.pagerDutySignature(body: body, secret: "pd-secret")
        let old = Credentials.pagerDutySignature(body: body, secret: "pd-old-secret")
        #expect(await handler.answer("/pd", headers: ["x-pagerduty-signature": good], body: body).status == 200)
        #expect(
            await handler.answer("/pd", headers: ["x-pagerduty-signature": "\(old),\(good)"], body: body).status == 200
        )
        #expect(await handler.answer("/pd", headers: ["x-pagerduty-signature": old], body: body).status == 403)
        let forged = body + Array(" ".utf8)
        #expect(await handler.answer("/pd", headers: ["x-pagerduty-signature": good], body: forged).status == 403)
        #expect(await handler.answer("/pd", body: body).status == 401)
        #expect(fixture.files("new").count == 2)
        let service = Array(
            #"{"event":{"id":"01X","event_type":"service.updated","resource_type":"service","occurred_at":"2026-11-29T12:00:00Z","data":{"id":"PSVC","type":"service"}}}"#
                .utf8
        )
        let ignored = await handler.answer(
            "/pd",
            headers: ["x-pagerduty-signature": Credentials.pagerDutySignature(body: service, secret: "pd-secret")],
            body: service
        )
        #expect(ignored.status == 200, "\(ignored.text)")
        #expect(ignored.json["status"] as? String == "ignored")
        #expect(fixture.files("new").count == 2)
    }

    @Test("malformed bodies and bodies of another format are 400 naming line and column; nothing is spooled")
    func malformed() async throws {
        let (handler, _) = try fixture.handler()
        let auth = ["authorization": "Bearer am-token"]
        let broken = await handler.answer("/am", headers: auth, body: Array(#"{"version": "4", "groupKey": "#.utf8))
        #expect(broken.status == 400)
        #expect(broken.text.hasPrefix("body:"), "\(broken.text)")
        let native = await handler.answer("/am", headers: auth, body: try example("incident-search.json"))
        #expect(native.status == 400)
        #expect(native.text.contains("the body is native"))
        let missing = await handler.answer(
            "/native",
            headers: ["authorization": "Bearer native-token"],
            body: Array("event_id: x\nstage: opened\n".utf8)
        )
        #expect(missing.status == 400)
        #expect(missing.text.contains("occurred_at"), "\(missing.text)")
        #expect(fixture.files("new").isEmpty)
    }

    @Test("answers are JSON that a parser reads back, whatever the strings hold")
    func jsonAnswers() throws {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} café"
        let answer = IntakeAnswer.json(200, ["reason": tricky, "generation": 3], outcome: "ignored")
        #expect(answer.json["reason"] as? String == tricky)
        #expect(answer.json["generation"] as? Int == 3)
    }

    @Test("404 for unknown paths, 405 for other methods, 413 for a declared body over max_body_size")
    func httpAnswers() async throws {
        let (handler, _) = try fixture.handler()
        #expect(await handler.answer("/nope").status == 404)
        let get = await handler.answer("/am", method: "GET")
        #expect(get.status == 405)
        #expect(get.header("Allow") == "POST")
        let head = IntakeRequestHead(
            method: "POST",
            path: "/am",
            headers: ["content-length": "\(64 << 10 + 1)", "authorization": "Bearer am-token"]
        )
        guard case .answer(let tooLarge) = handler.preflight(head) else {
            Issue.record("a body over the limit must be refused before it is read")
            return
        }
        #expect(tooLarge.status == 413)
        // Without the credentials, the limit is not told: 401 first.
        let anonymous = IntakeRequestHead(method: "POST", path: "/am", headers: ["content-length": "\(64 << 10 + 1)"])
        guard case .answer(let unauthorized) = handler.preflight(anonymous) else {
            Issue.record("a request without credentials must be refused before its body is read")
            return
        }
        #expect(unauthorized.status == 401)
        #expect(handler.label("/nope") == "other")
        #expect(handler.label("/am") == "/am")
    }

    static func zoomHeaders(_ body: [UInt8], at timestamp: Int, secret: String = "zoom-secret") -> [String: String] {
        [
            "x-zm-request-timestamp": "\(timestamp)", "content-type": "application/json; charset=utf-8",
            "x-zm-signature": ZoomWebhookFile.signature(secret: secret, timestamp: "\(timestamp)", body: body),
            "authorization": "legacy-verification-token",
        ]
    }

    @Test("Zoom: the URL validation is answered with the encryptedToken and nothing is spooled; it must be signed")
    func zoomValidation() async throws {
        let now = 1_800_000_000
        let (handler, _) = try fixture.handler(now: Double(now))
        let body = Array(
            #"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#
                .utf8
        )
        let answer = await handler.answer("/zoom", headers: Self.zoomHeaders(body, at: now), body: body)
        #expect(answer.status == 200)
        #expect(answer.json["plainToken"] as? String == "qgg8vlvZRS6UYooatFL8Aw")
        #expect(
            answer.json["encryptedToken"] as? String
                == Credentials.zoomEncryptedToken(plainToken: "qgg8vlvZRS6UYooatFL8Aw", secret: "zoom-secret")
        )
        // Unsigned, the intake would be an HMAC oracle for the webhook secret: refused.
        #expect(await handler.answer("/zoom", body: body).status == 401)
        #expect(
            await handler.answer("/zoom", headers: Self.zoomHeaders(body, at: now, secret: "guess"), body: body).status
                == 403
        )
        #expect(fixture.files("new").isEmpty)
    }

    @Test(
        "Zoom: app_deauthorized is spooled as the webhook file sitroomd reads; stale, forged and unused events are not"
    )
    func zoomEvents() async throws {
        let now = 1_800_000_000
        let (handler, _) = try fixture.handler(now: Double(now))
        let body = Array(
            #"{"event":"app_deauthorized","event_ts":1800000000000,"payload":{"account_id":"AcctUnit","user_id":"u1","signature":"abc","deauthorization_time":"2027-01-15T08:00:00Z","client_id":"unit-client","user_data_retention":"false","topic":"Café ☕"}}"#
                .utf8
        )
        let answer = await handler.answer("/zoom", headers: Self.zoomHeaders(body, at: now), body: body)
        #expect(answer.status == 200, "\(answer.text)")
        let files = fixture.files("new")
        #expect(files.count == 1)
        let file = fixture.read("new", files[0])
        // sitroomd's parser reads it as the Zoom webhook it is, body byte for byte, and the signature still verifies.
        guard case .zoomWebhook(let event) = try SpoolFileParser.parse(file, file: files[0], context: FeedContext())
        else {
            Issue.record("not read as a Zoom webhook")
            return
        }
        #expect(event.body == body)
        #expect(event.event == "app_deauthorized")
        let headers = Dictionary(
            event.headers.map { ($0.name.lowercased(), $0.value) },
            uniquingKeysWith: { a, _ in a }
        )
        #expect(headers["authorization"] == nil, "the legacy verification token is not written")
        try ZoomWebhookFile(headers: headers, body: event.body).verify(secret: "zoom-secret", receivedAt: Double(now))

        let stale = await handler.answer("/zoom", headers: Self.zoomHeaders(body, at: now - 301), body: body)
        #expect(stale.status == 403)
        // The answer says why (the log does too): a sender with a wrong clock can tell.
        #expect(String(decoding: stale.body, as: UTF8.self).contains("the signature does not verify: "))
        var forged = Self.zoomHeaders(body, at: now)
        forged["x-zm-signature"] = ZoomWebhookFile.signature(
            secret: "zoom-secret",
            timestamp: "\(now)",
            body: body + [0x20]
        )
        #expect(await handler.answer("/zoom", headers: forged, body: body).status == 403)
        let started = Array(
            #"{"event":"recording.completed","event_ts":1,"payload":{"account_id":"AcctUnit","object":{"id":"1"}}}"#
                .utf8
        )
        let unused = await handler.answer("/zoom", headers: Self.zoomHeaders(started, at: now), body: started)
        #expect(unused.status == 200)
        #expect(unused.json["status"] as? String == "ignored")
        #expect(fixture.files("new").count == 1)
    }

    @Test("a spool that cannot be written gives 503 with Retry-After, /healthz says why, and the next write recovers")
    func unwritable() async throws {
        let (handler, metrics) = try fixture.handler()
        let body = try example("alertmanager-firing.json")
        let auth = ["authorization": "Bearer am-token"]
        #expect(await handler.answer("/healthz", method: "GET").status == 200)
        try FileManager.default.moveItem(atPath: fixture.spool, toPath: fixture.spool + ".away")
        let refused = await handler.answer("/am", headers: auth, body: body)
        #expect(refused.status == 503)
        #expect(refused.header("Retry-After") == "\(IntakeHandler.retryAfter)")
        #expect(!metrics.spoolWritable)
        #expect(metrics.state.lastErrors.last?.message.contains("cannot write into the spool") == true)
        let health = await handler.answer("/healthz", method: "GET")
        #expect(health.status == 503)
        #expect((health.json["reason"] as? String)?.contains("missing") == true)
        try FileManager.default.moveItem(atPath: fixture.spool + ".away", toPath: fixture.spool)
        #expect(await handler.answer("/am", headers: auth, body: body).status == 200)
        #expect(metrics.spoolWritable)
        #expect(await handler.answer("/healthz", method: "GET").status == 200)
        #expect(fixture.files("new").count == 1)
    }

    @Test("a secret file that cannot be read is 503 (the sender retries), not 401")
    func secretMissing() async throws {
        let (handler, metrics) = try fixture.handler()
        try FileManager.default.removeItem(atPath: fixture.etc + "/secrets/am.token")
        let answer = await handler.answer(
            "/am",
            headers: ["authorization": "Bearer am-token"],
            body: try example("alertmanager-firing.json")
        )
        #expect(answer.status == 503)
        #expect(metrics.state.lastErrors.last?.message.contains("am.token") == true)
        #expect(metrics.state.lastErrors.allSatisfy { !$0.message.contains("am-token") }, "no secret in the state")
    }
}

@Suite("group commit")
struct SpoolWriterTests {
    @Test("concurrent deliveries share fsyncs: every file lands in new/, in fewer batches than files")
    func groupCommit() async throws {
        let fixture = try IntakeFixture()
        let batches = BatchLog()
        let writer = SpoolWriter(spool: fixture.spool) { files, _ in batches.add(files) }
        let names = await withTaskGroup(of: String?.self) { group in
            for index in 0..<200 {
                group.addTask { try? await writer.deliver(Array("event \(index)\n".utf8), suffix: "native").get() }
            }
            var names: [String] = []
            for await name in group { if let name { names.append(name) } }
            return names
        }
        #expect(names.count == 200)
        #expect(Set(names) == Set(fixture.files("new")))
        #expect(fixture.files("tmp").isEmpty)
        let sizes = batches.sizes
        #expect(sizes.reduce(0, +) == 200)
        #expect(sizes.count < 200, "at least one batch held several files: \(sizes)")
    }
}

/// Batch sizes the writer reported.
final class BatchLog: Sendable {
    private let list = Mutex<[Int]>([])
    func add(_ size: Int) { list.withLock { $0.append(size) } }
    var sizes: [Int] { list.withLock { $0 } }
}
