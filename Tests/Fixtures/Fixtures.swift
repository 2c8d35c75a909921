import Foundation
import Synchronization

/// A fixture failed to start or answer.
public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A Python program run as a child process: it prints its port on the first line of stdout and exits when its
/// stdin closes, so it never outlives the test process.
public final class PythonProcess: @unchecked Sendable {
    // Invariant: `process` and `stdin` are only touched by the test that owns this object.
    public let port: Int
    private let process: Process
    private let stdin: Pipe
    /// Where its stderr goes (removed by ``stop()``).
    private let stderrPath: String

    private init(port: Int, process: Process, stdin: Pipe, stderrPath: String) {
        self.port = port
        self.process = process
        self.stdin = stdin
        self.stderrPath = stderrPath
    }

    /// Starts `script` with `arguments` and waits (at most `timeout` seconds) for the line with its port.
    /// - Throws: ``FixtureError`` when it exits early or prints no port in time (its stderr is in the message).
    public static func start(
        _ script: String,
        _ arguments: [String],
        timeout: Double = 20
    ) async throws -> PythonProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", script] + arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderrPath = NSTemporaryDirectory() + "fixture-\(UUID().uuidString.prefix(8)).err"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
        let line = await firstLine(stdout.fileHandleForReading, timeout: timeout)
        guard let line, let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let errors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: stderrPath)
            throw FixtureError("fixture did not print its port (\(line ?? "nothing")): \(errors.suffix(2000))")
        }
        return PythonProcess(port: port, process: process, stdin: stdin, stderrPath: stderrPath)
    }

    /// Stops the process (closing stdin, then SIGTERM) and waits for it.
    public func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    /// Reads the first line on a thread of its own (the read blocks); `nil` on EOF or after `timeout` seconds.
    private static func firstLine(_ handle: FileHandle, timeout: Double) async -> String? {
        final class Once: Sendable {
            let done = Atomic<Bool>(false)
            func claim() -> Bool {
                !done.exchange(true, ordering: .acquiringAndReleasing)
            }
        }
        let once = Once()
        return await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            Thread.detachNewThread {
                var bytes: [UInt8] = []
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    bytes.append(contentsOf: chunk)
                    if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                        if once.claim() {
                            continuation.resume(returning: String(decoding: bytes[..<newline], as: UTF8.self))
                        }
                        return
                    }
                }
                if once.claim() { continuation.resume(returning: nil) }
            }
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: timeout)  // waits-on-purpose: the bound of a blocking read
                if once.claim() { continuation.resume(returning: nil) }
            }
        }
    }
}

/// Runs blocking work (a child process, a file read) on a thread of its own, so it never occupies one of the
/// few threads of Swift's cooperative pool that every test shares.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A fresh temporary directory.
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes `object` as JSON to `path` by rename, so a reader never sees half of it.
func writeJSON(_ object: Any, to path: String) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    let tmp = path + ".tmp"
    try data.write(to: URL(fileURLWithPath: tmp))
    guard rename(tmp, path) == 0 else { throw FixtureError("rename \(tmp)") }
}

/// A self-signed certificate for 127.0.0.1 made with `openssl` (EC P-256, one day).
/// - Returns: The paths of the certificate (also the CA file to trust) and its key.
public func makeSelfSignedCertificate(in directory: String) async throws -> (cert: String, key: String) {
    try await offPool { try makeSelfSignedCertificateNow(in: directory) }
}

private func makeSelfSignedCertificateNow(in directory: String) throws -> (cert: String, key: String) {
    let cert = "\(directory)/cert.pem"
    let key = "\(directory)/key.pem"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw FixtureError("openssl req failed (\(process.terminationStatus))")
    }
    return (cert, key)
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1 recording what it accepts (see `smtpServerScript`).
public final class SMTPServerFixture: @unchecked Sendable {
    // Invariant: used by one test at a time.
    public enum TLS: String, Sendable { case none, starttls, implicit }

