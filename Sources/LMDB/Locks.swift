#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex on the heap (a pthread object must not move, so it cannot live inline in a Swift value).
/// Used instead of `Synchronization.Mutex`, which the package's macOS 14 floor does not offer.
final class PThreadMutex: @unchecked Sendable {
    // Safe to share: the pointer is set once in init, and pthread_mutex_t is made for concurrent use.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() {
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A pthread reader-writer lock. glibc's default prefers readers, so a thread already holding the shared
/// side may take it again (a read inside a write closure) without deadlocking behind a waiting writer.
final class PThreadRWLock: @unchecked Sendable {
    // Safe to share: the pointer is set once in init, and pthread_rwlock_t is made for concurrent use.
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() {
        let rc = pthread_rwlock_init(lock, nil)
        precondition(rc == 0, "pthread_rwlock_init failed: \(rc)")
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withSharedLock<R>(_ body: () throws -> R) rethrows -> R {
        let rc = pthread_rwlock_rdlock(lock)
        precondition(rc == 0, "pthread_rwlock_rdlock failed: \(rc)")
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withExclusiveLock<R>(_ body: () throws -> R) rethrows -> R {
        let rc = pthread_rwlock_wrlock(lock)
        precondition(rc == 0, "pthread_rwlock_wrlock failed: \(rc)")
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
