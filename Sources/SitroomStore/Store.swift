import Foundation
import LMDB
import SitroomCore

/// sitroom's durable state in one LMDB environment (SPEC §8): incidents, rooms, seen event ids, the outbox,
/// hosts' usage, tokens, integrations' runtime state and the audit log, with a schema version; and two indexes,
/// a summary per room and the state and room per outbox notice (``RoomSummary``, ``NoticeSummary``), written in
/// the transaction of every room and notice write so that start-up, `status` and the metrics decode no JSON per
/// room or notice.
///
/// Values are records (``RecordFormat``: a compact binary form of `Codable`; JSON before schema 3), but for the
/// indexes' and counters' short ASCII; keys are UTF-8 strings. Every write runs in one
/// synchronous LMDB write transaction committed with the default (synced) durability. Call it from an actor that
/// runs on its own thread (``ThreadExecutor``): commits block for a disk sync.
public final class Store: Sendable {
    /// The schema this build writes. A store with a newer one is refused; an older one is migrated.
    public static let schemaVersion = 3

    /// One step of the schema: what turns a store of version `from` into one of `from + 1`. It runs inside the
    /// write transaction that records the new version, so a crash leaves the old version whole.
    public struct Migration: Sendable {
        /// The version this step starts from.
        public var from: Int
        /// What the step changes, for the log.
        public var summary: String
        /// The work: read and rewrite what the new schema needs.
        public var apply: @Sendable (borrowing Transaction, Tables) throws -> Void

        public init(
            from: Int,
            summary: String,
            apply: @escaping @Sendable (borrowing Transaction, Tables) throws -> Void
        ) {
            self.from = from
            self.summary = summary
            self.apply = apply
        }
    }

    /// Every migration this build knows, one per version step (`from` 1, 2, ...). A change to the schema (a new
    /// table, a key or value layout) bumps ``schemaVersion`` and adds its step here.
    /// - 1 → 2: the room index (`room_index`) and the outbox index (`outbox_index`) are built from `rooms` and
    ///   `outbox` (every room and notice decoded once, in the migration's transaction).
    /// - 2 → 3: every JSON value (object, array or string; not the raw ASCII counts and times) is rewritten as a
    ///   record (``RecordFormat``), the binary form that costs a fraction of JSON to write and read.
    public static let migrations: [Migration] = [
        Migration(from: 1, summary: "room and outbox indexes built") { txn, tables in
            try Store.rebuildIndexes(txn, tables)
        },
        Migration(from: 2, summary: "values rewritten from JSON as records") { txn, tables in
            try Store.transcodeJSON(txn, tables)
        },
    ]

    /// The named LMDB databases (`MDB_dbi`s) of the schema.
    public struct Tables: Sendable {
        public let meta: Database
        public let incidents: Database
        public let rooms: Database
        /// Seen event ids → when they were applied.
        public let events: Database
        public let outbox: Database
        /// Room id → ``RoomSummary`` (ASCII), one per entry of ``rooms`` (schema 2).
        public let roomIndex: Database
        /// Notice id → ``NoticeSummary`` (ASCII), one per entry of ``outbox`` (schema 2).
        public let outboxIndex: Database
        public let usage: Database
        public let tokens: Database
        public let integrations: Database
        public let audit: Database
    }

    /// The LMDB environment (only the store sees it).
    let environment: Environment
    /// Reader-table slots of dead processes freed when the store was opened (`mdb_reader_check`).
    public let staleReadersClearedAtOpen: Int
    /// The schema's databases (only the store sees them: the rest of sitroom goes through ``StoreTransaction``).
    let tables: Tables

    /// Opens (creating if needed) the store in `directory`, which must exist (mode 0700), and brings its schema
    /// up to ``schemaVersion``: a new store is stamped with it; an older one is migrated (every step of
    /// ``migrations`` from its version up, in one write transaction, so a crash leaves the old version whole);
    /// a newer one is refused, as this build cannot know what it holds.
    /// - Parameters:
    ///   - directory: the LMDB environment directory (`var/lib/sitroom`).
    ///   - mapSize: initial map size in bytes (`store.map_size`); grown when full.
    ///   - onMapGrowth: told the old and new map size in bytes each time the map is doubled (for the log).
    /// - Throws: `LMDBError` from opening; ``SitroomError`` `.store` for a newer schema or a missing migration.
    ///
    /// Before anything is read, the reader slots of dead processes are freed (``staleReadersClearedAtOpen``): a
    /// full table of them would otherwise refuse every read transaction (`MDB_READERS_FULL`).
    public convenience init(
        directory: String,
        mapSize: Int,
        onMapGrowth: (@Sendable (_ old: Int, _ new: Int) -> Void)? = nil
    ) throws {
        try self.init(
            directory: directory,
            mapSize: mapSize,
            schemaVersion: Store.schemaVersion,
            migrations: Store.migrations,
            onMapGrowth: onMapGrowth
        )
    }

