import Dispatch
import Foundation
import Glibc
import SitroomRuntime
import Synchronization

/// Why `DurableFile.readRegularFile` would not read a path.
public enum ReadRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// The path is a symbolic link (`open` with `O_NOFOLLOW` failed with `ELOOP`).
    case symlink
    /// The path is not a regular file; `kind` says what it is ("FIFO", "socket", "directory", ...).
    case notRegularFile(kind: String)
    /// The file holds `size` bytes (at least), more than `limit`.
    case tooLarge(size: Int, limit: Int)

    public var description: String {
        switch self {
        case .symlink: return "is a symbolic link"
        case .notRegularFile(let kind): return "is a \(kind), not a regular file"
        case .tooLarge(let size, let limit): return "is \(size) bytes, more than the limit of \(limit) bytes"
        }
    }
}

/// Filesystem operations with the durability the spool and maildirs need (SPEC §4, §8): data is
/// fsynced before it is renamed into place and the directory is fsynced after.
public enum DurableFile {
    /// Writes `bytes` to `tmpDirectory/name`, fsyncs it, renames it to `finalDirectory/name` (replacing
    /// what is there) and fsyncs `finalDirectory`: the maildir delivery protocol.
    /// - Parameters:
    ///   - bytes: the whole content.
    ///   - name: the file name, without any `/`.
    ///   - tmpDirectory: where the file is written first; must be on the same filesystem as `finalDirectory`.
    ///   - finalDirectory: where the file ends up.
    ///   - mode: the file's permission bits (applied with `fchmod`, so the umask does not matter).
    ///   - syncDirectory: fsync `finalDirectory` afterwards (a caller writing many files may fsync once with
    ///     ``fsyncDirectory(_:)`` instead).
    /// - Throws: `PosixError` naming the failing call (`open`, `write`, `fsync`, `rename`, ...). On failure
    ///   the temporary file is removed.
    /// The corresponding C calls are `open`, `write`, `fsync`, `rename`.
    public static func write(
        _ bytes: [UInt8],
        name: String,
        tmpDirectory: String,
        finalDirectory: String,
        mode: UInt32 = 0o600,
        syncDirectory: Bool = true
    ) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw PosixError(call: "write", path: name, errno: EINVAL)
        }
        let tmpPath = tmpDirectory + "/" + name
        let finalPath = finalDirectory + "/" + name
        let fd = try openFD(tmpPath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode: mode)
        var renamed = false
        defer { if !renamed { _ = unlink(tmpPath) } }
        do {
            try check("fchmod", path: tmpPath) { fchmod(fd, mode_t(mode)) }
            try bytes.withUnsafeBytes { (buffer) throws in try writeAll(fd, buffer, path: tmpPath) }
            try check("fsync", path: tmpPath) { fsync(fd) }
        } catch {
            closeFD(fd)
            throw error
        }
        closeFD(fd)
        try check("rename", path: finalPath) { rename(tmpPath, finalPath) }
        renamed = true
        if syncDirectory { try fsyncDirectory(finalDirectory) }
    }

    /// Delivers several files at once by the maildir protocol with one directory fsync for all of them (a group
    /// commit): every file is written into `tmpDirectory` (created exclusively), then each is fsynced (the first
    /// fsync usually commits the filesystem's journal for all of them), renamed into `finalDirectory`, and
    /// `finalDirectory` is fsynced once. A file is durable in `finalDirectory` when its result is a success.
    /// - Parameters:
    ///   - items: the names (without `/`, unique; not existing in `tmpDirectory` when `exclusive`) and whole contents.
    ///   - tmpDirectory: where the files are written first; same filesystem as `finalDirectory`.
    ///   - finalDirectory: where they end up.
    ///   - mode: the files' permission bits (applied with `fchmod`).
    ///   - exclusive: create each file with `O_EXCL` (a name already in `tmpDirectory` fails with `EEXIST`);
    ///     `false` truncates what is there (a notice delivered again after a crash rewrites its own name).
    ///   - fsyncs: threads that fsync the files in parallel. The journal of ext4 (jbd2) commits concurrent fsyncs
    ///     together, where one after the other each waits for a commit of its own (measured here: 16 files of 2 KB,
    ///     2 to 3.5 ms a file one after the other, 0.25 ms in parallel). `nil`: on the calling thread, in turn,
    ///     after starting every file's writeback at once (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the
    ///     first `fsync` commits the journal for all of them and the others find their data written and their
    ///     metadata committed (measured here: as fast as the threads for 4 to 64 files of 2 KB, with about two
    ///     thirds of their kernel time and a third of their context switches). Every file is still fsynced before it
    ///     is renamed.
    /// - Returns: one result per item, in order: the `PosixError` naming the call that failed for it (`open`,
    ///   `write`, `fsync`, `rename`, or the directory's `fsync`, which fails every renamed file). A failed file
    ///   leaves nothing in `tmpDirectory`; one whose directory fsync failed stays in `finalDirectory` (it may or
    ///   may not survive a crash, so the sender must be told it failed and deliver it again).
    /// - Complexity: one `open`, `write`, `fsync`, `close` and `rename` per file, one directory fsync in all.
    /// The corresponding C calls are `open(O_CREAT|O_EXCL)`, `write`, `fsync`, `rename`.
    public static func writeBatch(
        _ items: [(name: String, bytes: [UInt8])],
        tmpDirectory: String,
        finalDirectory: String,
        mode: UInt32 = 0o600,
        exclusive: Bool = true,
        fsyncs: FsyncPool? = nil
    ) -> [Result<Void, PosixError>] {
        var results = [Result<Void, PosixError>](repeating: .success(()), count: items.count)
        var open: [(index: Int, fd: Int32)] = []
        for (index, item) in items.enumerated() {
            let tmpPath = tmpDirectory + "/" + item.name
            guard !item.name.isEmpty, !item.name.contains("/"), item.name != ".", item.name != ".." else {
                results[index] = .failure(PosixError(call: "write", path: item.name, errno: EINVAL))
                continue
            }
            do {
                let fd = try openFD(
                    tmpPath,
                    O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC) | O_NOFOLLOW | O_CLOEXEC,
                    mode: mode
                )
                do {
                    try check("fchmod", path: tmpPath) { fchmod(fd, mode_t(mode)) }
                    try item.bytes.withUnsafeBytes { (buffer) throws in try writeAll(fd, buffer, path: tmpPath) }
                    open.append((index, fd))
                } catch {
                    closeFD(fd)
                    _ = unlink(tmpPath)
                    throw error
                }
            } catch let error as PosixError {
                results[index] = .failure(error)
            } catch {
                results[index] = .failure(PosixError(call: "write", path: tmpPath, errno: EIO))
            }
        }
        var renamed: [Int] = []
        let codes: [Int32]
        if let fsyncs {
            codes = fsyncs.fsync(open.map(\.fd))
        } else {
            // A hint only (its failure is the fsync's to report): the data of every file goes to the disk together.
            if open.count > 1, let syncFileRange = LinuxCalls.syncFileRange {
                for entry in open { _ = syncFileRange(entry.fd, 0, 0, LinuxCalls.syncFileRangeWrite) }
            }
            codes = open.map { entry in valueOrErrno({ fsync(entry.fd) }).errnoValue }
        }
        for ((index, fd), code) in zip(open, codes) {
            let tmpPath = tmpDirectory + "/" + items[index].name
            let synced: Result<Void, any Error> =
                code == 0 ? .success(()) : .failure(PosixError(call: "fsync", path: tmpPath, errno: code))
            closeFD(fd)
            switch synced {
            case .success:
                let finalPath = finalDirectory + "/" + items[index].name
                switch valueOrErrno({ rename(tmpPath, finalPath) }) {
                case .success: renamed.append(index)
                case .failure(let code):
                    results[index] = .failure(PosixError(call: "rename", path: finalPath, errno: code.rawValue))
                    _ = unlink(tmpPath)
                }
            case .failure(let error):
                results[index] = .failure(error as? PosixError ?? PosixError(call: "fsync", path: tmpPath, errno: EIO))
                _ = unlink(tmpPath)
            }
        }
        if !renamed.isEmpty {
            do {
                try fsyncDirectory(finalDirectory)
            } catch {
                let failure = error as? PosixError ?? PosixError(call: "fsync", path: finalDirectory, errno: EIO)
                for index in renamed { results[index] = .failure(failure) }
            }
        }
        return results
    }

    /// Fsyncs a directory, making renames and creations in it durable.
    /// - Parameter path: the directory.
    /// - Throws: `PosixError` (`open` or `fsync`).
    /// The corresponding C calls are `open(O_RDONLY|O_DIRECTORY)` and `fsync`.
    public static func fsyncDirectory(_ path: String) throws {
        let fd = try openFD(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { closeFD(fd) }
        try check("fsync", path: path) { fsync(fd) }
    }

    /// Renames `from` to `to` without replacing anything: when `to` exists, tries `to.1`, `to.2`, ...
    /// (SPEC §4: a file moves to `cur/` "under its own name (`NAME.N` if the name is taken)").
    /// Then fsyncs both directories.
    /// - Parameters:
    ///   - from: the existing file.
    ///   - to: the wanted new path.
    ///   - syncDirectories: fsync both directories afterwards (a caller moving many files may fsync once
    ///     with ``fsyncDirectory(_:)`` instead).
    /// - Returns: the path the file now has.
    /// - Throws: `PosixError` (`renameat2`, `link`, `unlink`, `fsync`), or `EEXIST` after 10,000 taken names.
    /// - Complexity: one attempt per taken name.
    /// The corresponding C call is `renameat2(RENAME_NOREPLACE)`; where the C library or the filesystem
    /// lacks it, `link` then `unlink`.
    public static func moveNoReplace(from: String, to: String, syncDirectories: Bool = true) throws -> String {
        var final: String?
        for attempt in 0...10_000 {
            let candidate = attempt == 0 ? to : "\(to).\(attempt)"
            switch renameNoReplace(from, candidate) {
            case .success:
                final = candidate
            case .failure(let error) where error.errno == EEXIST:
                continue
            case .failure(let error):
                throw error
            }
            break
        }
        guard let final else { throw PosixError(call: "renameat2", path: to, errno: EEXIST) }
        guard syncDirectories else { return final }
        let fromDirectory = parentDirectory(of: from)
        let toDirectory = parentDirectory(of: final)
        try fsyncDirectory(toDirectory)
        if fromDirectory != toDirectory { try fsyncDirectory(fromDirectory) }
        return final
    }

    /// One attempt: `.failure(EEXIST)` when `to` is taken.
    private static func renameNoReplace(_ from: String, _ to: String) -> Result<Void, PosixError> {
        if let renameat2 = LinuxCalls.renameat2 {
            switch valueOrErrno({ renameat2(AT_FDCWD, from, AT_FDCWD, to, LinuxCalls.renameNoReplace) }) {
            case .success: return .success(())
            case .failure(EINVAL), .failure(ENOSYS): break  // filesystem without RENAME_NOREPLACE
            case .failure(let code): return .failure(PosixError(call: "renameat2", path: to, errno: code.rawValue))
            }
        }
        switch valueOrErrno({ link(from, to) }) {
        case .success: break
        case .failure(let code): return .failure(PosixError(call: "link", path: to, errno: code.rawValue))
        }
        switch valueOrErrno({ unlink(from) }) {
        case .success: return .success(())
        case .failure(let code): return .failure(PosixError(call: "unlink", path: from, errno: code.rawValue))
        }
    }

    /// Reads a whole regular file without following a symbolic link and without ever blocking on a
    /// FIFO or device: the file is opened `O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` and checked with
    /// `fstat` before any read.
    /// - Parameters:
    ///   - path: the file.
    ///   - maxSize: the largest accepted size, in bytes.
    /// - Returns: the content.
    /// - Throws: `ReadRefusal` for a symbolic link, a non-regular file or a file over `maxSize` bytes (also
    ///   one that grows past it while read); `PosixError` for other failures (`ENOENT`, `EACCES`, ...).
    /// The corresponding C calls are `open`, `fstat`, `read`.
    public static func readRegularFile(_ path: String, maxSize: Int) throws -> [UInt8] {
        try readRegularFile(path, maxSize: maxSize, quietPeriod: nil)
    }

    /// Reads a whole regular file like ``readRegularFile(_:maxSize:)``, but only once nobody is writing it:
    /// for files that may have been written in place rather than renamed into place (a maildir protocol
    /// violation), so that a file is never read half-written.
    ///
    /// A file is settled when no process has it open for writing and, when `quietPeriod` is given, it was last
    /// modified at least that long ago. The first is asked of the kernel with a read lease
    /// (`fcntl(F_SETLEASE, F_RDLCK)`), which Linux refuses with `EAGAIN` while any descriptor of the file is
    /// open for writing; the lease is held while reading, so a writer that opens the file meanwhile waits for
    /// the read to finish (lease-break signals go to `SIGURG`, which is ignored by default). Where leases are
    /// not available (another owner without `CAP_LEASE`, a filesystem without them), only the quiet period
    /// applies.
    /// - Parameters:
    ///   - path: the file.
    ///   - maxSize: the largest accepted size, in bytes.
    ///   - quietPeriod: seconds the file must have gone unmodified; `nil` to skip that check.
    /// - Returns: the content.
    /// - Throws: ``FileNotSettled`` when it is still being written; otherwise as ``readRegularFile(_:maxSize:)``.
    /// The corresponding C calls are `open`, `fstat`, `fcntl(F_SETSIG)`, `fcntl(F_SETLEASE)`, `read`.
    public static func readSettledFile(_ path: String, maxSize: Int, quietPeriod: Double?) throws -> [UInt8] {
        try readRegularFile(path, maxSize: maxSize, quietPeriod: quietPeriod, settled: true)
    }

    private static func readRegularFile(
        _ path: String,
        maxSize: Int,
        quietPeriod: Double?,
        settled: Bool = false
    ) throws -> [UInt8] {
        let fd: Int32
        switch valueOrErrno({ Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }) {
        case .success(let opened):
            fd = opened
        case .failure(ELOOP):
            throw ReadRefusal.symlink
        case .failure(ENXIO):  // a UNIX socket cannot be opened
            let kind = (try? linkStatus(path)).flatMap { $0 }.map { fileKind($0.st_mode) } ?? "socket"
            throw ReadRefusal.notRegularFile(kind: kind)
        case .failure(let code):
            throw PosixError(call: "open", path: path, errno: code.rawValue)
        }
        defer { closeFD(fd) }
        let status = try fileStatus(fd, path: path)
        guard isKind(status, S_IFREG) else { throw ReadRefusal.notRegularFile(kind: fileKind(status.st_mode)) }
        let size = Int(status.st_size)
        if size > maxSize { throw ReadRefusal.tooLarge(size: size, limit: maxSize) }
        if settled {
            let leased = try takeReadLease(fd, path: path)
            defer { if leased { _ = fcntl(fd, LeaseCalls.setLease, Int32(F_UNLCK)) } }
            if let quietPeriod {
                let current = try fileStatus(fd, path: path)  // after the lease: no writer can change it now
                let age = wallClockSeconds() - seconds(current.st_mtim)
                if age < quietPeriod { throw FileNotSettled(path: path, reason: .modifiedRecently(age: max(0, age))) }
            }
            return try readAll(fd, path: path, size: size, maxSize: maxSize)
        }
        return try readAll(fd, path: path, size: size, maxSize: maxSize)
    }

    /// Takes a read lease on `fd` (opened read-only). - Returns: whether a lease is held (to be released).
    /// - Throws: ``FileNotSettled`` when the file is open for writing somewhere (`EAGAIN`).
    private static func takeReadLease(_ fd: Int32, path: String) throws -> Bool {
        // A broken lease is signalled to the holder, SIGIO by default, which would terminate the process.
        guard fcntl(fd, LeaseCalls.setSignal, SIGURG) == 0 else { return false }
        switch valueOrErrno({ fcntl(fd, LeaseCalls.setLease, Int32(F_RDLCK)) }) {
        case .success: return true
        case .failure(EAGAIN): throw FileNotSettled(path: path, reason: .openForWriting)
        case .failure: return false  // EACCES (not the owner), EINVAL (no leases here): quiet period only
        }
    }

    private static func readAll(_ fd: Int32, path: String, size: Int, maxSize: Int) throws -> [UInt8] {
        // Read up to one byte past the limit, to notice a file that grew.
        let capacity = maxSize + 1
        var bytes = [UInt8](repeating: 0, count: min(size, maxSize) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                if bytes.count >= capacity { break }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, capacity - bytes.count)))
            }
            let got = try bytes.withUnsafeMutableBytes { (buffer) throws -> Int in
                try check("read", path: path) { read(fd, buffer.baseAddress! + count, buffer.count - count) }
            }
            if got == 0 { break }
            count += got
        }
        if count > maxSize { throw ReadRefusal.tooLarge(size: count, limit: maxSize) }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// Sets a file's modification time to now without following a symbolic link (the spool marks when a
    /// file arrived in `cur/` or `rejected/` this way, for the purge).
    /// - Parameter path: the file (a symbolic link itself is touched, not its target).
    /// - Throws: `PosixError` (`utimensat`).
    /// The corresponding C call is `utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW)`.
    public static func touch(_ path: String) throws {
        try check("utimensat", path: path) { utimensat(AT_FDCWD, path, nil, AT_SYMLINK_NOFOLLOW) }
    }

    /// Removes a directory entry that is not a directory.
    /// - Parameter path: the entry.
    /// - Throws: `PosixError` (`unlink`; `EISDIR` for a directory).
    /// The corresponding C call is `unlink`.
    public static func remove(_ path: String) throws {
        try check("unlink", path: path) { unlink(path) }
    }

    /// Creates a directory and its missing parents with `mode` (like `mkdir -p -m`), then sets the last
    /// directory's mode to `mode` even when it already existed.
    /// - Parameters:
    ///   - path: the directory.
    ///   - mode: permission bits, e.g. `0o700`.
    /// - Throws: `PosixError` (`mkdir`, `chmod`; `ENOTDIR` when a component exists but is not a directory).
    /// The corresponding C calls are `mkdir` and `chmod`.
    public static func makeDirectory(_ path: String, mode: UInt32) throws {
        var current = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if !current.isEmpty && !current.hasSuffix("/") { current += "/" }
            current += component
            switch valueOrErrno({ mkdir(current, mode_t(mode)) }) {
            case .success:
                continue
            case .failure(EEXIST):
                var status = stat()
                try check("stat", path: current) { stat(current, &status) }
                guard isKind(status, S_IFDIR) else { throw PosixError(call: "mkdir", path: current, errno: ENOTDIR) }
            case .failure(let code):
                throw PosixError(call: "mkdir", path: current, errno: code.rawValue)
            }
        }
        try check("chmod", path: path) { chmod(path, mode_t(mode)) }
    }
}

