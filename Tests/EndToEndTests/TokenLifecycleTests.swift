import Curl
import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomStore
import SitroomZoom
import Testing

@testable import SitroomDaemon

/// IntegrationRegistry in this process against zoom-sim over real HTTP, with a real LMDB store: the parts of
/// the token lifecycle that need a caller to be cancelled mid-refresh.
@Suite("token lifecycle against zoom-sim", .serialized)
struct TokenLifecycleTests {
    @Test("a user-OAuth refresh whose first caller is cancelled still happens once, and the rotated pair is committed")
    func refreshSurvivesCancelledCaller() async throws {
        let sandbox = try Sandbox(hosts: 1, integrations: ["zoom-user"])
        defer { sandbox.tearDown() }
        try await sandbox.startSim()
        try sandbox.writeIntegration(name: "zoom-user", hosts: 1, oauth: true)
        let configuration = try ConfigLoader.load(etcDirectory: "\(sandbox.root)/etc")
        let storeDirectory = "\(sandbox.root)/store"
        try FileManager.default.createDirectory(atPath: storeDirectory, withIntermediateDirectories: true)
        let store = try Store(directory: storeDirectory, mapSize: 1 << 24)
        let http = HTTPClient()
        defer { http.shutdown() }
        let registry = IntegrationRegistry(
            store: store,
            http: ZoomHTTPClient(sharing: http),
            clock: SystemWallClock(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        try await registry.configure(configuration)

        // Authorize bridge-1: the URL, zoom-sim's approval, the code back.
        let url = try await registry.beginAuthorization("zoom-user", host: "bridge-1")
        let approval = try await http.send(HTTPRequest(method: .get, url: url + "&sim_user=bridge-1@example.com"))
        let location = try #require(approval.headers["location"])
        let code = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
        _ = try await registry.completeAuthorization("zoom-user", host: "bridge-1", code: code)
        let first = try #require(
            try store.read { txn throws in try txn.tokens.get(TokenID(integration: "zoom-user", host: "bridge-1")) }
        )

        // The access token is refused: the next caller refreshes. Cancel it at once; a second caller joins.
        try await registry.invalidateToken("zoom-user", host: "bridge-1")
        let cancelled = Task { try await registry.accessToken("zoom-user", host: "bridge-1") }
        cancelled.cancel()
        let token = try await registry.accessToken("zoom-user", host: "bridge-1")
        _ = await cancelled.result

        let tokens = try #require(try await sandbox.simGET("/_sim/tokens") as? [String: Any])
        #expect((tokens["requests"] as? [String: Any])?["refresh_token"] as? Int == 1)
        let stored = try #require(
            try store.read { txn throws in try txn.tokens.get(TokenID(integration: "zoom-user", host: "bridge-1")) }
        )
        #expect(stored.accessToken == token)
        #expect(stored.refreshToken != first.refreshToken)  // rotated, and committed before use
        // The new token works.
        let me = try await http.send(
            HTTPRequest(
                method: .get,
                url: "http://127.0.0.1:\(sandbox.simPort)/v2/users/me",
                headers: [(name: "Authorization", value: "Bearer \(token)")]
            )
        )
        #expect(me.status == 200)
    }
}
