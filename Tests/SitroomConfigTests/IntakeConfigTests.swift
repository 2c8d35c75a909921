import Foundation
import Testing

@testable import SitroomConfig

#if canImport(Glibc)
import Glibc
#endif

/// `etc/intake.yaml` (SPEC §11): what sitroom-intake listens on and which routes it serves.
@Suite("intake.yaml")
struct IntakeConfigTests {
    static let full = """
        listen: "[::1]:9000"
        tls: { cert_file: ../certs/intake.pem, key_file: ../secrets/intake.key }
        max_body_size: 512KiB
        max_connections: 32
        header_timeout: 5s
        body_timeout: 1m
        routes:
          /hooks/alertmanager: { format: alertmanager, bearer_token_file: ../secrets/am.token }
          /hooks/am-basic: { format: alertmanager, basic: { username: alertmanager, password_file: ../secrets/am.password } }
          /hooks/pagerduty: { format: pagerduty, signing_secret_file: ../secrets/pd.secret }
          /hooks/zoom/zoom-backup: { format: zoom, integration: zoom-backup }
          /hooks/native: { format: native, bearer_token_file: ../secrets/native.token }

        """

    /// The valid fixture plus intake's secrets and a certificate file; `intake` is etc/intake.yaml.
    static func fixture(_ root: String, intake: String, also: [String: String?] = [:]) throws -> EtcFixture {
        var overrides = also
        overrides["intake.yaml"] = intake
        let fixture = try EtcFixture(root: root, overrides: overrides)
        for secret in ["am.token", "am.password", "pd.secret", "native.token", "intake.key"] {
            try write("s3cret-\(secret)\n", to: root + "/secrets/" + secret, mode: 0o600)
        }
        try write("-----BEGIN CERTIFICATE-----\n", to: root + "/certs/intake.pem")
        try write("s3cret\n", to: root + "/secrets/world-readable", mode: 0o644)
        return fixture
    }

    static func errors(_ intake: String, also: [String: String?] = [:], spoolMaxFileSize: Int? = nil) throws -> [String]
    {
        try withTemporaryDirectory { root in
            let fixture = try fixture(root, intake: intake, also: also)
            do {
                _ = try ConfigLoader.loadIntake(etcDirectory: fixture.etc, spoolMaxFileSize: spoolMaxFileSize)
                return []
            } catch let error as ConfigErrors {
                return error.errors.map { $0.description.replacingOccurrences(of: root, with: "ROOT") }
            }
        }
    }

