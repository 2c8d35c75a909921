import Glibc
import Synchronization

/// One thing read from the control FIFO (SPEC §7).
public enum ControlInput: Sendable, Hashable {
    /// One command line without its newline: valid UTF-8, no NUL, at most 4,096 bytes with the newline.
    /// An empty line is delivered as `.line("")`.
    case line(String)
    /// Input that is not a command line, and why: "line longer than 4096 bytes (discarded)",
    /// "line contains a NUL byte", "line is not valid UTF-8", "final line without a newline (discarded)",
    /// "half line of an earlier write completed by a later one (discarded)".
    /// Reading goes on.
    case rejected(reason: String)
}

/// Splits control FIFO bytes into `ControlInput`s. A value type with no I/O, tested on its own.
struct LineSplitter {
    /// The longest line, newline included (`PIPE_BUF`, so a write of one line is atomic).
    static let maximumLineLength = 4096

    static let tooLong = "line longer than \(maximumLineLength) bytes (discarded)"
    static let containsNUL = "line contains a NUL byte"
    static let invalidUTF8 = "line is not valid UTF-8"
    static let unterminated = "final line without a newline (discarded)"
    static let joined = "half line of an earlier write completed by a later one (discarded)"
    static let separated = "half line of another writer, ended by sitroomctl's separator (discarded)"
    /// What sitroomctl writes before each command: a NUL and a newline. It ends a half line another writer left with a
    /// NUL (so that line is rejected, never run); on its own it is ignored.
    public static let separator: [UInt8] = [0, 10]

    private var pending: [UInt8] = []
    /// `pending` was left by an earlier read (a write that ended mid-line, usually a writer's half line): the
    /// newline that completes it comes from another write, so the joined line is nobody's command.
    private var pendingFromEarlierRead = false
    /// Inside an over-long line that was already reported: drop bytes up to the next newline.
    private var discarding = false

    /// Consumes `bytes`; appends complete lines and rejections to `output`.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, into output: inout [ControlInput]) {
        var start = 0
        while start < bytes.count {
            guard let newline = bytes[start...].firstIndex(of: 10) else {
                let tail = bytes[start...]
                if !discarding {
                    pending += tail
                    if pending.count > Self.maximumLineLength - 1 {
                        output.append(.rejected(reason: Self.tooLong))
                        pending = []
                        discarding = true
                    }
                }
                return
            }
            let segment = bytes[start..<newline]
            start = newline + 1
            if discarding {
                discarding = false
                continue
            }
            if pendingFromEarlierRead {
                // Commands are written whole (one write of at most PIPE_BUF bytes arrives in one read).
                pendingFromEarlierRead = false
                if !pending.isEmpty {
                    output.append(.rejected(reason: Self.joined))
                    pending = []
                    continue
                }
            }
            if pending.count + segment.count > Self.maximumLineLength - 1 {
                output.append(.rejected(reason: Self.tooLong))
                pending = []
                continue
            }
            let line: [UInt8]
            if pending.isEmpty {
                line = Array(segment)
            } else {
                line = pending + segment
                pending = []
            }
            output.append(Self.validate(line))
        }
    }

    /// A read ended (the bytes fed so far are all the FIFO held): a partial line left now was cut by its write,
    /// not by the reader's buffer, and is rejected when a later write completes it.
    mutating func endOfRead() {
        if !pending.isEmpty { pendingFromEarlierRead = true }
    }

    /// The last writer closed the FIFO: a partial line left over is rejected.
    mutating func endOfInput(into output: inout [ControlInput]) {
        if discarding {
            discarding = false  // already reported as too long
        } else if !pending.isEmpty {
            output.append(.rejected(reason: Self.unterminated))
        }
        pending = []
        pendingFromEarlierRead = false
    }

    static func validate(_ line: [UInt8]) -> ControlInput {
        if line == [0] { return .line("") }  // sitroomctl's separator alone
        if line.last == 0, !line.dropLast().contains(0) { return .rejected(reason: separated) }
        if line.contains(0) { return .rejected(reason: containsNUL) }
        guard let text = String(validating: line, as: UTF8.self) else { return .rejected(reason: invalidUTF8) }
        return .line(text)
    }
}

