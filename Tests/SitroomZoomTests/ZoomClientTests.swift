import Curl
import Foundation
import Testing

@testable import SitroomZoom

@Suite("Zoom client: shapes and classification")
struct ZoomClientTests {
    static let specPath: String? = {
        if let path = ProcessInfo.processInfo.environment["ZOOM_OPENAPI"] { return path }
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("shared/zoom-api/meetings-openapi.json")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    /// Validates `body` against the request schema of "Create a meeting" with openapi-schema-validator, and
    /// checks every field sent is one Zoom documents. - Returns: the validator's complaints (empty when valid).
    static func validateCreateRequest(_ body: Data) throws -> String {
        try validateRequest(body, path: "/users/{userId}/meetings", method: "post")
    }

    /// Validates a request body against the request schema of an operation (`path`, `method` as in the spec).
    static func validateRequest(_ body: Data, path: String, method: String) throws -> String {
        let script = #"""
            import json, sys
            from openapi_schema_validator import OAS30Validator, oas30_format_checker
            spec = json.load(open(sys.argv[1]))
            schema = spec["paths"][sys.argv[3]][sys.argv[4]]["requestBody"]["content"]["application/json"]["schema"]
            body = json.load(open(sys.argv[2]))
            problems = [e.message for e in OAS30Validator(schema, format_checker=oas30_format_checker).iter_errors(body)]
            problems += ["undocumented field " + k for k in body if k not in schema["properties"]]
            problems += ["undocumented setting " + k for k in body.get("settings", {}) if k not in schema["properties"].get("settings", {}).get("properties", {})]
            print("\n".join(problems))
            """#
        let file = NSTemporaryDirectory() + "create-\(UUID().uuidString).json"
        try body.write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, specPath!, file, path, method]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 { return "validator failed: \(output)" }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Skipped on a developer's machine without the spec; never in CI (`CI` set), where its absence is a failure.
    @Test(
        "the create-meeting body sitroom sends is what Zoom's OpenAPI documents",
        .enabled(
            if: ZoomClientTests.specPath != nil || ProcessInfo.processInfo.environment["CI"] != nil,
            "shared/zoom-api/meetings-openapi.json (above the clone) or $ZOOM_OPENAPI is needed"))
    func createBodyMatchesContract() throws {
        let request = MeetingRequest(
            topic: "Situation Room: Payments down", startTime: "2026-11-29T12:00:00Z", duration: 60, password: "abc123XYZ9",
            agenda: "sitroom:room=r0123\nIncident INC-1", settings: .init(
                waitingRoom: false, joinBeforeHost: true, autoRecording: "none", alternativeHosts: "ada@example.com"))
        let body = try JSONEncoder().encode(request)
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(object["type"] as? Int == 2)
        #expect(object["start_time"] as? String == "2026-11-29T12:00:00Z")
        #expect((object["agenda"] as? String)?.hasPrefix("sitroom:room=r0123") == true)
        try #require(Self.specPath != nil, "shared/zoom-api/meetings-openapi.json not found above the tests")
        #expect(try Self.validateCreateRequest(body) == "")
        // The other request body sitroom sends: "Update meeting status" to end a meeting.
        #expect(try Self.validateRequest(Data(ZoomClient.endMeetingBody), path: "/meetings/{meetingId}/status", method: "put") == "")
    }

    @Test("a 2xx answer without join_url or id is a failure, never a room with a placeholder link")
    func incompleteAnswerIsRefused() {
        #expect(throws: ZoomError.self) { try ZoomClient.meeting(from: Array(#"{"id": 85746065432}"#.utf8)) }
        #expect(throws: ZoomError.self) { try ZoomClient.meeting(from: Array(#"{"join_url": "https://zoom.us/j/1"}"#.utf8)) }
        #expect(throws: ZoomError.self) { try ZoomClient.meeting(from: Array("not json".utf8)) }
        let meeting = try? ZoomClient.meeting(
            from: Array(#"{"id": 85746065432, "join_url": "https://zoom.us/j/85746065432?pwd=x", "password": "x"}"#.utf8))
        #expect(meeting?.id == 85_746_065_432)
        #expect(meeting?.password == "x")
    }

    static func error(_ status: Int, _ body: String, oauth: Bool = false, headers: [String: String] = [:]) -> ZoomError {
        ZoomClient.error(from: HTTPResponse(status: status, headers: headers, body: Array(body.utf8)), oauth: oauth)
    }

    @Test("Zoom's documented errors map to what sitroom does about them")
    func classification() {
        #expect(Self.error(401, #"{"code":124,"message":"Invalid access token."}"#).isInvalidAccessToken)
        #expect(Self.error(404, #"{"code":1001,"message":"User does not exist: x"}"#).isHostUnusable)
        #expect(Self.error(400, #"{"code":3161,"message":"no hosting"}"#).isHostUnusable)
        #expect(Self.error(404, #"{"code":3001,"message":"Meeting does not exist: 1."}"#).isMeetingGone)
        // The daily create/update limit: documented as code 300, answered as HTTP 429.
        #expect(Self.error(400, #"{"code":300,"message":"A maximum of 100 meetings can be created/updated"}"#).isDailyLimit)
        let daily = Self.error(
            429,
            #"{"code":429,"message":"You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."}"#)
        #expect(daily.isDailyLimit)
        #expect(!daily.isRateLimited)
        let perSecond = Self.error(
            429, #"{"code":429,"message":"You have reached the maximum per-second rate limit for this API. Try again later."}"#,
            headers: ["retry-after": "2"])
        #expect(perSecond.isRateLimited)
        #expect(perSecond.isTransient)
        #expect(perSecond.retryAfter == 2)
        #expect(Self.error(502, "").isTransient)
        #expect(Self.error(502, "").outcomeUnknown)
        for code in [4700, 4702, 4704, 4711, 4717] {
            #expect(Self.error(400, #"{"code":\#(code),"message":"x"}"#, oauth: true).needsReauthorization)
        }
        #expect(Self.error(401, #"{"reason":"Invalid client_id or client_secret","error":"invalid_client"}"#, oauth: true).needsReauthorization)
    }

    @Test("PKCE S256 as RFC 7636 appendix B computes it")
    func pkce() {
        let pair = PKCE(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        #expect(pair.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE().verifier.count == 43)
        #expect(PKCE().verifier != PKCE().verifier)
    }

    @Test("app_deauthorized webhook files: genuine accepted; forged, stale or unsigned refused")
    func webhookVerification() throws {
        let body = Array(
            #"{"event":"app_deauthorized","payload":{"account_id":"Acct1","user_id":"u1","client_id":"cid","deauthorization_time":"2026-11-29T12:00:00Z","signature":"x","user_data_retention":"false"}}"#
                .utf8)
        let signature = ZoomWebhookFile.signature(secret: "whsec", timestamp: "1795910400", body: body)
        let file = Array("x-zm-request-timestamp: 1795910400\r\nx-zm-signature: \(signature)\r\ncontent-type: application/json\r\n\r\n".utf8) + body
        let parsed = try #require(ZoomWebhookFile.parse(file))
        #expect(parsed.body == body)
        try parsed.verify(secret: "whsec", receivedAt: 1_795_910_400 + 60)
        #expect(throws: WebhookError.self) { try parsed.verify(secret: "other", receivedAt: 1_795_910_400) }
        #expect(throws: WebhookError.self) { try parsed.verify(secret: "whsec", receivedAt: 1_795_910_400 + 301) }
        var tampered = parsed
        tampered.body[tampered.body.count - 3] = UInt8(ascii: "X")
        #expect(throws: WebhookError.self) { try tampered.verify(secret: "whsec", receivedAt: 1_795_910_400) }
        #expect(ZoomWebhookFile.parse(Array("event_id: x\nstage: opened\n".utf8)) == nil)
        let event = try AppDeauthorized.parse(body)
        #expect(event == AppDeauthorized(accountID: "Acct1", userID: "u1", clientID: "cid"))
    }
}