    @Test("every key is read: listen, tls, limits and the four formats with their credentials")
    func full() throws {
        try withTemporaryDirectory { root in
            let fixture = try Self.fixture(root, intake: Self.full)
            let intake = try ConfigLoader.loadIntake(etcDirectory: fixture.etc)
            #expect(intake.listen == .init(host: "::1", port: 9000))
            #expect(intake.listen.description == "[::1]:9000")
            #expect(intake.tls == .init(certFile: root + "/certs/intake.pem", keyFile: root + "/secrets/intake.key"))
            #expect(intake.maxBodySize == 512 << 10)
            #expect(intake.maxConnections == 32)
            #expect(intake.headerTimeout == 5)
            #expect(intake.bodyTimeout == 60)
            #expect(intake.routes.count == 5)
            #expect(
                intake.routes["/hooks/alertmanager"]?.authentication == .bearer(tokenFile: root + "/secrets/am.token")
            )
            #expect(
                intake.routes["/hooks/am-basic"]?.authentication
                    == .basic(username: "alertmanager", passwordFile: root + "/secrets/am.password")
            )
            #expect(intake.routes["/hooks/pagerduty"]?.format == .pagerduty)
            #expect(
                intake.routes["/hooks/pagerduty"]?.authentication
                    == .pagerDutySignature(secretFile: root + "/secrets/pd.secret")
            )
            #expect(
                intake.routes["/hooks/zoom/zoom-backup"]?.authentication
                    == .zoomSignature(integration: "zoom-backup", secretFile: root + "/secrets/zoom-backup.webhook")
            )
            #expect(intake.routes["/hooks/native"]?.format == .native)
        }
    }

    @Test("keys not given take their defaults: 127.0.0.1:8470, no TLS, 1 MiB, 128 connections, 10s and 30s")
    func defaults() throws {
        try withTemporaryDirectory { root in
            let fixture = try Self.fixture(
                root,
                intake: "routes:\n  /n: { format: native, bearer_token_file: ../secrets/native.token }\n"
            )
            let intake = try ConfigLoader.loadIntake(etcDirectory: fixture.etc)
            #expect(intake.listen == .init(host: "127.0.0.1", port: 8470))
            #expect(intake.tls == nil)
            #expect(intake.maxBodySize == 1 << 20)
            #expect(intake.maxConnections == 128)
            #expect(intake.headerTimeout == 10)
            #expect(intake.bodyTimeout == 30)
        }
    }

    @Test("the bundled etc/intake.yaml is valid")
    func bundled() throws {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }
        let bundled = try String(contentsOfFile: dir.path + "/etc/intake.yaml", encoding: .utf8)
        try withTemporaryDirectory { root in
            // The bundled file names etc/secrets/ and the bundled zoom-main; give it those.
            let zoomMain = try String(contentsOfFile: dir.path + "/etc/integrations/zoom-main.yaml", encoding: .utf8)
            let fixture = try EtcFixture(
                root: root,
                overrides: ["intake.yaml": bundled, "integrations/zoom-main.yaml": zoomMain]
            )
            for secret in [
                "alertmanager.token", "pagerduty.secret", "native.token", "zoom-main.webhook", "zoom-main.secret",
            ] {
                try write("s3cret\n", to: fixture.etc + "/secrets/" + secret, mode: 0o600)
            }
            let intake = try ConfigLoader.loadIntake(etcDirectory: fixture.etc)
            #expect(intake.listen == .init(host: "127.0.0.1", port: 8470))
            #expect(Set(intake.routes.values.map(\.format)) == Set(IntakeRoute.Format.allCases))
        }
    }

    @Test(
        "mistakes name the file, line, column and key",
        arguments: [
            ("routes: {}\n", "ROOT/etc/intake.yaml:1:9: routes: must name at least one path"),
            ("listen: 8470\nroutes: {}\n", "ROOT/etc/intake.yaml:1:9: listen: must be host:port"),
            ("listen: 127.0.0.1:http\nroutes: {}\n", "ROOT/etc/intake.yaml:1:9: listen: the port must be a number"),
            ("lisen: 127.0.0.1:1\nroutes: {}\n", "ROOT/etc/intake.yaml:1:1: lisen: unknown key"),
            (
                "max_body_size: 1GiB\nroutes: {}\n",
                "ROOT/etc/intake.yaml:1:16: max_body_size: must be between 1 KiB and 64 MiB"
            ),
            ("header_timeout: 0s\nroutes: {}\n", "ROOT/etc/intake.yaml:1:17: header_timeout: must be longer than 0s"),
            (
                "routes:\n  hooks: { format: native, bearer_token_file: ../secrets/native.token }\n",
                "ROOT/etc/intake.yaml:2:3: routes.hooks: a path must start with /"
            ),
            (
                "routes:\n  /healthz: { format: native, bearer_token_file: ../secrets/native.token }\n",
                "ROOT/etc/intake.yaml:2:3: routes./healthz: /healthz is sitroom-intake's own health check"
            ),
            (
                "routes:\n  /a/../b: { format: native, bearer_token_file: ../secrets/native.token }\n",
                "ROOT/etc/intake.yaml:2:3: routes./a/../b: a path may not hold . or .. segments"
            ),
            (
                "routes:\n  /n: { format: native }\n",
                "ROOT/etc/intake.yaml:2:7: routes./n: format native needs bearer_token_file"
            ),
            (
                "routes:\n  /n: { format: native, signing_secret_file: ../secrets/pd.secret }\n",
                "ROOT/etc/intake.yaml:2:25: routes./n.signing_secret_file: not used by format native"
            ),
            (
                "routes:\n  /a: { format: alertmanager, bearer_token_file: ../secrets/am.token, basic: { username: am, password_file: ../secrets/am.password } }\n",
                "ROOT/etc/intake.yaml:2:71: routes./a.basic: give one of bearer_token_file, basic, not both"
            ),
            (
                "routes:\n  /a: { format: alertmanager, basic: { username: yes, password_file: ../secrets/am.password } }\n",
                "ROOT/etc/intake.yaml:2:50: routes./a.basic.username: must be a string, but yes is read as a boolean"
            ),
            (
                "routes:\n  /p: { format: pagerduty, signing_secret_file: ../secrets/world-readable }\n",
                "ROOT/etc/intake.yaml:2:49: routes./p.signing_secret_file: ROOT/secrets/world-readable is readable by group or others"
            ),
            (
                "routes:\n  /z: { format: zoom, integration: zoom-nope }\n",
                "ROOT/etc/intake.yaml:2:36: routes./z.integration: no integration named 'zoom-nope'"
            ),
            (
                "routes:\n  /z: { format: zoom, integration: zoom-main }\n",
                "ROOT/etc/intake.yaml:2:36: routes./z.integration: integration 'zoom-main' has no webhook_secret_file"
            ),
            (
                "routes:\n  /z: { format: zoom, integration: zoom-main }\n  /z: { format: zoom, integration: zoom-main }\n",
                "ROOT/etc/intake.yaml:3:3: "
            ),
            (
                "routes:\n  /a: &r { format: native, bearer_token_file: ../secrets/native.token }\n  /b: *r\n",
                "ROOT/etc/intake.yaml:2:7: "
            ),
            (
                "routes:\n  /x: { format: slack, bearer_token_file: ../secrets/am.token }\n",
                "ROOT/etc/intake.yaml:2:17: routes./x.format: unknown format 'slack'"
            ),
        ]
    )
    func mistakes(intake: String, expected: String) throws {
        let errors = try Self.errors(intake, also: [:])
        #expect(errors.contains { $0.hasPrefix(expected) }, "\(errors)")
    }

    @Test("an error in the Zoom route's integration file is reported in that file")
    func integrationErrors() throws {
        let errors = try Self.errors(
            "routes:\n  /z: { format: zoom, integration: zoom-backup }\n",
            also: [
                "integrations/zoom-backup.yaml": EtcFixture.zoomBackup.replacingOccurrences(
                    of: "priority: 20",
                    with: "priorty: 20"
                )
            ]
        )
        #expect(
            errors.contains { $0.hasPrefix("ROOT/etc/integrations/zoom-backup.yaml:17:1: priorty: unknown key") },
            "\(errors)"
        )
        #expect(errors.contains { $0.contains("integration 'zoom-backup' has errors") }, "\(errors)")
    }

    @Test("a missing intake.yaml is an error naming it; max_body_size may not exceed sitroomd's spool.max_file_size")
    func missingAndCrossChecked() throws {
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(root: root)
            #expect {
                try ConfigLoader.loadIntake(etcDirectory: fixture.etc)
            } throws: { error in
                (error as? ConfigErrors)?.errors.first?.description.hasPrefix(
                    fixture.etc + "/intake.yaml:0:0: cannot open"
                ) == true
            }
        }
        let errors = try Self.errors(
            "max_body_size: 2MiB\nroutes:\n  /n: { format: native, bearer_token_file: ../secrets/native.token }\n",
            spoolMaxFileSize: 1 << 20
        )
        #expect(
            errors == [
                "ROOT/etc/intake.yaml:1:16: max_body_size: 2 MiB is larger than spool.max_file_size (1 MiB) of "
                    + "sitroom.yaml: sitroomd would reject such files"
            ]
        )
    }
}