    /// One accepted message.
    public struct Received: Sendable {
        /// The file holding the message bytes (for ``MailInspector``).
        public var path: String
        public var raw: String
        public var mailFrom: String
        public var recipients: [String]
        public var authUser: String?
        public var tls: Bool
        /// The server closed the connection instead of answering the end of DATA.
        public var dropped: Bool

        /// The `Message-ID` header's value.
        public var messageID: String? {
            for line in raw.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("message-id:") {
                return line.dropFirst("message-id:".count).trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
    }

    public let directory: String
    public let tls: TLS
    public let certificate: (cert: String, key: String)?
    public let auth: (user: String, password: String)?
    public private(set) var port: Int
    private var process: PythonProcess?

    /// Starts a server.
    /// - Parameters:
    ///   - tls: `none`, `starttls` (offered and required) or `implicit` (SMTPS).
    ///   - auth: Credentials AUTH must give (then AUTH is required), or `nil`.
    ///   - port: A port to bind (to come back on the same one), or 0 for any.
    public static func start(
        tls: TLS = .none,
        auth: (user: String, password: String)? = nil,
        port: Int = 0
    ) async throws -> SMTPServerFixture {
        let directory = try makeTemporaryDirectory("smtp-fixture")
        let certificate = tls == .none ? nil : try await makeSelfSignedCertificate(in: directory)
        let fixture = SMTPServerFixture(directory: directory, tls: tls, certificate: certificate, auth: auth)
        try await fixture.start(port: port)
        return fixture
    }

    private init(
        directory: String,
        tls: TLS,
        certificate: (cert: String, key: String)?,
        auth: (user: String, password: String)?
    ) {
        self.directory = directory
        self.tls = tls
        self.certificate = certificate
        self.auth = auth
        self.port = 0
    }

    /// Starts (again) on `port` (0: any); the messages recorded so far are kept.
    public func start(port: Int) async throws {
        var config: [String: Any] = ["dir": directory, "port": port, "tls": tls.rawValue]
        if let certificate {
            config["cert"] = certificate.cert
            config["key"] = certificate.key
        }
        if let auth { config["auth"] = ["user": auth.user, "password": auth.password] }
        let arguments = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        let process = try await PythonProcess.start(smtpServerScript, [arguments])
        self.process = process
        self.port = process.port
    }

    /// Stops the server (connections refused until ``start(port:)``).
    public func stop() {
        process?.stop()
        process = nil
    }

    /// Stops the server and removes its directory.
    public func tearDown() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The URL to configure: `smtp://127.0.0.1:PORT` or `smtps://...` for implicit TLS.
    public var url: String { "\(tls == .implicit ? "smtps" : "smtp")://127.0.0.1:\(port)" }

    /// Sets the faults (`hang`, `reject_rcpt`, `tempfail_rcpt`, `drop_after_data`); read by the server at each step.
    public func setMode(_ mode: [String: Any]) throws {
        try writeJSON(mode, to: "\(directory)/mode.json")
    }

    /// Connections accepted so far (by this and earlier runs of the fixture).
    public var connections: Int {
        Int((try? String(contentsOfFile: "\(directory)/connections", encoding: .utf8)) ?? "") ?? 0
    }

    /// The messages accepted so far, in order.
    public func messages() -> [Received] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".json") && $0 != "mode.json" && !$0.hasPrefix(".") }.sorted()
        return names.compactMap { name in
            let base = String(name.dropLast(".json".count))
            guard let meta = try? Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)")),
                let object = try? JSONSerialization.jsonObject(with: meta) as? [String: Any],
                let raw = try? Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(base).eml"))
            else { return nil }
            return Received(
                path: "\(directory)/\(base).eml",
                raw: String(decoding: raw, as: UTF8.self),
                mailFrom: object["mail_from"] as? String ?? "",
                recipients: object["rcpt_tos"] as? [String] ?? [],
                authUser: object["auth_user"] as? String,
                tls: object["tls"] as? Bool ?? false,
                dropped: object["dropped"] as? Bool ?? false
            )
        }
    }
}

