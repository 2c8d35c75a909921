import Glibc

/// The reply side of the control FIFO (SPEC §7): the daemon writes a command's outcome into the FIFO
/// the caller named with `reply=/abs/path`. The FIFO's owner is the caller's uid.
public enum ReplyFIFO {
    /// The owner of the reply FIFO at `path`, i.e. the caller's uid.
    /// - Parameter path: the reply FIFO; not followed if it is a symbolic link.
    /// - Returns: its owner's uid.
    /// - Throws: `PathRefusal` when `path` is not a FIFO (a symbolic link to one is refused too);
    ///   `PosixError` (`lstat`, `ENOENT` when missing).
    /// The corresponding C call is `lstat`.
    public static func owner(of path: String) throws -> UInt32 {
        guard let status = try linkStatus(path) else { throw PosixError(call: "lstat", path: path, errno: ENOENT) }
        guard isKind(status, S_IFIFO) else {
            throw PathRefusal(path: path, reason: "is a \(fileKind(status.st_mode)), not a FIFO")
        }
        return status.st_uid
    }

    /// Writes all of `text` into the reply FIFO at `path` and closes it (the caller then sees EOF).
    ///
    /// Opens `O_WRONLY|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC`, so it never blocks on a FIFO without a reader
    /// (`ENXIO`) and never follows a symbolic link; requires `S_ISFIFO` by `fstat` on the open descriptor.
    /// When the FIFO is full (`EAGAIN`) it waits for `POLLOUT`, up to `timeout` seconds in all.
    /// Ignore `SIGPIPE` first (`ignoreSIGPIPE()`), so a reader that went away gives `EPIPE`.
    /// - Parameters:
    ///   - text: the reply, e.g. "ok\n..." or "error\n...".
    ///   - path: the reply FIFO.
    ///   - timeout: seconds to wait for the reader to drain the FIFO.
    /// - Returns: the FIFO owner's uid (the caller's uid), from the same `fstat`.
    /// - Throws: `PathRefusal` for a non-FIFO; `PosixError`: `open` (`ENXIO` no reader, `ELOOP` symbolic
    ///   link, `ENOENT`), `write` (`EPIPE` reader gone, `ETIMEDOUT` after `timeout`).
    /// The corresponding C calls are `open`, `fstat`, `write`, `poll`.
    @discardableResult
    public static func write(_ text: String, to path: String, timeout: Double = 2) throws -> UInt32 {
        let deadline = monotonicSeconds() + timeout
        let fd = try openFD(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        defer { closeFD(fd) }
        let status = try fileStatus(fd, path: path)
        guard isKind(status, S_IFIFO) else {
            throw PathRefusal(path: path, reason: "is a \(fileKind(status.st_mode)), not a FIFO")
        }
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBytes { buffer in
            try writeWithDeadline(fd, buffer, path: path, deadline: deadline)
        }
        return status.st_uid
    }
}

/// Writes all of `bytes` to a non-blocking descriptor, waiting for `POLLOUT` on `EAGAIN` until
/// `deadline` (monotonic seconds); then throws `ETIMEDOUT`.
func writeWithDeadline(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String, deadline: Double) throws {
    var offset = 0
    while offset < bytes.count {
        switch valueOrErrno({ Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }) {
        case .success(let written):
            offset += written
        case .failure(EAGAIN):
            let wait = millisecondsLeft(until: deadline)
            if wait == 0 { throw PosixError(call: "write", path: path, errno: ETIMEDOUT) }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            try check("poll", path: path) { poll(&pfd, 1, wait) }
        case .failure(let code):
            throw PosixError(call: "write", path: path, errno: code.rawValue)
        }
    }
}

/// Why `ControlClient.send` got no reply.
public enum ControlClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No daemon reads the control FIFO (it is missing, or has no reader: `ENOENT`, `ENXIO`, `EPIPE`).
    /// `sitroomctl` exits 69 (SPEC §2).
    case notRunning(String)
    /// The daemon took the command but did not finish its reply in time. `sitroomctl` exits 75.
    case timedOut
    /// Anything else: the command is too long, the control path is not a FIFO, permission denied, ...
    case failed(String)

    public var description: String {
        switch self {
        case .notRunning(let why): return "sitroomd is not running: \(why)"
        case .timedOut: return "no reply from sitroomd in time"
        case .failed(let why): return why
        }
    }
}

