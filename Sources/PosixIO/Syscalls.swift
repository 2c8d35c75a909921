#if canImport(Glibc)
import Glibc
#else
#error("PosixIO is Linux-only (inotify, FIFO semantics).")
#endif

// The one place where return codes of C calls become Swift errors, after apple/swift-system
// `Sources/System/Internals/Syscalls.swift` and `Util.swift` (`valueOrErrno(retryOnInterrupt:)`).

/// A failed C call: which call, on which path, and the `errno` it set.
///
/// Its description names all three, e.g. `open(/x/y): Permission denied (errno 13)`, after swift-nio's
/// `FileSystemError`, whose messages name the path and the failing call.
public struct PosixError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The C function that failed, e.g. `open` or `inotify_add_watch`.
    public let call: String
    /// The path the call was about, when there is one.
    public let path: String?
    /// The `errno` value the call set.
    public let errno: Int32

    /// Creates an error for a failed call.
    /// - Parameters:
    ///   - call: the C function that failed.
    ///   - path: the path the call was about, if any.
    ///   - errno: the `errno` value.
    public init(call: String, path: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    /// The C library's text for `errno` (`strerror`).
    public var message: String {
        guard let text = strerror(errno) else { return "Unknown error \(errno)" }
        return String(cString: text)
    }

    public var description: String {
        if let path {
            return "\(call)(\(path)): \(message) (errno \(errno))"
        }
        return "\(call): \(message) (errno \(errno))"
    }
}

/// A path that exists but is not what the caller may use (e.g. a regular file where the control FIFO
/// belongs, or a directory owned by another user).
public struct PathRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// The refused path.
    public let path: String
    /// Why, in words, e.g. "is a regular file, not a FIFO".
    public let reason: String

    /// Creates a refusal.
    /// - Parameters:
    ///   - path: the refused path.
    ///   - reason: why it is refused.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason) (refused)" }
}

/// Ignores `SIGPIPE` process-wide, so a write to a FIFO or socket whose reader went away fails with
/// `EPIPE` instead of killing the process. Swift does not do this by itself.
///
/// The corresponding C call is `signal(SIGPIPE, SIG_IGN)`.
public func ignoreSIGPIPE() {
    _ = signal(SIGPIPE, SIG_IGN)
}

// MARK: - Internal helpers

/// Runs `body` until it returns something other than -1 or fails with something other than `EINTR`
/// (when `retryOnInterrupt`); returns the value or the `errno`.
@inline(__always)
func valueOrErrno<I: FixedWidthInteger>(
    retryOnInterrupt: Bool = true,
    _ body: () -> I
) -> Result<I, PosixErrno> {
    while true {
        let result = body()
        if result != -1 { return .success(result) }
        let code = Glibc.errno
        if retryOnInterrupt && code == EINTR { continue }
        return .failure(PosixErrno(code))
    }
}

/// Like `valueOrErrno`, but throws a `PosixError` naming `call` and `path`.
@inline(__always)
@discardableResult
func check<I: FixedWidthInteger>(
    _ call: String,
    path: String? = nil,
    retryOnInterrupt: Bool = true,
    _ body: () -> I
) throws -> I {
    switch valueOrErrno(retryOnInterrupt: retryOnInterrupt, body) {
    case .success(let value): return value
    case .failure(let code): throw PosixError(call: call, path: path, errno: code.rawValue)
    }
}

/// An `errno` value, usable as a `Result` failure and matched with `~=` against `Int32` constants.
struct PosixErrno: Error, Hashable, RawRepresentable {
    let rawValue: Int32
    init(rawValue: Int32) { self.rawValue = rawValue }
    init(_ rawValue: Int32) { self.rawValue = rawValue }

    static func ~= (pattern: Int32, value: PosixErrno) -> Bool { pattern == value.rawValue }
}

