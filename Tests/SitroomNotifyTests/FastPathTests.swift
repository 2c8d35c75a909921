import Foundation
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
