import Foundation
import Testing

/// Every example an admin finds in the bundled `etc/` must be accepted as written: each commented example (and each
/// alternative a comment lists with `|`) is uncommented into a copy of `etc/` and `sitroomd --check-config` must say
/// it is valid. A commented example no variant below covers fails the test, so a new one cannot go untried.
@Suite("the examples in etc/")
struct EtcExamplesTests {
    /// One edit of the bundled files: lines to uncomment (matched by the start of their text after `#`), active
    /// lines to drop (matched by the start of their text), and whole-text replacements, all in `file`.
    struct Variant: CustomStringConvertible {
        var file: String
        var uncomment: [String] = []
        var drop: [String] = []
        var replace: [(String, String)] = []
        var description: String { "\(file): \((uncomment + replace.map(\.1)).joined(separator: "; "))" }
    }

    static let smtp = [
        "transport: smtp", "url: smtps://", "username: sitroom", "password_file: secrets/smtp", "starttls:", "ca_file:",
        "timeout:",
    ]
    static let variants: [Variant] = [
        Variant(file: "sitroom.yaml", uncomment: ["follow_up: [email, sms]"]),
        Variant(file: "sitroom.yaml", uncomment: ["follow_up_delay: 2m"]),
        Variant(file: "sitroom.yaml", uncomment: ["invitation_duration: 60m"]),
        Variant(file: "sitroom.yaml", uncomment: ["waiting_alert_after: 10m"]),
        Variant(
            file: "sitroom.yaml",
            uncomment: [
                "follow_up: [email, sms]", "follow_up_delay: 2m", "invitation_duration: 60m",
                "waiting_alert_after: 10m",
            ],
            replace: [("component: video ", "component: meeting ")]
        ),
        Variant(
            file: "sitroom.yaml",
            uncomment: ["rules:", "- match: { team: payments-sre", "integrations: [zoom-main]"]
        ),
        Variant(file: "sitroom.yaml", uncomment: ["- { name: Pager, phone:"]),
        Variant(file: "sitroom.yaml", uncomment: smtp, drop: ["transport: maildir"]),
        // starttls's three values, on an smtp:// URL (the only one it applies to).
        Variant(
            file: "sitroom.yaml",
            uncomment: smtp,
            drop: ["transport: maildir"],
            replace: [("url: smtps://smtp.example.org:465", "url: smtp://smtp.example.org:587")]
        ),
        Variant(
            file: "sitroom.yaml",
            uncomment: smtp,
            drop: ["transport: maildir"],
            replace: [
                ("url: smtps://smtp.example.org:465", "url: smtp://smtp.example.org:587"),
                ("starttls: required", "starttls: optional"),
            ]
        ),
        Variant(
            file: "sitroom.yaml",
            uncomment: smtp,
            drop: ["transport: maildir"],
            replace: [
                ("url: smtps://smtp.example.org:465", "url: smtp://smtp.example.org:587"),
                ("starttls: required", "starttls: never"),
            ]
        ),
        Variant(
            file: "sitroom.yaml",
            uncomment: [
                "transport: http", "url: https://api.example-sms", "from: \"+15005550006\"", "username: AC1",
                "password_file: secrets/sms",
            ],
            drop: ["transport: file"]
        ),
        Variant(file: "sitroom.yaml", uncomment: ["chat: { webhook_url:"]),
        Variant(file: "sitroom.yaml", uncomment: ["nudge: { after: 10m }"]),
        Variant(file: "integrations/zoom-main.yaml", uncomment: ["webhook: true"]),
        Variant(file: "intake.yaml", uncomment: ["tls:", "cert_file:", "key_file:"]),
        Variant(
            file: "integrations/zoom-main.yaml",
            uncomment: ["redirect_uri:", "refresh_idle_after: 30d"],
            drop: ["account_id:", "events:", "websocket: {"],
            replace: [("kind: zoom-s2s ", "kind: zoom-oauth ")]
        ),
        // Alternatives the comments of active keys list.
        Variant(file: "integrations/zoom-main.yaml", replace: [("passcode: random ", "passcode: none ")]),
        Variant(file: "integrations/zoom-main.yaml", replace: [("auto_recording: none ", "auto_recording: local ")]),
        Variant(file: "integrations/zoom-main.yaml", replace: [("auto_recording: none ", "auto_recording: cloud ")]),
        Variant(file: "integrations/zoom-main.yaml", replace: [("on_resolve: end_and_delete ", "on_resolve: end ")]),
    ]

    /// A commented line that is an example (a YAML key or list item), not prose: `# key: ...`, `#   - ...`,
    /// `# - {...}`.
    static func isExample(_ line: Substring) -> Bool {
        let trimmed = line.drop { $0 == " " }
        guard trimmed.hasPrefix("# ") else { return false }
        let text = trimmed.dropFirst(2).drop { $0 == " " }
        if text.hasPrefix("- ") { return true }
        guard let colon = text.firstIndex(of: ":") else { return false }
        let key = text[..<colon]
        let after = text[text.index(after: colon)...]
        return !key.isEmpty && key.allSatisfy { $0.isLowercase || $0 == "_" } && (after.isEmpty || after.first == " ")
    }