/// Closes a descriptor we own. `EBADF` is a programmer error (double close) and traps, as swift-nio's
/// `System.swift` does; `EINTR` is not retried: on Linux the descriptor is gone either way.
func closeFD(_ fd: Int32) {
    if Glibc.close(fd) == -1 {
        let code = Glibc.errno
        precondition(code != EBADF, "close(\(fd)): bad file descriptor (double close?)")
    }
}

/// Opens `path`; returns the descriptor.
func openFD(_ path: String, _ flags: Int32, mode: UInt32 = 0) throws -> Int32 {
    try check("open", path: path) { Glibc.open(path, flags, mode_t(mode)) }
}

/// `fstat` of an open descriptor.
func fileStatus(_ fd: Int32, path: String?) throws -> stat {
    var status = stat()
    try check("fstat", path: path) { fstat(fd, &status) }
    return status
}

/// `lstat` of a path; `nil` when it does not exist.
func linkStatus(_ path: String) throws -> stat? {
    var status = stat()
    switch valueOrErrno({ lstat(path, &status) }) {
    case .success: return status
    case .failure(ENOENT): return nil
    case .failure(let code): throw PosixError(call: "lstat", path: path, errno: code.rawValue)
    }
}

/// The kind of file a mode describes, in words: "regular file", "directory", "FIFO", ...
func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "regular file"
    case S_IFDIR: return "directory"
    case S_IFIFO: return "FIFO"
    case S_IFSOCK: return "socket"
    case S_IFLNK: return "symbolic link"
    case S_IFCHR: return "character device"
    case S_IFBLK: return "block device"
    default: return "file of unknown type"
    }
}

func isKind(_ status: stat, _ kind: mode_t) -> Bool { status.st_mode & S_IFMT == kind }

/// Writes all of `bytes`, retrying short writes and `EINTR`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String?) throws {
    var offset = 0
    while offset < bytes.count {
        let written = try check("write", path: path) {
            Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        }
        offset += written
    }
}

/// The directory part of a path ("." for a bare name, "/" for a top-level entry).
func parentDirectory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    if slash == trimmed.startIndex { return "/" }
    return String(trimmed[..<slash])
}

/// Milliseconds left until `deadline` (a `CLOCK_MONOTONIC` reading in seconds), for `poll`.
func millisecondsLeft(until deadline: Double) -> Int32 {
    let left = deadline - monotonicSeconds()
    if left <= 0 { return 0 }
    return Int32(min(left * 1000, Double(Int32.max)).rounded(.up))
}

/// `CLOCK_MONOTONIC` in seconds.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

// MARK: - Linux calls the Glibc module does not import

/// `eventfd`, `pipe2`, `renameat2` and `sync_file_range` are not in Swift's Glibc module map (and no C target may
/// be added for PosixIO), so they are looked up once in the C library with `dlsym`. Each has a fallback.
enum LinuxCalls {
    typealias EventFD = @convention(c) (UInt32, Int32) -> Int32
    typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32

    static let eventfd: EventFD? = lookup("eventfd", as: EventFD.self)
    static let renameat2: RenameAt2? = lookup("renameat2", as: RenameAt2.self)
    /// Without it the files of a batch are fsynced in turn without their writeback started together first.
    static let syncFileRange: SyncFileRange? = lookup("sync_file_range", as: SyncFileRange.self)

    /// `SYNC_FILE_RANGE_WRITE` from `<fcntl.h>`: start writing the dirty pages, do not wait.
    static let syncFileRangeWrite: UInt32 = 2

    /// `RENAME_NOREPLACE` from `<linux/fs.h>`.
    static let renameNoReplace: UInt32 = 1
    /// `EFD_CLOEXEC` and `EFD_NONBLOCK` equal `O_CLOEXEC` and `O_NONBLOCK` (`<sys/eventfd.h>`).
    static let eventFDFlags: Int32 = O_CLOEXEC | O_NONBLOCK

    private static func lookup<F>(_ name: String, as type: F.Type) -> F? {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }
}
