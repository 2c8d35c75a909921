import Foundation
import SitroomCore

/// An RFC 5322 message for one email notice.
public struct EmailMessage: Sendable {
    /// RFC 5322 mailbox, e.g. `sitroom <sitroom@example.org>`.
    public var from: String
    public var toName: String
    public var toAddress: String
    public var subject: String
    public var body: String
    /// Without angle brackets: `<notice id>.<room id>@<domain of from>`; stable per notice (SPEC §6).
    public var messageID: String
    /// Seconds since 1970, for the `Date:` header.
    public var date: Double

    public init(notice: Notice, from: String) {
        self.from = from
        self.toName = notice.recipientName
        self.toAddress = notice.recipient
        self.subject = notice.subject
        self.body = notice.body
        let domain = from.split(separator: "@").last.map { $0.filter { $0 != ">" && $0 != " " } } ?? "localhost"
        self.messageID = "\(notice.id).\(notice.roomID)@\(domain.isEmpty ? "localhost" : domain)"
        self.date = notice.createdAt
    }

    /// The message as RFC 5322 text with CRLF line ends: headers (RFC 2047 encoded words for non-ASCII
    /// names and subjects), a blank line, a `text/plain; charset=utf-8` body in 8bit.
    public func rendered() -> String {
        var lines = [
            "From: \(from)",
            "To: \(Self.encodeWord(toName)) <\(toAddress)>",
            "Subject: \(Self.encodeWord(subject))",
            "Date: \(Self.rfc5322Date(date))",
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "Auto-Submitted: auto-generated",
            "",
        ]
        lines.append(contentsOf: body.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            // RFC 5321 §4.5.2 transparency is the transport's job; keep lines as written, trailing CR removed.
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        })
        return lines.joined(separator: "\r\n")
    }

    /// RFC 2047 `=?utf-8?B?...?=` for text that is not plain printable ASCII; the text itself otherwise.
    static func encodeWord(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return text }
        return "=?utf-8?B?\(Data(text.utf8).base64EncodedString())?="
    }

    /// RFC 5322 §3.3 date-time in UTC, e.g. `Sun, 29 Nov 2026 13:00:00 +0000`.
    static func rfc5322Date(_ seconds: Double) -> String {
        let iso = rfc3339UTC(seconds)  // yyyy-MM-ddTHH:mm:ssZ
        let parts = iso.split(whereSeparator: { "-T:Z".contains($0) }).compactMap { Int($0) }
        let (year, month, day) = (parts[0], parts[1], parts[2])
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
        let weekday = days[Int((seconds / 86_400).rounded(.down)) % 7]
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekday), \(two(day)) \(months[month - 1]) \(year) \(two(parts[3])):\(two(parts[4])):\(two(parts[5])) +0000"
    }
}