/// A file that is still being written: ``DurableFile/readSettledFile(_:maxSize:quietPeriod:)`` leaves it for later.
public struct FileNotSettled: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// A process has it open for writing (the kernel refused a read lease with `EAGAIN`).
        case openForWriting
        /// It was modified `age` seconds ago, less than the quiet period.
        case modifiedRecently(age: Double)
    }

    /// The file.
    public var path: String
    public var reason: Reason

    public var description: String {
        switch reason {
        case .openForWriting: return "\(path): open for writing by a process"
        case .modifiedRecently(let age): return "\(path): modified \(Int(age * 1000)) ms ago"
        }
    }
}

/// `fcntl` commands from `<linux/fcntl.h>` (`F_LINUX_SPECIFIC_BASE` 1024) and `<asm-generic/fcntl.h>`, which
/// the Glibc module does not import without `_GNU_SOURCE`. They are part of the Linux ABI.
enum LeaseCalls {
    /// `F_SETLEASE`.
    static let setLease: Int32 = 1024
    /// `F_SETSIG`.
    static let setSignal: Int32 = 10
}

/// Seconds since 1970 of a `timespec`.
func seconds(_ time: timespec) -> Double { Double(time.tv_sec) + Double(time.tv_nsec) / 1e9 }

/// `CLOCK_REALTIME` in seconds since 1970 (the clock file times are stamped with).
func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return seconds(now)
}

