import LMDB
import SitroomCore

/// A transaction of the store, lent to the closure of ``Store/read(_:)``, ``Store/write(_:)`` or a group commit
/// (``GroupCommit``): the only way the rest of sitroom reads or writes durable state. It speaks in the schema's
/// terms through one repository per table (``rooms``, ``incidents``, ``events``, ``outbox``, ``usage``,
/// ``tokens``, ``integrations``, ``audit``); the keys, the encodings and the indexes written beside rooms and
/// notices stay inside `SitroomStore`.
///
/// It is non-copyable and only borrowed, so it cannot outlive the closure it is lent to (the store commits or
/// aborts it); values read are copies, safe to keep afterwards. Its repositories are non-copyable views of the
/// same transaction, made for one call each (`txn.rooms.put(room)`).
public struct StoreTransaction: ~Copyable {
    /// The LMDB transaction lent to the closure that made this one; valid for exactly as long as `self`, which
    /// cannot escape that closure.
    let raw: UnsafePointer<Transaction>
    /// The store whose transaction this is. It outlives the transaction (its `read` or `write` is running), so the
    /// transaction and its repositories hold it without counting a reference (no retain per repository made on
    /// the per-spool-file path).
    unowned(unsafe) let store: Store

    init(_ raw: UnsafePointer<Transaction>, _ store: Store) {
        self.raw = raw
        self.store = store
    }

    /// Lends `txn` to `body` as a store transaction.
    static func lend<R>(
        _ txn: borrowing Transaction,
        _ store: Store,
        _ body: (borrowing StoreTransaction) throws -> R
    )
        rethrows -> R
    {
        try withUnsafePointer(to: txn) { try body(StoreTransaction($0, store)) }
    }

    /// Incidents by incident id (``IncidentRecord``).
    public var incidents: Repository<Schema.Incident> { Repository(raw, store) }
    /// Rooms by room id (``Room``), each with its ``RoomSummary`` in the room index.
    public var rooms: Repository<Schema.Room> { Repository(raw, store) }
    /// The event ids already applied, with when.
    public var events: Repository<Schema.SeenEvent> { Repository(raw, store) }
    /// The outbox: notices by notice id (``Notice``), each with its ``NoticeSummary`` in the outbox index.
    public var outbox: Repository<Schema.Outbox> { Repository(raw, store) }
    /// Creates counted per host and UTC day (Zoom's daily create/update limit).
    public var usage: Repository<Schema.HostUsage> { Repository(raw, store) }
    /// OAuth token pairs (``StoredToken``) by ``TokenID``.
    public var tokens: Repository<Schema.Token> { Repository(raw, store) }
    /// Integrations' runtime state: ``IntegrationRecord``s, zoom-oauth hosts' ``HostAuthorization``s and
    /// ``PendingAuthorization``s, and drained hosts.
    public var integrations: Repository<Schema.IntegrationState> { Repository(raw, store) }
    /// The audit log (``AuditEntry``), oldest first.
    public var audit: Repository<Schema.Audit> { Repository(raw, store) }

    /// Runs `body` in a transaction nested in this one (a write transaction's child): when `body` throws, only
    /// what it wrote is undone, and the error is rethrown.
    /// - Throws: what `body` throws; an LMDB error (`EACCES` in a read-only transaction).
    public func nested<R>(_ body: (borrowing StoreTransaction) throws -> R) throws -> R {
        let store = self.store
        return try raw.pointee.nested { child in try StoreTransaction.lend(child, store, body) }
    }
}

/// A view of one table of the schema (``Schema``) through a store transaction, made for one call
/// (`txn.rooms.put(room)`); the table's operations are in the extensions for each `Table`.
///
/// It is non-copyable and cannot outlive the ``StoreTransaction`` it came from.
public struct Repository<Table>: ~Copyable {
    let raw: UnsafePointer<Transaction>
    /// Held without counting a reference, as ``StoreTransaction/store`` (the store outlives the transaction).
    unowned(unsafe) let store: Store

