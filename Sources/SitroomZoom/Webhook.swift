import Crypto
import Foundation

/// A Zoom webhook delivery as a feed stores it in the spool: header lines, a blank line, the raw body
/// (byte for byte), as SPEC §4 describes.
public struct ZoomWebhookFile: Sendable {
    /// Header names lower-cased.
    public var headers: [String: String]
    /// The raw body, exactly as received.
    public var body: [UInt8]

    /// Splits a file into headers and body at the first empty line (LF or CRLF line ends).
    /// - Returns: `nil` when the bytes do not look like a webhook file (no `x-zm-signature` header).
    public static func parse(_ bytes: [UInt8]) -> ZoomWebhookFile? {
        var headers: [String: String] = [:]
        var index = 0
        while index < bytes.count {
            guard let end = bytes[index...].firstIndex(of: 0x0A) else { return nil }
            var line = bytes[index..<end]
            if line.last == 0x0D { line = line.dropLast() }
            index = end + 1
            if line.isEmpty {
                guard headers["x-zm-signature"] != nil else { return nil }
                return ZoomWebhookFile(headers: headers, body: Array(bytes[index...]))
            }
            guard let colon = line.firstIndex(of: 0x3A), let name = String(bytes: line[..<colon], encoding: .utf8),
                let value = String(bytes: line[(colon + 1)...], encoding: .utf8)
            else { return nil }
            headers[name.trimmingCharacters(in: .whitespaces).lowercased()] = value.trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// Verifies the delivery (Zoom's webhook docs): `x-zm-signature` must be
    /// `v0=` + hex HMAC-SHA256(secret, `v0:{x-zm-request-timestamp}:{body}`), compared in constant time, and the
    /// timestamp (seconds) must lie within `tolerance` seconds of `receivedAt` (the file's modification time).
    /// - Throws: ``WebhookError`` saying which check failed.
    public func verify(secret: String, receivedAt: Double, tolerance: Double = 300) throws {
        guard let signature = headers["x-zm-signature"], signature.hasPrefix("v0=") else {
            throw WebhookError("x-zm-signature: missing or not of the form v0=<hex>")
        }
        guard let stamp = headers["x-zm-request-timestamp"], let seconds = Double(stamp) else {
            throw WebhookError("x-zm-request-timestamp: missing or not a number")
        }
        guard abs(seconds - receivedAt) <= tolerance else {
            throw WebhookError(
                "x-zm-request-timestamp: \(stamp) is \(Int(abs(seconds - receivedAt)))s from the file's time (limit \(Int(tolerance))s)")
        }
        let message = Array("v0:\(stamp):".utf8) + body
        // isValidAuthenticationCode compares in constant time.
        guard let given = Self.hexBytes(String(signature.dropFirst(3))), given.count == 32,
            HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: message, using: SymmetricKey(data: Array(secret.utf8)))
        else {
            throw WebhookError("x-zm-signature: does not match the integration's webhook secret")
        }
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    /// Signs a body the way Zoom does, for tests and tools: `v0=` + hex HMAC-SHA256.
    public static func signature(secret: String, timestamp: String, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array("v0:\(timestamp):".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return "v0=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}

/// An `app_deauthorized` event's payload (Zoom's webhook reference): which app and user lost authorization.
public struct AppDeauthorized: Sendable, Hashable {
    public var accountID: String
    public var userID: String?
    public var clientID: String

    /// Reads `{"event": "app_deauthorized", "payload": {account_id, user_id, client_id, ...}}`.
    /// - Throws: ``WebhookError`` naming the missing field.
    public static func parse(_ body: [UInt8]) throws -> AppDeauthorized {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw WebhookError("body: not a JSON object")
        }
        guard object["event"] as? String == "app_deauthorized" else {
            throw WebhookError("event: \(object["event"] ?? "missing") is not app_deauthorized")
        }
        guard let payload = object["payload"] as? [String: Any] else { throw WebhookError("payload: missing") }
        guard let account = payload["account_id"] as? String else { throw WebhookError("payload.account_id: missing") }
        guard let client = payload["client_id"] as? String else { throw WebhookError("payload.client_id: missing") }
        return AppDeauthorized(accountID: account, userID: payload["user_id"] as? String, clientID: client)
    }
}

/// Why a webhook file was refused.
public struct WebhookError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