/// The client side of the control FIFO, for `sitroomctl` (SPEC §7).
public enum ControlClient {
    /// Sends one command and returns the daemon's whole reply.
    ///
    /// Makes a private directory (`mkdtemp`, 0700) holding a reply FIFO (0600), opens it for reading
    /// (non-blocking), writes `\nreply=<abs path> <command>\n` (one write: atomic) to `controlFIFO` with
    /// `O_WRONLY|O_NONBLOCK` (so it never hangs without a daemon), reads the reply until the daemon closes
    /// its end, and removes the directory. A FIFO read end with no writer yet can report end-of-file
    /// before the daemon has opened it; that is waited out (in short `poll` steps) until data came and
    /// then end-of-file, or the deadline.
    /// - Parameters:
    ///   - command: the command line, e.g. `status` (no newline or NUL).
    ///   - controlFIFO: the daemon's control FIFO, e.g. `var/run/sitroom.ctl`.
    ///   - timeout: seconds for the whole exchange.
    /// - Returns: the reply text ("ok\n..." or "error\n...").
    /// - Throws: `ControlClientError`: `.notRunning` at once when nobody reads `controlFIFO`, `.timedOut`,
    ///   `.failed` (line over 4,096 bytes with its newline, not a FIFO, permission denied, ...).
    /// The corresponding C calls are `mkdtemp`, `mkfifo`, `open`, `write`, `poll`, `read`.
    public static func send(_ command: String, controlFIFO: String, timeout: Double) throws -> String {
        let deadline = monotonicSeconds() + timeout
        if command.utf8.contains(where: { $0 == 10 || $0 == 0 }) {
            throw ControlClientError.failed("the command contains a newline or NUL byte")
        }
        let directory = try makePrivateDirectory(preferring: parentDirectory(of: controlFIFO))
        let replyPath = directory + "/reply"
        defer {
            _ = unlink(replyPath)
            _ = rmdir(directory)
        }
        // A leading NUL and newline (``LineSplitter/separator``) end whatever half line another writer left in the
        // FIFO with a NUL, so it can never run as a command, even when both writes reach the daemon in one read (the
        // daemon rejects and logs it); on its own the separator is an empty line, ignored.
        let line = LineSplitter.separator + Array("reply=\(replyPath) \(command)\n".utf8)
        guard line.count <= LineSplitter.maximumLineLength else {
            throw ControlClientError.failed(
                "the command line is \(line.count) bytes with its reply path and newline; "
                    + "the limit is \(LineSplitter.maximumLineLength)"
            )
        }
        do {
            try check("mkfifo", path: replyPath) { mkfifo(replyPath, 0o600) }
            // A daemon running as another user (SPEC §7 `control.group`) must be able to open the reply FIFO:
            // then the directory becomes 0711 (enterable, not listable: its random name stays unknown) and
            // the FIFO 0622.
            var info = stat()
            if stat(controlFIFO, &info) == 0, info.st_uid != geteuid() {
                try check("chmod", path: directory) { chmod(directory, 0o711) }
                try check("chmod", path: replyPath) { chmod(replyPath, 0o622) }
            }
        } catch {
            throw ControlClientError.failed("\(error)")
        }
        let replyFD: Int32
        do {
            replyFD = try openFD(replyPath, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        } catch {
            throw ControlClientError.failed("\(error)")
        }
        defer { closeFD(replyFD) }

        try deliver(line, to: controlFIFO, deadline: deadline)
        return try readReply(replyFD, path: replyPath, deadline: deadline)
    }

    /// The reply directory goes beside the control FIFO when the caller may write there (it is the daemon's
    /// user), so the daemon sees it even when it runs with a private `/tmp` (systemd's `PrivateTmp=`);
    /// otherwise into `$TMPDIR` or `/tmp`.
    private static func makePrivateDirectory(preferring runDirectory: String) throws -> String {
        var base = "/tmp"
        if runDirectory.hasPrefix("/"), !runDirectory.contains(" "), !runDirectory.contains("\n"),
            access(runDirectory, W_OK | X_OK) == 0
        {
            base = runDirectory
        } else if let tmp = getenv("TMPDIR").map({ String(cString: $0) }),
            tmp.hasPrefix("/"), !tmp.contains(" "), !tmp.contains("\n")
        {
            base = tmp.count > 1 && tmp.hasSuffix("/") ? String(tmp.dropLast()) : tmp
        }
        var template = Array("\(base)/sitroomctl.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw ControlClientError.failed("\(PosixError(call: "mkdtemp", path: base, errno: Glibc.errno))")
        }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func deliver(_ line: [UInt8], to controlFIFO: String, deadline: Double) throws {
        let fd: Int32
        switch valueOrErrno({ Glibc.open(controlFIFO, O_WRONLY | O_NONBLOCK | O_CLOEXEC) }) {
        case .success(let opened):
            fd = opened
        case .failure(ENXIO):
            throw ControlClientError.notRunning("no daemon reads \(controlFIFO)")
        case .failure(ENOENT):
            throw ControlClientError.notRunning("\(controlFIFO) does not exist")
        case .failure(let code):
            throw ControlClientError.failed("\(PosixError(call: "open", path: controlFIFO, errno: code.rawValue))")
        }
        defer { closeFD(fd) }
        do {
            let status = try fileStatus(fd, path: controlFIFO)
            guard isKind(status, S_IFIFO) else {
                throw ControlClientError.failed("\(controlFIFO) is a \(fileKind(status.st_mode)), not a FIFO")
            }
            // At most PIPE_BUF bytes: written whole or not at all (EAGAIN), never interleaved.
            try line.withUnsafeBytes { try writeWithDeadline(fd, $0, path: controlFIFO, deadline: deadline) }
        } catch let error as PosixError {
            switch error.errno {
            case EPIPE: throw ControlClientError.notRunning("the daemon closed \(controlFIFO)")
            case ETIMEDOUT: throw ControlClientError.timedOut
            default: throw ControlClientError.failed("\(error)")
            }
        }
    }

    private static func readReply(_ fd: Int32, path: String, deadline: Double) throws -> String {
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let wait = millisecondsLeft(until: deadline)
            if wait == 0 { throw ControlClientError.timedOut }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, min(wait, 100))
            if ready == -1 {
                if Glibc.errno == EINTR { continue }
                throw ControlClientError.failed("\(PosixError(call: "poll", path: path, errno: Glibc.errno))")
            }
            if ready == 0 { continue }
            var endOfFile = false
            reading: while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                switch count {
                case 1...:
                    reply += chunk[..<count]
                case 0:
                    endOfFile = true
                    break reading
                default:
                    let code = Glibc.errno
                    if code == EINTR { continue }
                    if code == EAGAIN { break reading }
                    throw ControlClientError.failed("\(PosixError(call: "read", path: path, errno: code))")
                }
            }
            if endOfFile {
                if !reply.isEmpty { return String(decoding: reply, as: UTF8.self) }
                // No writer yet (or one that wrote nothing): the read end reports hang-up; wait a step
                // rather than spin, then look again.
                var none = pollfd(fd: -1, events: 0, revents: 0)
                _ = poll(&none, 1, min(millisecondsLeft(until: deadline), 20))
            }
        }
    }
}

