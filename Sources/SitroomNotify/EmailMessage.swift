import Foundation
import SitroomCore

/// An RFC 5322 message for one email notice, as MIME (RFC 2045–2049).
///
/// The body is `multipart/alternative` (RFC 2046 §5.1.4) with the notice's text as `text/plain` and the same
/// text as `text/html` (paragraphs, links made clickable); an invitation adds a third alternative,
/// `text/calendar; method=REQUEST` (or `CANCEL`), as calendar clients expect (RFC 6047 §2.4). Everything in it
/// is derived from the notice, so a retry sends the same bytes with the same `Message-ID`.
public struct EmailMessage: Sendable {
    /// The `From:` mailbox, e.g. `sitroom <sitroom@example.org>`.
    public var from: Mailbox
    /// The recipient.
    public var to: Mailbox
    /// The subject, unencoded.
    public var subject: String
    /// The plain-text body (LF or CRLF line ends).
    public var text: String
    /// The iCalendar object for the `text/calendar` part, or `nil`.
    public var calendar: String?
    /// Without angle brackets: `<notice id>.<room id>@<domain of from>`; stable per notice (SPEC §6).
    public var messageID: String
    /// Seconds since 1970, for the `Date:` header.
    public var date: Double
    /// Without angle brackets: the `Message-ID` of the first message of this person's thread about the room,
    /// sent as `In-Reply-To` and `References` (RFC 5322 §3.6.4) so mail readers thread the messages; `nil` for
    /// the first message itself.
    public var inReplyTo: String?

    /// Builds the message of an email notice.
    /// - Parameters:
    ///   - notice: The notice (recipient, subject, body, calendar).
    ///   - from: The configured `notify.email.from` mailbox.
    public init(notice: Notice, from: String) {
        self.from = Mailbox(parsing: from)
        self.to = Mailbox(name: notice.recipientName, address: notice.recipient)
        self.subject = notice.subject
        self.text = notice.body
        self.calendar = notice.calendar
        let domain = self.from.domain
        self.messageID = Self.messageID(noticeID: notice.id, roomID: notice.roomID, domain: domain)
        self.inReplyTo = notice.threadNoticeID.map { Self.messageID(noticeID: $0, roomID: notice.roomID, domain: domain) }
        self.date = notice.createdAt
    }

    /// `<notice id>.<room id>@<domain>` (without angle brackets): stable per notice.
    static func messageID(noticeID: String, roomID: String, domain: String) -> String {
        "\(noticeID).\(roomID)@\(domain.isEmpty ? "localhost" : domain)"
    }

    /// The message as RFC 5322 text with CRLF line ends.
    public func rendered() -> String {
        let boundary = "=_sitroom_\(messageID.prefix(16))_alt"
        var headers = [
            "From: \(from.header)",
            "To: \(to.header)",
            Self.foldHeader("Subject: \(Self.encodeWords(subject))"),
            "Date: \(Self.rfc5322Date(date))",
            "Message-ID: <\(messageID)>",
        ]
        if let inReplyTo { headers += ["In-Reply-To: <\(inReplyTo)>", "References: <\(inReplyTo)>"] }
        headers += [
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
            "Auto-Submitted: auto-generated",
        ]
        if calendar != nil { headers.append("Content-Class: urn:content-classes:calendarmessage") }
        var lines = headers
        lines.append("")
        lines.append("This is a MIME message: a text and an HTML version of the same notice.")
        lines.append("")
        lines.append("--\(boundary)")
        lines.append(contentsOf: Self.part(type: "text/plain; charset=utf-8", text))
        lines.append("--\(boundary)")
        lines.append(contentsOf: Self.part(type: "text/html; charset=utf-8", HTMLText.render(text, title: subject)))
        if let calendar {
            let method = Self.calendarMethod(calendar) ?? "REQUEST"
            lines.append("--\(boundary)")
            lines.append("Content-Type: text/calendar; method=\(method); charset=utf-8")
            lines.append("Content-Transfer-Encoding: base64")
            lines.append("")
            lines.append(contentsOf: Self.base64Lines(Array(calendar.utf8)))
        }
        lines.append("--\(boundary)--")
        lines.append("")
        return lines.joined(separator: "\r\n")
    }

