import CLMDB
import Glibc

/// An LMDB transaction, lent to the closure of ``Environment/read(_:)`` or ``Environment/write(_:)``.
///
/// It is non-copyable and only borrowed, so it cannot outlive the closure; the environment commits or
/// aborts it. Values returned are copies, safe to keep after the transaction ends.
public struct Transaction: ~Copyable {
    /// The `MDB_txn *`.
    let handle: OpaquePointer

    /// Whether this is a read-only transaction; puts and deletes in one fail with `EACCES`.
    public let isReadOnly: Bool

    /// Set when a put fails with MDB_MAP_FULL, so ``Environment/write(_:)`` grows the map and retries
    /// even if the closure swallowed the error. Points at a local of `write`, which outlives `self`.
    let mapFullFlag: UnsafeMutablePointer<Bool>?

    init(handle: OpaquePointer, isReadOnly: Bool, mapFullFlag: UnsafeMutablePointer<Bool>?) {
        self.handle = handle
        self.isReadOnly = isReadOnly
        self.mapFullFlag = mapFullFlag
    }

    // MARK: - Get

    /// Reads the value stored under `key`.
    /// - Parameters:
    ///   - db: The database.
    ///   - key: The key bytes (1 to 511 bytes).
    /// - Returns: A copy of the value, or `nil` if the key is absent.
    /// - Throws: An ``LMDBError`` other than ``LMDBError/notFound``.
    ///
    /// The corresponding C function is `mdb_get`.
    public func get(_ db: Database, _ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { try get(db, rawKey: $0) }
    }

    /// Reads the value stored under the UTF-8 bytes of `key`.
    /// - Parameters:
    ///   - db: The database.
    ///   - key: The key; its UTF-8 encoding is used (1 to 511 bytes).
    /// - Returns: A copy of the value, or `nil` if the key is absent.
    /// - Throws: An ``LMDBError`` other than ``LMDBError/notFound``.
    ///
    /// The corresponding C function is `mdb_get`.
    public func get(_ db: Database, _ key: String) throws -> [UInt8]? {
        var key = key
        return try key.withUTF8 { try get(db, rawKey: UnsafeRawBufferPointer($0)) }
    }

    private func get(_ db: Database, rawKey: UnsafeRawBufferPointer) throws -> [UInt8]? {
        var key = MDB_val(rawKey)
        var value = MDB_val()
        let rc = mdb_get(handle, db.dbi, &key, &value)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get")
        return value.bytes
    }

    // MARK: - Put

    /// Stores `value` under `key`, replacing any existing value unless `noOverwrite`.
    /// - Parameters:
    ///   - db: The database.
    ///   - key: The key bytes (1 to 511 bytes).
    ///   - value: The value bytes (any length, including empty).
    ///   - noOverwrite: Leave an existing value in place (`MDB_NOOVERWRITE`).
    /// - Returns: `true` if stored; `false` only when `noOverwrite` and the key exists.
    /// - Throws: An ``LMDBError``: `EACCES` in a read-only transaction, `MDB_BAD_VALSIZE` for an empty or
    ///   too long key, ``LMDBError/txnFull``, or ``LMDBError/mapFull`` (which ``Environment/write(_:)``
    ///   answers by growing the map and running the closure again).
    ///
    /// The corresponding C function is `mdb_put`.
    @discardableResult
    public func put(_ db: Database, _ key: [UInt8], _ value: [UInt8], noOverwrite: Bool = false) throws -> Bool {
        try key.withUnsafeBytes { key in
            try value.withUnsafeBytes { value in
                try put(db, rawKey: key, rawValue: value, noOverwrite: noOverwrite)
            }
        }
    }

    /// Stores `value` under the UTF-8 bytes of `key`, replacing any existing value unless `noOverwrite`.
    /// - Parameters:
    ///   - db: The database.
    ///   - key: The key; its UTF-8 encoding is used (1 to 511 bytes).
    ///   - value: The value bytes (any length, including empty).
    ///   - noOverwrite: Leave an existing value in place (`MDB_NOOVERWRITE`).
    /// - Returns: `true` if stored; `false` only when `noOverwrite` and the key exists.
    /// - Throws: As ``put(_:_:_:noOverwrite:)-([UInt8],_,_)``.
    ///
    /// The corresponding C function is `mdb_put`.
    @discardableResult
    public func put(_ db: Database, _ key: String, _ value: [UInt8], noOverwrite: Bool = false) throws -> Bool {
        var key = key
        return try key.withUTF8 { key in
            try value.withUnsafeBytes { value in
                try put(db, rawKey: UnsafeRawBufferPointer(key), rawValue: value, noOverwrite: noOverwrite)
            }
        }
    }

