import Curl
import Foundation
import Testing

@testable import SitroomZoom

@Suite("Zoom client: shapes and classification")
struct ZoomClientTests {
    /// The schemas sitroom is checked against, committed with it: docs/zoom-api/meetings-openapi.json, derived from
    /// Zoom's OpenAPI export (docs/zoom-api/README.md).
    static let specPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/zoom-api/meetings-openapi.json").path

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
        process.arguments = ["python3", "-c", script, specPath, file, path, method]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 { return "validator failed: \(output)" }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("the create-meeting body sitroom sends is what Zoom's OpenAPI documents")
    func createBodyMatchesContract() throws {
        let request = MeetingRequest(
            topic: MeetingRequest.cut(
                "Situation Room: " + String(repeating: "Payments down ", count: 180),
                to: ZoomLimits.topic
            ),
            startTime: "2026-11-29T12:00:00Z",
            duration: 60,
            password: MeetingRequest.passcode(length: 10),
            agenda: MeetingRequest.cut(
                "sitroom:room=r0123\nIncident INC-1: " + String(repeating: "x", count: 2500),
                to: ZoomLimits.agenda
            ),
            settings: .init(
                waitingRoom: false,
                joinBeforeHost: true,
                autoRecording: "none",
                alternativeHosts: MeetingRequest.alternativeHosts(
                    ["ada@example.com", "alan@example.com"],
                    excluding: nil
                )
            )
        )
        let body = try JSONEncoder().encode(request)
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(object["type"] as? Int == 2)
        #expect(object["start_time"] as? String == "2026-11-29T12:00:00Z")
        #expect((object["agenda"] as? String)?.hasPrefix("sitroom:room=r0123") == true)
        #expect(
            (object["settings"] as? [String: Any])?["alternative_hosts"] as? String
                == "ada@example.com;alan@example.com"
        )
        #expect(try Self.validateCreateRequest(body) == "")
        // The other request body sitroom sends: "Update meeting status" to end a meeting.
        #expect(
            try Self.validateRequest(
                Data(ZoomClient.endMeetingBody),
                path: "/meetings/{meetingId}/status",
                method: "put"
            ) == ""
        )
        // The schema carries Zoom's limits: what the old client sent is refused.
        var old = request
        old.topic = String(repeating: "t", count: 201)
        old.settings.alternativeHosts = "ada@example.com,alan@example.com"
        let problems = try Self.validateCreateRequest(try JSONEncoder().encode(old))
        #expect(problems.contains("is too long"), "\(problems)")
        #expect(problems.contains("does not match"), "\(problems)")
    }

    static let api = "https://api.zoom.us/v2"

    @Test("a join_url is usable only as an https link on the API's domain that names the meeting")
    func joinURLRule() {
        let id: Int64 = 85_746_065_432
        for good in [
            "https://zoom.us/j/85746065432?pwd=x", "https://us02web.zoom.us/j/85746065432?pwd=x",
            "https://US05WEB.zoom.us/j/85746065432",
        ] {
            #expect(ZoomClient.isUsableJoinURL(good, meetingID: id, apiURL: Self.api), "\(good)")
        }
        for bad in [
            "https://", "https://zoom.us", "https://zoom.us/", "http://zoom.us/j/85746065432",
            "https://evil.example/j/85746065432",
            "https://zoom.us.evil.example/j/85746065432", "https://notzoom.us/j/85746065432", "https://zoom.us/j/1234",
            "zoom.us/j/85746065432", "", "javascript:alert(1)",
        ] {
            #expect(!ZoomClient.isUsableJoinURL(bad, meetingID: id, apiURL: Self.api), "\(bad)")
        }
        // Zoom for Government's API names its own domain; a simulator on loopback, its host and scheme.
        #expect(
            ZoomClient.isUsableJoinURL(
                "https://zoomgov.com/j/85746065432",
                meetingID: id,
                apiURL: "https://api.zoomgov.com/v2"
            )
        )
        #expect(
            ZoomClient.isUsableJoinURL(
                "http://127.0.0.1:9480/j/85746065432?pwd=x",
                meetingID: id,
                apiURL: "http://127.0.0.1:9480/v2"
            )
        )
        #expect(
            !ZoomClient.isUsableJoinURL("http://127.0.0.1:9480/", meetingID: id, apiURL: "http://127.0.0.1:9480/v2")
        )
    }

    @Test("a 2xx answer without join_url or id is a failure, never a room with a placeholder link")
    func incompleteAnswerIsRefused() {
        #expect(throws: ZoomError.self) {
            try ZoomClient.meeting(from: Array(#"{"id": 85746065432}"#.utf8), apiURL: Self.api)
        }
        #expect(throws: ZoomError.self) {
            try ZoomClient.meeting(from: Array(#"{"join_url": "https://zoom.us/j/1"}"#.utf8), apiURL: Self.api)
        }
        #expect(throws: ZoomError.self) { try ZoomClient.meeting(from: Array("not json".utf8), apiURL: Self.api) }
        let meeting = try? ZoomClient.meeting(
            from: Array(
                #"{"id": 85746065432, "join_url": "https://zoom.us/j/85746065432?pwd=x", "password": "x"}"#.utf8
            ),
            apiURL: Self.api
        )
        #expect(meeting?.id == 85_746_065_432)
        #expect(meeting?.password == "x")
        // A field of another JSON type counts as absent: a quoted id is no id, a numeric password no password.
        #expect(throws: ZoomError.self) {
            try ZoomClient.meeting(
                from: Array(#"{"id": "85746065432", "join_url": "https://zoom.us/j/85746065432"}"#.utf8),
                apiURL: Self.api
            )
        }
        #expect(throws: ZoomError.self) { try ZoomClient.meeting(from: Array("[1, 2]".utf8), apiURL: Self.api) }
        let odd = try? ZoomClient.meeting(
            from: Array(
                #"{"id": 85746065432, "join_url": "https://zoom.us/j/85746065432", "password": 5, "settings": {"a": [1]}}"#
                    .utf8
            ),
            apiURL: Self.api
        )
        #expect(odd?.id == 85_746_065_432)
        #expect(odd != nil && odd?.password == nil)
    }

    static func error(
        _ status: Int,
        _ body: String,
        oauth: Bool = false,
        headers: [String: String] = [:],
        operation: ZoomOperation = .createMeeting,
        grant: String? = nil
    ) -> ZoomError {
        ZoomClient.error(
            from: HTTPResponse(status: status, headers: headers, body: Array(body.utf8)),
            operation: oauth ? .token : operation,
            grant: grant
        )
    }

    /// One documented answer and the row of the table it must land in.
    struct Case: Sendable, CustomTestStringConvertible {
        var status: Int
        var body: String
        var headers: [String: String] = [:]
        var operation: ZoomOperation = .createMeeting
        var grant: String? = nil
        var expected: ZoomAnswer
        var testDescription: String { "\(operation.rawValue) \(status) \(body.prefix(60)) → \(expected.rawValue)" }
    }

    static let dailyMessage429 =
        #"{"code":429,"message":"You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."}"#

    /// Zoom's documented answers (developers.zoom.us: the error definitions, "Create a meeting", "Delete a meeting",
    /// the rate-limit page and the OAuth error messages page), each in the row docs/zoom.md gives it.
    static let cases: [Case] = [
        // Code 300 is a validation error, not a quota...
        Case(
            status: 400,
            body:
                #"{"code":300,"message":"Validation Failed.","errors":[{"field":"topic","message":"Topic must be at most 200 characters."}]}"#,
            expected: .validationFailed
        ),
        Case(
            status: 400,
            body: #"{"code":300,"message":"The value that you entered for the schedule_for field is invalid."}"#,
            expected: .validationFailed
        ),
        Case(
            status: 400,
            body: #"{"code":300,"message":"Invalid enforce_login_domains, separate multiple domains by semicolon."}"#,
            expected: .validationFailed
        ),
        // ...unless its message is the daily limit.
        Case(
            status: 400,
            body:
                #"{"code":300,"message":"A maximum of 100 meetings can be created/updated for a single user in one day."}"#,
            expected: .dailyLimit
        ),
        Case(status: 429, body: dailyMessage429, expected: .dailyLimit),
        Case(
            status: 429,
            body: #"{"code":429,"message":"Too many requests."}"#,
            headers: ["x-ratelimit-type": "Daily-limit", "retry-after": "2020-05-31T00:00:00Z"],
            expected: .dailyLimit
        ),
        Case(
            status: 429,
            body:
                #"{"code":429,"message":"You have reached the maximum per-second rate limit for this API. Try again later."}"#,
            headers: ["retry-after": "2"],
            expected: .rateLimited
        ),
        Case(
            status: 400,
            body:
                #"{"code":300,"message":"Validation Failed.","errors":[{"field":"settings.alternative_hosts","message":"x@example.com is not a licensed user"}]}"#,
            expected: .alternativeHostsRefused
        ),
        Case(
            status: 400,
            body: #"{"code":1115,"message":"Alternative host x@example.com not found in this account."}"#,
            expected: .alternativeHostsRefused
        ),
        // 4711 on an API call: a scope the app lacks.
        Case(
            status: 400,
            body:
                #"{"code":4711,"message":"Invalid access token, does not contain scopes:[meeting:write:meeting:admin]."}"#,
            expected: .missingScope
        ),
        Case(
            status: 401,
            body: #"{"code":124,"message":"Invalid access token."}"#,
            operation: .getMeeting,
            expected: .accessTokenRejected
        ),
        Case(status: 404, body: #"{"code":1001,"message":"User does not exist: x."}"#, expected: .hostUnusable),
        Case(
            status: 400,
            body:
                #"{"code":3161,"message":"Meeting hosting and scheduling capabilities are not allowed for your user account."}"#,
            expected: .hostUnusable
        ),
        Case(
            status: 404,
            body: #"{"code":3001,"message":"Meeting does not exist: 1."}"#,
            operation: .deleteMeeting,
            expected: .meetingGone
        ),
        Case(
            status: 400,
            body: #"{"code":3007,"message":"Sorry, you cannot delete this meeting since it has ended."}"#,
            operation: .deleteMeeting,
            expected: .meetingEnded
        ),
        Case(
            status: 400,
            body: #"{"code":3002,"message":"Sorry, you cannot delete this meeting since it is in progress."}"#,
            operation: .deleteMeeting,
            expected: .meetingInProgress
        ),
        Case(status: 502, body: "", expected: .serverError),
        Case(status: 400, body: #"{"code":3000,"message":"Cannot access webinar info."}"#, expected: .refused),
        // The token endpoint: 4711 is the refresh token; answers without a code are read by `error` and status.
        Case(
            status: 400,
            body: #"{"code":4711,"message":"Refresh token invalid"}"#,
            operation: .token,
            grant: "refresh_token",
            expected: .refreshTokenInvalid
        ),
        Case(
            status: 400,
            body: #"{"reason":"Invalid Token!","error":"invalid_grant"}"#,
            operation: .token,
            grant: "refresh_token",
            expected: .refreshTokenInvalid
        ),
        Case(
            status: 400,
            body: #"{"reason":"Invalid authorization code","error":"invalid_grant"}"#,
            operation: .token,
            grant: "authorization_code",
            expected: .authorizationCodeInvalid
        ),
        Case(
            status: 401,
            body: #"{"reason":"Invalid client_id or client_secret","error":"invalid_client"}"#,
            operation: .token,
            grant: "account_credentials",
            expected: .credentialsRefused
        ),
        Case(
            status: 400,
            body: #"{"code":4700,"message":"Invalid account_id"}"#,
            operation: .token,
            grant: "account_credentials",
            expected: .credentialsRefused
        ),
        Case(
            status: 400,
            body: #"{"code":4705,"message":"Grant type is not supported from token endpoint."}"#,
            operation: .token,
            grant: "account_credentials",
            expected: .grantTypeUnsupported
        ),
        Case(
            status: 400,
            body: #"{"reason":"unsupported grant type","error":"unsupported_grant_type"}"#,
            operation: .token,
            grant: "refresh_token",
            expected: .grantTypeUnsupported
        ),
        Case(
            status: 400,
            body: #"{"code":4709,"message":"Redirect URI mismatch."}"#,
            operation: .token,
            grant: "authorization_code",
            expected: .redirectURIMismatch
        ),
        Case(
            status: 401,
            body: #"{"code":4717,"message":"The app has been disabled"}"#,
            operation: .token,
            grant: "account_credentials",
            expected: .appDisabled
        ),
    ]

    @Test("each documented Zoom answer lands in its row of the table", arguments: cases)
    func classification(_ item: Case) {
        let error = ZoomClient.error(
            from: HTTPResponse(status: item.status, headers: item.headers, body: Array(item.body.utf8)),
            operation: item.operation,
            grant: item.grant
        )
        #expect(error.answer == item.expected, "\(error)")
    }

    @Test("the table's columns: what each answer does to the request, host, integration and room")
    func tableColumns() {
        // A validation error fails that one room: never the host, the pool or the integration.
        let validation = ZoomAnswer.validationFailed.rule
        #expect(validation.room == .fail && validation.host == .none && validation.integration == .none)
        // Only the daily limit takes a host out until 00:00 UTC.
        #expect(ZoomAnswer.allCases.filter { $0.rule.host == .outOfQuota } == [.dailyLimit])
        // A missing scope is the integration's own state, and the room fails over.
        #expect(ZoomAnswer.missingScope.rule.integration == .missingScope)
        #expect(ZoomAnswer.missingScope.rule.room == .nextIntegration)
        #expect(!ZoomAnswer.missingScope.refusesAuthorization)
        // 4705 is configuration: the advice says so and does not send the admin to re-authorize alone.
        #expect(ZoomAnswer.grantTypeUnsupported.rule.advice.hasPrefix("configuration, not re-authorization"))
        // Delete's 3007 and 3001 count as done; 3002 waits for the end.
        #expect(ZoomAnswer.meetingEnded.rule.request == .done)
        #expect(ZoomAnswer.meetingGone.rule.request == .done)
        #expect(ZoomAnswer.meetingInProgress.rule.room == .retryLater)
        // The refresh token is the host's; refused client credentials the integration's.
        #expect(ZoomAnswer.refreshTokenInvalid.rule.host == .needsReauthorization)
        #expect(ZoomAnswer.credentialsRefused.rule.integration == .needsReauthorization)
        #expect(ZoomAnswer.allCases.allSatisfy { !$0.rule.advice.isEmpty })
        // Only answers that may have made a meeting leave a create's outcome open (an unusable 2xx did make one:
        // open only when deleting it failed too).
        #expect(
            Set(ZoomAnswer.allCases.filter { $0.rule.request == .mayHaveHappened }) == [
                .serverError, .noAnswer, .unusableAnswer,
            ]
        )
    }

    @Test("a decision fills in Zoom's words, the scopes, when to retry and the advice")
    func decisions() {
        let scope = Self.error(
            400,
            #"{"code":4711,"message":"Invalid access token, does not contain scopes:[meeting:write:meeting, meeting:write:meeting:admin]."}"#
        ).decision(now: 0, integration: "zoom-main")
        #expect(scope.missingScopes == ["meeting:write:meeting", "meeting:write:meeting:admin"])
        #expect(scope.advice.contains("meeting:write:meeting or meeting:write:meeting:admin"))
        #expect(scope.advice.contains("Scopes tab"))
        #expect(scope.advice.contains("`sitroomctl integration reauthorize zoom-main`"))

        let validation = Self.error(
            400,
            #"{"code":300,"message":"Validation Failed.","errors":[{"field":"password","message":"Passcode does not meet the account's requirements."}]}"#
        ).decision(now: 0, integration: "zoom-main", incident: "INC-7")
        #expect(validation.reason.contains("password: Passcode does not meet the account's requirements."))
        #expect(validation.advice.contains("`sitroomctl room retry INC-7`"))

        // Retry-After in seconds, or as an RFC 3339 time (the daily limit's next 00:00 UTC).
        let perSecond = Self.error(429, #"{"code":429,"message":"per-second"}"#, headers: ["retry-after": "2"])
        #expect(perSecond.decision(now: 100).retryIn == 2)
        let daily = Self.error(
            429,
            Self.dailyMessage429,
            headers: ["retry-after": "2020-05-31T00:00:00Z", "x-ratelimit-type": "Daily-limit"]
        )
        let midnight = 1_590_883_200.0  // 2020-05-31T00:00:00Z
        #expect(daily.decision(now: midnight - 3600).retryIn == 3600)
        #expect(daily.decision(now: midnight + 5).retryIn == 0)
        #expect(ZoomError.RetryAfter(header: "Sun, 31 May 2020 00:00:00 GMT") == .time(midnight))
        #expect(ZoomError.RetryAfter(header: "soon") == nil)
        #expect(Self.error(502, "").outcomeUnknown)
    }

    @Test("docs/zoom.md lists every row of the table")
    func documented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let manual = try String(contentsOf: root.appendingPathComponent("docs/zoom.md"), encoding: .utf8)
        for answer in ZoomAnswer.allCases {
            #expect(manual.contains("`\(answer.rawValue)`"), "docs/zoom.md does not list \(answer.rawValue)")
        }
    }

    @Test("create fields: passcodes meet account rules, topic and agenda cut at a character, hosts by semicolon")
    func createFields() {
        for length in 6...10 {
            for _ in 0..<200 {
                let passcode = MeetingRequest.passcode(length: length)
                #expect(passcode.count == length)
                #expect(passcode.contains { $0.isLetter })
                #expect(passcode.contains { $0.isNumber })
                #expect(passcode.contains { "@-_*".contains($0) })
                #expect(passcode.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "@-_*".contains($0)) })
            }
        }
        let title = String(repeating: "Payments down ", count: 200)
        #expect(MeetingRequest.cut(title, to: ZoomLimits.topic).count == 200)
        #expect(MeetingRequest.cut("short", to: 200) == "short")
        // A flag (two code points, four UTF-16 units) or an accented letter is never split.
        let flags = String(repeating: "🇫🇷", count: 60)
        let cut = MeetingRequest.cut(flags, to: 201)
        #expect(cut.utf16.count == 200 && cut.unicodeScalars.count == 100 && cut.count == 50)
        let accented = "e\u{301}"  // é as e + combining acute
        #expect(
            MeetingRequest.cut(String(repeating: accented, count: 3), to: 5) == String(repeating: accented, count: 2)
        )
        #expect(
            MeetingRequest.alternativeHosts(
                ["ada@example.com", "Alan@example.com", "ada@EXAMPLE.com", "bridge-1@example.com"],
                excluding: "bridge-1@example.com"
            ) == "ada@example.com;Alan@example.com"
        )
        #expect(MeetingRequest.alternativeHosts(["bridge-1@example.com"], excluding: "bridge-1@example.com") == nil)
    }

    @Test("PKCE S256 as RFC 7636 appendix B computes it")
    func pkce() {
        let pair = PKCE(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        #expect(pair.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE().verifier.count == 43)
        #expect(PKCE().verifier != PKCE().verifier)
    }

    @Test("Zoom's words reach reasons, logs and mail on one line, bounded")
    func errorTextIsOneLine() {
        let long = String(repeating: "x", count: 2_000)
        let error = Self.error(
            400,
            #"{"code":300,"message":"Bad\r\nBcc: x@example.org\u001b[2J","errors":[{"field":"a\nb","message":"\#(long)"}]}"#
        )
        #expect(error.message == "Bad  Bcc: x@example.org [2J")
        #expect(error.fieldErrors.first?.field == "a b")
        #expect(error.fieldErrors.first?.message.count == 301)  // 300 characters and the ellipsis
    }

    @Test("app_deauthorized webhook files: genuine accepted; forged, stale or unsigned refused")
    func webhookVerification() throws {
        let body = Array(
            #"{"event":"app_deauthorized","payload":{"account_id":"Acct1","user_id":"u1","client_id":"cid","deauthorization_time":"2026-11-29T12:00:00Z","signature":"x","user_data_retention":"false"}}"#
                .utf8
        )
        let signature = ZoomWebhookFile.signature(secret: "whsec", timestamp: "1795910400", body: body)
        let parsed = ZoomWebhookFile(
            headers: [
                "x-zm-request-timestamp": "1795910400", "x-zm-signature": signature, "content-type": "application/json",
            ],
            body: body
        )
        try parsed.verify(secret: "whsec", receivedAt: 1_795_910_400 + 60)
        #expect(throws: WebhookError.self) { try parsed.verify(secret: "other", receivedAt: 1_795_910_400) }
        #expect(throws: WebhookError.self) { try parsed.verify(secret: "whsec", receivedAt: 1_795_910_400 + 301) }
        var tampered = parsed
        tampered.body[tampered.body.count - 3] = UInt8(ascii: "X")
        #expect(throws: WebhookError.self) { try tampered.verify(secret: "whsec", receivedAt: 1_795_910_400) }
        var unsigned = parsed
        unsigned.headers["x-zm-signature"] = nil
        #expect(throws: WebhookError.self) { try unsigned.verify(secret: "whsec", receivedAt: 1_795_910_400) }
    }
}
