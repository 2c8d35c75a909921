import Curl
import Foundation
import Glibc
import Testing

/// A running sitroom-intake of a sandbox.
struct IntakeProcess {
    let child: Child
    let port: Int
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }
}

extension Sandbox {
    /// The intake's secrets, written by ``writeIntake(routes:settings:)`` under etc/secrets/ (mode 0600).
    static let intakeSecrets = [
        "alertmanager.token": "am-token-\(UUID().uuidString)", "pagerduty.secret": "pd-secret-\(UUID().uuidString)",
        "native.token": "native-token-\(UUID().uuidString)", "zoom.webhook": "zoom-webhook-\(UUID().uuidString)",
    ]

    func intakeSecret(_ name: String) -> String {
        read("etc/secrets/\(name)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes etc/intake.yaml (on 127.0.0.1, a free port) with the Alertmanager, PagerDuty and native routes (and with
    /// `zoom`, zoom-main's: then give the integration `webhook_secret_file: ../secrets/zoom.webhook`) and their secrets.
    func writeIntake(settings: String = "", routes: String? = nil, zoom: Bool = false) throws {
        for (name, value) in Self.intakeSecrets where read("etc/secrets/\(name)").isEmpty {
            try write("etc/secrets/\(name)", value + "\n", mode: 0o600)
        }
        try write(
            "etc/intake.yaml",
            """
            listen: 127.0.0.1:0
            \(settings)
            routes:
            \(routes ?? """
              /hooks/alertmanager: { format: alertmanager, bearer_token_file: secrets/alertmanager.token }
              /hooks/pagerduty: { format: pagerduty, signing_secret_file: secrets/pagerduty.secret }
              /hooks/native: { format: native, bearer_token_file: secrets/native.token }
            """)
            \(zoom ? "  /hooks/zoom/zoom-main: { format: zoom, integration: zoom-main }" : "")

            """
        )
    }

    /// Makes the spool's directories, for tests that run the intake without sitroomd (sitroomd makes them).
    func makeSpool() throws {
        for directory in ["tmp", "new", "cur", "rejected"] {
            try FileManager.default.createDirectory(
                atPath: "\(root)/var/spool/incidents/\(directory)",
                withIntermediateDirectories: true
            )
        }
    }

    /// Starts sitroom-intake on the root and waits for its `listening on` line.
    func startIntake(logLevel: String = "debug", environment: [String: String] = [:]) async throws -> IntakeProcess {
        let child = try Child(
            "sitroom-intake",
            ["--root", root, "--log-level", logLevel],
            logs: "\(root)/logs",
            name: "sitroom-intake-\(children.count)",
            environment: environment
        )
        children.append(child)
        let line = try await waitFor("sitroom-intake to listen") { () -> String? in
            if !child.process.isRunning {
                throw TimedOut(what: "sitroom-intake (it exited \(child.process.terminationStatus): \(child.stderr))")
            }
            return child.stdout.split(separator: "\n").first { $0.hasPrefix("listening on") }.map(String.init)
        }
        return IntakeProcess(child: child, port: Int(line.split(separator: ":").last!)!)
    }

    /// POSTs `body` through the project's libcurl client (no `Expect: 100-continue`).
    func post(_ url: String, _ body: [UInt8], headers: [(String, String)] = []) async throws -> Curl.HTTPResponse {
        try await http.send(
            Curl.HTTPRequest(
                method: .post,
                url: url,
                headers: headers.map { (name: $0.0, value: $0.1) } + [(name: "Expect", value: "")],
                body: body,
                timeout: 10
            )
        )
    }

    /// Files in the spool's `directory` (`new`, `cur`, `rejected`, `tmp`).
    func spoolFiles(_ directory: String) -> [String] { files("var/spool/incidents/\(directory)") }

    /// Every log line of every sitroom-intake of the sandbox.
    func intakeLogs() -> String {
        children.filter { $0.stderrPath.contains("/sitroom-intake-") }.map(\.stderr).joined(separator: "\n")
    }
}

/// A TCP port that was free a moment ago (for tools that cannot be told to pick one and report it).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else { throw TimedOut(what: "a free port (\(String(cString: strerror(errno))))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A raw TCP connection to 127.0.0.1, for clients that misbehave on purpose (slow headers, slow bodies).
final class RawConnection {
    let fd: Int32
    private var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw TimedOut(what: "connect to \(port) (\(String(cString: strerror(errno))))") }
    }

    deinit { shut() }

    /// Closes the connection (once).
    func shut() {
        if !closed { close(fd) }
        closed = true
    }

    /// Sends `text`; `false` when the peer has closed (EPIPE, ECONNRESET).
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// What the peer sends until it closes the connection, or `nil` when it is still open after `timeout` seconds.
    func readUntilClosed(timeout: Double) -> String? {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(left * 1000) + 1) == 1 else { return nil }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return String(decoding: received, as: UTF8.self) }
            received.append(contentsOf: buffer[0..<count])
        }
    }

    /// What arrives within `timeout` seconds (empty when nothing does), without waiting for the close.
    func readAvailable(timeout: Double) -> String {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
    }
}