    init(_ raw: UnsafePointer<Transaction>, _ store: Store) {
        self.raw = raw
        self.store = store
    }
}

/// The tables of the schema, as the types that name a ``Repository``'s table.
public enum Schema {
    /// The `incidents` table: ``IncidentRecord``s by incident id.
    public enum Incident {}
    /// The `rooms` table and its index `room_index`: ``Room``s and their ``RoomSummary``s by room id.
    public enum Room {}
    /// The `events` table: the event ids applied, with when (ASCII seconds since 1970).
    public enum SeenEvent {}
    /// The `outbox` table and its index `outbox_index`: ``Notice``s and their ``NoticeSummary``s by notice id.
    public enum Outbox {}
    /// The `usage` table: creates per host and UTC day.
    public enum HostUsage {}
    /// The `tokens` table: ``StoredToken``s by ``TokenID``.
    public enum Token {}
    /// The `integrations` table: integrations' records and their hosts' state.
    public enum IntegrationState {}
    /// The `audit` table: ``AuditEntry``s under a sequence number.
    public enum Audit {}
}

/// Incidents by id, in the `incidents` table.
extension Repository where Table == Schema.Incident {
    /// The incident `id`, or `nil` when none is recorded.
    /// - Throws: store errors; decoding errors.
    public func get(_ id: String) throws -> IncidentRecord? { try store.incident(id, raw.pointee) }

    /// Whether the incident is recorded (its value is not decoded).
    public func contains(_ id: String) throws -> Bool { try store.hasIncident(id, raw.pointee) }

    /// Writes an incident under its id (``IncidentInfo/id``).
    public func put(_ record: IncidentRecord) throws { try store.putIncident(record, raw.pointee) }

    /// Every incident, in id order.
    /// - Complexity: O(incidents) decodes.
    public func all() throws -> [IncidentRecord] {
        try store.all(IncidentRecord.self, store.tables.incidents, raw.pointee)
    }
}

/// Rooms by id, in the `rooms` table, with their summaries in `room_index`.
extension Repository where Table == Schema.Room {
    /// The room `id`, or `nil` when there is none.
    /// - Throws: store errors; decoding errors.
    public func get(_ id: String) throws -> Room? { try store.room(id, raw.pointee) }

    /// Writes a room and its summary in the room index.
    public func put(_ room: Room) throws { try store.putRoom(room, raw.pointee) }

    /// Deletes a room and its summary. - Returns: false when there was no such room.
    @discardableResult
    public func delete(_ id: String) throws -> Bool { try store.deleteRoom(id, raw.pointee) }

    /// Every room, in id order.
    /// - Complexity: O(rooms) decodes.
    public func all() throws -> [Room] { try store.all(Room.self, store.tables.rooms, raw.pointee) }

    /// The rooms whose summaries satisfy `wanted`, decoded, in id order (``Store/rooms(where:_:)``).
    /// - Complexity: O(rooms) index entries, plus a decode per room wanted.
    public func matching(_ wanted: (RoomSummary) -> Bool) throws -> [Room] {
        try store.rooms(where: wanted, raw.pointee)
    }

    /// Every room's summary, by room id, from the room index (no room decoded).
    public func summaries() throws -> [String: RoomSummary] { try store.roomSummaries(raw.pointee) }

    /// The rooms in each state (every state present, zero included) and since when the longest-waiting room has
    /// waited (seconds since 1970; `nil` when none waits), from the room index.
    public func counts() throws -> (byState: [RoomState: Int], oldestWaitingSince: Double?) {
        try store.roomCounts(raw.pointee)
    }
}

/// The event ids already applied, in the `events` table (never purged: they hold no personal data).
extension Repository where Table == Schema.SeenEvent {
    /// Records an event id as applied at `time` (seconds since 1970).
    /// - Returns: false when it was already recorded (a duplicate); the stored time is kept then.
    public func markSeen(_ eventID: String, at time: Double) throws -> Bool {
        try store.markEventSeen(eventID, at: time, raw.pointee)
    }
}

