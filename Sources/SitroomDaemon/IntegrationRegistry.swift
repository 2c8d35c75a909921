import Curl
import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomStore
import SitroomZoom

/// The runtime state of an integration (SPEC §5).
public enum IntegrationState: String, Sendable, Codable {
    case pendingAuthorization = "pending_authorization"
    case active
    case needsReauthorization = "needs_reauthorization"
}

/// What sitroom keeps of an integration between runs.
public struct IntegrationRecord: Sendable, Codable, Hashable {
    public var state: IntegrationState
    /// Zoom's words for the last refusal, when `needs_reauthorization`.
    public var reason: String?
    public var since: Double
}

/// The configured video integrations: their Zoom clients, OAuth access tokens and states.
///
/// Server-to-Server tokens (`grant_type=account_credentials`) are cached in LMDB until 60 s before their
/// `expires_in` runs out; at most one token request per integration is in flight (later callers await it).
public actor IntegrationRegistry {
    private let executor = ThreadExecutor(name: "sitroom-registry")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let store: Store
    private let http: HTTPClient
    private let clock: any WallClock
    private let logger: Logger
    private var integrations: [String: IntegrationConfig] = [:]
    private var clients: [String: ZoomClient] = [:]
    private var tokens: [String: StoredToken] = [:]
    private var inFlight: [String: Task<StoredToken, any Error>] = [:]
    private var records: [String: IntegrationRecord] = [:]

    /// Seconds before `expires_in` runs out when a token is no longer used.
    public static let expiryMargin = 60.0

    public init(store: Store, http: HTTPClient, clock: any WallClock, logger: Logger) {
        self.store = store
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    /// Applies a configuration generation in one LMDB transaction: new integrations are added
    /// (`pending_authorization` until their first token), removed ones forgotten (their records and tokens
    /// deleted from LMDB), changed ones get a new client. An integration known to the store but not configured
    /// (its file was removed while sitroomd was not running) counts as removed too.
    /// - Returns: the names of integrations that were removed, sorted.
    /// - Throws: store errors; nothing is changed then.
    @discardableResult
    public func configure(_ configuration: Configuration) throws -> [String] {
        let store = self.store
        let now = clock.now()
        var removed: [String] = []
        let known: [String: IntegrationRecord] = try store.write { txn in
            var gone = Set(integrations.keys.filter { configuration.integrations[$0] == nil })
            try txn.forEach(store.tables.integrations, prefix: "") { name, _ in
                if configuration.integrations[name] == nil { gone.insert(name) }
                return true
            }
            removed = gone.sorted()
            for name in removed {
                try txn.delete(store.tables.tokens, name)
                // Tokens kept per host (`NAME/HOST`, user-authorized apps) go too.
                var hostKeys: [String] = []
                try txn.forEach(store.tables.tokens, prefix: "\(name)/") { key, _ in
                    hostKeys.append(key)
                    return true
                }
                for key in hostKeys { try txn.delete(store.tables.tokens, key) }
                try txn.delete(store.tables.integrations, name)
            }
            var known: [String: IntegrationRecord] = [:]
            for name in configuration.integrations.keys {
                if let record = try store.get(IntegrationRecord.self, store.tables.integrations, name, txn) {
                    known[name] = record
                } else {
                    let record = IntegrationRecord(state: .pendingAuthorization, reason: nil, since: now)
                    try store.put(record, store.tables.integrations, name, txn)
                    known[name] = record
                }
            }
            return known
        }
        for name in removed {
            tokens[name] = nil
            inFlight[name]?.cancel()
            inFlight[name] = nil
            clients[name] = nil
        }
        for (name, integration) in configuration.integrations {
            if integrations[name] != integration {
                clients[name] = ZoomClient(http: http, apiURL: integration.apiURL, oauthURL: integration.oauthURL)
                tokens[name] = nil
            }
        }
        integrations = configuration.integrations
        records = known
        return removed
    }

    /// The Zoom client of an integration, or `nil` when it is not configured.
    public func client(_ name: String) -> ZoomClient? { clients[name] }

    /// The state of an integration, or `nil` when it is not configured.
    public func state(_ name: String) -> IntegrationRecord? { records[name] }

    /// All integrations with their states, by name.
    public func snapshot() -> [(name: String, kind: String, record: IntegrationRecord)] {
        integrations.keys.sorted().compactMap { name in
            guard let record = records[name], let integration = integrations[name] else { return nil }
            return (name, integration.kind.rawValue, record)
        }
    }

    /// A valid access token for the integration: cached, else requested (one request at a time).
    /// - Throws: ``ZoomError`` from the token endpoint (`needsReauthorization` for refused credentials),
    ///   or ``SitroomError`` `.notFound` / `.badConfig` for an unknown integration or unreadable secret.
    public func accessToken(_ name: String) async throws -> String {
        let now = clock.now()
        if let token = tokens[name], token.expiresAt - Self.expiryMargin > now { return token.accessToken }
        if let stored = try readStoredToken(name), stored.expiresAt - Self.expiryMargin > now {
            tokens[name] = stored
            return stored.accessToken
        }
        if let task = inFlight[name] { return try await task.value.accessToken }
        guard let integration = integrations[name], let client = clients[name] else {
            throw SitroomError(.notFound, "integration \(name) is not configured")
        }
        let clock = self.clock
        let task = Task<StoredToken, any Error> {
            let secret = try Self.readSecret(integration.clientSecretFile, key: "client_secret_file")
            guard integration.kind == .zoomS2S, let accountID = integration.accountID else {
                throw SitroomError(
                    .badConfig, "integration \(name): kind \(integration.kind.rawValue) needs `sitroomctl integration authorize`")
            }
            let issued = clock.now()
            let token = try await client.requestAccountToken(
                accountID: accountID, clientID: integration.clientID, clientSecret: secret)
            return StoredToken(accessToken: token.value, expiresAt: issued + token.expiresIn, refreshToken: token.refreshToken)
        }
        inFlight[name] = task
        defer { inFlight[name] = nil }
        do {
            let token = try await task.value
            guard integrations[name] != nil else { throw SitroomError(.notFound, "integration \(name) was removed") }
            let store = self.store
            let record = IntegrationRecord(state: .active, reason: nil, since: clock.now())
            let changed = records[name]?.state != .active
            try store.write { txn in
                try store.put(token, store.tables.tokens, name, txn)
                if changed { try store.put(record, store.tables.integrations, name, txn) }
            }
            tokens[name] = token
            if changed {
                records[name] = record
                logger.info("integration active", metadata: ["integration": "\(name)"])
            }
            return token.accessToken
        }
    }

    /// Forgets the cached token (Zoom answered 401 code 124), so the next call requests a new one.
    public func invalidateToken(_ name: String) throws {
        tokens[name] = nil
        let store = self.store
        try store.write { txn in _ = try txn.delete(store.tables.tokens, name) }
    }

    /// Marks the integration `needs_reauthorization` with Zoom's words.
    /// - Returns: true when the state changed (so admins are told once).
    @discardableResult
    public func markNeedsReauthorization(_ name: String, reason: String) throws -> Bool {
        guard integrations[name] != nil, records[name]?.state != .needsReauthorization else { return false }
        let record = IntegrationRecord(state: .needsReauthorization, reason: reason, since: clock.now())
        let store = self.store
        try store.write { txn in
            try store.put(record, store.tables.integrations, name, txn)
            _ = try txn.delete(store.tables.tokens, name)
        }
        records[name] = record
        tokens[name] = nil
        logger.warning(
            "integration needs re-authorization", metadata: ["integration": "\(name)", "reason": "\(reason)"])
        return true
    }

    private func readStoredToken(_ name: String) throws -> StoredToken? {
        let store = self.store
        return try store.read { txn in try store.get(StoredToken.self, store.tables.tokens, name, txn) }
    }

    /// Reads a secret file, refusing one that is not a regular file of mode 0600 or stricter (as ssh refuses a key).
    /// - Returns: the file's content without surrounding white space.
    /// - Throws: ``SitroomError`` `.badConfig` naming the key and the file (never the content).
    public static func readSecret(_ path: String, key: String) throws -> String {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw SitroomError(.badConfig, "\(key): \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw SitroomError(.badConfig, "\(key): \(path) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw SitroomError(
                .badConfig,
                "\(key): \(path) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw SitroomError(.badConfig, "\(key): \(path) cannot be read as UTF-8 text")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
