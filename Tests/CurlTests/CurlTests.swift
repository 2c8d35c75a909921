import Curl
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

struct Echo: Decodable {
    var method: String
    var path: String
    var headers: [String: String]
    var body: String
    var connection: Int
}

struct Stats: Decodable {
    var connections: Int
    var max_inflight: Int
}

func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse) throws -> T {
    try JSONDecoder().decode(type, from: Data(response.body))
}

/// A loopback port with nothing listening: bound to port 0, then closed.
func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw FixtureError(description: "socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw FixtureError(description: "bind failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite("Curl HTTP client against a loopback server")
struct CurlTests {
    @Test(arguments: [HTTPMethod.get, .post, .put, .patch, .delete])
    func methodsRoundTrip(method: HTTPMethod) async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            let body = method == .get ? [] : Array("payload for \(method.rawValue) ✓".utf8)
            let request = HTTPRequest(
                method: method,
                url: server.baseURL + "/echo/item?x=1",
                headers: [(name: "X-Test", value: "yes"), (name: "Content-Type", value: "text/plain")],
                body: body
            )
            let response = try await client.send(request)
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "application/json")
            #expect(response.headers["x-dup"] == "second")
            let echo = try decode(Echo.self, response)
            #expect(echo.method == method.rawValue)
            #expect(echo.path == "/echo/item?x=1")
            #expect(echo.body == String(decoding: body, as: UTF8.self))
            #expect(echo.headers["x-test"] == "yes")
            #expect(echo.headers["expect"] == nil)
            if method != .get {
                #expect(echo.headers["content-length"] == String(body.count))
            }
        }
    }

    @Test func emptyBodiesSendContentLengthZero() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            for method in [HTTPMethod.post, .put, .patch] {
                let response = try await client.send(HTTPRequest(method: method, url: server.baseURL + "/echo"))
                let echo = try decode(Echo.self, response)
                #expect(echo.method == method.rawValue)
                #expect(echo.headers["content-length"] == "0")
                #expect(echo.body == "")
            }
        }
    }

    @Test func basicAuthHeaderArrives() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            let response = try await client.send(
                HTTPRequest(
                    method: .post,
                    url: server.baseURL + "/echo",
                    basicAuth: (user: "alice", password: "s3:cr@t")
                )
            )
            let echo = try decode(Echo.self, response)
            let expected = "Basic " + Data("alice:s3:cr@t".utf8).base64EncodedString()
            #expect(echo.headers["authorization"] == expected)
        }
    }

    @Test func errorStatusIsReturnedNotThrown() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            let notFound = try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/status/404"))
            #expect(notFound.status == 404)
            #expect(String(decoding: notFound.body, as: UTF8.self) == #"{"status": 404}"#)
            let serverError = try await client.send(HTTPRequest(method: .delete, url: server.baseURL + "/status/503"))
            #expect(serverError.status == 503)
        }
    }

    @Test("the client's worker threads are named curl-http (ps -L, top -H), not after the thread that started them")
    func workerThreadsAreNamed() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            _ = try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/status/204"))
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            let names = tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
            #expect(names.contains("curl-http\n"))
        }
    }

    @Test func timeoutAfterSendingMayHaveBeenSent() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            let url = "http://user:hunter2@127.0.0.1:\(server.port)/delay/3000?token=secret#frag"
            let started = ContinuousClock.now
            let error = await #expect(throws: CurlError.operationTimedOut) {
                try await client.send(HTTPRequest(method: .post, url: url, body: [1], timeout: 0.3))
            }
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(error?.requestMayHaveBeenSent == true)
            let message = error?.message ?? ""
            #expect(message.contains("POST http://127.0.0.1:\(server.port)/delay/3000"))
            #expect(!message.contains("hunter2"))
            #expect(!message.contains("secret"))
            #expect(!message.contains("frag"))
        }
    }

    @Test func refusedConnectionWasNeverSent() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let port = try closedPort()
        let error = await #expect(throws: CurlError.couldNotConnect) {
            try await client.send(HTTPRequest(method: .post, url: "http://127.0.0.1:\(port)/echo", body: [1]))
        }
        #expect(error?.requestMayHaveBeenSent == false)
    }

    @Test func badURLsFailBeforeSending() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let malformed = await #expect(throws: CurlError.urlMalformed) {
            try await client.send(HTTPRequest(method: .get, url: "not a url"))
        }
        #expect(malformed?.requestMayHaveBeenSent == false)
        let unsupported = await #expect(throws: CurlError.self) {
            try await client.send(HTTPRequest(method: .get, url: "ftp://127.0.0.1/file"))
        }
        #expect(unsupported?.requestMayHaveBeenSent == false)
    }

    @Test func headerInjectionIsRefused() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let error = await #expect(throws: CurlError.badFunctionArgument) {
            try await client.send(
                HTTPRequest(
                    method: .get,
                    url: "http://127.0.0.1:9/echo",
                    headers: [(name: "X-Evil", value: "a\r\nHost: elsewhere")]
                )
            )
        }
        #expect(error?.requestMayHaveBeenSent == false)
    }

    @Test func sequentialRequestsReuseOneConnection() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            var connections: Set<Int> = []
            for i in 0..<20 {
                let method: HTTPMethod = i % 2 == 0 ? .get : .post
                let response = try await client.send(
                    HTTPRequest(method: method, url: server.baseURL + "/echo", body: method == .get ? [] : [UInt8(i)])
                )
                connections.insert(try decode(Echo.self, response).connection)
            }
            #expect(connections.count == 1)
            #expect(client.connectionsOpened == 1)
            let stats = try decode(
                Stats.self,
                try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/stats"))
            )
            #expect(stats.connections == 1)
        }
    }

    @Test("a POST whose reused connection dies unanswered is not sent again")
    func nonIdempotentRequestsAreNotReplayed() async throws {
        try await withEchoServer { server in
            let client = HTTPClient(maxConnectionsPerOrigin: 1)
            defer { client.shutdown() }
            // Warm a keep-alive connection, then POST on it to a route that drops the connection.
            _ = try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/echo"))
            let error = await #expect(throws: CurlError.self) {
                try await client.send(HTTPRequest(method: .post, url: server.baseURL + "/drop", body: [1]))
            }
            #expect(error?.requestMayHaveBeenSent == true)
            let afterPost = try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/stats"))
            #expect(
                (try JSONSerialization.jsonObject(with: Data(afterPost.body)) as? [String: Any])?["dropped"] as? Int
                    == 1
            )
        }
    }

    @Test func concurrencyIsLimitedPerOrigin() async throws {
        try await withEchoServer { server in
            let client = HTTPClient(maxConnectionsPerOrigin: 2)
            defer { client.shutdown() }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/slow/150")).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 6))
            let stats = try decode(
                Stats.self,
                try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/stats"))
            )
            #expect(stats.max_inflight == 2)
            #expect(stats.connections == 2)
            #expect(client.connectionsOpened == 2)
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        try await withEchoServer { server in
            let client = HTTPClient()
            defer { client.shutdown() }
            let started = ContinuousClock.now
            let task = Task {
                try await client.send(HTTPRequest(method: .get, url: server.baseURL + "/delay/5000"))
            }
            task.cancel()
            let result = await task.result
            #expect(ContinuousClock.now - started < .seconds(3))
            switch result {
            case .success: Issue.record("a cancelled request succeeded")
            case .failure(let error as CurlError): #expect(error == .abortedByCallback)
            case .failure(let error): #expect(error is CancellationError)
            }
        }
    }

    @Test func shutDownClientRefusesRequests() async throws {
        let client = HTTPClient()
        client.shutdown()
        client.shutdown()
        let error = await #expect(throws: CurlError.failedInit) {
            try await client.send(HTTPRequest(method: .get, url: "http://127.0.0.1:9/"))
        }
        #expect(error?.requestMayHaveBeenSent == false)
    }

    @Test func errorsMatchByCode() {
        let error = CurlError(code: 28, message: "Timeout was reached (GET http://x/)")
        #expect(error == .operationTimedOut)
        #expect(CurlError.operationTimedOut ~= (error as any Error))
        #expect(error.requestMayHaveBeenSent)
        #expect(!CurlError.couldNotConnect.requestMayHaveBeenSent)
        #expect(error.description == "curl error 28: Timeout was reached (GET http://x/)")
    }
}
