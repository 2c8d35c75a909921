import Glibc
import Synchronization

/// An exclusive advisory lock on a file, held from `acquire` until `release()` or deinit: one daemon per
/// root (SPEC §2, `var/run/sitroom.lock`).
///
/// The lock belongs to the open file description, so a second `acquire` of the same path fails even in
/// the same process, and the kernel releases it when the process dies (also on `kill -9`).
/// The corresponding C calls are `open(O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC, 0600)` and
/// `flock(LOCK_EX|LOCK_NB)`.
public final class FileLock: Sendable {
    /// The lock file's path.
    public let path: String
    /// The locked descriptor; `nil` once released. Guarded so `release()` is idempotent from any thread.
    private let descriptor: Mutex<Int32?>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Mutex(descriptor)
    }

    /// Takes the lock, creating the file (mode 0600) if missing, and writes our pid into it for
    /// operators (`cat var/run/sitroom.lock`).
    /// - Parameter path: the lock file; a symbolic link there is refused (`ELOOP`).
    /// - Returns: the held lock, or `nil` when another open file description (another process) holds it.
    /// - Throws: `PosixError` when the file cannot be opened or locked.
    public static func acquire(path: String) throws -> FileLock? {
        let fd = try openFD(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode: 0o600)
        switch valueOrErrno({ flock(fd, LOCK_EX | LOCK_NB) }) {
        case .success:
            break
        case .failure(EWOULDBLOCK):
            closeFD(fd)
            return nil
        case .failure(let code):
            closeFD(fd)
            throw PosixError(call: "flock", path: path, errno: code.rawValue)
        }
        // Best effort: the pid is for people, the lock is what counts.
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 {
            _ = pid.withUnsafeBytes { try? writeAll(fd, $0, path: path) }
        }
        return FileLock(path: path, descriptor: fd)
    }

    /// Whether some process holds the lock on `path` now (sitroomd asks this of sitroom-intake's lock for
    /// `status`). Only looks: a lock it could take is released at once.
    /// - Parameter path: the lock file; a missing file, or a symbolic link there, is not held.
    /// - Returns: `true` when another open file description holds it (`flock(LOCK_SH|LOCK_NB)` fails with
    ///   `EWOULDBLOCK`).
    /// The corresponding C calls are `open(O_RDONLY|O_NOFOLLOW|O_CLOEXEC)` and `flock`.
    public static func isHeld(path: String) -> Bool {
        guard case .success(let fd) = valueOrErrno({ open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }) else {
            return false
        }
        defer { closeFD(fd) }
        switch valueOrErrno({ flock(fd, LOCK_SH | LOCK_NB) }) {
        case .success:
            _ = flock(fd, LOCK_UN)
            return false
        case .failure(EWOULDBLOCK): return true
        case .failure: return false
        }
    }

    /// Releases the lock (closes the descriptor; the file stays). Idempotent.
    public func release() {
        let fd = descriptor.withLock { fd -> Int32? in
            defer { fd = nil }
            return fd
        }
        if let fd { closeFD(fd) }
    }

    deinit { release() }
}