    /// The designated initializer, with the schema and its migrations given (tests open a store as a later build would).
    init(
        directory: String,
        mapSize: Int,
        schemaVersion: Int,
        migrations: [Migration],
        onMapGrowth: (@Sendable (_ old: Int, _ new: Int) -> Void)? = nil
    ) throws {
        environment = try Environment(path: directory, mapSize: mapSize, maxDatabases: 16, onMapGrowth: onMapGrowth)
        staleReadersClearedAtOpen = try environment.clearStaleReaders()
        tables = Tables(
            meta: try environment.database(named: "meta"),
            incidents: try environment.database(named: "incidents"),
            rooms: try environment.database(named: "rooms"),
            events: try environment.database(named: "events"),
            outbox: try environment.database(named: "outbox"),
            roomIndex: try environment.database(named: "room_index"),
            outboxIndex: try environment.database(named: "outbox_index"),
            usage: try environment.database(named: "usage"),
            tokens: try environment.database(named: "tokens"),
            integrations: try environment.database(named: "integrations"),
            audit: try environment.database(named: "audit")
        )
        let tables = self.tables
        let found: Int? = try environment.read { txn in
            guard let bytes = try txn.get(tables.meta, "schema_version") else { return nil }
            return Int(String(decoding: bytes, as: UTF8.self)) ?? -1
        }
        if let found, found < 1 {
            throw SitroomError(.store, "\(directory): the store's schema version cannot be read (meta/schema_version)")
        }
        if let found, found > schemaVersion {
            throw SitroomError(
                .store,
                "\(directory): store schema version \(found) is newer than this build's \(schemaVersion); "
                    + "run the sitroomd that wrote it, or restore a backup made for this version"
            )
        }
        let steps = try Self.plan(from: found ?? schemaVersion, to: schemaVersion, migrations, directory: directory)
        migrated = steps.map { "\($0.from) → \($0.from + 1): \($0.summary)" }
        guard found == nil || !steps.isEmpty else { return }
        try environment.write { txn in
            for step in steps { try step.apply(txn, tables) }
            try txn.put(tables.meta, "schema_version", Array(String(schemaVersion).utf8))
        }
    }

    /// The migrations that take a store from `from` to `to`, in order.
    /// - Throws: ``SitroomError`` `.store` when a step is missing.
    static func plan(from: Int, to: Int, _ migrations: [Migration], directory: String) throws -> [Migration] {
        try (from..<max(from, to)).map { version in
            guard let step = migrations.first(where: { $0.from == version }) else {
                throw SitroomError(
                    .store,
                    "\(directory): no migration from store schema version \(version) to \(version + 1)"
                )
            }
            return step
        }
    }

    /// The migrations applied when this store was opened (`"1 → 2: what changed"`), for the log.
    public let migrated: [String]

    /// Runs `body` in a read-only transaction.
    /// - Throws: what `body` throws; LMDB errors (``SitroomError`` is not used for them).
    public func read<R>(_ body: (borrowing StoreTransaction) throws -> R) throws -> R {
        try environment.read { txn in try StoreTransaction.lend(txn, self, body) }
    }

    /// Runs `body` in a write transaction, committed (synced) when it returns, aborted when it throws.
    /// `body` may run more than once (when the map is grown), so it must not have effects outside the transaction.
    /// - Throws: what `body` throws; LMDB errors.
    public func write<R>(_ body: (borrowing StoreTransaction) throws -> R) throws -> R {
        try environment.write { txn in try StoreTransaction.lend(txn, self, body) }
    }

    /// Whether `error` is a failure of the storage itself (an LMDB error: the read or write may succeed another
    /// time), not of the bytes read (a value that does not decode, which no retry mends).
    public static func isStorageFailure(_ error: any Error) -> Bool { error is LMDBError }

