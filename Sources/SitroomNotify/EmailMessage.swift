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
        self.inReplyTo = notice.threadNoticeID.map {
            Self.messageID(noticeID: $0, roomID: notice.roomID, domain: domain)
        }
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
        // Lines end at LF or CRLF; a line's own CR before that is dropped too (as a grapheme split at "\r\n" would).
        let lines = Array(content.utf8).split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            var end = line.endIndex
            for _ in 0..<2 where end > line.startIndex && line[end - 1] == 0x0D { end -= 1 }
            return line[line.startIndex..<end]
        }
        let plain = lines.allSatisfy { $0.count <= 998 && $0.allSatisfy { $0 < 0x80 && $0 != 0x0D } }
        if plain {
            return ["Content-Type: \(type)", "Content-Transfer-Encoding: 7bit", ""]
                + lines.map { String(decoding: $0, as: UTF8.self) }
        }
        return ["Content-Type: \(type)", "Content-Transfer-Encoding: quoted-printable", ""]
            + lines.flatMap { quotedPrintable(String(decoding: $0, as: UTF8.self)) }
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
                let hex = Array("0123456789ABCDEF")
                token = "=" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
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
        // One physical line of at most 78 bytes has nothing to fold (most headers).
        if header.utf8.count <= 78, !header.utf8.contains(0x0D) { return header }
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
        var time = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]  // tm_wday: 0 is Sunday
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
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
        let phrase: String
        if !name.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) {
            phrase = EmailMessage.encodeWords(name)
        } else if name.utf8.contains(where: { Self.specials.contains($0) }) {
            phrase =
                "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        } else {
            phrase = name
        }
        return "\(phrase) <\(address)>"
    }

    /// RFC 5322 §3.2.3's specials, which a display name may hold only inside a quoted string.
    private static let specials: [UInt8] = Array("()<>[]:;@\\,.\"".utf8)
}

/// The HTML alternative of a plain-text notice.
///
/// Built over the text's UTF-8 bytes: every character that needs escaping or starts a link is ASCII, and each
/// email notice renders this once per delivery.
enum HTMLText {
    /// Renders `text` as a small HTML document: each blank-line-separated paragraph a `<p>`, line breaks kept,
    /// everything escaped, `http(s)` links made clickable (the whole link, trailing punctuation left outside).
    static func render(_ text: String, title: String) -> String {
        // CRLF as LF, then the text without leading and trailing line breaks.
        var normalized: [UInt8] = []
        normalized.reserveCapacity(text.utf8.count)
        var previousCR = false
        for byte in text.utf8 {
            if previousCR && byte != 0x0A { normalized.append(0x0D) }
            previousCR = byte == 0x0D
            if !previousCR { normalized.append(byte) }
        }
        if previousCR { normalized.append(0x0D) }
        var start = 0
        var end = normalized.count
        while start < end, let width = lineBreakWidth(normalized, from: start, to: end, backwards: false) {
            start += width
        }
        while end > start, let width = lineBreakWidth(normalized, from: start, to: end, backwards: true) {
            end -= width
        }
        var html: [UInt8] = []
        html.reserveCapacity(2 * (end - start) + 160)
        html.append(contentsOf: "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>".utf8)
        appendEscaped(title.utf8, to: &html)
        html.append(contentsOf: "</title></head>\n<body>".utf8)
        // Paragraphs are separated by "\n\n" (taken left to right); blank ones are left out.
        var paragraphStart = start
        var index = start
        while index <= end {
            let atSeparator = index + 1 < end && normalized[index] == 0x0A && normalized[index + 1] == 0x0A
            if index == end || atSeparator {
                let paragraph = normalized[paragraphStart..<index]
                if !isBlank(paragraph) {
                    html.append(contentsOf: "\n<p>".utf8)
                    var first = true
                    for line in paragraph.split(separator: 0x0A, omittingEmptySubsequences: false) {
                        if !first { html.append(contentsOf: "<br>\n".utf8) }
                        first = false
                        appendLinkified(line, to: &html)
                    }
                    html.append(contentsOf: "</p>".utf8)
                }
                if index == end { break }
                index += 2
                paragraphStart = index
            } else {
                index += 1
            }
        }
        html.append(contentsOf: "\n</body></html>".utf8)
        return String(decoding: html, as: UTF8.self)
    }