extension ControlClient {
    /// Removes the reply directories (`sitroomctl.XXXXXX`, made by ``send(_:controlFIFO:timeout:)``) that clients
    /// killed before they could clean up left in `directory` (the control FIFO's directory, `var/run`).
    ///
    /// A directory is abandoned when it is at least `minimumAge` seconds old and no process has its `reply` FIFO
    /// open for reading: a live client holds the read end from just after making it until it has its answer, and
    /// opening a FIFO for writing without a reader fails with `ENXIO`. Only directories owned by this user are
    /// touched.
    /// - Parameters:
    ///   - directory: where the reply directories are (`var/run`).
    ///   - now: seconds since 1970.
    ///   - minimumAge: seconds a directory must be old (covers a client between `mkdtemp` and opening its FIFO).
    /// - Returns: the directories removed (their names).
    /// The corresponding C calls are `open(O_WRONLY|O_NONBLOCK)`, `unlink` and `rmdir`.
    public static func removeAbandonedReplyDirectories(
        in directory: String,
        now: Double,
        minimumAge: Double = 10
    )
        -> [String]
    {
        guard let entries = try? DurableFile.list(directory, includeHidden: false) else { return [] }
        var removed: [String] = []
        for entry in entries where entry.kind == .directory && entry.name.hasPrefix("sitroomctl.") {
            let path = directory + "/" + entry.name
            guard now - entry.modified >= minimumAge, let status = try? linkStatus(path), status.st_uid == geteuid()
            else { continue }
            let reply = path + "/reply"
            if let replyStatus = try? linkStatus(reply) {
                guard isKind(replyStatus, S_IFIFO) else { continue }
                let fd = Glibc.open(reply, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                if fd >= 0 {
                    closeFD(fd)  // a reader has it open: a client still waiting
                    continue
                }
                guard Glibc.errno == ENXIO else { continue }
                guard unlink(reply) == 0 else { continue }
            }
            if rmdir(path) == 0 { removed.append(entry.name) }
        }
        return removed
    }
}