/// Threads that fsync descriptors in parallel, for ``DurableFile/writeBatch(_:tmpDirectory:finalDirectory:mode:fsyncs:)``.
/// They live as long as the process; make one pool per writer at start.
public final class FsyncPool: Sendable {
    /// The descriptors of the call in progress and how far the threads got with them.
    private struct Work {
        var fds: [Int32] = []
        var codes: [Int32] = []
        var next = 0
        var pending = 0
        /// Pool threads waiting on `workReady` that no one has signalled yet.
        var sleeping = 0
    }

    private let work = Mutex(Work())
    /// Pool threads sleep here between calls (`Mutex` has no condition variable; a semaphore keeps a signal given
    /// before the thread waits).
    private let workReady = DispatchSemaphore(value: 0)
    /// Signalled once per call, by whichever thread finishes its last descriptor.
    private let finished = DispatchSemaphore(value: 0)
    /// One ``fsync(_:)`` call at a time.
    private let calls = DispatchSemaphore(value: 1)

    /// Starts `threads` threads named `name`.
    public init(threads: Int, name: String) {
        for index in 0..<max(1, threads) {
            let rc = startDetachedThread(name: "\(name)\(index)") { [self] in run() }
            precondition(rc == 0, "could not start the thread \(name)\(index) (errno \(rc))")
        }
    }

