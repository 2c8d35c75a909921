import Crypto
import Foundation
import SitroomConfig
import SitroomCore
import SitroomZoom
import Synchronization

/// How senders prove who they are, checked in constant time (SPEC §11; secrets only from 0600 files, SPEC §3).
public enum Credentials {
    /// Compares two byte strings in time that depends only on their lengths' digests, not on where they differ:
    /// both are hashed with SHA-256 and the digests compared byte by byte with no early exit, so neither the
    /// content nor the length of the expected secret leaks through timing.
    public static func constantTimeEquals(_ given: some DataProtocol, _ expected: some DataProtocol) -> Bool {
        let a = Array(SHA256.hash(data: given))
        let b = Array(SHA256.hash(data: expected))
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Whether `Authorization: Bearer TOKEN` (RFC 6750 §2.1; the scheme is case-insensitive) carries `token`.
    /// - Returns: `nil` when there is no Bearer credential at all (401 without a challenge answered), else the match.
    public static func bearer(_ authorization: String?, token: String) -> Bool? {
        guard let value = credential(authorization, scheme: "bearer") else { return nil }
        return constantTimeEquals(Array(value.utf8), Array(token.utf8))
    }

    /// Whether `Authorization: Basic base64(user:password)` (RFC 7617) carries `username` and `password`.
    /// - Returns: `nil` when there is no (decodable) Basic credential.
    public static func basic(_ authorization: String?, username: String, password: String) -> Bool? {
        guard let value = credential(authorization, scheme: "basic"), let decoded = Data(base64Encoded: value) else {
            return nil
        }
        return constantTimeEquals(Array(decoded), Array("\(username):\(password)".utf8))
    }

    private static func credential(_ authorization: String?, scheme: String) -> String? {
        guard let authorization else { return nil }
        let trimmed = authorization.trimmingCharacters(in: .whitespaces)
        guard let space = trimmed.firstIndex(of: " "), trimmed[..<space].lowercased() == scheme else { return nil }
        let value = trimmed[space...].trimmingCharacters(in: .whitespaces)
        return value.isEmpty ? nil : value
    }

    // MARK: PagerDuty

    /// PagerDuty's v3 webhook signature (developer.pagerduty.com, "Verifying Signatures"; PagerDuty/developer-docs
    /// `docs/webhooks/04-Signatures.md`): `X-PagerDuty-Signature` holds one or more comma-separated signatures,
    /// several during a secret rotation; version `v1` is `v1=` + hex HMAC-SHA256 of the raw body with the signing
    /// secret. At least one `v1` signature must match; others (other versions, other secrets) are ignored.
    /// - Returns: `nil` when the header holds no `v1=` signature at all, else whether one matches.
    public static func pagerDuty(_ header: String?, body: [UInt8], secret: String) -> Bool? {
        guard let header else { return nil }
        let key = SymmetricKey(data: Array(secret.utf8))
        var sawV1 = false
        for part in header.split(separator: ",") {
            let signature = part.trimmingCharacters(in: .whitespaces)
            guard signature.hasPrefix("v1=") else { continue }
            sawV1 = true
            guard let mac = hexBytes(signature.dropFirst(3)), mac.count == 32 else { continue }
            // isValidAuthenticationCode compares in constant time.
            if HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key) { return true }
        }
        return sawV1 ? false : nil
    }

    /// `v1=` + hex HMAC-SHA256 of `body`: what PagerDuty sends (for tests and tools).
    public static func pagerDutySignature(body: [UInt8], secret: String) -> String {
        "v1=" + hex(HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))))
    }

    // MARK: Zoom

    /// How a Zoom delivery fared (developers.zoom.us/docs/api/webhooks/, "Verify webhook events").
    public enum ZoomVerdict: Equatable, Sendable {
        case valid
        /// No `x-zm-signature` or `x-zm-request-timestamp`: not from Zoom (401).
        case missing
        /// A signature that does not match, or a timestamp outside the window (403); the reason names which.
        case invalid(String)
    }

    /// Verifies `x-zm-signature` (`v0=` + hex HMAC-SHA256 of `v0:{x-zm-request-timestamp}:{body}` over the exact
    /// bytes received) and that the timestamp lies within `tolerance` seconds of `now`: the check sitroomd makes of
    /// the spool file (SitroomZoom's `ZoomWebhookFile.verify`), here at the door.
    public static func zoom(
        signature: String?,
        timestamp: String?,
        body: [UInt8],
        secret: String,
        now: Double,
        tolerance: Double = 300
    ) -> ZoomVerdict {
        guard let signature, let timestamp else { return .missing }
        let file = ZoomWebhookFile(
            headers: ["x-zm-signature": signature, "x-zm-request-timestamp": timestamp],
            body: body
        )
        do {
            try file.verify(secret: secret, receivedAt: now, tolerance: tolerance)
            return .valid
        } catch {
            return .invalid("\(error)".replacingOccurrences(of: "the file's time", with: "now"))
        }
    }

    /// The `encryptedToken` of Zoom's `endpoint.url_validation` answer: hex HMAC-SHA256 of `plainToken` with the
    /// webhook secret token (developers.zoom.us/docs/api/webhooks/, "Validate your webhook endpoint").
    public static func zoomEncryptedToken(plainToken: String, secret: String) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: Array(plainToken.utf8), using: SymmetricKey(data: Array(secret.utf8))))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexBytes(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}

/// Secret files read when used and kept while they stay the same file with the same content: each use `stat`s the
/// file and reads it again (through SitroomConfig's `SecretFile`, which refuses modes that let group or others in)
/// when its inode, size, modification or change time moved. So a rotated secret (a new file renamed into place,
/// or one rewritten in place) counts from the next request, without a reload.
public final class SecretCache: Sendable {
    private struct Entry {
        var stamp: [Int]
        var value: String
    }
    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// The secret in `path`.
    /// - Parameters:
    ///   - path: an absolute path, as the configuration holds it.
    ///   - key: the configuration key naming it, for the message.
    /// - Throws: `SitroomError` (`.badConfig`) naming the key and path when the file is missing, unreadable, empty or
    ///   too open; the secret never appears in it.
    public func secret(_ path: String, key: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SitroomError(.badConfig, "\(key): \(path): \(String(cString: strerror(errno)))")
        }
        let stamp = [
            Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec),
            Int(info.st_ctim.tv_sec), Int(info.st_ctim.tv_nsec),
        ]
        let cached = entries.withLock { $0[path] }
        if let cached, cached.stamp == stamp { return cached.value }
        let value = try SecretFile.read(path, key: key)
        guard !value.isEmpty else { throw SitroomError(.badConfig, "\(key): \(path) is empty") }
        entries.withLock { $0[path] = Entry(stamp: stamp, value: value) }
        return value
    }

    /// Forgets secrets no longer named (after a reload).
    public func keep(only paths: Set<String>) {
        entries.withLock { entries in entries = entries.filter { paths.contains($0.key) } }
    }
}