    private func put(
        _ db: Database,
        rawKey: UnsafeRawBufferPointer,
        rawValue: UnsafeRawBufferPointer,
        noOverwrite: Bool
    ) throws -> Bool {
        var key = MDB_val(rawKey)
        var value = MDB_val(rawValue)
        let rc = mdb_put(handle, db.dbi, &key, &value, noOverwrite ? UInt32(MDB_NOOVERWRITE) : 0)
        switch rc {
        case MDB_KEYEXIST where noOverwrite:
            return false
        case MDB_MAP_FULL:
            mapFullFlag?.pointee = true
        default:
            break
        }
        try check(rc, "mdb_put")
        return true
    }

    // MARK: - Delete

    /// Deletes `key` and its value.
    /// - Parameters:
    ///   - db: The database.
    ///   - key: The key bytes.
    /// - Returns: `true` if the key was there, `false` if it was absent.
    /// - Throws: An ``LMDBError`` (`EACCES` in a read-only transaction).
    ///
    /// The corresponding C function is `mdb_del`.
    @discardableResult
    public func delete(_ db: Database, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { try delete(db, rawKey: $0) }
    }

    /// Deletes the UTF-8 bytes of `key` and its value.
    /// - Parameters:
    ///   - db: The database.
    ///   - key: The key; its UTF-8 encoding is used.
    /// - Returns: `true` if the key was there, `false` if it was absent.
    /// - Throws: An ``LMDBError`` (`EACCES` in a read-only transaction).
    ///
    /// The corresponding C function is `mdb_del`.
    @discardableResult
    public func delete(_ db: Database, _ key: String) throws -> Bool {
        var key = key
        return try key.withUTF8 { try delete(db, rawKey: UnsafeRawBufferPointer($0)) }
    }

    private func delete(_ db: Database, rawKey: UnsafeRawBufferPointer) throws -> Bool {
        var key = MDB_val(rawKey)
        let rc = mdb_del(handle, db.dbi, &key, nil)
        if rc == MDB_NOTFOUND { return false }
        if rc == MDB_MAP_FULL { mapFullFlag?.pointee = true }
        try check(rc, "mdb_del")
        return true
    }

    // MARK: - Iterate

    /// Visits key/value pairs in key order (bytewise), from the first key `>= from` (or the first key).
    ///
    /// In a write transaction `body` may put and delete, including deleting the key it was handed.
    /// - Parameters:
    ///   - db: The database.
    ///   - from: The key to start at (inclusive); `nil` or empty starts at the first key.
    ///   - body: Handed copies of each key and value; return `false` to stop.
    /// - Throws: What `body` throws, or an ``LMDBError``.
    /// - Complexity: O(log n) to position, then O(1) amortized per pair visited.
    ///
    /// The corresponding C functions are `mdb_cursor_open` and `mdb_cursor_get` (`MDB_SET_RANGE`,
    /// `MDB_FIRST`, `MDB_NEXT`).
    public func forEach(_ db: Database, from: [UInt8]? = nil, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let start = from ?? []
        try start.withUnsafeBytes { start in
            try scan(db, from: start) { key, value in try body(key.bytes, value.bytes) }
        }
    }

    /// Visits, in key order, the pairs whose key starts with the UTF-8 bytes of `prefix`.
    /// - Parameters:
    ///   - db: The database.
    ///   - prefix: The key prefix; empty visits every pair.
    ///   - body: Handed each key (decoded as UTF-8, invalid bytes replaced) and a copy of its value;
    ///     return `false` to stop.
    /// - Throws: What `body` throws, or an ``LMDBError``.
    /// - Complexity: O(log n) to position, then O(1) amortized per pair visited.
    ///
    /// The corresponding C functions are `mdb_cursor_open` and `mdb_cursor_get`.
    public func forEach(
        _ db: Database,
        prefix: String,
        _ body: (_ key: String, _ value: [UInt8]) throws -> Bool
    ) throws {
        var prefix = prefix
        try prefix.withUTF8 { prefix in
            try scan(db, from: UnsafeRawBufferPointer(prefix)) { key, value in
                let keyBytes = key.buffer
                guard keyBytes.starts(with: prefix) else { return false }
                return try body(String(decoding: keyBytes, as: UTF8.self), value.bytes)
            }
        }
    }