    /// Fsyncs every descriptor, in parallel on the pool's threads and the calling one.
    /// - Returns: per descriptor, 0 or the `errno` of its `fsync`.
    /// The corresponding C call is `fsync`.
    public func fsync(_ fds: [Int32]) -> [Int32] {
        guard fds.count > 1 else { return fds.map { fd in valueOrErrno({ Glibc.fsync(fd) }).errnoValue } }
        calls.wait()
        defer { calls.signal() }
        let sleepers = work.withLock { work in
            work.fds = fds
            work.codes = Array(repeating: 0, count: fds.count)
            work.next = 0
            work.pending = fds.count
            defer { work.sleeping = 0 }
            return work.sleeping
        }
        for _ in 0..<sleepers { workReady.signal() }
        drain()
        finished.wait()
        return work.withLock { work in
            defer { work.fds = [] }
            return work.codes
        }
    }

    /// Takes descriptors until none is left.
    private func drain() {
        while true {
            let taken: (index: Int, fd: Int32)? = work.withLock { work in
                guard work.next < work.fds.count else { return nil }
                defer { work.next += 1 }
                return (work.next, work.fds[work.next])
            }
            guard let taken else { return }
            let code = valueOrErrno({ Glibc.fsync(taken.fd) }).errnoValue
            let last = work.withLock { work in
                work.codes[taken.index] = code
                work.pending -= 1
                return work.pending == 0
            }
            if last { finished.signal() }
        }
    }

    private func run() {
        while true {
            let idle = work.withLock { work in
                guard work.next >= work.fds.count else { return false }
                work.sleeping += 1
                return true
            }
            if idle { workReady.wait() } else { drain() }
        }
    }
}

extension Result where Failure == PosixErrno {
    /// 0 on success, else the `errno`.
    var errnoValue: Int32 {
        switch self {
        case .success: return 0
        case .failure(let code): return code.rawValue
        }
    }
}
