import Foundation
import LMDB
import SitroomCore
import Testing

@testable import SitroomStore

/// The repositories of ``StoreTransaction`` write the keys and values earlier builds wrote (an existing `var/`
/// opens unchanged), read what those builds wrote, and keep each table's entries apart.
@Suite("Store repositories over a real LMDB")
struct RepositoryTests {
    /// The raw keys of a table, read under the repositories.
    func keys(_ store: Store, _ db: KeyPath<Store.Tables, Database>) throws -> [String] {
        try store.environment.read { txn in try txn.keys(store.tables[keyPath: db], prefix: "") }
    }

    @Test("tokens are stored under the integration's name or integration/host")
    func tokenKeys() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            let own = TokenID(integration: "zoom-main", host: nil)
            let host = TokenID(integration: "zoom-user", host: "bridge-1")
            let other = TokenID(integration: "zoom-userx", host: "b")
            try store.write { txn in
                try txn.tokens.put(StoredToken(accessToken: "a", expiresAt: 1), for: own)
                try txn.tokens.put(
                    StoredToken(accessToken: "b", expiresAt: 2, refreshToken: "r", issuedAt: 0),
                    for: host
                )
                try txn.tokens.put(StoredToken(accessToken: "c", expiresAt: 3), for: other)
            }
            #expect(try keys(store, \.tokens) == ["zoom-main", "zoom-user/bridge-1", "zoom-userx/b"])
            // A pair written as an earlier build wrote it (the record of a StoredToken under the raw key) reads back.
            let raw = try Store.encode(StoredToken(accessToken: "d", expiresAt: 4))
            _ = try store.environment.write { txn in try txn.put(store.tables.tokens, "zoom-user/bridge-2", raw) }
            #expect(
                try store.read { txn in try txn.tokens.get(TokenID(integration: "zoom-user", host: "bridge-2")) }?
                    .accessToken == "d"
            )
            #expect(try store.read { txn in try txn.tokens.all().map(\.id) }.contains(host))
            // Deleting every pair of zoom-user leaves zoom-userx's (a name that only starts the same).
            try store.write { txn in try txn.tokens.deleteAll(of: "zoom-user") }
            #expect(try keys(store, \.tokens) == ["zoom-main", "zoom-userx/b"])
        }
    }

    @Test("integration records, host authorizations, pending authorizations and drained marks keep their keys")
    func integrationKeys() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            try store.write { txn in
                try txn.integrations.putRecord(IntegrationRecord(state: .active, since: 1), for: "zoom-user")
                try txn.integrations.putRecord(IntegrationRecord(state: .active, since: 1), for: "zoom-main")
                try txn.integrations.putHostAuthorization(
                    HostAuthorization(state: .active, userID: "u1", email: "h@example.com", since: 2),
                    "zoom-user",
                    host: "bridge-1"
                )
                try txn.integrations.putPendingAuthorization(
                    PendingAuthorization(state: "s", verifier: "v", createdAt: 3),
                    "zoom-user",
                    host: "bridge-2"
                )
                try txn.integrations.setDrained(true, "zoom-user", host: "bridge-1")
                try txn.integrations.setDrained(true, "zoom-main", host: "b9")
                try txn.tokens.put(
                    StoredToken(accessToken: "a", expiresAt: 1),
                    for: TokenID(integration: "zoom-user", host: "bridge-1")
                )
            }
            #expect(
                try keys(store, \.integrations) == [
                    "drained/zoom-main/b9", "drained/zoom-user/bridge-1", "host/zoom-user/bridge-1",
                    "pending/zoom-user/bridge-2", "zoom-main", "zoom-user",
                ]
            )
            #expect(
                try store.environment.read { txn in try txn.get(store.tables.integrations, "drained/zoom-main/b9") }
                    == Array("1".utf8)
            )
            let (names, drained, authorization, pending) = try store.read { txn in
                (
                    try txn.integrations.names(), try txn.integrations.drained(),
                    try txn.integrations.hostAuthorization("zoom-user", host: "bridge-1"),
                    try txn.integrations.pendingAuthorization("zoom-user", host: "bridge-2")
                )
            }
            #expect(names == ["zoom-main", "zoom-user"])
            #expect(drained.map { "\($0.integration)/\($0.host)" } == ["zoom-main/b9", "zoom-user/bridge-1"])
            #expect(authorization?.email == "h@example.com")
            #expect(pending?.verifier == "v")

            try store.write { txn in
                try txn.integrations.setDrained(false, "zoom-main", host: "b9")
                #expect(try txn.integrations.deletePendingAuthorization("zoom-user", host: "bridge-2"))
            }
            #expect(try store.read { txn in try txn.integrations.drained().count } == 1)
            // Forgetting zoom-user takes its record, hosts' entries and tokens, and nothing of zoom-main.
            try store.write { txn in try txn.integrations.forget("zoom-user") }
            #expect(try keys(store, \.integrations) == ["zoom-main"])
            #expect(try keys(store, \.tokens).isEmpty)
        }
    }

    @Test("today's creates are read back per host, and the audit keeps the last entries")
    func usageAndAudit() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            try store.write { txn in
                try txn.usage.setCreates(3, day: "2026-11-29", integration: "zoom-main", host: "b1")
                try txn.usage.recordCreates(atLeast: 5, day: "2026-11-30", integration: "zoom-main", host: "b1")
                try txn.usage.recordCreates(atLeast: 2, day: "2026-11-30", integration: "zoom-main", host: "b1")
                try txn.usage.setCreates(1, day: "2026-11-30", integration: "zoom-user", host: "b/2")
                for index in 1...4 {
                    try txn.audit.append(AuditEntry(time: Double(index), uid: 0, command: "c\(index)", outcome: "ok"))
                }
            }
            #expect(
                try keys(store, \.usage) == [
                    "2026-11-29/zoom-main/b1", "2026-11-30/zoom-main/b1", "2026-11-30/zoom-user/b/2",
                ]
            )
            let today = try store.read { txn in try txn.usage.creates(on: "2026-11-30") }
            #expect(today.map { "\($0.integration) \($0.host) \($0.count)" } == ["zoom-main b1 5", "zoom-user b/2 1"])
            #expect(try store.read { txn in try txn.audit.last(2).map(\.command) } == ["c3", "c4"])
            #expect(try keys(store, \.audit).first == "000000000001")
        }
    }

    @Test("a nested transaction that throws is undone alone")
    func nestedUndo() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            struct Refused: Error {}
            try store.write { txn in
                try txn.nested { child in try child.events.markSeen("kept", at: 1) }
                #expect(throws: Refused.self) {
                    try txn.nested { child in
                        _ = try child.events.markSeen("undone", at: 2)
                        throw Refused()
                    }
                }
            }
            #expect(try keys(store, \.events) == ["kept"])
        }
    }
}
