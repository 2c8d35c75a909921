import Curl
import Foundation
import PosixIO
import SitroomCore
import SitroomRuntime

/// Delivers one notice. Implementations must be idempotent per notice id: a notice interrupted mid-delivery
/// (crash) is delivered again with the same id, and must not then reach its recipient twice where the
/// transport can prevent it.
public protocol NoticeTransport: Sendable {
    /// Delivers `notice`.
    /// - Returns: where it went (a file path, a gateway message id), for the outbox.
    /// - Throws: ``DeliveryError``.
    func deliver(_ notice: Notice) async throws -> String

    /// Delivers several notices (of this transport's channel), each as ``deliver(_:)`` would.
    /// - Returns: each notice's outcome, in order: where it went, or a ``DeliveryError``.
    func deliver(batch notices: [Notice]) async -> [Result<String, any Error>]
}

extension NoticeTransport {
    /// One by one, in order. The file transports override it to fsync their directory once per batch.
    public func deliver(batch notices: [Notice]) async -> [Result<String, any Error>] {
        var results: [Result<String, any Error>] = []
        for notice in notices {
            do { results.append(.success(try await deliver(notice))) } catch { results.append(.failure(error)) }
        }
        return results
    }
}

/// Writes files into a maildir-style directory (`tmp/` then `new/`) in one job on a notice worker
/// (``BlockingWorker/nextNoticeWorker()``, off Swift's cooperative pool): every file written, its writeback started
/// with the others', fsynced and renamed into `new/`, then `new/` fsynced once for the whole batch before any of
/// them counts as delivered (``DurableFile/writeBatch(_:tmpDirectory:finalDirectory:mode:exclusive:fsyncs:)``).
/// A file of the same name in `tmp/` (a delivery cut short by a crash) is replaced.
/// - Parameters:
///   - files: each notice's file name and bytes, in order.
///   - directory: the directory holding `tmp/` and `new/`.
///   - what: names the transport in errors ("maildir", "sms file").
/// - Returns: each file's path in `new/`, or the ``DeliveryError`` (retryable) that stopped it, in order.
func deliverFiles(
    _ files: [(name: String, bytes: [UInt8])],
    into directory: String,
    what: String
) async
    -> [Result<String, any Error>]
{
    guard !files.isEmpty else { return [] }
    let written = try? await BlockingWorker.nextNoticeWorker().run {
        DurableFile.writeBatch(
            files,
            tmpDirectory: "\(directory)/tmp",
            finalDirectory: "\(directory)/new",
            exclusive: false
        )
    }
    guard let written else {
        return files.map { _ in .failure(DeliveryError("\(what) \(directory): not written", permanent: false)) }
    }
    return zip(files, written).map { file, result in
        switch result {
        case .success: return .success("\(directory)/new/\(file.name)")
        case .failure(let error): return .failure(DeliveryError("\(what) \(directory): \(error)", permanent: false))
        }
    }
}

/// Why a delivery failed, and whether retrying can help.
public struct DeliveryError: Error, Sendable, CustomStringConvertible {
    /// What failed, safe to log (no credentials, no webhook path).
    public var message: String
    /// A permanent failure (SMTP 5xx, invalid number) parks the notice as `dead` at once.
    public var permanent: Bool

    /// Creates an error.
    /// - Parameters:
    ///   - message: What failed, safe to log.
    ///   - permanent: Whether retrying the same notice cannot help.
    public init(_ message: String, permanent: Bool) {
        self.message = message
        self.permanent = permanent
    }

    public var description: String { message }
}

/// The maildir email transport: each message is written to `var/mail/tmp/`, fsynced, renamed into
/// `var/mail/new/`, and the directory fsynced (the maildir protocol; once per batch of notices). The file name is derived from the
/// notice, so delivering the same notice again replaces the same file rather than adding a second one.
public struct MaildirTransport: NoticeTransport {
    /// The maildir (`var/mail`), holding `tmp/` and `new/`.
    public let directory: String
    /// RFC 5322 `From:` mailbox.
    public let from: String

    public init(directory: String, from: String) {
        self.directory = directory
        self.from = from
    }

    public func deliver(_ notice: Notice) async throws -> String {
        try await deliver(batch: [notice])[0].get()
    }

    /// Writes every message, then fsyncs `new/` once (see ``deliverFiles(_:into:what:)``).
    public func deliver(batch notices: [Notice]) async -> [Result<String, any Error>] {
        let files = notices.map { notice in
            (
                name: "\(Int64(notice.createdAt)).\(notice.id).sitroom",
                bytes: Array(EmailMessage(notice: notice, from: from).rendered().utf8)
            )
        }
        return await deliverFiles(files, into: directory, what: "maildir")
    }
}

