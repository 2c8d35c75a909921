import CLMDB
import Glibc
import SitroomRuntime
import Synchronization

/// An LMDB environment: one directory holding `data.mdb` and `lock.mdb`, with named ``Database``s inside.
///
/// All access goes through ``read(_:)`` and ``write(_:)``, which run a synchronous closure inside one
/// transaction on the calling thread. They block (a synced commit takes about 0.4 ms, a write waits for
/// any other writer), so call them from a thread or serial executor of their own, not from Swift's
/// cooperative pool in a hot loop.
///
/// LMDB forbids opening the same environment twice in one process, so the initializer keeps a
/// process-wide registry of open directories and throws ``LMDBError/alreadyOpen`` on a second open.
///
/// Do not nest a ``write(_:)`` inside another ``write(_:)`` on the same thread: LMDB's writer lock is not
/// re-entrant. A ``read(_:)`` inside a ``write(_:)`` is allowed (it sees the last committed state).
public final class Environment: @unchecked Sendable {
    // Why @unchecked Sendable is sound:
    // - `env` is set once in init and only closed in deinit. LMDB allows concurrent use of one MDB_env from
    //   many threads; with MDB_NOTLS read transactions are not tied to a thread's TLS.
    // - Every transaction lives inside one synchronous closure on one thread (`Transaction` is
    //   ~Copyable and only lent to the closure, so it cannot escape), which is what LMDB requires.
    // - `mdb_env_set_mapsize` needs no transaction active in the process: every transaction holds
    //   `resizeLock` shared for its whole life and a resize holds it exclusive.
    // - `generation` is written only under `resizeLock` exclusive and read under it shared;
    //   `readPool` is guarded by its `Mutex`.
    private let env: OpaquePointer
    private let canonicalPath: String
    private let resizeLock = ReadWriteLock()
    private var generation = 0
    private let readPool = Mutex<[PooledRead]>([])
    private let readPoolLimit: Int
    private let onMapGrowth: (@Sendable (_ old: Int, _ new: Int) -> Void)?

    /// Opens (creating if needed) the environment in directory `path`.
    ///
    /// The environment is opened with `MDB_NOTLS` and default (synced) commits.
    /// - Parameters:
    ///   - path: An existing directory; `data.mdb` and `lock.mdb` are created in it.
    ///   - mapSize: Initial map size in bytes (rounded up by LMDB to a page multiple). ``write(_:)`` doubles
    ///     it when it fills up; a larger map recorded in an existing environment wins.
    ///   - maxDatabases: The most named databases that can be opened.
    ///   - maxReaders: The most concurrent read transactions (reader-table slots), across processes.
    ///   - mode: Permission bits for the data and lock files, such as `0o600`.
    ///   - onMapGrowth: Called after ``write(_:)`` doubled the map, with the old and new sizes in bytes (for a log).
    /// - Throws: ``LMDBError/alreadyOpen`` if `path` is already open in this process; otherwise an
    ///   ``LMDBError`` from LMDB or the file system (`ENOENT` if the directory is missing,
    ///   ``LMDBError/invalid`` or ``LMDBError/versionMismatch`` for a foreign file).
    ///
    /// The corresponding C functions are `mdb_env_create`, `mdb_env_set_mapsize`, `mdb_env_set_maxdbs`,
    /// `mdb_env_set_maxreaders` and `mdb_env_open`.
    public init(
        path: String,
        mapSize: Int,
        maxDatabases: Int = 32,
        maxReaders: Int = 126,
        mode: UInt32 = 0o600,
        onMapGrowth: (@Sendable (_ old: Int, _ new: Int) -> Void)? = nil
    ) throws {
        self.onMapGrowth = onMapGrowth
        guard let resolved = realpath(path, nil) else {
            throw LMDBError(errno, operation: "realpath(\(path))")
        }
        canonicalPath = String(cString: resolved)
        free(resolved)
        guard openEnvironments.insert(canonicalPath) else {
            throw LMDBError(EBUSY, operation: "mdb_env_open(\(canonicalPath)): already open in this process")
        }
        var env: OpaquePointer?
        do {
            try check(mdb_env_create(&env), "mdb_env_create")
            guard let env else { throw LMDBError(ENOMEM, operation: "mdb_env_create") }
            self.env = env
        } catch {
            openEnvironments.remove(canonicalPath)
            throw error
        }
        readPoolLimit = max(0, min(32, maxReaders / 2))
        do {
            try check(mdb_env_set_mapsize(self.env, mapSize), "mdb_env_set_mapsize")
            try check(mdb_env_set_maxdbs(self.env, MDB_dbi(maxDatabases)), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(self.env, UInt32(maxReaders)), "mdb_env_set_maxreaders")
            try check(mdb_env_open(self.env, path, UInt32(MDB_NOTLS), mode_t(mode)), "mdb_env_open(\(path))")
        } catch {
            // Every stored property is set, so throwing runs deinit, which closes the environment (a close
            // here as well freed it twice: a corrupt data file crashed the process instead of failing).
            throw error
        }
    }

