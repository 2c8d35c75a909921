import Glibc

/// A reader-writer lock: many holders of the shared side at once, or one of the exclusive side.
///
/// The one lock in sitroom that is not a `Synchronization.Mutex`: the standard library has no reader-writer lock,
/// and LMDB's environment needs one (every transaction holds the shared side for its life, a map resize the
/// exclusive side, because `mdb_env_set_mapsize` needs no transaction active in the process).
///
/// It is glibc's `pthread_rwlock_t` with its default kind, which prefers readers: a thread already holding the
/// shared side may take it again (a read inside a write transaction's closure) without deadlocking behind a
/// waiting writer. The lock lives on the heap, because a pthread object must not move.
public final class ReadWriteLock: @unchecked Sendable {
    // Why @unchecked Sendable is sound: the pointer is set once in init, and pthread_rwlock_t is made for
    // concurrent use.
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    /// Creates an unlocked lock.
    public init() {
        let rc = pthread_rwlock_init(lock, nil)
        precondition(rc == 0, "pthread_rwlock_init failed: \(rc)")
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// Runs `body` holding the shared side, waiting while a thread holds the exclusive side.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    ///
    /// The corresponding C functions are `pthread_rwlock_rdlock` and `pthread_rwlock_unlock`.
    public func withSharedLock<R>(_ body: () throws -> R) rethrows -> R {
        let rc = pthread_rwlock_rdlock(lock)
        precondition(rc == 0, "pthread_rwlock_rdlock failed: \(rc)")
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs `body` holding the exclusive side, waiting until no thread holds either side.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    ///
    /// The corresponding C functions are `pthread_rwlock_wrlock` and `pthread_rwlock_unlock`.
    public func withExclusiveLock<R>(_ body: () throws -> R) rethrows -> R {
        let rc = pthread_rwlock_wrlock(lock)
        precondition(rc == 0, "pthread_rwlock_wrlock failed: \(rc)")
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