/// A recording HTTP server on 127.0.0.1: SMS gateway and chat webhook double (see `httpRecorderScript`).
public final class HTTPRecorderFixture: @unchecked Sendable {
    // Invariant: used by one test at a time.
    /// One recorded request.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var authUser: String?
        public var authOK: Bool

        /// The body as `application/x-www-form-urlencoded` fields.
        public var form: [String: String] {
            var fields: [String: String] = [:]
            for pair in body.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                let decode = { (text: String) in
                    text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? text
                }
                fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
            }
            return fields
        }
    }

    public let directory: String
    public let user: String
    public let password: String
    private let process: PythonProcess

    public var port: Int { process.port }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// A Twilio-style messages URL on this server.
    public var smsURL: String { "\(baseURL)/2010-04-01/Accounts/\(user)/Messages.json" }
    /// A Slack-style webhook URL on this server.
    public var chatURL: String { "\(baseURL)/services/T000/B000/secretwebhooktoken" }

    /// Starts the server; the SMS gateway accepts `user`/`password` as Basic auth.
    public static func start(
        user: String = "AC-test",
        password: String = "gateway-secret"
    ) async throws -> HTTPRecorderFixture {
        let directory = try makeTemporaryDirectory("http-fixture")
        let config: [String: Any] = ["dir": directory, "port": 0, "user": user, "password": password]
        let arguments = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        let process = try await PythonProcess.start(httpRecorderScript, [arguments])
        return HTTPRecorderFixture(directory: directory, user: user, password: password, process: process)
    }

    private init(directory: String, user: String, password: String, process: PythonProcess) {
        self.directory = directory
        self.user = user
        self.password = password
        self.process = process
    }

    /// Sets `invalid_numbers` and `chat_status`.
    public func setMode(_ mode: [String: Any]) throws {
        try writeJSON(mode, to: "\(directory)/mode.json")
    }

    /// Every request so far, in order.
    public func requests() -> [Request] {
        let text = (try? String(contentsOfFile: "\(directory)/requests.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                return nil
            }
            return Request(
                method: object["method"] as? String ?? "",
                path: object["path"] as? String ?? "",
                headers: object["headers"] as? [String: String] ?? [:],
                body: object["body"] as? String ?? "",
                authUser: object["auth_user"] as? String,
                authOK: object["auth_ok"] as? Bool ?? false
            )
        }
    }

    /// Stops the server and removes its directory.
    public func tearDown() {
        process.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Parses messages with real parsers: Python's `email` package and `icalendar` (see `mailInspectorScript`).
public enum MailInspector {
    /// Parses the message in `path`.
    /// - Returns: The parsed structure as JSON objects.
    /// - Throws: ``FixtureError`` when the parsers fail (their error is in the message).
    public static func inspect(path: String) async throws -> [String: Any] {
        let json = try await offPool { try run(path) }
        guard let object = try JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw FixtureError("mail inspector printed no JSON object")
        }
        return object
    }

    /// Runs the inspector on `path`. - Returns: its JSON output.
    private static func run(_ path: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", mailInspectorScript, path]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("mail inspector failed: \(String(decoding: errors, as: UTF8.self).suffix(2000))")
        }
        return data
    }

    /// Parses `text` (written to a temporary file first).
    public static func inspect(text: String) async throws -> [String: Any] {
        let path = NSTemporaryDirectory() + "mail-\(UUID().uuidString.prefix(8)).eml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await inspect(path: path)
    }
}

/// Polls `condition` until it returns a value, or throws ``FixtureError`` after `timeout` seconds. Each step
/// waits 20 ms for the event being polled; nothing waits a fixed time for something to have happened.
public func poll<T>(_ what: String, timeout: Double = 20, _ condition: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(20))  // waits-on-purpose: the step of a bounded poll
    }
    if let value = try await condition() { return value }
    throw FixtureError("timed out waiting for \(what)")
}