/// The daemon's control FIFO (SPEC §7): creates it safely and reads command lines from it.
///
/// Design (measured on this machine, STYLE.md "Measured here"): the FIFO is opened once and read by a
/// thread blocked in `poll` with an eventfd to stop it. It is opened `O_RDONLY|O_NONBLOCK` rather than
/// `O_RDWR`: that keeps end-of-file visible, so a final line without a newline is reported when its
/// writer closes. When the last writer closes, `read` returns 0; the reader then opens a *new* read
/// descriptor on the same FIFO (through `/proc/self/fd`) *before* closing the old one. The FIFO thus
/// always has a reader (writers never get `ENXIO`, its buffer is never freed, so no command is lost,
/// unlike close-then-reopen) and the new descriptor reports no hang-up until a later writer has come and
/// gone (Linux `pipe_poll`), so `poll` never spins after the last writer leaves.
public final class ControlFIFO: Sendable {
    /// The FIFO's path.
    public let path: String
    /// Command lines and rejections, in the order written. Finishes after `stop()`.
    public let inputs: AsyncStream<ControlInput>
    private let continuation: AsyncStream<ControlInput>.Continuation
    private let wakeup: Wakeup
    /// The reader thread, once it runs (for tests that measure its CPU time).
    let readerThread = ThreadRecord()

    /// Creates (or replaces a stale) control FIFO and starts reading it.
    ///
    /// The parent directory is created with `directoryMode` if missing; an existing one must be owned by
    /// us (else refused) and is chmod-ed to `directoryMode` if its mode differs. A FIFO already at `path`
    /// is stale (the lock guarantees no other daemon): it is removed and created anew with `mkfifo`.
    /// Anything else there (regular file, symbolic link, directory, socket) is refused.
    /// - Parameters:
    ///   - path: the FIFO, e.g. `var/run/sitroom.ctl`.
    ///   - mode: the FIFO's permission bits (0600; 0620 with a `control.group`), set with `chmod`.
    ///   - directoryMode: the parent directory's permission bits (0700; 0710 lets a group reach the FIFO).
    /// - Throws: `PathRefusal` for a wrong file type or owner; `PosixError` (`mkdir`, `chmod`, `unlink`,
    ///   `mkfifo`, `open`, ...).
    /// The corresponding C calls are `mkfifo` and `open(O_RDONLY|O_NONBLOCK|O_CLOEXEC)`.
    public init(path: String, mode: UInt32 = 0o600, directoryMode: UInt32 = 0o700) throws {
        self.path = path
        let directory = parentDirectory(of: path)
        try Self.prepareDirectory(directory, mode: directoryMode)

        if let existing = try linkStatus(path) {
            guard isKind(existing, S_IFIFO) else {
                throw PathRefusal(path: path, reason: "is a \(fileKind(existing.st_mode)), not a FIFO")
            }
            try check("unlink", path: path) { unlink(path) }
        }
        try check("mkfifo", path: path) { mkfifo(path, mode_t(mode)) }
        try check("chmod", path: path) { chmod(path, mode_t(mode)) }

        let fd = try openFD(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        let wakeup: Wakeup
        do {
            let status = try fileStatus(fd, path: path)
            guard isKind(status, S_IFIFO) else {
                throw PathRefusal(path: path, reason: "was replaced by a \(fileKind(status.st_mode))")
            }
            wakeup = try Wakeup()
        } catch {
            closeFD(fd)
            throw error
        }
        let (stream, continuation) = AsyncStream.makeStream(of: ControlInput.self, bufferingPolicy: .unbounded)
        self.inputs = stream
        self.continuation = continuation
        self.wakeup = wakeup
        continuation.onTermination = { _ in wakeup.signal() }
        let readerThread = self.readerThread
        ReaderThread.start(
            name: "sitroom-control",
            wakeup: wakeup,
            started: { thread in readerThread.set(thread) },
            makeHandler: { FIFOReader(fd: fd, path: path, continuation: continuation) }
        )
    }

    /// Stops reading and finishes `inputs`. Removes nothing. Idempotent.
    public func stop() {
        continuation.finish()
        wakeup.signal()
    }

    deinit { stop() }

    private static func prepareDirectory(_ directory: String, mode: UInt32) throws {
        var status = stat()
        switch valueOrErrno({ stat(directory, &status) }) {
        case .success:
            break
        case .failure(ENOENT):
            try DurableFile.makeDirectory(directory, mode: mode)
            return
        case .failure(let code):
            throw PosixError(call: "stat", path: directory, errno: code.rawValue)
        }
        guard isKind(status, S_IFDIR) else {
            throw PathRefusal(path: directory, reason: "is a \(fileKind(status.st_mode)), not a directory")
        }
        guard status.st_uid == geteuid() else {
            throw PathRefusal(path: directory, reason: "is owned by uid \(status.st_uid), not by us (uid \(geteuid()))")
        }
        if UInt32(status.st_mode) & 0o7777 != mode {
            try check("chmod", path: directory) { chmod(directory, mode_t(mode)) }
        }
    }
}

/// The control reader thread's state: owned by that thread only.
struct FIFOReader: ReadinessHandler {
    private(set) var fd: Int32?
    /// The descriptor to read when `fd` is nil (reopening failed): polled every `retryAfter` ms.
    private var fallback: Int32
    let path: String
    let continuation: AsyncStream<ControlInput>.Continuation
    private var splitter = LineSplitter()
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)

