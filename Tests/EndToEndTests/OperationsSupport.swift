import Foundation
import Glibc
import SitroomTestFixtures

/// A datagram socket bound by the test, standing in for systemd's notification socket (`$NOTIFY_SOCKET`).
final class NotifyListener: @unchecked Sendable {
    // Invariant: used from one test task at a time; `fd` is only closed in deinit.
    let fd: Int32

    /// Binds `address`: a path, or `@name` in the abstract namespace.
    init(address: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TimedOut(what: "a datagram socket (\(String(cString: strerror(errno))))") }
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &storage.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let length = socklen_t(
            MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (bytes[0] == 0 ? 0 : 1)
        )
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else { throw TimedOut(what: "bind \(address) (\(String(cString: strerror(errno))))") }
    }

    deinit { close(fd) }

    /// The next datagram, waiting for it (poll) at most `timeout` seconds, or nil.
    func receive(timeout: Double = 20) -> String? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// The next datagram that satisfies `wanted`, skipping the others, within `timeout` seconds overall.
    func next(timeout: Double = 20, _ wanted: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let message = receive(timeout: max(0.01, deadline.timeIntervalSinceNow)) else { return nil }
            if wanted(message) { return message }
        }
        return nil
    }
}

/// External tools the operations tests run (promtool, mdb_stat, systemd-analyze, python3).
enum Tools {
    /// The absolute path of `name` on `$PATH` (and the sbin directories), or nil.
    static func path(_ name: String) -> String? {
        let directories =
            (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a tool to its end; standard output and error together.
    static func run(_ executable: String, _ arguments: [String]) throws -> (code: Int32, out: String) {
        try runToCompletion(executable, arguments)
    }
}

/// The metrics file as a real Prometheus text-format parser reads it: prometheus_client's (PyPI).
enum Metrics {
    /// Every sample of the file, keyed `name{label="value",...}` with labels sorted by name.
    /// - Throws: `FixtureError` when python3 or prometheus_client is missing, or the parser refuses the file.
    static func parse(_ path: String) throws -> [String: Double] { try PrometheusParser.samples(path: path) }
}
