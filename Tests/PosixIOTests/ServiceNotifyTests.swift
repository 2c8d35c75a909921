import Foundation
import Glibc
import Testing

@testable import PosixIO

/// A datagram socket bound by the test, standing in for systemd's notification socket.
final class NotifyListener {
    let fd: Int32
    let address: String

    /// Binds `address`: a path, or `@name` in the abstract namespace.
    init(address: String) throws {
        self.address = address
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PosixError(call: "socket", errno: errno) }
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
        guard rc == 0 else { throw PosixError(call: "bind", path: address, errno: errno) }
    }

    deinit { close(fd) }

    /// The next datagram, waiting for it at most `timeout` seconds (poll), or nil.
    func receive(timeout: Double = 10) -> String? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}

@Suite("sd_notify without libsystemd")
struct ServiceNotifyTests {
    @Test("a message reaches a socket bound at a path, as KEY=VALUE lines")
    func path() async throws {
        try await withTemporaryDirectory { dir in
            let listener = try NotifyListener(address: dir + "/notify")
            let notifier = try ServiceNotifier(address: dir + "/notify")
            try notifier.send([("READY", "1"), ("STATUS", "serving\nwith a newline")])
            #expect(listener.receive() == "READY=1\nSTATUS=serving with a newline")
        }
    }

    @Test("an abstract-namespace socket (@name) works too")
    func abstract() throws {
        let name = "@sitroom-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let listener = try NotifyListener(address: name)
        let notifier = try ServiceNotifier(address: name)
        let usec = ServiceNotifier.monotonicMicroseconds()
        try notifier.send([("RELOADING", "1"), ("MONOTONIC_USEC", String(usec))])
        #expect(listener.receive() == "RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    @Test(
        "addresses that are neither a path nor @name, or too long, are refused; nobody listening is an error, not a hang"
    )
    func refusals() async throws {
        #expect(throws: PosixError.self) { try ServiceNotifier(address: "relative/notify") }
        #expect(throws: PosixError.self) { try ServiceNotifier(address: "/" + String(repeating: "x", count: 200)) }
        try await withTemporaryDirectory { dir in
            let notifier = try ServiceNotifier(address: dir + "/nobody")
            #expect(throws: PosixError.self) { try notifier.send([("READY", "1")]) }
        }
    }
}