    /// The LMDB reader table: slots in use by any process (stale ones of dead processes included until cleared),
    /// and its size (`maxreaders`).
    public var readerTable: (used: Int, size: Int) { environment.readerTable }

    /// Frees the reader-table slots of dead processes (`mdb_reader_check`, LMDB's documented remedy for a table
    /// they fill).
    /// - Returns: how many slots were freed.
    /// - Throws: LMDB errors.
    public func clearStaleReaders() throws -> Int { try environment.clearStaleReaders() }
}

// MARK: - Typed access

extension Store {
    /// Encodes a value as the record stored in LMDB (``RecordFormat``: a compact binary form of `Codable`).
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try RecordEncoder().encode(value)
    }

    /// Decodes a value read from LMDB: a record, or the JSON of a store from before schema 3 (which only the
    /// migrations up to 3 still meet).
    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        if RecordFormat.isRecord(bytes) { return try RecordDecoder().decode(type, from: bytes) }
        return try JSONDecoder().decode(type, from: Data(bytes))
    }

    func get<T: Decodable>(_ type: T.Type, _ db: Database, _ key: String, _ txn: borrowing Transaction) throws -> T? {
        guard let bytes = try txn.get(db, key) else { return nil }
        return try Store.decode(type, bytes)
    }

    func put<T: Encodable>(_ value: T, _ db: Database, _ key: String, _ txn: borrowing Transaction) throws {
        try txn.put(db, key, try Store.encode(value))
    }

    /// All values of a table whose keys start with `prefix`, in key order.
    /// - Complexity: O(n) in the matching entries.
    func all<T: Decodable>(
        _ type: T.Type,
        _ db: Database,
        prefix: String = "",
        _ txn: borrowing Transaction
    ) throws -> [T] {
        var values: [T] = []
        try txn.forEach(db, prefix: prefix) { _, bytes in
            values.append(try Store.decode(type, bytes))
            return true
        }
        return values
    }

    func room(_ id: String, _ txn: borrowing Transaction) throws -> Room? {
        try get(Room.self, tables.rooms, id, txn)
    }

    /// Writes a room and its summary in the room index.
    func putRoom(_ room: Room, _ txn: borrowing Transaction) throws {
        try put(room, tables.rooms, room.id, txn)
        try txn.put(tables.roomIndex, room.id, RoomSummary(room).bytes)
    }

    /// Deletes a room and its summary in the room index (the only way rooms are deleted).
    /// - Returns: false when there was no such room.
    @discardableResult
    func deleteRoom(_ id: String, _ txn: borrowing Transaction) throws -> Bool {
        try txn.delete(tables.roomIndex, id)
        return try txn.delete(tables.rooms, id)
    }

    func incident(_ id: String, _ txn: borrowing Transaction) throws -> IncidentRecord? {
        try get(IncidentRecord.self, tables.incidents, id, txn)
    }

    /// Whether the incident is recorded (its value is not decoded).
    func hasIncident(_ id: String, _ txn: borrowing Transaction) throws -> Bool {
        try txn.get(tables.incidents, id) != nil
    }

    func putIncident(_ record: IncidentRecord, _ txn: borrowing Transaction) throws {
        try put(record, tables.incidents, record.info.id, txn)
    }

    /// Records an event id as applied. - Returns: false when it was already recorded (a duplicate).
    func markEventSeen(_ eventID: String, at time: Double, _ txn: borrowing Transaction) throws -> Bool {
        try txn.put(tables.events, eventID, Array(String(time).utf8), noOverwrite: true)
    }

    /// Queues a notice unless one with the same key (room, person, kind, channel) exists.
    /// - Returns: false when the notice already existed (nobody gets the same notice twice).
    @discardableResult
    func enqueue(_ notice: Notice, _ txn: borrowing Transaction) throws -> Bool {
        guard try txn.put(tables.outbox, notice.id, try Store.encode(notice), noOverwrite: true) else { return false }
        try txn.put(tables.outboxIndex, notice.id, NoticeSummary(notice).bytes)
        return true
    }

    /// Writes a notice (a new state) and its summary in the outbox index.
    func putNotice(_ notice: Notice, _ txn: borrowing Transaction) throws {
        try put(notice, tables.outbox, notice.id, txn)
        try txn.put(tables.outboxIndex, notice.id, NoticeSummary(notice).bytes)
    }

    /// Deletes a notice and its summary in the outbox index (the only way notices are deleted).
    /// - Returns: false when there was no such notice.
    @discardableResult
    func deleteNotice(_ id: String, _ txn: borrowing Transaction) throws -> Bool {
        try txn.delete(tables.outboxIndex, id)
        return try txn.delete(tables.outbox, id)
    }

    /// Creates counted against a host on a UTC day (Zoom's daily create/update limit).
    func createsOn(day: String, integration: String, host: String, _ txn: borrowing Transaction) throws -> Int {
        guard let bytes = try txn.get(tables.usage, Store.usageKey(day: day, integration: integration, host: host)),
            let text = String(bytes: bytes, encoding: .utf8)
        else { return 0 }
        return Int(text) ?? 0
    }

    func setCreates(
        _ count: Int,
        day: String,
        integration: String,
        host: String,
        _ txn: borrowing Transaction
    ) throws {
        try txn.put(
            tables.usage,
            Store.usageKey(day: day, integration: integration, host: host),
            Array(String(count).utf8)
        )
    }

    /// Raises the creates counted against a host on a UTC day to `count`, never lowering it: rooms leased in
    /// one order may commit in another (group commit), and the highest count is the truth.
    func recordCreates(
        atLeast count: Int,
        day: String,
        integration: String,
        host: String,
        _ txn: borrowing Transaction
    ) throws {
        let stored = try createsOn(day: day, integration: integration, host: host, txn)
        if count > stored { try setCreates(count, day: day, integration: integration, host: host, txn) }
    }

    /// `<yyyy-MM-dd>/<integration>/<host>`.
    public static func usageKey(day: String, integration: String, host: String) -> String {
        "\(day)/\(integration)/\(host)"
    }

    /// Appends an audit entry under a monotonically increasing, zero-padded sequence key.
    func appendAudit(_ entry: AuditEntry, _ txn: borrowing Transaction) throws {
        var last = 0
        if let bytes = try txn.get(tables.meta, "audit_seq"), let text = String(bytes: bytes, encoding: .utf8) {
            last = Int(text) ?? 0
        }
        let next = last + 1
        try txn.put(tables.meta, "audit_seq", Array(String(next).utf8))
        let key = String(repeating: "0", count: max(0, 12 - String(next).count)) + String(next)
        try put(entry, tables.audit, key, txn)
    }
}

