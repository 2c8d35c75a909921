import Glibc

/// One inotify event on a watched directory.
public struct DirectoryEvent: Sendable, Hashable {
    /// What happened.
    public enum Kind: Sendable, Hashable {
        /// An entry was created (`IN_CREATE`).
        case created
        /// A file opened for writing was closed (`IN_CLOSE_WRITE`).
        case closedWrite
        /// An entry was renamed into the directory (`IN_MOVED_TO`): the maildir delivery.
        case movedIn
        /// An entry was renamed out of the directory (`IN_MOVED_FROM`).
        case movedOut
        /// An entry was deleted (`IN_DELETE`).
        case deleted
        /// The watched directory itself was deleted, moved or unmounted (`IN_DELETE_SELF`, `IN_MOVE_SELF`,
        /// `IN_UNMOUNT`); its watch is gone. `name` is nil.
        case directoryGone
        /// The kernel queue overflowed (`IN_Q_OVERFLOW`, `wd == -1`): events were lost, rescan everything.
        case overflow
    }

    /// What happened.
    public var kind: Kind
    /// The watched directory's path as given to `DirectoryWatcher.init` ("" for `.overflow`).
    public var directory: String
    /// The entry's name inside `directory` (nil for `.directoryGone` and `.overflow`).
    /// Decoded as UTF-8; bytes that are not valid UTF-8 become U+FFFD.
    public var name: String?

    /// Creates an event.
    public init(kind: Kind, directory: String, name: String?) {
        self.kind = kind
        self.directory = directory
        self.name = name
    }
}

/// Watches directories (never single files) with inotify and delivers their events, in order, in batches.
///
/// A thread blocked in `poll` on the inotify descriptor and an eventfd reads the events and yields one
/// batch per wake-up to `events` (p50 ≈ 30 µs on this kind of machine, STYLE.md). Nothing is dropped:
/// the stream buffers without bound, and a kernel queue overflow surfaces as `.overflow`.
/// The corresponding C calls are `inotify_init1`, `inotify_add_watch`, `read`.
public final class DirectoryWatcher: Sendable {
    /// The watch mask: `IN_CREATE|IN_CLOSE_WRITE|IN_MOVED_TO|IN_MOVED_FROM|IN_DELETE|IN_DELETE_SELF|
    /// IN_MOVE_SELF|IN_ONLYDIR`. Symbolic links to directories are followed (no `IN_DONT_FOLLOW`).
    static let mask: UInt32 = UInt32(
        IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
            | IN_ONLYDIR
    )

    /// Event batches in the order the kernel reported them. Finishes after `stop()`.
    public let events: AsyncStream<[DirectoryEvent]>
    private let continuation: AsyncStream<[DirectoryEvent]>.Continuation
    private let wakeup: Wakeup

    /// Starts watching.
    /// - Parameters:
    ///   - directories: the directories to watch; each must exist and be a directory (or a symbolic link to one).
    ///   - deliver: when given, each batch is handed to it on the reader thread, in order, instead of to `events`
    ///     (which then stays empty and finishes at `stop()`): a consumer that only queues the batch is spared the
    ///     hop through a stream and a task, a wake-up of Swift's pool per batch. It must not block.
    ///   - coalescing: seconds; when events come within this long of the last batch, the reader waits out the rest
    ///     of it before reading, so that a storm of events arrives in batches of many rather than a wake-up per
    ///     event. The first event after a quiet spell is read at once. 0: never wait.
    /// - Throws: `PosixError`: `inotify_init1` (`EMFILE`), `inotify_add_watch` (`ENOENT`, `ENOTDIR`,
    ///   `EACCES`, `ENOSPC` when the watch limit `fs.inotify.max_user_watches` is reached). Callers can
    ///   then fall back to periodic scans.
    public init(
        directories: [String],
        coalescing: Double = 0,
        deliver: (@Sendable ([DirectoryEvent]) -> Void)? = nil
    ) throws {
        let fd = try check("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        var paths: [Int32: [String]] = [:]
        let wakeup: Wakeup
        do {
            for directory in directories {
                let wd = try check("inotify_add_watch", path: directory) {
                    inotify_add_watch(fd, directory, Self.mask)
                }
                paths[wd, default: []].append(directory)  // two paths to one directory share a watch
            }
            wakeup = try Wakeup()
        } catch {
            closeFD(fd)
            throw error
        }
        let (stream, continuation) = AsyncStream.makeStream(
            of: [DirectoryEvent].self,
            bufferingPolicy: .unbounded
        )
        self.events = stream
        self.continuation = continuation
        self.wakeup = wakeup
        continuation.onTermination = { _ in wakeup.signal() }  // the consumer went away: stop reading
        let watchedPaths = paths
        ReaderThread.start(name: "sitroom-inotify", wakeup: wakeup) {
            InotifyReader(
                fd: fd,
                paths: watchedPaths,
                continuation: continuation,
                coalescing: coalescing,
                deliver: deliver
            )
        }
    }

    /// Stops watching and finishes `events` (batches already yielded are still delivered). Idempotent.
    public func stop() {
        continuation.finish()
        wakeup.signal()
    }

    deinit { stop() }
}

/// The reader thread's state: owned by that thread only.
struct InotifyReader: ReadinessHandler {
    let fd: Int32
    var paths: [Int32: [String]]
    let continuation: AsyncStream<[DirectoryEvent]>.Continuation
    /// Takes the batches instead of `continuation` when set.
    let deliver: (@Sendable ([DirectoryEvent]) -> Void)?
    /// Seconds after a batch during which the next one is waited for (``DirectoryWatcher/init(directories:coalescing:deliver:)``).
    let coalescing: Double
    /// When the last batch was handed on (`CLOCK_MONOTONIC` seconds).
    private var lastHanded: Double?
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)

