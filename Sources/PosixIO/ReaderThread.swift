import Foundation
import Glibc
import SitroomRuntime
import Synchronization

/// Wakes a thread blocked in `poll`: an eventfd, or a pipe where the C library has no `eventfd`.
///
/// After swiftlang/swift-subprocess `AsyncIO+Linux.swift` (one thread in epoll, an eventfd to stop it).
/// The reader thread closes it when it exits; `signal()` and `close()` take the same lock, so nobody
/// writes to a descriptor number that was closed and reused.
final class Wakeup: Sendable {
    /// The end `poll` watches for `POLLIN`.
    let readFD: Int32
    /// The end `signal()` writes (the same descriptor for an eventfd).
    private let writeFD: Int32
    private let isOpen = Mutex(true)

    init() throws {
        if let eventfd = LinuxCalls.eventfd {
            let fd = try check("eventfd") { eventfd(0, LinuxCalls.eventFDFlags) }
            readFD = fd
            writeFD = fd
        } else {
            var fds: [Int32] = [-1, -1]
            try check("pipe") { pipe(&fds) }
            for fd in fds {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            }
            readFD = fds[0]
            writeFD = fds[1]
        }
    }

    /// Makes `readFD` readable. Safe from any thread, any number of times, also after `close()`.
    func signal() {
        isOpen.withLock { open in
            guard open else { return }
            var one: UInt64 = 1
            // EAGAIN (counter or pipe full) means it is already readable: fine.
            _ = withUnsafeBytes(of: &one) { Glibc.write(writeFD, $0.baseAddress!, $0.count) }
        }
    }

    /// Closes both ends. Called once, by the thread that polls `readFD`, when it is done.
    func close() {
        isOpen.withLock { open in
            guard open else { return }
            open = false
            closeFD(readFD)
            if writeFD != readFD { closeFD(writeFD) }
        }
    }
}

/// What a reader thread does when its descriptor is ready.
protocol ReadinessHandler: SendableMetatype {
    /// The descriptor to poll for `POLLIN`, or `nil` to only wait for `retryAfter` milliseconds.
    var descriptor: Int32? { get }
    /// Milliseconds to wait when `descriptor` is `nil`.
    var retryAfter: Int32 { get }
    /// Called when `descriptor` reported events (`revents`), or after `retryAfter` without one.
    /// Returns `false` to end the thread.
    mutating func ready(revents: Int16) -> Bool
    /// Called once on the reader thread before it exits; closes what the handler owns.
    mutating func finish()
}

extension ReadinessHandler {
    var retryAfter: Int32 { 100 }
}

/// A thread blocked in `poll` on one descriptor and a `Wakeup`, calling a handler that lives on that
/// thread only (so it needs no locks). No timeouts while `descriptor` is set: no spinning, no polling.
enum ReaderThread {
    /// Starts the thread. `makeHandler` runs on the new thread; `started` receives its `pthread_t`.
    static func start<H: ReadinessHandler>(
        name: String,
        wakeup: Wakeup,
        started: (@Sendable (pthread_t) -> Void)? = nil,
        makeHandler: @escaping @Sendable () -> H
    ) {
        // Not Foundation's `Thread`: its name, set before `start()`, never reached the kernel, so `top -H`, `ps -L`
        // and /proc showed the thread under the name of the thread that started it (one of Swift's pool's).
        let rc = startDetachedThread(name: name) {
            started?(pthread_self())
            var handler = makeHandler()
            run(&handler, wakeup: wakeup)
            handler.finish()
            wakeup.close()
        }
        precondition(rc == 0, "could not start the thread \(name) (errno \(rc))")
    }

    private static func run<H: ReadinessHandler>(_ handler: inout H, wakeup: Wakeup) {
        var fds = [pollfd(fd: wakeup.readFD, events: Int16(POLLIN), revents: 0), pollfd()]
        while true {
            let watched = handler.descriptor
            let count: nfds_t
            if let watched {
                fds[1] = pollfd(fd: watched, events: Int16(POLLIN), revents: 0)
                count = 2
            } else {
                count = 1
            }
            fds[0].revents = 0
            let result = poll(&fds, count, watched == nil ? handler.retryAfter : -1)
            if result == -1 {
                let code = Glibc.errno
                if code == EINTR { continue }
                preconditionFailure("poll: \(PosixError(call: "poll", errno: code))")
            }
            if fds[0].revents != 0 { return }  // stop requested
            if watched == nil {
                if !handler.ready(revents: 0) { return }
            } else if fds[1].revents != 0 {
                if !handler.ready(revents: fds[1].revents) { return }
            }
        }
    }
}
