import Foundation
import SitroomTestFixtures
import Testing

@testable import SitroomNotify

/// The byte-level short cuts of notice building against the general code they stand in for: the same answer
/// for every text, ASCII or not.
@Suite struct NoticeFastPaths {
    /// Texts at the edges: every ASCII byte, CR LF (one `Character`), GSM extension characters, letters beyond
    /// ASCII in and out of the GSM alphabet, Unicode blanks at the ends.
    static let texts: [String] = {
        var texts = [
            "", " ", "\n", "\r\n", "plain text", " padded\t\n", "\u{00A0}nbsp at the start", "ends in nbsp\u{00A0}",
            "\u{2028} line separator \u{2028}", "caf\u{00E9} \u{00E8}", "\u{20AC}100 [x] {y} ~z^ |w| \\",
            "line one\r\nline two", "back`tick", "emoji \u{1F600}", "Ω Σ Δ", " \u{0085}next line ", "\u{0C}form feed",
            "https://zoom.example/j/123456789?pwd=AbC&uname=x",
        ]
        texts.append(String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self))
        for byte in 0..<128 { texts.append(" a\(Character(Unicode.Scalar(UInt8(byte))))b ") }
        return texts
    }()

    @Test("the Date header agrees with Foundation's RFC 5322 formatting, 1970 to 2100")
    func dateAgreesWithFoundation() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        var random = SeededGenerator(seed: 5322)
        var times: [Double] = [0, 86_399.999, 86_400, 951_782_400, 1_795_958_400.5, 4_102_444_799]
        for _ in 0..<2_000 { times.append(Double.random(in: 0..<4_102_444_800, using: &random)) }
        for time in times {
            let expected = formatter.string(from: Date(timeIntervalSince1970: time.rounded(.down)))
            #expect(EmailMessage.rfc5322Date(time) == expected, "\(time)")
        }
    }

    @Test(
        "a mailbox's display name: an atom phrase, a quoted string when it holds a special, encoded words beyond ASCII",
        arguments: [
            ("Ada Lovelace", "Ada Lovelace <a@example.com>"), ("Lovelace, Ada", "\"Lovelace, Ada\" <a@example.com>"),
            ("A. \"Ada\" L\\", "\"A. \\\"Ada\\\" L\\\\\" <a@example.com>"), ("x@y", "\"x@y\" <a@example.com>"),
            ("(ops)", "\"(ops)\" <a@example.com>"), ("[team]; on-call", "\"[team]; on-call\" <a@example.com>"),
            ("Zoë", "=?utf-8?B?Wm/Dqw==?= <a@example.com>"), ("it's-me_99", "it's-me_99 <a@example.com>"),
        ]
    )
    func mailboxHeader(_ name: String, _ header: String) {
        #expect(Mailbox(name: name, address: "a@example.com").header == header)
        #expect(Mailbox(name: nil, address: "a@example.com").header == "a@example.com")
    }

    @Test func trimmingAgreesWithFoundation() {
        for text in Self.texts {
            #expect(
                trimmingWhitespaceAndNewlines(text) == text.trimmingCharacters(in: .whitespacesAndNewlines),
                "\(text.debugDescription)"
            )
        }
    }

    @Test func smsLengthsAgreeWithCountingByCharacter() {
        for text in Self.texts {
            let inAlphabet = text.allSatisfy { SMSText.gsmBasic.contains($0) || SMSText.gsmExtension.contains($0) }
            #expect(SMSText.encoding(of: text) == (inAlphabet ? .gsm7 : .ucs2), "\(text.debugDescription)")
            let septets = text.reduce(0) { $0 + (SMSText.gsmExtension.contains($1) ? 2 : 1) }
            #expect(SMSText.units(text, .gsm7) == septets, "\(text.debugDescription)")
        }
    }

    @Test func shortHeadersAreNotFolded() {
        let long = "Subject: " + Array(repeating: "word", count: 30).joined(separator: " ")
        for header in ["From: sitroom <sitroom@example.com>", String(repeating: "x", count: 78), long] {
            let folded = EmailMessage.foldHeader(header)
            #expect(folded.replacingOccurrences(of: "\r\n", with: "") == header)
            #expect(
                folded.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 78 } || header.utf8.count <= 78
            )
        }
        #expect(EmailMessage.foldHeader(long).contains("\r\n "))
    }
}