    /// The UTF-8 width of the line break (CharacterSet.newlines: U+000A–U+000D, U+0085, U+2028, U+2029) that
    /// starts at `start` (or, `backwards`, ends at `end`), or `nil` when there is none.
    private static func lineBreakWidth(_ bytes: [UInt8], from start: Int, to end: Int, backwards: Bool) -> Int? {
        var lead = backwards ? end - 1 : start
        if backwards { while lead > start, bytes[lead] & 0xC0 == 0x80 { lead -= 1 } }
        let width = bytes[lead] < 0x80 ? 1 : bytes[lead] >= 0xF0 ? 4 : bytes[lead] >= 0xE0 ? 3 : 2
        guard lead + width <= end else { return nil }
        let scalar =
            bytes[lead] < 0x80
            ? Unicode.Scalar(bytes[lead])
            : String(decoding: bytes[lead..<lead + width], as: UTF8.self).unicodeScalars.first!
        switch scalar.value {
        case 0x0A...0x0D, 0x85, 0x2028, 0x2029: return width
        default: return nil
        }
    }

    /// Whether a paragraph is only white space and line breaks (CharacterSet.whitespacesAndNewlines).
    private static func isBlank(_ paragraph: ArraySlice<UInt8>) -> Bool {
        if paragraph.allSatisfy({ $0 < 0x80 }) {
            return paragraph.allSatisfy { $0 == 0x20 || (0x09...0x0D).contains($0) }
        }
        return String(decoding: paragraph, as: UTF8.self).unicodeScalars.allSatisfy { $0.properties.isWhitespace }
    }

    static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        appendEscaped(text.utf8, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendEscaped<Bytes: Sequence>(_ bytes: Bytes, to out: inout [UInt8])
    where Bytes.Element == UInt8 {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "&"): out.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): out.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): out.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: "&quot;".utf8)
            default: out.append(byte)
            }
        }
    }

    /// Escapes a line, turning `http://` and `https://` links into anchors.
    static func linkify(_ line: String) -> String {
        var out: [UInt8] = []
        appendLinkified(Array(line.utf8)[...], to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendLinkified(_ line: ArraySlice<UInt8>, to out: inout [UInt8]) {
        for run in Links.runs(line) {
            if run.isLink {
                out.append(contentsOf: "<a href=\"".utf8)
                appendEscaped(line[run.range], to: &out)
                out.append(contentsOf: "\">".utf8)
                appendEscaped(line[run.range], to: &out)
                out.append(contentsOf: "</a>".utf8)
            } else {
                appendEscaped(line[run.range], to: &out)
            }
        }
    }
}

/// Finding `http://` and `https://` links in text.
enum Links {
    /// Splits `text` into runs, each flagged whether it is a link. A link runs from the scheme to the next
    /// white space, `<`, `>` or `"`; trailing `.`, `,`, `;`, `:`, `!`, `?` and `)` are left outside it.
    static func split(_ text: String) -> [(isLink: Bool, text: String)] {
        let bytes = Array(text.utf8)[...]
        return runs(bytes).map { ($0.isLink, String(decoding: bytes[$0.range], as: UTF8.self)) }
    }

    /// The runs of `bytes` (UTF-8), as ranges of its indices.
    /// - Complexity: O(bytes).
    static func runs(_ bytes: ArraySlice<UInt8>) -> [(isLink: Bool, range: Range<Int>)] {
        var runs: [(Bool, Range<Int>)] = []
        var plainStart = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard bytes[index] == UInt8(ascii: "h"), let schemeEnd = scheme(bytes, at: index) else {
                index += 1
                continue
            }
            var end = schemeEnd
            while end < bytes.endIndex, let width = linkCharacterWidth(bytes, at: end) { end += width }
            while end > index, ".,;:!?)".utf8.contains(bytes[end - 1]) { end -= 1 }
            if index > plainStart { runs.append((false, plainStart..<index)) }
            runs.append((true, index..<end))
            index = max(end, index + 1)
            plainStart = end
        }
        if plainStart < bytes.endIndex { runs.append((false, plainStart..<bytes.endIndex)) }
        return runs
    }

    /// The index after `http://` or `https://` when one starts at `index`.
    private static func scheme(_ bytes: ArraySlice<UInt8>, at index: Int) -> Int? {
        for prefix in ["https://", "http://"] {
            let utf8 = prefix.utf8
            if bytes.endIndex - index >= utf8.count, bytes[index..<index + utf8.count].elementsEqual(utf8) {
                return index + utf8.count
            }
        }
        return nil
    }

    /// The byte width of the character at `index` when it can be part of a link (not white space, `<`, `>` or
    /// `"`), else `nil`.
    private static func linkCharacterWidth(_ bytes: ArraySlice<UInt8>, at index: Int) -> Int? {
        let lead = bytes[index]
        if lead < 0x80 {
            switch lead {
            case 0x09...0x0D, 0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\""): return nil
            default: return 1
            }
        }
        let width = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        let end = min(bytes.endIndex, index + width)
        let scalar = String(decoding: bytes[index..<end], as: UTF8.self).unicodeScalars.first
        if let scalar, scalar.properties.isWhitespace { return nil }
        return end - index
    }
}
