import Foundation
import Testing

@testable import SitroomIntake

/// Signatures and credentials, against values computed by another implementation (Python's `hmac`).
@Suite("credentials and signatures")
struct CredentialsTests {
    @Test("Bearer: the token matches exactly; the scheme is case-insensitive; none is nil")
    func bearer() {
        #expect(Credentials.bearer("Bearer s3cret", token: "s3cret") == true)
        #expect(Credentials.bearer("bearer   s3cret ", token: "s3cret") == true)
        #expect(Credentials.bearer("Bearer s3cret2", token: "s3cret") == false)
        #expect(Credentials.bearer("Bearer s3cre", token: "s3cret") == false)
        #expect(Credentials.bearer("Basic czNjcmV0", token: "s3cret") == nil)
        #expect(Credentials.bearer("Bearer ", token: "s3cret") == nil)
        #expect(Credentials.bearer(nil, token: "s3cret") == nil)
    }

    @Test("Basic: user and password (RFC 7617), base64; anything else is nil or false")
    func basic() {
        let good = "Basic " + Data("alertmanager:pa:ss".utf8).base64EncodedString()
        #expect(Credentials.basic(good, username: "alertmanager", password: "pa:ss") == true)
        #expect(Credentials.basic(good, username: "alertmanager", password: "pa") == false)
        #expect(Credentials.basic(good, username: "other", password: "pa:ss") == false)
        #expect(Credentials.basic("Basic !!!", username: "a", password: "b") == nil)
        #expect(Credentials.basic("Bearer x", username: "a", password: "b") == nil)
    }

    @Test("constant-time comparison gives the same answers as ==")
    func constantTime() {
        for (a, b) in [("", ""), ("a", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "abcd")] {
            #expect(Credentials.constantTimeEquals(Array(a.utf8), Array(b.utf8)) == (a == b))
        }
    }

    static let pagerDutyBody = Array(#"{"event":{}}"#.utf8)
    static let pagerDutyGood = "v1=77fb999cdab1e010c5ae57458638a56696f56610cdadede6c7ceb94c77843e0b"

    @Test("PagerDuty v1: HMAC-SHA256 hex of the body; any of several comma-separated signatures may match")
    func pagerDuty() {
        let body = Self.pagerDutyBody
        #expect(Credentials.pagerDutySignature(body: body, secret: "pd-secret") == Self.pagerDutyGood)
        #expect(Credentials.pagerDuty(Self.pagerDutyGood, body: body, secret: "pd-secret") == true)
        // Rotation: the old secret's signature first, the new one second, and the reverse.
        let other = Credentials.pagerDutySignature(body: body, secret: "old-secret")
        #expect(Credentials.pagerDuty("\(other),\(Self.pagerDutyGood)", body: body, secret: "pd-secret") == true)
        #expect(Credentials.pagerDuty("\(Self.pagerDutyGood), \(other)", body: body, secret: "pd-secret") == true)
        #expect(Credentials.pagerDuty("\(other),\(other)", body: body, secret: "pd-secret") == false)
        // Forged: one byte of the body changed; an uppercase hex signature still counts.
        #expect(Credentials.pagerDuty(Self.pagerDutyGood, body: body + [0x20], secret: "pd-secret") == false)
        #expect(
            Credentials.pagerDuty(
                Self.pagerDutyGood.uppercased().replacingOccurrences(of: "V1=", with: "v1="),
                body: body,
                secret: "pd-secret"
            ) == true
        )
        // No v1 signature at all: missing credentials, not a bad signature.
        #expect(Credentials.pagerDuty("v2=abc", body: body, secret: "pd-secret") == nil)
        #expect(Credentials.pagerDuty(nil, body: body, secret: "pd-secret") == nil)
        #expect(Credentials.pagerDuty("v1=zz", body: body, secret: "pd-secret") == false)
    }

    @Test("Zoom: v0 signature over v0:timestamp:body within 5 minutes; url_validation's encryptedToken")
    func zoom() {
        let body = Array(#"{"event":"x"}"#.utf8)
        let signature = "v0=94cf27e159993973cfc0231f58b28ec88bf0dccf753a33db21f15b9f856d87d0"
        #expect(
            Credentials.zoom(
                signature: signature,
                timestamp: "1700000000",
                body: body,
                secret: "zoom-secret",
                now: 1_700_000_100
            )
                == .valid
        )
        #expect(
            Credentials.zoom(
                signature: signature,
                timestamp: "1700000000",
                body: body,
                secret: "other",
                now: 1_700_000_100
            )
                != .valid
        )
        guard
            case .invalid(let why) = Credentials.zoom(
                signature: signature,
                timestamp: "1700000000",
                body: body,
                secret: "zoom-secret",
                now: 1_700_000_400
            )
        else {
            Issue.record("a stale timestamp must be refused")
            return
        }
        #expect(why.contains("x-zm-request-timestamp"))
        #expect(
            Credentials.zoom(
                signature: nil,
                timestamp: "1700000000",
                body: body,
                secret: "zoom-secret",
                now: 1_700_000_000
            )
                == .missing
        )
        #expect(
            Credentials.zoom(
                signature: signature,
                timestamp: "1700000000",
                body: body + [0x0A],
                secret: "zoom-secret",
                now: 1_700_000_000
            )
                != .valid
        )
        #expect(
            Credentials.zoomEncryptedToken(plainToken: "plain-token-1", secret: "zoom-secret")
                == "4be6111299f46603efa1f4098b03f6c4712b5618210be95e9f463d9d061412f9"
        )
    }

    @Test("a secret file is read again when it changes, and refused when its mode opens up")
    func secretCache() throws {
        let directory = NSTemporaryDirectory() + "intake-secret-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/token"
        func write(_ text: String, mode: Int = 0o600) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path + ".new"))
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path + ".new")
            #expect(rename(path + ".new", path) == 0)
        }
        let cache = SecretCache()
        try write("first\n")
        #expect(try cache.secret(path, key: "bearer_token_file") == "first")
        try write("second\n")
        #expect(try cache.secret(path, key: "bearer_token_file") == "second")
        try write("third\n", mode: 0o644)
        #expect(throws: (any Error).self) { try cache.secret(path, key: "bearer_token_file") }
        try FileManager.default.removeItem(atPath: path)
        #expect(throws: (any Error).self) { try cache.secret(path, key: "bearer_token_file") }
    }
}
