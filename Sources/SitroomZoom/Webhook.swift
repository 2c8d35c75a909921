import Crypto
import Foundation

/// A Zoom webhook delivery: its headers and raw body (byte for byte), as the spool's parser read them from a
/// file of header lines, a blank line and the body (SPEC §4).
public struct ZoomWebhookFile: Sendable {
    /// Header names lower-cased.
    public var headers: [String: String]
    /// The raw body, exactly as received.
    public var body: [UInt8]

    public init(headers: [String: String], body: [UInt8]) {
        self.headers = headers
        self.body = body
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
                "x-zm-request-timestamp: \(stamp) is \(Int(abs(seconds - receivedAt)))s from the file's time (limit \(Int(tolerance))s)"
            )
        }
        let message = Array("v0:\(stamp):".utf8) + body
        // isValidAuthenticationCode compares in constant time.
        guard let given = Self.hexBytes(String(signature.dropFirst(3))), given.count == 32,
            HMAC<SHA256>.isValidAuthenticationCode(
                given,
                authenticating: message,
                using: SymmetricKey(data: Array(secret.utf8))
            )
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
            for: Array("v0:\(timestamp):".utf8) + body,
            using: SymmetricKey(data: Array(secret.utf8))
        )
        return "v0=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}

/// An `app_deauthorized` event's payload (Zoom's webhook reference): which app and user lost authorization.
public struct AppDeauthorized: Sendable, Hashable {
    public var accountID: String
    public var userID: String?
    public var clientID: String

    public init(accountID: String, userID: String?, clientID: String) {
        self.accountID = accountID
        self.userID = userID
        self.clientID = clientID
    }
}

/// Why a webhook file was refused.
public struct WebhookError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