/// The file SMS transport: one file per message in `var/sms/new/` (via `tmp/`, fsynced), holding
/// `To:` and `From:` lines, a blank line, and the text.
public struct SMSFileTransport: NoticeTransport {
    /// `var/sms`, holding `tmp/` and `new/`.
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func deliver(_ notice: Notice) async throws -> String {
        try await deliver(batch: [notice])[0].get()
    }

    /// Writes every message, then fsyncs `new/` once (see ``deliverFiles(_:into:what:)``).
    public func deliver(batch notices: [Notice]) async -> [Result<String, any Error>] {
        let files = notices.map { notice in
            (
                name: "\(Int64(notice.createdAt)).\(notice.id).sms",
                bytes: Array("To: \(notice.recipient)\nName: \(notice.recipientName)\n\n\(notice.body)\n".utf8)
            )
        }
        return await deliverFiles(files, into: directory, what: "sms file")
    }
}

/// The SMTP email transport: each notice is one SMTP transaction through libcurl (``SMTPClient``), the
/// message built by ``EmailMessage`` with its stable `Message-ID`.
///
/// Replies map to the outbox (RFC 5321 §4.2.1): a 5yz reply (`550` unknown recipient) is permanent, so the
/// notice is `dead` at once; 4yz replies, refused credentials, timeouts and connection failures are retried.
public struct SMTPTransport: NoticeTransport {
    /// How to reach the server.
    public struct Settings: Sendable {
        /// `smtp://host[:port]` or `smtps://host[:port]`.
        public var url: String
        /// The `From:` mailbox; its address is also the envelope sender.
        public var from: String
        /// AUTH credentials, or `nil`.
        public var credentials: (user: String, password: String)?
        /// STARTTLS policy for `smtp://`.
        public var startTLS: SMTPRequest.StartTLS
        /// CA bundle to trust, or `nil` for the system's.
        public var caFile: String?
        /// Whole-transaction limit in seconds.
        public var timeout: Double

        /// Creates settings.
        public init(
            url: String,
            from: String,
            credentials: (user: String, password: String)?,
            startTLS: SMTPRequest.StartTLS = .required,
            caFile: String? = nil,
            timeout: Double = 60
        ) {
            self.url = url
            self.from = from
            self.credentials = credentials
            self.startTLS = startTLS
            self.caFile = caFile
            self.timeout = timeout
        }
    }

    /// The client whose worker threads carry the transactions.
    public let client: SMTPClient
    /// Server, sender, credentials, TLS and timeout.
    public let settings: Settings

    /// Creates the transport.
    /// - Parameters:
    ///   - client: The SMTP client (its worker threads carry the transactions).
    ///   - settings: Server, sender, credentials, TLS and timeout.
    public init(client: SMTPClient, settings: Settings) {
        self.client = client
        self.settings = settings
    }

    /// Sends the notice to its recipient.
    /// - Returns: `smtp <reply code> <Message-ID>`.
    /// - Throws: ``DeliveryError``, permanent for a 5yz reply.
    public func deliver(_ notice: Notice) async throws -> String {
        let message = EmailMessage(notice: notice, from: settings.from)
        let request = SMTPRequest(
            url: settings.url,
            from: message.from.address,
            recipients: [notice.recipient],
            message: Array(message.rendered().utf8),
            credentials: settings.credentials,
            startTLS: settings.startTLS,
            caFile: settings.caFile,
            timeout: settings.timeout,
            connectTimeout: min(10, settings.timeout)
        )
        do {
            let response = try await client.send(request)
            return "smtp \(response.replyCode) <\(message.messageID)>"
        } catch let error as SMTPError {
            let note = error.messageMayHaveBeenDelivered ? " (after the whole message was sent)" : ""
            throw DeliveryError("\(error)\(note)", permanent: error.isPermanent)
        } catch {
            throw DeliveryError("smtp: \(error)", permanent: false)
        }
    }
}

/// The HTTP SMS transport: a Twilio-compatible gateway (`POST .../Messages.json`, form fields `To`, `From`,
/// `Body`, HTTP Basic auth), through libcurl (``HTTPClient``).
///
/// The gateway's message id (`sid`) is recorded. A 4xx answer about the message (Twilio 400 with code 21211
/// "invalid 'To' number") is permanent; 401/403 (credentials), 408, 429, 5xx and transport failures are
/// retried. Each request carries `Idempotency-Key: <notice id>` so a gateway that honours it drops a repeat.
public struct HTTPSMSTransport: NoticeTransport {
    /// The HTTP client the requests go through.
    public let client: HTTPClient
    /// The gateway's messages URL.
    public let url: String
    /// The sender number (E.164).
    public let from: String
    /// Basic-auth user (Twilio: the account SID).
    public let username: String
    /// Basic-auth password (Twilio: the auth token), from `password_file`.
    public let password: String
    /// Whole-request limit in seconds.
    public let timeout: Double

