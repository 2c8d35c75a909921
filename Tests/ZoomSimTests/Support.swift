import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import ZoomSim

/// One answer: status, parsed JSON body (or `.null`), headers.
struct SimReply: Sendable {
    var status: Int
    var body: JSON
    var headers: HTTPFields
    var code: Int64? { body["code"]?.intValue }
}

/// A test harness: the state and an application on it.
struct Harness {
    let state: SimState
    let app: any ApplicationProtocol

    init(_ configuration: SimConfiguration = Harness.configuration()) {
        state = SimState(configuration: configuration, baseURL: "http://127.0.0.1:9999")
        var logger = Logger(label: "zoom-sim-test")
        logger.logLevel = .critical
        app = ZoomSimulator.buildApplication(state: state, logger: logger)
    }

    static func configuration(
        dailyLimit: Int = 100,
        mediumPerSecond: Int = 0,
        concurrent: Int = 1,
        tokenExpiresIn: Int = 3600
    ) -> SimConfiguration {
        SimConfiguration(
            apps: [
                .init(clientID: "abc123", clientSecret: "s3cret", accountID: "AcctSim1", kind: .s2s),
                .init(clientID: "user-app", clientSecret: "u-s3cret", accountID: "AcctSim1", kind: .oauth),
            ],
            users: [
                .init(id: "u1abc", email: "bridge-1@example.com", type: 2, concurrentMeetings: concurrent),
                .init(id: "u2abc", email: "bridge-2@example.com", type: 2, concurrentMeetings: 2),
                .init(id: "u3abc", email: "basic@example.com", type: 1, hostingAllowed: false),
            ],
            limits: .init(dailyCreateLimit: dailyLimit, mediumPerSecond: mediumPerSecond),
            tokenExpiresIn: tokenExpiresIn
        )
    }
}

extension TestClientProtocol {
    /// Sends a request and parses the answer.
    func call(
        _ method: HTTPRequest.Method,
        _ uri: String,
        bearer: String? = nil,
        basic: (String, String)? = nil,
        json: JSON? = nil,
        form: String? = nil
    ) async throws -> SimReply {
        var headers = HTTPFields()
        if let bearer { headers[.authorization] = "Bearer \(bearer)" }
        if let basic { headers[.authorization] = "Basic " + Data("\(basic.0):\(basic.1)".utf8).base64EncodedString() }
        var body: ByteBuffer?
        if let json {
            headers[.contentType] = "application/json"
            body = ByteBuffer(string: json.serialized())
        } else if let form {
            headers[.contentType] = "application/x-www-form-urlencoded"
            body = ByteBuffer(string: form)
        }
        return try await execute(uri: uri, method: method, headers: headers, body: body) { response in
            let parsed =
                response.body.readableBytes == 0
                ? JSON.null : (try? JSON.parse(Data(response.body.readableBytesView))) ?? .null
            return SimReply(status: Int(response.status.code), body: parsed, headers: response.headers)
        }
    }

    /// A Server-to-Server token for the `abc123` app.
    func s2sToken() async throws -> String {
        let reply = try await call(
            .post,
            "/oauth/token?grant_type=account_credentials&account_id=AcctSim1",
            basic: ("abc123", "s3cret")
        )
        #expect(reply.status == 200)
        return try #require(reply.body["access_token"]?.stringValue)
    }

    /// Creates a meeting for `user`.
    func createMeeting(
        _ token: String,
        user: String = "bridge-1@example.com",
        agenda: String = "sitroom:room=r1"
    )
        async throws -> SimReply
    {
        try await call(
            .post,
            "/v2/users/\(user)/meetings",
            bearer: token,
            json: [
                "topic": "Situation Room: db down", "type": 2, "start_time": "2026-01-01T10:00:00Z",
                "agenda": .string(agenda),
            ]
        )
    }
}

/// Waits until `condition` holds, polling; fails after `timeout`.
func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))  // waits-on-purpose: the step of a bounded poll
    }
    Issue.record("condition not met within \(timeout)")
}

/// Runs `body` with a fresh temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("zoomsim-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}
