import Glibc

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
    /// - Throws: `PosixError` naming the failing call (`open`, `write`, `fsync`, `rename`, ...). On failure
    ///   the temporary file is removed.
    /// The corresponding C calls are `open`, `write`, `fsync`, `rename`.
    public static func write(
        _ bytes: [UInt8],
        name: String,
        tmpDirectory: String,
        finalDirectory: String,
        mode: UInt32 = 0o600
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
        try fsyncDirectory(finalDirectory)
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
    /// - Returns: the path the file now has.
    /// - Throws: `PosixError` (`renameat2`, `link`, `unlink`, `fsync`), or `EEXIST` after 10,000 taken names.
    /// - Complexity: one attempt per taken name.
    /// The corresponding C call is `renameat2(RENAME_NOREPLACE)`; where the C library or the filesystem
    /// lacks it, `link` then `unlink`.
    public static func moveNoReplace(from: String, to: String) throws -> String {
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