    init(
        fd: Int32,
        paths: [Int32: [String]],
        continuation: AsyncStream<[DirectoryEvent]>.Continuation,
        coalescing: Double = 0,
        deliver: (@Sendable ([DirectoryEvent]) -> Void)? = nil
    ) {
        self.fd = fd
        self.paths = paths
        self.continuation = continuation
        self.coalescing = coalescing
        self.deliver = deliver
    }

    /// Hands a batch on. - Returns: false when the consumer has gone (the stream was terminated).
    private func hand(_ batch: [DirectoryEvent]) -> Bool {
        if let deliver {
            deliver(batch)
            return true
        }
        if case .terminated = continuation.yield(batch) { return false }
        return true
    }

    var descriptor: Int32? { fd }

    mutating func ready(revents: Int16) -> Bool {
        if coalescing > 0, let lastHanded {
            let wait = lastHanded + coalescing - monotonicSeconds()
            if wait > 0 {
                var interval = timespec(tv_sec: Int(wait), tv_nsec: Int((wait - wait.rounded(.down)) * 1e9))
                var left = timespec()
                while nanosleep(&interval, &left) == -1 && Glibc.errno == EINTR { interval = left }
            }
        }
        var batch: [DirectoryEvent] = []
        while true {
            let count = read(fd, buffer.baseAddress!, buffer.count)
            if count > 0 {
                batch += Self.parse(
                    UnsafeRawBufferPointer(rebasing: buffer[..<count]),
                    paths: &paths,
                    removeWatch: { [fd] wd in
                        _ = inotify_rm_watch(fd, wd)
                    }
                )
                continue
            }
            let code = Glibc.errno
            if count == -1 && code == EINTR { continue }
            if count == -1 && code == EAGAIN { break }
            // EOF or a real error cannot happen on an inotify descriptor; end the stream rather than spin.
            if !batch.isEmpty { _ = hand(batch) }
            return false
        }
        if !batch.isEmpty {
            if !hand(batch) { return false }
            lastHanded = monotonicSeconds()
        }
        return true
    }

    mutating func finish() {
        closeFD(fd)
        buffer.deallocate()
        continuation.finish()
    }

    /// Decodes `struct inotify_event` records (`wd`, `mask`, `cookie`, `len`, `name[len]`).
    /// Updates `paths` when a watch goes away; calls `removeWatch` for a moved directory, whose watch
    /// the kernel would otherwise keep under the old path.
    static func parse(
        _ bytes: UnsafeRawBufferPointer,
        paths: inout [Int32: [String]],
        removeWatch: (Int32) -> Void
    ) -> [DirectoryEvent] {
        var events: [DirectoryEvent] = []
        var offset = 0
        let header = 16
        while offset + header <= bytes.count {
            let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = bytes[(offset + header)..<min(offset + header + length, bytes.count)]
            offset += header + length
            let name: String? = length == 0 ? nil : String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)

            if mask & UInt32(IN_Q_OVERFLOW) != 0 || wd == -1 {
                events.append(DirectoryEvent(kind: .overflow, directory: "", name: nil))
                continue
            }
            guard let directories = paths[wd] else { continue }  // a watch we already dropped
            func emit(_ kind: DirectoryEvent.Kind, _ name: String?) {
                for directory in directories {
                    events.append(DirectoryEvent(kind: kind, directory: directory, name: name))
                }
            }
            if mask & UInt32(IN_CREATE) != 0 { emit(.created, name) }
            if mask & UInt32(IN_MOVED_FROM) != 0 { emit(.movedOut, name) }
            if mask & UInt32(IN_MOVED_TO) != 0 { emit(.movedIn, name) }
            if mask & UInt32(IN_CLOSE_WRITE) != 0 { emit(.closedWrite, name) }
            if mask & UInt32(IN_DELETE) != 0 { emit(.deleted, name) }
            if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT) != 0 {
                emit(.directoryGone, nil)
                paths[wd] = nil
                if mask & UInt32(IN_MOVE_SELF) != 0 { removeWatch(wd) }
            }
            if mask & UInt32(IN_IGNORED) != 0 && paths[wd] != nil {
                // The watch ended without one of the above (e.g. removed by the kernel).
                emit(.directoryGone, nil)
                paths[wd] = nil
            }
        }
        return events
    }
}
