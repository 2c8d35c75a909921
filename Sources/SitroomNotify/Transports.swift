import PosixIO
import SitroomCore

/// Delivers one notice. Implementations must be idempotent per notice id: a notice interrupted mid-delivery
/// (crash) is delivered again with the same id, and must not then reach its recipient twice where the
/// transport can prevent it.
public protocol NoticeTransport: Sendable {
    /// Delivers `notice`.
    /// - Returns: where it went (a file path, a gateway message id), for the outbox.
    /// - Throws: ``DeliveryError``.
    func deliver(_ notice: Notice) async throws -> String
}

/// Why a delivery failed, and whether retrying can help.
public struct DeliveryError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// A permanent failure (SMTP 5xx, invalid number) parks the notice as `dead` at once.
    public var permanent: Bool
    public init(_ message: String, permanent: Bool) {
        self.message = message
        self.permanent = permanent
    }
    public var description: String { message }
}

/// The maildir email transport: each message is written to `var/mail/tmp/`, fsynced, renamed into
/// `var/mail/new/`, and the directory fsynced (the maildir protocol). The file name is derived from the
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
        let message = EmailMessage(notice: notice, from: from)
        let name = "\(Int64(notice.createdAt)).\(notice.id).sitroom"
        do {
            try DurableFile.write(
                Array(message.rendered().utf8), name: name, tmpDirectory: "\(directory)/tmp",
                finalDirectory: "\(directory)/new")
        } catch {
            throw DeliveryError("maildir \(directory): \(error)", permanent: false)
        }
        return "\(directory)/new/\(name)"
    }
}

/// The file SMS transport: one file per message in `var/sms/new/` (via `tmp/`, fsynced), holding
/// `To:` and `From:` lines, a blank line, and the text.
public struct SMSFileTransport: NoticeTransport {
    /// `var/sms`, holding `tmp/` and `new/`.
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func deliver(_ notice: Notice) async throws -> String {
        let name = "\(Int64(notice.createdAt)).\(notice.id).sms"
        let text = "To: \(notice.recipient)\nName: \(notice.recipientName)\n\n\(notice.body)\n"
        do {
            try DurableFile.write(
                Array(text.utf8), name: name, tmpDirectory: "\(directory)/tmp", finalDirectory: "\(directory)/new")
        } catch {
            throw DeliveryError("sms file \(directory): \(error)", permanent: false)
        }
        return "\(directory)/new/\(name)"
    }
}