    init(fd: Int32, path: String, continuation: AsyncStream<ControlInput>.Continuation) {
        self.fd = fd
        self.fallback = fd
        self.path = path
        self.continuation = continuation
    }

    var descriptor: Int32? { fd }

    mutating func ready(revents: Int16) -> Bool {
        let current = fd ?? fallback
        var output: [ControlInput] = []
        var endOfFile = false
        while true {
            let count = read(current, buffer.baseAddress!, buffer.count)
            if count > 0 {
                splitter.feed(UnsafeRawBufferPointer(rebasing: buffer[..<count]), into: &output)
                // A read that did not fill the buffer took all the FIFO held: a line cut there was cut by its writer.
                if count < buffer.count { splitter.endOfRead() }
                continue
            }
            if count == 0 {
                endOfFile = true
                break
            }
            let code = Glibc.errno
            if code == EINTR { continue }
            if code == EAGAIN { break }
            output.append(.rejected(reason: "\(PosixError(call: "read", path: path, errno: code))"))
            break
        }
        if endOfFile {
            splitter.endOfInput(into: &output)
        }
        for input in output {
            if case .terminated = continuation.yield(input) { return false }
        }
        if endOfFile || fd == nil {
            reopen(current)
        }
        return true
    }

    /// Replaces the read descriptor after end-of-file: new one first, then close the old one.
    private mutating func reopen(_ old: Int32) {
        var fresh = Glibc.open("/proc/self/fd/\(old)", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fresh == -1 { fresh = reopenByPath(matching: old) }
        guard fresh != -1 else {
            // Very unlikely (no /proc and the path is gone): keep the old descriptor and read it on a timer.
            fd = nil
            fallback = old
            return
        }
        closeFD(old)
        fd = fresh
        fallback = fresh
    }

    private func reopenByPath(matching old: Int32) -> Int32 {
        guard let oldStatus = try? fileStatus(old, path: path) else { return -1 }
        let fresh = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fresh != -1 else { return -1 }
        if let status = try? fileStatus(fresh, path: path),
            status.st_dev == oldStatus.st_dev && status.st_ino == oldStatus.st_ino
        {
            return fresh
        }
        closeFD(fresh)
        return -1
    }

    mutating func finish() {
        closeFD(fd ?? fallback)
        buffer.deallocate()
        continuation.finish()
    }
}

/// Where a reader thread records its `pthread_t` (tests read its CPU clock).
final class ThreadRecord: Sendable {
    private let thread = Mutex<pthread_t?>(nil)
    func set(_ value: pthread_t) { thread.withLock { $0 = value } }
    var value: pthread_t? { thread.withLock { $0 } }
}