    /// The text of `line` after its `#` (indentation kept), or `nil` for an active line.
    static func commentedText(_ line: Substring) -> Substring? {
        let indent = line.prefix { $0 == " " }
        let rest = line.dropFirst(indent.count)
        guard rest.hasPrefix("# ") else { return nil }
        return rest.dropFirst(2)
    }

    /// Applies `variant` to `text`. - Returns: the new text and the example lines it uncommented.
    static func apply(_ variant: Variant, to text: String) -> (String, [String]) {
        var used: [String] = []
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let indent = String(line.prefix { $0 == " " })
            if let commented = commentedText(line), isExample(line),
                variant.uncomment.contains(where: { commented.drop { $0 == " " }.hasPrefix($0) })
            {
                used.append(String(line.drop { $0 == " " }))
                lines.append(indent + commented)
            } else if commentedText(line) == nil,
                variant.drop.contains(where: { line.drop { $0 == " " }.hasPrefix($0) })
            {
                continue
            } else {
                lines.append(String(line))
            }
        }
        var result = lines.joined(separator: "\n")
        for (old, new) in variant.replace { result = result.replacingOccurrences(of: old, with: new) }
        return (result, used)
    }

    /// A copy of the bundled `etc/` with the secrets and certificate files its examples name (mode 0600 where secret).
    func bundledEtc() throws -> Sandbox {
        let sandbox = try Sandbox()
        for file in ["sitroom.yaml", "intake.yaml", "roster.yaml", "integrations/zoom-main.yaml"] {
            try sandbox.write(
                "etc/\(file)",
                try String(contentsOfFile: "\(repositoryRoot)/etc/\(file)", encoding: .utf8)
            )
        }
        for secret in [
            "zoom-main.secret", "zoom-main.webhook", "alertmanager.token", "pagerduty.secret", "native.token", "smtp",
            "sms",
            "intake.key",
        ] {
            try sandbox.write("etc/secrets/\(secret)", "secret-\(UUID().uuidString)\n", mode: 0o600)
        }
        try FileManager.default.createDirectory(atPath: "\(sandbox.root)/etc/certs", withIntermediateDirectories: true)
        for certificate in ["smtp-ca.pem", "intake.pem"] {
            try sandbox.write("etc/certs/\(certificate)", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
        }
        return sandbox
    }

    func check(_ sandbox: Sandbox) async throws -> (Int32, String) {
        let child = try Child(
            "sitroomd",
            ["--check-config", "--root", sandbox.root],
            logs: "\(sandbox.root)/logs",
            name: "check"
        )
        let status = try await child.waitForExit()
        return (status, child.stdout + child.stderr)
    }

    @Test("the bundled etc/ is valid as it is")
    func bundled() async throws {
        let sandbox = try bundledEtc()
        defer { sandbox.tearDown() }
        let (status, output) = try await check(sandbox)
        #expect(status == 0, "\(output)")
        #expect(output.contains("configuration is valid (1 integration"))
    }

    @Test(
        "each commented example, and each alternative a comment lists, is accepted as written",
        arguments: variants.indices
    )
    func example(_ index: Int) async throws {
        let variant = Self.variants[index]
        let sandbox = try bundledEtc()
        defer { sandbox.tearDown() }
        let original = try String(contentsOfFile: "\(sandbox.root)/etc/\(variant.file)", encoding: .utf8)
        let (edited, used) = Self.apply(variant, to: original)
        #expect(used.count >= variant.uncomment.count, "every line the variant names is an example in \(variant.file)")
        #expect(edited != original, "the variant changes \(variant.file)")
        try sandbox.write("etc/\(variant.file)", edited)
        let (status, output) = try await check(sandbox)
        #expect(status == 0, "\(variant): \(output)")
    }

    @Test("no commented example in etc/ is left untried")
    func coverage() throws {
        for file in ["sitroom.yaml", "intake.yaml", "roster.yaml", "integrations/zoom-main.yaml"] {
            let text = try String(contentsOfFile: "\(repositoryRoot)/etc/\(file)", encoding: .utf8)
            var covered: Set<String> = []
            for variant in Self.variants where variant.file == file {
                covered.formUnion(Self.apply(variant, to: text).1)
            }
            let examples = text.split(separator: "\n").filter(Self.isExample).map { String($0.drop { $0 == " " }) }
            let untried = examples.filter { !covered.contains($0) }
            #expect(untried.isEmpty, "\(file): examples no variant uncomments: \(untried)")
        }
    }

    @Test("the example spotter tells examples from prose")
    func spotter() {
        #expect(Self.isExample("  # follow_up_delay: 2m         # meeting component only"))
        #expect(Self.isExample("#   - match: { team: payments-sre, severity: critical }"))
        #expect(Self.isExample("    # - { name: Pager, phone: \"+15005550006\" }   # E.164, quoted"))
        #expect(!Self.isExample("# https://api.zoom.us/v2 and https://zoom.us/oauth (the defaults)"))
        #expect(!Self.isExample("  #                             # (default 2m; 0s sends both at once)"))
        #expect(!Self.isExample("# Every key is optional: a key left out takes the default"))
        #expect(!Self.isExample("  follow_up: [email]"))
    }
}