/// The outbox, in the `outbox` table, with each notice's summary in `outbox_index`.
extension Repository where Table == Schema.Outbox {
    /// The notice `id`, or `nil` when there is none.
    public func get(_ id: String) throws -> Notice? { try store.get(Notice.self, store.tables.outbox, id, raw.pointee) }

    /// Queues a notice unless one with the same id (room, person, kind, channel) exists.
    /// - Returns: false when the notice already existed (nobody gets the same notice twice).
    @discardableResult
    public func enqueue(_ notice: Notice) throws -> Bool { try store.enqueue(notice, raw.pointee) }

    /// Writes a notice (a new state) and its summary.
    public func put(_ notice: Notice) throws { try store.putNotice(notice, raw.pointee) }

    /// Deletes a notice and its summary. - Returns: false when there was no such notice.
    @discardableResult
    public func delete(_ id: String) throws -> Bool { try store.deleteNotice(id, raw.pointee) }

    /// Every notice, in id order.
    /// - Complexity: O(outbox) decodes.
    public func all() throws -> [Notice] { try store.all(Notice.self, store.tables.outbox, raw.pointee) }

    /// The notices whose summaries satisfy `wanted`, decoded, in id order (``Store/notices(where:_:)``).
    /// - Complexity: O(outbox) index entries, plus a decode per notice wanted.
    public func matching(_ wanted: (NoticeSummary) -> Bool) throws -> [Notice] {
        try store.notices(where: wanted, raw.pointee)
    }

    /// Whether notice `id` was queued and not withdrawn (a withdrawn one told nobody anything), from the outbox
    /// index (no notice decoded); a summary that cannot be read counts as not withdrawn.
    public func isQueuedAndNotWithdrawn(_ id: String) throws -> Bool {
        guard let bytes = try raw.pointee.get(store.tables.outboxIndex, id) else { return false }
        return NoticeSummary(bytes: bytes)?.state != .withdrawn
    }

    /// Whether notice `id` was ever queued, in any state (``enqueue(_:)`` would refuse it), from the outbox index.
    public func contains(_ id: String) throws -> Bool { try raw.pointee.get(store.tables.outboxIndex, id) != nil }

    /// The notices in each state (every state present, zero included), from the outbox index.
    public func counts() throws -> [NoticeState: Int] { try store.noticeCounts(raw.pointee) }
}

/// Creates counted against each host per UTC day, in the `usage` table under `<yyyy-MM-dd>/<integration>/<host>`
/// (ASCII decimal counts).
extension Repository where Table == Schema.HostUsage {
    /// Creates counted against a host on a UTC day (`yyyy-MM-dd`); 0 when none.
    public func creates(day: String, integration: String, host: String) throws -> Int {
        try store.createsOn(day: day, integration: integration, host: host, raw.pointee)
    }

    /// Sets the creates counted against a host on a UTC day.
    public func setCreates(_ count: Int, day: String, integration: String, host: String) throws {
        try store.setCreates(count, day: day, integration: integration, host: host, raw.pointee)
    }

    /// Raises the creates counted against a host on a UTC day to `count`, never lowering it
    /// (``Store/recordCreates(atLeast:day:integration:host:_:)``).
    public func recordCreates(atLeast count: Int, day: String, integration: String, host: String) throws {
        try store.recordCreates(atLeast: count, day: day, integration: integration, host: host, raw.pointee)
    }

    /// Every host's creates on a UTC day (`yyyy-MM-dd`), in key order; an entry that does not read is skipped.
    public func creates(on day: String) throws -> [(integration: String, host: String, count: Int)] {
        var found: [(integration: String, host: String, count: Int)] = []
        try raw.pointee.forEach(store.tables.usage, prefix: "\(day)/") { key, value in
            let parts = key.split(separator: "/", maxSplits: 2).map(String.init)
            if parts.count == 3, let count = Int(String(decoding: value, as: UTF8.self)) {
                found.append((parts[1], parts[2], count))
            }
            return true
        }
        return found
    }
}

