import Foundation
import Testing

@testable import SitroomConfig

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a fresh temporary directory (absolute, symlinks resolved), removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array((NSTemporaryDirectory() + "/sitroom-config-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
    let path = FileReading.normalize(String(cString: made))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Writes `text` to `path` (creating directories) with `mode`.
func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
    try FileManager.default.createDirectory(
        atPath: FileReading.directory(of: path),
        withIntermediateDirectories: true
    )
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, mode)
}

/// A complete, valid `etc/` in a temporary directory, with secrets beside it in `secrets/`.
struct EtcFixture {
    static let sitroom = """
        conference:
          component: video
          integrations: [zoom-main]
          rules:
            - match: { team: payments-sre }
              integrations: [zoom-backup]
        notify:
          admins: [{ name: Ops Admin, email: Ops-Admin@Example.org }]
          email: { transport: maildir, from: "sitroom <sitroom@example.org>" }

        """

    static let zoomMain = """
        kind: zoom-s2s
        account_id: AbCdEf123
        client_id: abc123
        client_secret_file: ../../secrets/zoom-main.secret
        hosts:
          - id: bridge-1
            user: bridge-1@example.com

        """

    static let zoomBackup = """
        kind: zoom-oauth
        client_id: def456
        client_secret_file: /ROOT/secrets/zoom-backup.secret
        webhook_secret_file: ../../secrets/zoom-backup.webhook
        redirect_uri: http://127.0.0.1:8080/zoom/callback
        api_url: http://127.0.0.1:9000/v2/
        rate_limit: { medium_per_second: 60 }
        hosts:
          - { id: b1, user: b1@example.com, concurrent_meetings: 2, daily_create_limit: 50 }
          - { id: b2, user: b2@example.com }
        meeting:
          topic: "War room {{incident.id}}: {{incident.title}}"
          waiting_room: true
          passcode: none
          auto_recording: cloud
          on_resolve: end
        priority: 20

        """

    static let roster = """
        teams:
          payments-sre:
            - { name: Ada, email: Ada@Example.com, role: commander }
            - { name: Bob, phone: "+15005550006" }

        """

    static let roomReadyEmail = """
        Subject: [{{incident.severity}}] {{incident.title}}: join the situation room

        Hello {{person.name}},
        join at {{{room.join_url}}} (passcode {{room.passcode}}).
        {{#incident}}Team: {{team}}{{/incident}}

        """

    let root: String
    var etc: String { root + "/etc" }

    /// Writes the valid fixture; `overrides` replace files (path relative to etc/ → content; `nil` deletes).
    init(root: String, overrides: [String: String?] = [:]) throws {
        self.root = root
        var files: [String: String] = [
            "sitroom.yaml": Self.sitroom,
            "integrations/zoom-main.yaml": Self.zoomMain,
            "integrations/zoom-backup.yaml": Self.zoomBackup.replacingOccurrences(of: "/ROOT", with: root),
            "roster.yaml": Self.roster,
            "templates/room-ready.email.mustache": Self.roomReadyEmail,
            "templates/room-ready.sms.mustache": "{{incident.title}}: {{room.join_url}}\n",
        ]
        for (path, content) in overrides {
            files[path] = content?.replacingOccurrences(of: "/ROOT", with: root)
        }
        for (path, content) in files { try write(content, to: etc + "/" + path) }
        for secret in ["zoom-main.secret", "zoom-backup.secret", "zoom-backup.webhook", "smtp", "sms"] {
            try write("s3cret-\(secret)\n", to: root + "/secrets/" + secret, mode: 0o600)
        }
    }

    /// The errors of loading, as `file:line:col: message` with the root shown as `ROOT`.
    func errors() -> [String] {
        do {
            _ = try ConfigLoader.load(etcDirectory: etc)
            return []
        } catch {
            return error.errors.map { $0.description.replacingOccurrences(of: root, with: "ROOT") }
        }
    }
}

/// Loads a fixture in which `file` is replaced by `content`, and returns the errors.
func loadErrors(_ file: String, _ content: String, also: [String: String?] = [:]) throws -> [String] {
    try withTemporaryDirectory { root in
        var overrides = also
        overrides[file] = content
        return try EtcFixture(root: root, overrides: overrides).errors()
    }
}

/// Parses an event and returns its errors (`file:line:col: message`).
func eventErrors(_ text: String, file: String = "new/x.yaml") -> [String] {
    do {
        _ = try IncidentEventParser.parse(Array(text.utf8), file: file)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}