    deinit {
        drainReadPool()
        mdb_env_close(env)
        openEnvironments.remove(canonicalPath)
    }

    /// Opens the named database, creating it if needed, in a write transaction of its own.
    ///
    /// Call it once per name at startup and keep the ``Database``; opening is not meant for hot paths.
    /// - Parameter name: The database's name.
    /// - Returns: A handle valid for this environment's lifetime.
    /// - Throws: ``LMDBError/dbsFull`` past `maxDatabases`, or another ``LMDBError``.
    ///
    /// The corresponding C function is `mdb_dbi_open` (with `MDB_CREATE`).
    public func database(named name: String) throws -> Database {
        try write { txn in
            var dbi: MDB_dbi = 0
            try check(mdb_dbi_open(txn.handle, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open(\(name))")
            return Database(dbi: dbi, name: name)
        }
    }

    /// Runs `body` in a read-only transaction, which is always ended (reset for reuse) afterwards.
    ///
    /// The transaction sees the state of the last commit before it began. Do not `await` in `body`
    /// (it is synchronous by type) and do not keep byte buffers past it (values are copied out).
    /// - Parameter body: The work; the transaction cannot escape it.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, or an ``LMDBError`` (``LMDBError/readersFull``) from beginning it.
    ///
    /// The corresponding C functions are `mdb_txn_begin` (`MDB_RDONLY`), `mdb_txn_renew` and `mdb_txn_reset`.
    @discardableResult
    public func read<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        while true {
            var observed = 0
            let outcome: Outcome<R> = try resizeLock.withSharedLock {
                observed = generation
                let txn: OpaquePointer
                switch beginRead() {
                case .success(let handle): txn = handle
                case .failure(let error) where error == .mapResized: return .mapResized
                case .failure(let error): throw error
                }
                defer { endRead(txn) }
                return .done(try body(Transaction(handle: txn, isReadOnly: true, mapFullFlag: nil)))
            }
            switch outcome {
            case .done(let result): return result
            case .mapFull, .mapResized: try adoptResizedMap(observed: observed)
            }
        }
    }

    /// Runs `body` in a write transaction: commits (synced) if `body` returns, aborts if it throws.
    ///
    /// When the map fills up (`MDB_MAP_FULL` from a put or from the commit) the transaction is aborted,
    /// the map size doubled and `body` run again from scratch, as many times as needed; so `body` must
    /// have no effects outside the transaction that cannot be repeated. `MDB_MAP_RESIZED` (another
    /// process grew the map) is handled the same way, adopting the new size.
    ///
    /// Only one write transaction runs at a time per environment (across processes); others block
    /// until it ends. Do not nest `write` calls on one thread.
    /// - Parameter body: The work; the transaction cannot escape it.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (after aborting), or an ``LMDBError`` from LMDB, such as
    ///   ``LMDBError/txnFull`` for a transaction that is too large, or a commit that failed (in which
    ///   case nothing was written).
    ///
    /// The corresponding C functions are `mdb_txn_begin`, `mdb_txn_commit`, `mdb_txn_abort` and
    /// `mdb_env_set_mapsize`.
    @discardableResult
    public func write<R>(_ body: (borrowing Transaction) throws -> R) throws -> R {
        while true {
            var observed = 0
            var hitMapFull = false
            let outcome: Outcome<R> = try resizeLock.withSharedLock {
                observed = generation
                var txn: OpaquePointer?
                let rc = mdb_txn_begin(env, nil, 0, &txn)
                if rc == MDB_MAP_RESIZED { return .mapResized }
                try check(rc, "mdb_txn_begin")
                guard let txn else { preconditionFailure("mdb_txn_begin succeeded without a transaction") }
                let result: R
                do {
                    result = try withUnsafeMutablePointer(to: &hitMapFull) { flag in
                        try body(Transaction(handle: txn, isReadOnly: false, mapFullFlag: flag))
                    }
                } catch {
                    mdb_txn_abort(txn)
                    // A put that hit MAP_FULL left the transaction unusable; whatever body did with the
                    // error (rethrew it, or threw something else), the fix is to grow and run it again.
                    if hitMapFull { return .mapFull }
                    throw error
                }
                if hitMapFull {
                    // body swallowed the MAP_FULL error; the transaction cannot commit.
                    mdb_txn_abort(txn)
                    return .mapFull
                }
                // mdb_txn_commit frees the transaction whether it succeeds or fails.
                let commit = mdb_txn_commit(txn)
                if commit == MDB_MAP_FULL { return .mapFull }
                try check(commit, "mdb_txn_commit")
                return .done(result)
            }
            switch outcome {
            case .done(let result): return result
            case .mapFull: try growMap(observed: observed)
            case .mapResized: try adoptResizedMap(observed: observed)
            }
        }
    }

    /// Frees the reader-table slots of processes that died inside a read transaction (killed tools, a crashed
    /// reader), which would otherwise stay taken until every process closed the environment, until
    /// ``LMDBError/readersFull``. LMDB's documented remedy; cheap (one pass over the table).
    /// - Returns: how many stale slots were freed.
    /// - Throws: an ``LMDBError`` from `mdb_reader_check`.
    ///
    /// The corresponding C function is `mdb_reader_check`.
    @discardableResult
    public func clearStaleReaders() throws -> Int {
        var dead: Int32 = 0
        try check(mdb_reader_check(env, &dead), "mdb_reader_check")
        return Int(dead)
    }

    /// The reader table: slots in use (by any process, stale ones included until cleared) and its size.
    ///
    /// The corresponding C functions are `mdb_reader_list` (one message per slot with a process in it, after a
    /// header; `me_numreaders` of `mdb_env_info` is only the table's high-water mark) and `mdb_env_info`
    /// (`me_maxreaders`).
    public var readerTable: (used: Int, size: Int) {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        var lines = 0
        var empty = false
        withUnsafeMutablePointer(to: &lines) { linesPointer in
            withUnsafeMutablePointer(to: &empty) { emptyPointer in
                var context = (linesPointer, emptyPointer)
                _ = mdb_reader_list(
                    env,
                    { message, context in
                        guard let message, let context else { return 0 }
                        let pointers = context.assumingMemoryBound(
                            to: (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Bool>).self
                        ).pointee
                        if strstr(message, "(no active readers)") != nil { pointers.1.pointee = true }
                        pointers.0.pointee += 1
                        return 0
                    },
                    &context
                )
            }
        }
        // A header line, then one line per slot in use; or only "(no active readers)".
        return (empty ? 0 : max(0, lines - 1), Int(info.me_maxreaders))
    }

    /// The current map size in bytes: the most the data file can grow to before ``write(_:)`` grows it.
    ///
    /// The corresponding C function is `mdb_env_info`.
    public var mapSize: Int {
        resizeLock.withSharedLock {
            var info = MDB_envinfo()
            mdb_env_info(env, &info)
            return info.me_mapsize
        }
    }

    /// Copies the environment into another directory, as a consistent snapshot; safe while in use.
    /// - Parameters:
    ///   - directory: An existing directory without an environment in it; `data.mdb` is written there.
    ///   - compact: Omit free pages and renumber pages (slower, smaller copy).
    /// - Throws: An ``LMDBError`` (such as `EEXIST` when `data.mdb` exists, `ENOENT` for a missing directory).
    ///
    /// The corresponding C function is `mdb_env_copy2` (with `MDB_CP_COMPACT` when `compact`).
    public func copy(to directory: String, compact: Bool) throws {
        try resizeLock.withSharedLock {
            let flags = compact ? UInt32(MDB_CP_COMPACT) : 0
            try check(mdb_env_copy2(env, directory, flags), "mdb_env_copy2(\(directory))")
        }
    }

    /// Flushes the data to disk. Commits are already synced; this is for completeness.
    /// - Throws: An ``LMDBError`` carrying the `errno` of a failed `fsync`/`msync`.
    ///
    /// The corresponding C function is `mdb_env_sync` (forced).
    public func sync() throws {
        try check(mdb_env_sync(env, 1), "mdb_env_sync")
    }

    // MARK: - Internals

    /// A reset read transaction kept for reuse. Sendable because, with `MDB_NOTLS`, a reset read transaction is tied
    /// to no thread: any thread may renew it (`mdb_txn_renew`) or abort it.
    private struct PooledRead: @unchecked Sendable {
        let txn: OpaquePointer
    }

    private enum Outcome<R> {
        case done(R)
        case mapFull
        case mapResized
    }

    /// Takes a reset read transaction from the pool and renews it, or begins a new one.
    private func beginRead() -> Result<OpaquePointer, LMDBError> {
        if let pooled = readPool.withLock({ $0.popLast()?.txn }) {
            let rc = mdb_txn_renew(pooled)
            if rc == MDB_SUCCESS { return .success(pooled) }
            mdb_txn_abort(pooled)
            return .failure(LMDBError(rc, operation: "mdb_txn_renew"))
        }
        var txn: OpaquePointer?
        var rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        if rc == MDB_READERS_FULL {
            // Perhaps slots of dead processes: free them and try once more (a live table stays full).
            var dead: Int32 = 0
            if mdb_reader_check(env, &dead) == MDB_SUCCESS, dead > 0 {
                rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
            }
        }
        guard rc == MDB_SUCCESS, let txn else { return .failure(LMDBError(rc, operation: "mdb_txn_begin")) }
        return .success(txn)
    }

    /// Resets a read transaction and keeps it (and, with MDB_NOTLS, its reader slot) for reuse.
    private func endRead(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        let kept = readPool.withLock { pool in
            guard pool.count < readPoolLimit else { return false }
            pool.append(PooledRead(txn: txn))
            return true
        }
        if !kept { mdb_txn_abort(txn) }
    }

    private func drainReadPool() {
        let pooled = readPool.withLock { pool in
            defer { pool.removeAll() }
            return pool
        }
        for pooled in pooled { mdb_txn_abort(pooled.txn) }
    }

    /// Doubles the map, unless another thread already resized it since `observed`.
    private func growMap(observed: Int) throws {
        try resizeLock.withExclusiveLock {
            guard generation == observed else { return }
            drainReadPool()
            var info = MDB_envinfo()
            mdb_env_info(env, &info)
            let (doubled, overflow) = info.me_mapsize.multipliedReportingOverflow(by: 2)
            if overflow { throw LMDBError(MDB_MAP_FULL, operation: "mdb_env_set_mapsize") }
            try check(mdb_env_set_mapsize(env, doubled), "mdb_env_set_mapsize")
            generation += 1
            onMapGrowth?(info.me_mapsize, doubled)
        }
    }

    /// Adopts the map size another process set (`mdb_env_set_mapsize(env, 0)`), unless already done.
    private func adoptResizedMap(observed: Int) throws {
        try resizeLock.withExclusiveLock {
            guard generation == observed else { return }
            drainReadPool()
            try check(mdb_env_set_mapsize(env, 0), "mdb_env_set_mapsize")
            generation += 1
        }
    }
}

/// Canonical paths of the environments open in this process.
private let openEnvironments = PathRegistry()

private final class PathRegistry: Sendable {
    private let paths = Mutex<Set<String>>([])

    /// Returns false if `path` was already registered.
    func insert(_ path: String) -> Bool {
        paths.withLock { $0.insert(path).inserted }
    }

    func remove(_ path: String) {
        _ = paths.withLock { $0.remove(path) }
    }
}