    /// Creates the transport.
    public init(client: HTTPClient, url: String, from: String, username: String, password: String, timeout: Double = 30)
    {
        self.client = client
        self.url = url
        self.from = from
        self.username = username
        self.password = password
        self.timeout = timeout
    }

    /// Sends the notice's text to its recipient number.
    /// - Returns: `sid <gateway message id>`.
    /// - Throws: ``DeliveryError``.
    public func deliver(_ notice: Notice) async throws -> String {
        let form = [("To", notice.recipient), ("From", from), ("Body", notice.body)]
            .map { "\($0.0)=\(FormEncoding.escape($0.1))" }.joined(separator: "&")
        let request = HTTPRequest(
            method: .post,
            url: url,
            headers: [
                (name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8"),
                (name: "Accept", value: "application/json"), (name: "Idempotency-Key", value: notice.id),
            ],
            body: Array(form.utf8),
            basicAuth: (username, password),
            timeout: timeout,
            connectTimeout: min(10, timeout)
        )
        let response: HTTPResponse
        do {
            response = try await client.send(request)
        } catch {
            throw DeliveryError("sms gateway: \(error)", permanent: false)
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        guard (200...299).contains(response.status) else {
            var reason = "sms gateway answered \(response.status)"
            if let code = json?["code"] { reason += " code \(code)" }
            if let message = json?["message"] as? String { reason += ": \(message.prefix(200))" }
            throw DeliveryError(reason, permanent: HTTPAnswer.isPermanent(response.status))
        }
        guard let sid = json?["sid"] as? String, !sid.isEmpty else {
            return "sms gateway \(response.status) (no sid)"
        }
        return "sid \(sid)"
    }
}

/// The chat channel: a Slack-compatible incoming webhook (`POST` of JSON `{"text": ...}`), through libcurl.
///
/// The webhook URL is a secret (its path is the credential): it is never logged or put in an error message.
public struct ChatWebhookTransport: NoticeTransport {
    /// The HTTP client the requests go through.
    public let client: HTTPClient
    /// The webhook URL (a secret).
    public let url: String
    /// Whole-request limit in seconds.
    public let timeout: Double

    /// Creates the transport.
    public init(client: HTTPClient, url: String, timeout: Double = 30) {
        self.client = client
        self.url = url
        self.timeout = timeout
    }

    /// Posts the notice's text.
    /// - Returns: `chat webhook <status>`.
    /// - Throws: ``DeliveryError``; permanent for a 4xx answer other than 408 and 429 (Slack: 400
    ///   `invalid_payload`, 403, 404 `no_service`, 410 `channel_is_archived`).
    public func deliver(_ notice: Notice) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["text": notice.body], options: [.sortedKeys])
        let request = HTTPRequest(
            method: .post,
            url: url,
            headers: [(name: "Content-Type", value: "application/json")],
            body: Array(body),
            timeout: timeout,
            connectTimeout: min(10, timeout)
        )
        let response: HTTPResponse
        do {
            response = try await client.send(request)
        } catch let error as CurlError {
            throw DeliveryError("chat webhook: curl error \(error.code)", permanent: false)
        } catch {
            throw DeliveryError("chat webhook: \(type(of: error))", permanent: false)
        }
        guard (200...299).contains(response.status) else {
            let text = String(decoding: response.body.prefix(200), as: UTF8.self)
            throw DeliveryError(
                "chat webhook answered \(response.status): \(text)",
                permanent: HTTPAnswer.isPermanent(response.status)
            )
        }
        return "chat webhook \(response.status)"
    }
}

/// How HTTP gateway answers map to the outbox.
enum HTTPAnswer {
    /// 4xx other than 401, 403 (credentials: fixable by the admin), 408 and 429 (try later) is permanent.
    static func isPermanent(_ status: Int) -> Bool {
        (400...499).contains(status) && ![401, 403, 408, 429].contains(status)
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2): everything but `A-Z a-z 0-9 * - . _` percent-encoded.
enum FormEncoding {
    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"):
                out.append(Character(UnicodeScalar(byte)))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// A transport that cannot be used (its secret file is unreadable): every delivery fails and is retried, so
/// the notices wait for the admin to fix the configuration.
public struct UnavailableTransport: NoticeTransport {
    /// Why (names the key and file, never a secret).
    public let reason: String

    /// Creates the transport.
    /// - Parameter reason: Why the channel cannot be used.
    public init(reason: String) { self.reason = reason }

    /// Fails with ``reason``, to be retried.
    /// - Throws: ``DeliveryError``, never permanent.
    public func deliver(_ notice: Notice) async throws -> String {
        throw DeliveryError(reason, permanent: false)
    }
}