/// One line of the audit log (SPEC §7): who changed what, when, with what outcome.
public struct AuditEntry: Sendable, Codable, Hashable {
    /// Seconds since 1970.
    public var time: Double
    /// The caller's uid where the reply path told it.
    public var uid: UInt32?
    /// The command with secrets redacted.
    public var command: String
    public var outcome: String

    public init(time: Double, uid: UInt32?, command: String, outcome: String) {
        self.time = time
        self.uid = uid
        self.command = command
        self.outcome = outcome
    }
}

/// A cached OAuth access token (never logged, shown, or written anywhere but LMDB).
public struct StoredToken: Sendable, Codable, Hashable {
    public var accessToken: String
    /// Seconds since 1970 after which the token must not be used.
    public var expiresAt: Double
    /// zoom-oauth only.
    public var refreshToken: String?
    /// zoom-oauth: seconds since 1970 when Zoom issued this pair (its refresh token's age); `nil` in pairs stored
    /// before sitroom kept it, which count as old.
    public var issuedAt: Double?

    public init(accessToken: String, expiresAt: Double, refreshToken: String? = nil, issuedAt: Double? = nil) {
        self.accessToken = accessToken
        self.expiresAt = expiresAt
        self.refreshToken = refreshToken
        self.issuedAt = issuedAt
    }
}

extension Store {
    /// Schema 2 → 3: rewrites every JSON value of the tables that hold `Codable` values as a record.
    /// - Complexity: O(entries) of those tables, in the migration's transaction.
    static func transcodeJSON(_ txn: borrowing Transaction, _ tables: Tables) throws {
        for db in [tables.incidents, tables.rooms, tables.outbox, tables.tokens, tables.integrations, tables.audit] {
            var rewritten: [([UInt8], [UInt8])] = []
            try txn.forEach(db, from: nil) { key, value in
                if let record = try RecordFormat.transcode(json: value) { rewritten.append((key, record)) }
                return true
            }
            for (key, record) in rewritten { _ = try txn.put(db, key, record) }
        }
    }
}