    /// The `METHOD` property of an iCalendar object.
    static func calendarMethod(_ calendar: String) -> String? {
        for line in calendar.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }) where line.hasPrefix("METHOD:") {
            return String(line.dropFirst("METHOD:".count))
        }
        return nil
    }

    /// One MIME body part: headers, a blank line, the content in `7bit` when it is ASCII in lines of at most
    /// 998 octets (RFC 5322 §2.1.1), else in `quoted-printable` (RFC 2045 §6.7): sitroom does not ask the
    /// server for 8BITMIME (RFC 6152), so 8-bit text must not travel as is.
    static func part(type: String, _ content: String) -> [String] {
        let lines = content.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        let plain = lines.allSatisfy { $0.utf8.count <= 998 && $0.utf8.allSatisfy { $0 < 0x80 && $0 != 0x0D } }
        if plain {
            return ["Content-Type: \(type)", "Content-Transfer-Encoding: 7bit", ""] + lines
        }
        return ["Content-Type: \(type)", "Content-Transfer-Encoding: quoted-printable", ""]
            + lines.flatMap { quotedPrintable($0) }
    }

    /// RFC 2045 §6.7 quoted-printable for one line of text: soft line breaks keep encoded lines within 76
    /// characters.
    static func quotedPrintable(_ line: String) -> [String] {
        var out: [String] = []
        var current = ""
        let bytes = Array(line.utf8)
        for (index, byte) in bytes.enumerated() {
            let isLast = index == bytes.count - 1
            var token: String
            if (byte >= 33 && byte <= 126 && byte != 61) || ((byte == 32 || byte == 9) && !isLast) {
                token = String(UnicodeScalar(byte))
            } else {
                token = "=" + String(format: "%02X", byte)
            }
            if current.count + token.count > 75 {
                out.append(current + "=")
                current = ""
            }
            current += token
        }
        out.append(current)
        return out
    }

    /// Base64 in lines of 76 characters (RFC 2045 §6.8).
    static func base64Lines(_ bytes: [UInt8]) -> [String] {
        let encoded = Data(bytes).base64EncodedString()
        var lines: [String] = []
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            lines.append(String(encoded[index..<end]))
            index = end
        }
        return lines
    }

    /// RFC 2047 `=?utf-8?B?...?=` encoded words for text that is not plain printable ASCII (each word at most
    /// 75 characters, never splitting a character, separated by folding white space); the text itself otherwise.
    static func encodeWords(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return text }
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            // 39 bytes encode to 52 base64 characters: 12 + 52 = 64 per word, so "Subject: " and a word fit in 78.
            if chunk.count + bytes.count > 39, !chunk.isEmpty {
                words.append("=?utf-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk.append(contentsOf: bytes)
        }
        if !chunk.isEmpty { words.append("=?utf-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Folds an unstructured header at spaces so lines stay within 78 characters where possible (RFC 5322 §2.2.3).
    static func foldHeader(_ header: String) -> String {
        var lines: [String] = []
        for physical in header.components(separatedBy: "\r\n") {
            var line = ""
            for (index, word) in physical.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
                if index == 0 {
                    line = String(word)
                } else if line.count + 1 + word.count > 78 && !line.trimmingCharacters(in: .whitespaces).isEmpty
                    && (!lines.isEmpty || line.contains(" "))  // never between the field name and its first word
                {
                    lines.append(line)
                    line = " " + word
                } else {
                    line += " " + word
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\r\n")
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
        return
            "\(weekday), \(two(day)) \(months[month - 1]) \(year) \(two(parts[3])):\(two(parts[4])):\(two(parts[5])) +0000"
    }
}

/// An RFC 5322 mailbox: an optional display name and an address.
public struct Mailbox: Sendable, Hashable {
    /// The display name, or `nil`.
    public var name: String?
    /// The address, `local@domain`.
    public var address: String

    /// Creates a mailbox.
    public init(name: String?, address: String) {
        self.name = name.flatMap { $0.isEmpty ? nil : $0 }
        self.address = address
    }

    /// Parses `addr@example.org`, `Name <addr@example.org>` or `"Name, Inc." <addr@example.org>` (the forms
    /// the configuration accepts for `notify.email.from`).
    public init(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let open = trimmed.lastIndex(of: "<"), trimmed.hasSuffix(">") {
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("\""), name.hasSuffix("\""), name.count >= 2 {
                name = String(name.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            let address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            self.init(name: name, address: address.trimmingCharacters(in: .whitespaces))
        } else {
            self.init(name: nil, address: trimmed)
        }
    }

    /// The part of the address after `@`, or empty.
    public var domain: String {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return String(address[address.index(after: at)...])
    }

    /// The mailbox as a header value: the name as RFC 2047 encoded words when not ASCII, a quoted string when
    /// it holds RFC 5322 specials (§3.2.3), an atom phrase otherwise.
    public var header: String {
        guard let name else { return address }
        let specials = Set("()<>[]:;@\\,.\"")
        let phrase: String
        if !name.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) {
            phrase = EmailMessage.encodeWords(name)
        } else if name.contains(where: { specials.contains($0) }) {
            phrase =
                "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        } else {
            phrase = name
        }
        return "\(phrase) <\(address)>"
    }
}

/// The HTML alternative of a plain-text notice.
enum HTMLText {
    /// Renders `text` as a small HTML document: each blank-line-separated paragraph a `<p>`, line breaks kept,
    /// everything escaped, `http(s)` links made clickable (the whole link, trailing punctuation left outside).
    static func render(_ text: String, title: String) -> String {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").trimmingCharacters(in: .newlines)
        let paragraphs = normalized.components(separatedBy: "\n\n").filter {
            !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
        var lines = [
            "<!DOCTYPE html>",
            "<html><head><meta charset=\"utf-8\"><title>\(escape(title))</title></head>",
            "<body>",
        ]
        for paragraph in paragraphs {
            let body = paragraph.split(separator: "\n", omittingEmptySubsequences: false).map { linkify(String($0)) }
            lines.append("<p>" + body.joined(separator: "<br>\n") + "</p>")
        }
        lines.append("</body></html>")
        return lines.joined(separator: "\n")
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Escapes a line, turning `http://` and `https://` links into anchors.
    static func linkify(_ line: String) -> String {
        var out = ""
        for (isLink, piece) in Links.split(line) {
            if isLink {
                out += "<a href=\"\(escape(piece))\">\(escape(piece))</a>"
            } else {
                out += escape(piece)
            }
        }
        return out
    }
}

/// Finding `http://` and `https://` links in text.
enum Links {
    /// Splits `text` into runs, each flagged whether it is a link. A link runs from the scheme to the next
    /// white space, `<`, `>` or `"`; trailing `.`, `,`, `;`, `:`, `!`, `?` and `)` are left outside it.
    static func split(_ text: String) -> [(isLink: Bool, text: String)] {
        var runs: [(Bool, String)] = []
        var rest = Substring(text)
        while let start = firstLinkStart(rest) {
            if start > rest.startIndex { runs.append((false, String(rest[..<start]))) }
            var end =
                rest[start...].firstIndex(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "\"" })
                ?? rest.endIndex
            while end > start, ".,;:!?)".contains(rest[rest.index(before: end)]) { end = rest.index(before: end) }
            runs.append((true, String(rest[start..<end])))
            rest = rest[end...]
        }
        if !rest.isEmpty { runs.append((false, String(rest))) }
        return runs
    }

    private static func firstLinkStart(_ text: Substring) -> Substring.Index? {
        var index = text.startIndex
        while index < text.endIndex {
            let tail = text[index...]
            if tail.hasPrefix("https://") || tail.hasPrefix("http://") { return index }
            index = text.index(after: index)
        }
        return nil
    }
}
