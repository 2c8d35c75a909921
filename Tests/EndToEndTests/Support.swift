import Curl
import Foundation
import PosixIO
import Testing

/// Where `swift build` put the executables: next to the test bundle, unless `SITROOM_BIN_DIR` says otherwise.
let binDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["SITROOM_BIN_DIR"] { return dir }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // The bundle may be a directory (sitroomPackageTests.xctest/...) on some layouts.
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("sitroomd").path), dir.path != "/" {
        dir.deleteLastPathComponent()
    }
    return dir.path
}()

/// The repository root (for the bundled etc/templates).
let repositoryRoot: String = {
    var dir = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { dir.deleteLastPathComponent() }
    return dir.path
}()

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` until it returns a value, or throws after `timeout` seconds. Each step waits 20 ms
/// for the event being polled; there is no fixed wait for something to have happened.
func waitFor<T>(_ what: String, timeout: Double = 20, _ condition: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(20))  // waits-on-purpose: the step of a bounded poll
    }
    if let value = try await condition() { return value }
    throw TimedOut(what: what)
}

/// A child process with its output in files under the sandbox.
final class Child: @unchecked Sendable {
    // Invariant: `process` is only touched from the test task that owns this Child.
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(
        _ executable: String,
        _ arguments: [String],
        logs: String,
        name: String,
        environment: [String: String] = [:]
    ) throws {
        stdoutPath = "\(logs)/\(name).out"
        stderrPath = "\(logs)/\(name).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        // An absolute path runs a tool of the system (prometheus-alertmanager); a name, one of ours.
        process.executableURL = URL(
            fileURLWithPath: executable.hasPrefix("/") ? executable : "\(binDirectory)/\(executable)"
        )
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to exit (bounded). - Returns: its exit status.
    func waitForExit(timeout: Double = 20) async throws -> Int32 {
        _ = try await waitFor("exit of \(process.executableURL?.lastPathComponent ?? "?")", timeout: timeout) {
            process.isRunning ? nil : true
        }
        return process.terminationStatus
    }

    func stop() {
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A temporary root with etc/ pointing at a zoom-sim, and the processes running on it.
final class Sandbox: @unchecked Sendable {
    // Invariant: used by one test at a time; children are only touched from that test's task.
    let root: String
    let http = HTTPClient()
    var sim: Child?
    var simPort = 0
    var daemon: Child?
    var children: [Child] = []

    /// - Parameters:
    ///   - hosts: Zoom users in the simulator (the pool, see ``writeIntegration(name:secretFile:hosts:hostNumbers:oauth:concurrent:extra:)``).
    ///   - integrations: `conference.integrations`.
    ///   - concurrent: `concurrent_meetings` of every simulated user.
    ///   - holdDown: `reopen_hold_down`; 0s (meetings deleted at once on resolve) unless a test needs reopening.
    ///   - settings: more lines for etc/sitroom.yaml (e.g. `feeds:` or `spool:`).
    ///   - notify: more keys of `notify:` (e.g. `nudge: { after: 2s }`), one line.
    init(
        hosts: Int = 2,
        integrations: [String] = ["zoom-main"],
        concurrent: Int = 1,
        holdDown: String = "0s",
        settings: String = "",
        notify: String = ""
    ) throws {
        root = NSTemporaryDirectory() + "sitroom-e2e-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: "\(root)/etc/integrations", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/etc/secrets", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/logs", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(repositoryRoot)/etc/templates", toPath: "\(root)/etc/templates")
        try write("etc/secrets/zoom.secret", "e2e-secret-\(UUID().uuidString)\n", mode: 0o600)
        var users = ""
        for index in 1...hosts {
            users +=
                "  - { id: u-bridge-\(index), email: bridge-\(index)@example.com, type: 2, concurrent_meetings: \(concurrent) }\n"
        }
        // The commanders of the test incidents are licensed users of the account, so Zoom takes them as alternative
        // hosts (ZoomAnswerTests covers the ones it refuses).
        users +=
            "  - { id: u-ada, email: ada@example.com, type: 2 }\n  - { id: u-alan, email: alan@example.com, type: 2 }\n"
        try write(
            "sim.yaml",
            """
            apps:
              - { client_id: e2e-client, client_secret_file: etc/secrets/zoom.secret, account_id: AcctE2E, kind: s2s }
              - { client_id: e2e-user-app, client_secret_file: etc/secrets/zoom.secret, account_id: AcctE2E, kind: oauth }
            users:
            \(users)limits: { daily_create_limit: 100, medium_per_second: 0 }
            token_expires_in: 3600

            """
        )
        try write(
            "etc/sitroom.yaml",
            """
            conference: { component: video, integrations: [\(integrations.joined(separator: ", "))] }
            notify:
              channels: [email, sms]
              admins: [{ name: Ops Admin, email: ops-admin@example.org }]
              email: { transport: maildir, from: "sitroom <sitroom@example.org>" }
              sms: { transport: file }
              \(notify)
            store: { map_size: 64MiB }
            reopen_hold_down: \(holdDown)
            \(settings)
            """
        )
    }

    func write(_ relative: String, _ text: String, mode: Int? = nil) throws {
        let path = "\(root)/\(relative)"
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        if let mode { try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path) }
    }

    /// Writes etc/integrations/NAME.yaml for the running simulator, with hosts bridge-N for N in `hostNumbers`.
    /// - Parameters:
    ///   - oauth: a zoom-oauth integration (the simulator's `e2e-user-app`) instead of zoom-s2s.
    ///   - concurrent: `concurrent_meetings` of every host.
    ///   - extra: more top-level YAML lines (e.g. `webhook_secret_file: ...`, `rate_limit: {...}`).
    func writeIntegration(
        name: String = "zoom-main",
        secretFile: String = "../secrets/zoom.secret",
        hosts: Int = 2,
        hostNumbers: [Int]? = nil,
        oauth: Bool = false,
        concurrent: Int = 1,
        extra: String = ""
    ) throws {
        var pool = ""
        for index in hostNumbers ?? Array(1...hosts) {
            pool +=
                "  - { id: bridge-\(index), user: bridge-\(index)@example.com, concurrent_meetings: \(concurrent) }\n"
        }
        let kind =
            oauth
            ? "kind: zoom-oauth\nclient_id: e2e-user-app\nredirect_uri: https://sitroom.example.org/zoom/callback"
            : "kind: zoom-s2s\naccount_id: AcctE2E\nclient_id: e2e-client"
        try write(
            "etc/integrations/\(name).yaml",
            """
            \(kind)
            api_url: http://127.0.0.1:\(simPort)/v2
            oauth_url: http://127.0.0.1:\(simPort)/oauth
            client_secret_file: \(secretFile)
            \(extra)
            hosts:
            \(pool)meeting: { topic: "Situation Room: {{incident.title}}", passcode: random, on_resolve: end_and_delete }

            """
        )
    }

    func startSim() async throws {
        let child = try Child(
            "zoom-sim",
            ["--port", "0", "--config", "\(root)/sim.yaml"],
            logs: "\(root)/logs",
            name: "zoom-sim"
        )
        children.append(child)
        sim = child
        let line = try await waitFor("zoom-sim to listen") { () -> String? in
            if !child.process.isRunning { throw TimedOut(what: "zoom-sim (it exited: \(child.stderr))") }
            return child.stdout.split(separator: "\n").first { $0.contains("listening on") }.map(String.init)
        }
        simPort = Int(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces))!
    }

    /// Starts sitroomd on the root and waits until it answers `status`.
    /// - Parameters:
    ///   - environment: variables added to its environment (`NOTIFY_SOCKET`, ...).
    ///   - arguments: more arguments (`--var DIR`).
    func startDaemon(
        environment: [String: String] = [:],
        logLevel: String = "debug",
        arguments: [String] = []
    ) async throws {
        let child = try Child(
            "sitroomd",
            ["--root", root, "--log-level", logLevel] + arguments,
            logs: "\(root)/logs",
            name: "sitroomd-\(children.count)",
            environment: environment
        )
        children.append(child)
        daemon = child
        _ = try await waitFor("sitroomd to answer status") { () -> Bool? in
            if !child.process.isRunning {
                throw TimedOut(what: "sitroomd (it exited \(child.process.terminationStatus): \(child.stderr))")
            }
            let varOption = arguments.firstIndex(of: "--var").map { ["--var", arguments[$0 + 1]] } ?? []
            return try await ctl(varOption + ["status"], timeout: 1).code == 0 ? true : nil
        }
    }

    /// Runs sitroomctl; returns exit code and stdout. The blocking reads and wait run on a thread of their own,
    /// never on the cooperative pool that every test shares (blocking it skews other tests' timings).
    func ctl(
        _ arguments: [String],
        timeout: Double = 5,
        stdin: String? = nil
    ) async throws -> (code: Int32, out: String, err: String) {
        let root = self.root
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(
                    with: Result { try Self.runCtl(root: root, arguments, timeout: timeout, stdin: stdin) }
                )
            }
        }
    }

    private static func runCtl(
        root: String,
        _ arguments: [String],
        timeout: Double,
        stdin: String?
    ) throws -> (code: Int32, out: String, err: String) {
        let process = Process()
        if let stdin {
            let input = Pipe()
            process.standardInput = input
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        process.executableURL = URL(fileURLWithPath: "\(binDirectory)/sitroomctl")
        process.arguments = ["--root", root, "--timeout", String(timeout)] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errData, as: UTF8.self)
        )
    }

    /// `room show INCIDENT --json`, or nil when the daemon has no room for it yet.
    func room(_ incident: String) async throws -> [String: Any]? {
        let result = try await ctl(["room", "show", incident, "--json"])
        guard result.code == 0 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
    }

    /// Waits until the incident's room is in `state`.
    @discardableResult
    func waitForRoom(_ incident: String, state: String, timeout: Double = 20) async throws -> [String: Any] {
        try await waitFor("room of \(incident) to be \(state)", timeout: timeout) {
            guard let room = try await room(incident), room["state"] as? String == state else { return nil }
            return room
        }
    }

    /// Delivers an event file by the maildir protocol: write into tmp/, then rename into new/.
    func submit(_ name: String, _ text: String) throws {
        let spool = "\(root)/var/spool/incidents"
        try text.write(toFile: "\(spool)/tmp/\(name)", atomically: false, encoding: .utf8)
        guard rename("\(spool)/tmp/\(name)", "\(spool)/new/\(name)") == 0 else {
            throw TimedOut(what: "rename \(name)")
        }
    }

    /// The secret shared by zoom-sim and the integrations.
    var secret: String { read("etc/secrets/zoom.secret").trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Every log line of every process this sandbox ran.
    func allLogs() -> String { children.map { $0.stderr + $0.stdout }.joined(separator: "\n") }

    /// GET a JSON document from the simulator's test surface.
    func simGET(_ path: String) async throws -> Any {
        let response = try await http.send(HTTPRequest(method: .get, url: "http://127.0.0.1:\(simPort)\(path)"))
        return try JSONSerialization.jsonObject(with: Data(response.body))
    }

    func simPOST(_ path: String, _ json: String) async throws -> Int {
        try await http.send(
            HTTPRequest(
                method: .post,
                url: "http://127.0.0.1:\(simPort)\(path)",
                headers: [(name: "Content-Type", value: "application/json")],
                body: Array(json.utf8)
            )
        ).status
    }

    /// Meetings the simulator ever made whose agenda carries the room's marker.
    func simMeetings(room: String) async throws -> [[String: Any]] {
        let all = try await simGET("/_sim/meetings")
        let list = (all as? [[String: Any]]) ?? ((all as? [String: Any])?["meetings"] as? [[String: Any]]) ?? []
        return list.filter { ($0["agenda"] as? String)?.contains("sitroom:room=\(room)") == true }
    }

    func files(_ relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(relative)")) ?? []).sorted()
    }

    /// A message of the maildir as a reader sees it: quoted-printable parts decoded (RFC 2045 §6.7: soft line
    /// breaks joined, `=XX` turned back into bytes), so a test can look for a join link in it.
    func mail(_ name: String) -> String {
        let raw = read("var/mail/new/\(name)")
        guard raw.contains("quoted-printable") else { return raw }
        var bytes: [UInt8] = []
        let source = Array(
            raw.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=\n", with: "").utf8
        )
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "="), index + 2 < source.count,
                let byte = UInt8(String(decoding: source[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(byte)
                index += 3
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func read(_ relative: String) -> String {
        (try? String(contentsOfFile: "\(root)/\(relative)", encoding: .utf8)) ?? ""
    }

    /// Stops every process and removes the root (its logs are printed when the test failed).
    func tearDown() {
        for child in children.reversed() { child.stop() }
        http.shutdown()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Everything every sitroomd of this sandbox wrote to standard error, in start order.
    func daemonLogs() -> String {
        children.filter { $0.stderrPath.contains("/sitroomd-") }.map(\.stderr).joined(separator: "\n")
    }

    /// Runs `body`; when it throws, every process's log is recorded with the failure, then the error rethrown.
    func recordingLogs(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            Issue.record("logs:\n\(logs())")
            throw error
        }
    }

    func logs() -> String {
        children.map { "--- \($0.stderrPath)\n\($0.stderr)" }.joined(separator: "\n")
    }
}

/// A native incident event (SPEC §4) as YAML.
func incidentEvent(
    id eventID: String,
    stage: String,
    incident: String,
    title: String = "Payments API down",
    at time: String = "2026-11-29T12:00:00Z",
    participants: String = """
      - { name: Ada Lovelace, email: ada@example.com, phone: "+15005550101", role: commander }
      - { name: Grace Hopper, email: grace@example.com, role: responder }
    """
) -> String {
    """
    event_id: \(eventID)
    occurred_at: "\(time)"
    stage: \(stage)
    incident: { id: \(incident), title: \(title), severity: critical, team: payments }
    participants:
    \(participants)

    """
}

extension Sandbox {
    /// Expects each of `emails` to have exactly one email in `var/mail/new` carrying `joinURL`, and `phone` exactly
    /// one SMS in `var/sms/new` carrying it, waiting up to `timeout` seconds for the first of each.
    /// - Throws: ``TimedOut`` when one never came.
    func expectToldOnce(emails: [String], phone: String, joinURL: String, timeout: Double = 60) async throws {
        for email in emails {
            let count = try await waitFor("the email to \(email)", timeout: timeout) { () -> Int? in
                let count = files("var/mail/new").filter {
                    let mail = mail($0)
                    return mail.contains("<\(email)>") && mail.contains(joinURL)
                }.count
                return count > 0 ? count : nil
            }
            #expect(count == 1, "\(email) got \(count) emails")
        }
        let texts = try await waitFor("the SMS to \(phone)", timeout: timeout) { () -> Int? in
            let count = files("var/sms/new").filter {
                let text = read("var/sms/new/\($0)")
                return text.contains("To: \(phone)") && text.contains(joinURL)
            }.count
            return count > 0 ? count : nil
        }
        #expect(texts == 1, "\(phone) got \(texts) SMS")
    }
}