/// Which token pair: an integration's own (zoom-s2s, `host` nil) or one zoom-oauth host's.
///
/// Stored in the `tokens` table under the integration's name, or `<integration>/<host>`.
public struct TokenID: Sendable, Hashable {
    /// The integration's name.
    public var integration: String
    /// The pool host id (zoom-oauth); `nil` for the integration's own token (zoom-s2s).
    public var host: String?

    /// - Parameters:
    ///   - integration: the integration's name.
    ///   - host: the pool host id (zoom-oauth), or `nil` for the integration's own token.
    public init(integration: String, host: String?) {
        self.integration = integration
        self.host = host
    }

    /// The `tokens` key.
    var key: String { host.map { "\(integration)/\($0)" } ?? integration }
}

/// OAuth token pairs, in the `tokens` table (never logged, shown, or written anywhere else).
extension Repository where Table == Schema.Token {
    /// The stored pair, or `nil`.
    public func get(_ id: TokenID) throws -> StoredToken? {
        try store.get(StoredToken.self, store.tables.tokens, id.key, raw.pointee)
    }

    /// Stores a pair.
    public func put(_ token: StoredToken, for id: TokenID) throws {
        try store.put(token, store.tables.tokens, id.key, raw.pointee)
    }

    /// Deletes a pair. - Returns: false when there was none.
    @discardableResult
    public func delete(_ id: TokenID) throws -> Bool { try raw.pointee.delete(store.tables.tokens, id.key) }

    /// Deletes every pair of an integration: its own and each host's.
    public func deleteAll(of integration: String) throws {
        try raw.pointee.forEach(store.tables.tokens, prefix: integration) { key, _ in
            if key == integration || key.hasPrefix("\(integration)/") {
                _ = try raw.pointee.delete(store.tables.tokens, key)
            }
            return true
        }
    }

    /// Every stored pair, by which it is, in key order.
    public func all() throws -> [(id: TokenID, token: StoredToken)] {
        var found: [(id: TokenID, token: StoredToken)] = []
        try raw.pointee.forEach(store.tables.tokens, prefix: "") { key, value in
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            let id = TokenID(integration: parts[0], host: parts.count == 2 ? parts[1] : nil)
            found.append((id, try Store.decode(StoredToken.self, value)))
            return true
        }
        return found
    }
}

/// Integrations' runtime state, in the `integrations` table: an ``IntegrationRecord`` under the integration's
/// name, and under `host/<integration>/<host>`, `pending/<integration>/<host>` and `drained/<integration>/<host>`
/// a zoom-oauth host's ``HostAuthorization``, its ``PendingAuthorization`` and whether it is drained (`1`).
extension Repository where Table == Schema.IntegrationState {
    /// The integration's record, or `nil` when the store does not know it.
    public func record(_ integration: String) throws -> IntegrationRecord? {
        try store.get(IntegrationRecord.self, store.tables.integrations, integration, raw.pointee)
    }

    /// Writes the integration's record.
    public func putRecord(_ record: IntegrationRecord, for integration: String) throws {
        try store.put(record, store.tables.integrations, integration, raw.pointee)
    }

    /// The names of the integrations the store holds a record for, in order.
    public func names() throws -> [String] {
        var names: [String] = []
        try raw.pointee.forEach(store.tables.integrations, prefix: "") { key, _ in
            if !key.contains("/") { names.append(key) }
            return true
        }
        return names
    }

    /// The table's keys starting with `prefix`, in order.
    func keys(prefix: String) throws -> [String] { try raw.pointee.keys(store.tables.integrations, prefix: prefix) }

    /// Forgets an integration: its record, its tokens (its own and each host's), and its hosts' authorizations,
    /// pending authorizations and drained marks.
    public func forget(_ integration: String) throws {
        let tokens = store.tables.tokens
        let integrations = store.tables.integrations
        _ = try raw.pointee.delete(tokens, integration)
        for key in try Repository<Schema.Token>(raw, store).keys(prefix: "\(integration)/") {
            _ = try raw.pointee.delete(tokens, key)
        }
        _ = try raw.pointee.delete(integrations, integration)
        for kind in ["host", "pending", "drained"] {
            for key in try keys(prefix: "\(kind)/\(integration)/") { _ = try raw.pointee.delete(integrations, key) }
        }
    }