    /// Visits, in key order, the pairs whose key starts with `prefix`.
    /// - Parameters:
    ///   - db: The database.
    ///   - prefix: The key prefix bytes; empty visits every pair.
    ///   - body: Handed copies of each key and value; return `false` to stop.
    /// - Throws: What `body` throws, or an ``LMDBError``.
    /// - Complexity: O(log n) to position, then O(1) amortized per pair visited.
    ///
    /// The corresponding C functions are `mdb_cursor_open` and `mdb_cursor_get`.
    public func forEach(_ db: Database, prefix: [UInt8], _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try prefix.withUnsafeBytes { prefix in
            try scan(db, from: prefix) { key, value in
                let keyBytes = key.buffer
                guard keyBytes.starts(with: prefix) else { return false }
                return try body(Array(keyBytes), value.bytes)
            }
        }
    }

    /// Walks a cursor from the first key >= `from` (or the first key when `from` is empty); `body`
    /// sees LMDB's own buffers, valid only during the call.
    private func scan(
        _ db: Database,
        from: UnsafeRawBufferPointer,
        _ body: (MDB_val, MDB_val) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(handle, db.dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var rc: Int32
        if from.isEmpty {
            rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
        } else {
            key = MDB_val(from)
            rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        while rc == MDB_SUCCESS {
            guard try body(key, value) else { return }
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get") }
    }

    // MARK: - Whole database

    /// The number of key/value pairs in `db`.
    /// - Parameter db: The database.
    /// - Returns: The entry count, read from the database's header in O(1).
    /// - Throws: An ``LMDBError``.
    ///
    /// The corresponding C function is `mdb_stat` (`ms_entries`).
    public func count(_ db: Database) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(handle, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Runs `body` in a child transaction of this write transaction: when `body` returns, its changes join
    /// this transaction (to be committed, and synced, with it); when it throws, they are discarded and this
    /// transaction goes on as it was. Group commit uses it so one writer's error does not undo the others'.
    /// - Parameter body: The work; the child transaction cannot escape it. Do not use `self` inside it.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (after aborting the child), or an ``LMDBError`` (`EACCES` in a read-only
    ///   transaction; ``LMDBError/mapFull``, which also makes ``Environment/write(_:)`` grow the map and run
    ///   its whole body again).
    ///
    /// The corresponding C functions are `mdb_txn_begin` with this transaction as the parent, `mdb_txn_commit`
    /// and `mdb_txn_abort` (LMDB: "nested transactions", not available with `MDB_WRITEMAP`, which is not used).
    public func nested<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        guard !isReadOnly else {
            throw LMDBError(EACCES, operation: "mdb_txn_begin(nested in a read-only transaction)")
        }
        var child: OpaquePointer?
        try check(mdb_txn_begin(mdb_txn_env(handle), handle, 0, &child), "mdb_txn_begin(nested)")
        guard let child else { preconditionFailure("mdb_txn_begin succeeded without a transaction") }
        let result: R
        do {
            result = try body(Transaction(handle: child, isReadOnly: false, mapFullFlag: mapFullFlag))
        } catch {
            mdb_txn_abort(child)
            throw error
        }
        // mdb_txn_commit frees the child whether it succeeds or fails; a child's commit only merges into the parent.
        let rc = mdb_txn_commit(child)
        if rc == MDB_MAP_FULL { mapFullFlag?.pointee = true }
        try check(rc, "mdb_txn_commit(nested)")
        return result
    }

    /// Deletes every pair in `db`; the database itself stays open and usable.
    /// - Parameter db: The database.
    /// - Throws: An ``LMDBError`` (`EACCES` in a read-only transaction).
    ///
    /// The corresponding C function is `mdb_drop` (with `del` 0).
    public func drop(_ db: Database) throws {
        try check(mdb_drop(handle, db.dbi, 0), "mdb_drop")
    }
}

extension MDB_val {
    /// Points at `buffer` without copying. LMDB only reads keys and data it is handed (no MDB_RESERVE here).
    init(_ buffer: UnsafeRawBufferPointer) {
        self.init(mv_size: buffer.count, mv_data: UnsafeMutableRawPointer(mutating: buffer.baseAddress))
    }

    /// LMDB's buffer, valid until the transaction ends or the next write.
    var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mv_data, count: mv_size)
    }

    /// A copy of the bytes.
    var bytes: [UInt8] {
        Array(buffer)
    }
}
