import Foundation
import Logging
import SitroomConfig
import Testing

@testable import SitroomIntake

/// A temporary root with etc/intake.yaml (one route per format), its secrets, an integration with a webhook secret,
/// and the spool's tmp/ and new/.
final class IntakeFixture {
    let root: String
    var etc: String { root + "/etc" }
    var spool: String { root + "/var/spool/incidents" }
    static let secrets = [
        "am.token": "am-token", "am.password": "am-password", "pd.secret": "pd-secret", "native.token": "native-token",
        "zoom.webhook": "zoom-secret", "zoom.secret": "client-secret",
    ]

    init(maxBodySize: String = "64KiB") throws {
        root = NSTemporaryDirectory() + "intake-unit-" + UUID().uuidString.prefix(8)
        for directory in ["etc/integrations", "etc/secrets", "var/spool/incidents/tmp", "var/spool/incidents/new"] {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
        }
        for (name, value) in Self.secrets { try write("etc/secrets/\(name)", value + "\n", mode: 0o600) }
        try write(
            "etc/integrations/zoom-main.yaml",
            """
            kind: zoom-s2s
            account_id: AcctUnit
            client_id: unit-client
            client_secret_file: ../secrets/zoom.secret
            webhook_secret_file: ../secrets/zoom.webhook
            hosts: [{ id: bridge-1, user: bridge-1@example.com }]

            """
        )
        try write(
            "etc/intake.yaml",
            """
            listen: 127.0.0.1:0
            max_body_size: \(maxBodySize)
            routes:
              /am: { format: alertmanager, bearer_token_file: secrets/am.token }
              /am-basic: { format: alertmanager, basic: { username: alertmanager, password_file: secrets/am.password } }
              /pd: { format: pagerduty, signing_secret_file: secrets/pd.secret }
              /zoom: { format: zoom, integration: zoom-main }
              /native: { format: native, bearer_token_file: secrets/native.token }

            """
        )
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ relative: String, _ text: String, mode: Int = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/" + relative))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: root + "/" + relative)
    }

    func files(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: spool + "/" + directory)) ?? []).sorted()
    }

    func read(_ directory: String, _ name: String) -> [UInt8] {
        Array(FileManager.default.contents(atPath: spool + "/" + directory + "/" + name) ?? Data())
    }

    /// A handler on this root's configuration, with `now` as its clock.
    func handler(now: Double = Date().timeIntervalSince1970) throws -> (IntakeHandler, IntakeMetrics) {
        let configuration = try ConfigLoader.loadIntake(etcDirectory: etc)
        let metrics = IntakeMetrics(state: .init(pid: 1, version: "test", startedAt: 0))
        let writer = SpoolWriter(spool: spool) { files, seconds in metrics.groupCommit(files: files, seconds: seconds) }
        let handler = IntakeHandler(
            live: IntakeLive(configuration),
            secrets: SecretCache(),
            writer: writer,
            spool: spool,
            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
            events: metrics,
            now: { now }
        )
        return (handler, metrics)
    }
}

/// The text of an example file of the repository.
func example(_ name: String) throws -> [UInt8] {
    var dir = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { dir.deleteLastPathComponent() }
    return Array(try Data(contentsOf: dir.appendingPathComponent("examples/\(name)")))
}

extension IntakeHandler {
    /// The whole exchange: preflight, then (when it proceeds) the body.
    func answer(
        _ path: String,
        method: String = "POST",
        headers: [String: String] = [:],
        body: [UInt8] = []
    ) async
        -> IntakeAnswer
    {
        var headers = headers
        headers["content-length"] = "\(body.count)"
        let head = IntakeRequestHead(method: method, path: path, headers: headers)
        switch preflight(head) {
        case .answer(let answer): return answer
        case .proceed(let route, let limit):
            if body.count > limit { return tooLarge(limit, head) }
            return await handle(route: route, head: head, body: body)
        }
    }
}

extension IntakeAnswer {
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}
