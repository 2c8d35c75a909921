import Glibc

/// Tells the service manager about the daemon's state, as `sd_notify(3)` does, without libsystemd: one
/// datagram of newline-separated `KEY=VALUE` lines to the `AF_UNIX` socket named by `$NOTIFY_SOCKET`.
///
/// The socket is a path (`/run/systemd/notify`) or, when it starts with `@`, a name in the abstract namespace
/// (the `@` stands for the leading NUL byte). Without `$NOTIFY_SOCKET` (no systemd, or `Type=` other than
/// `notify`) there is no notifier and nothing is sent. Messages used by sitroomd (systemd's `sd_notify(3)`):
/// `READY=1`, `RELOADING=1` with `MONOTONIC_USEC=`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=...`.
public final class ServiceNotifier: Sendable {
    /// The socket address as `$NOTIFY_SOCKET` gave it (for messages).
    public let address: String
    private let fd: Int32
    /// `struct sockaddr_un` bytes and the length to pass to `sendto`.
    private let sockaddr: [UInt8]
    private let sockaddrLength: socklen_t

    /// The notifier for `$NOTIFY_SOCKET`, or `nil` when it is not set (or empty).
    /// - Throws: ``PosixError`` when it is set but unusable (too long, not `/` or `@`, `socket` failed).
    public static func fromEnvironment() throws -> ServiceNotifier? {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !value.isEmpty else { return nil }
        return try ServiceNotifier(address: value)
    }

    /// Opens a datagram socket for sending to `address`.
    /// - Parameter address: an absolute path, or `@name` for the abstract namespace.
    /// - Throws: ``PosixError`` (`EINVAL` for another form or one longer than `sun_path`, or from `socket`).
    /// The corresponding C call is `socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0)`.
    public init(address: String) throws {
        var path = Array(address.utf8)
        guard let first = path.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else {
            throw PosixError(call: "NOTIFY_SOCKET", path: address, errno: EINVAL)
        }
        if first == UInt8(ascii: "@") { path[0] = 0 }
        var storage = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        // A path needs its terminating NUL; an abstract name is exactly its bytes.
        guard path.count + (path[0] == 0 ? 0 : 1) <= capacity else {
            throw PosixError(call: "NOTIFY_SOCKET", path: address, errno: ENAMETOOLONG)
        }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { buffer in
            for (index, byte) in path.enumerated() { buffer[index] = byte }
        }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        sockaddrLength = socklen_t(offset + path.count + (path[0] == 0 ? 0 : 1))
        sockaddr = withUnsafeBytes(of: &storage) { Array($0) }
        self.address = address
        fd = try check("socket", path: address) {
            socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
    }

    deinit { closeFD(fd) }

    /// Sends one message: `KEY=VALUE` lines (a value must not contain a newline).
    /// - Parameter fields: in order, e.g. `[("RELOADING", "1"), ("MONOTONIC_USEC", "...")]`.
    /// - Throws: ``PosixError`` from `sendto` (`ECONNREFUSED` when nobody listens, `EAGAIN` when its queue is full).
    /// The corresponding C call is `sendto`.
    public func send(_ fields: [(String, String)]) throws {
        let text = fields.map { "\($0.0)=\($0.1.replacingNewlines())" }.joined(separator: "\n")
        let bytes = Array(text.utf8)
        try sockaddr.withUnsafeBytes { address in
            try bytes.withUnsafeBytes { payload in
                _ = try check("sendto", path: self.address) {
                    sendto(
                        fd,
                        payload.baseAddress,
                        payload.count,
                        Int32(MSG_NOSIGNAL),
                        address.baseAddress!.assumingMemoryBound(to: Glibc.sockaddr.self),
                        sockaddrLength
                    )
                }
            }
        }
    }

    /// `CLOCK_MONOTONIC` in microseconds, for `MONOTONIC_USEC=` beside `RELOADING=1`.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }

    /// Seconds between the watchdog's deadlines when the service manager asks for keep-alive pings
    /// (`$WATCHDOG_USEC`, for this process when `$WATCHDOG_PID` is unset or names it), else `nil`.
    /// Send `WATCHDOG=1` at half this interval (`sd_watchdog_enabled(3)`).
    public static func watchdogInterval() -> Double? {
        guard let text = getenv("WATCHDOG_USEC").map({ String(cString: $0) }), let usec = UInt64(text), usec > 0 else {
            return nil
        }
        if let pid = getenv("WATCHDOG_PID").map({ String(cString: $0) }), !pid.isEmpty, Int32(pid) != getpid() {
            return nil
        }
        return Double(usec) / 1_000_000
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