    /// A zoom-oauth host's authorization, or `nil` when it was never authorized.
    public func hostAuthorization(_ integration: String, host: String) throws -> HostAuthorization? {
        try store.get(HostAuthorization.self, store.tables.integrations, "host/\(integration)/\(host)", raw.pointee)
    }

    /// Writes a zoom-oauth host's authorization.
    public func putHostAuthorization(_ authorization: HostAuthorization, _ integration: String, host: String) throws {
        try store.put(authorization, store.tables.integrations, "host/\(integration)/\(host)", raw.pointee)
    }

    /// The authorization of a zoom-oauth host under way, or `nil`.
    public func pendingAuthorization(_ integration: String, host: String) throws -> PendingAuthorization? {
        try store.get(
            PendingAuthorization.self,
            store.tables.integrations,
            "pending/\(integration)/\(host)",
            raw.pointee
        )
    }

    /// Writes the authorization of a zoom-oauth host under way.
    public func putPendingAuthorization(_ pending: PendingAuthorization, _ integration: String, host: String) throws {
        try store.put(pending, store.tables.integrations, "pending/\(integration)/\(host)", raw.pointee)
    }

    /// Deletes the authorization of a zoom-oauth host under way. - Returns: false when there was none.
    @discardableResult
    public func deletePendingAuthorization(_ integration: String, host: String) throws -> Bool {
        try raw.pointee.delete(store.tables.integrations, "pending/\(integration)/\(host)")
    }

    /// Marks a host drained (it takes no new rooms) or not.
    public func setDrained(_ drained: Bool, _ integration: String, host: String) throws {
        let key = "drained/\(integration)/\(host)"
        if drained {
            _ = try raw.pointee.put(store.tables.integrations, key, Array("1".utf8))
        } else {
            _ = try raw.pointee.delete(store.tables.integrations, key)
        }
    }

    /// The drained hosts, in order.
    public func drained() throws -> [(integration: String, host: String)] {
        try keys(prefix: "drained/").compactMap { key in
            let parts = key.split(separator: "/", maxSplits: 2).map(String.init)
            return parts.count == 3 ? (parts[1], parts[2]) : nil
        }
    }
}

extension Repository where Table == Schema.Token {
    /// The `tokens` keys starting with `prefix`, in order.
    func keys(prefix: String) throws -> [String] { try raw.pointee.keys(store.tables.tokens, prefix: prefix) }
}

extension Transaction {
    /// The keys of `db` starting with `prefix`, in order.
    func keys(_ db: Database, prefix: String) throws -> [String] {
        var keys: [String] = []
        try forEach(db, prefix: prefix) { key, _ in
            keys.append(key)
            return true
        }
        return keys
    }
}

/// The audit log, in the `audit` table under a zero-padded sequence number (its counter in `meta/audit_seq`).
extension Repository where Table == Schema.Audit {
    /// Appends an entry after every other.
    public func append(_ entry: AuditEntry) throws { try store.appendAudit(entry, raw.pointee) }

    /// Every entry, oldest first.
    /// - Complexity: O(entries) decodes.
    public func all() throws -> [AuditEntry] { try store.all(AuditEntry.self, store.tables.audit, raw.pointee) }

    /// The last `count` entries, oldest first.
    /// - Complexity: O(entries) decodes.
    public func last(_ count: Int) throws -> [AuditEntry] {
        var all: [AuditEntry] = []
        try raw.pointee.forEach(store.tables.audit, prefix: "") { _, value in
            all.append(try Store.decode(AuditEntry.self, value))
            if all.count > count { all.removeFirst(all.count - count) }
            return true
        }
        return all
    }
}
