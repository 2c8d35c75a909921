import Foundation
import Testing

@testable import SitroomConfig

#if canImport(Glibc)
import Glibc
#endif

/// `store.keep_*` (SPEC §8 purges) and reading secrets. (Secrets named `$CREDENTIALS_DIRECTORY/...` are tested end
/// to end with `sitroomd --check-config`, which gets the variable in its own environment.)
@Suite("retention settings and secrets")
struct OperationsConfigTests {
    @Test("store.keep_ended_rooms and store.keep_audit default to 30d and 365d and take durations")
    func retentionKeys() throws {
        try withTemporaryDirectory { root in
            let defaults = try ConfigLoader.load(etcDirectory: try EtcFixture(root: root).etc).daemon.retention
            #expect(defaults.keepEndedRooms == 30 * 86_400)
            #expect(defaults.keepAudit == 365 * 86_400)
        }
        try withTemporaryDirectory { root in
            let fixture = try EtcFixture(
                root: root,
                overrides: ["sitroom.yaml": "store: { map_size: 64MiB, keep_ended_rooms: 7d, keep_audit: 90d }\n"]
            )
            let retention = try ConfigLoader.load(etcDirectory: fixture.etc).daemon.retention
            #expect(retention.keepEndedRooms == 7 * 86_400)
            #expect(retention.keepAudit == 90 * 86_400)
        }
    }

    @Test(
        "bad retention values name the file, line and key",
        arguments: [
            ("keep_ended_rooms: 10s", "ROOT/etc/sitroom.yaml:2:21: store.keep_ended_rooms: must be at least 60s"),
            (
                "keep_audit: soon",
                "ROOT/etc/sitroom.yaml:2:15: store.keep_audit: must be a duration like 30s, 5m, 2h or 2d, not 'soon'"
            ),
            ("keep_rooms: 1d", "ROOT/etc/sitroom.yaml:2:3: store.keep_rooms: unknown key"),
        ]
    )
    func retentionErrors(line: String, expected: String) throws {
        let errors = try loadErrors("sitroom.yaml", "store:\n  \(line)\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix(expected) == true, "\(errors)")
    }

    @Test("a secret is read without its surrounding white space, and never when its mode is too open")
    func readSecret() throws {
        try withTemporaryDirectory { root in
            try write("  s3cret \n\n", to: root + "/secret", mode: 0o600)
            #expect(try SecretFile.read(root + "/secret", key: "client_secret_file") == "s3cret")
            chmod(root + "/secret", 0o644)
            #expect(throws: (any Error).self) { try SecretFile.read(root + "/secret", key: "client_secret_file") }
        }
    }
}
