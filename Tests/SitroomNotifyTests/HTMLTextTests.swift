import Foundation
import SitroomTestFixtures
import Testing

@testable import SitroomNotify

/// The HTML alternative and link finding are built over bytes for speed; these tests hold them to the plain
/// Character-based definitions they replaced (kept below as the reference), on chosen and on random texts.
/// (A lone CR before a CRLF is left out of the random texts: the reference reads "\r\r\n" as a CR and one
/// grapheme, which no template writes.)
@Suite("HTML alternative and links")
struct HTMLTextTests {
    static let samples: [String] = [
        "", "plain", "Join: https://zoom.example/j/1?pwd=a&b=c.", "a\r\nb\r\n\r\nc", "\n\n\nfirst\n\n\n\nsecond\n\n",
        "<b>\"quoted\" & more</b>", "see (http://x.example/path), then https://y.example/!?", "http://",
        "https://é.example/ü next",
        "link https://a.example/x\u{00A0}after", "tab\thttps://a.example\tb", "   \n \n\nspaces only paragraph above",
        "a\rb\r\rc\r\n", "https://a.example/https://b.example", "Zürich 🚒 https://zoom.example/j/9 — ok",
        "line1\nline2\n\nline3\r\n\r\n\r\nline4",
    ]

    @Test("the renderer matches the reference on chosen texts", arguments: samples)
    func chosen(_ text: String) {
        #expect(HTMLText.render(text, title: "T <&>") == ReferenceHTML.render(text, title: "T <&>"))
        #expect(
            Links.split(text).map { "\($0.isLink):\($0.text)" }
                == ReferenceLinks.split(text).map { "\($0.isLink):\($0.text)" }
        )
    }

    @Test("the renderer matches the reference on 2,000 random texts")
    func random() {
        var generator = SeededGenerator(seed: 0x5172_0042)
        let pieces = [
            "https://", "http://", "zoom.example/j/", "1", " ", "\n", "\r\n", "\n\n", ".", ",", ")", "<", ">", "\"",
            "&", "é", "\u{00A0}", "\u{2028}", "\u{85}", "\u{3000}", "\t", "word", "?", "!", ":", "🚒",
        ]
        for _ in 0..<2_000 {
            let text = (0..<Int.random(in: 0...24, using: &generator)).map { _ in
                pieces.randomElement(using: &generator)!
            }.joined()
            #expect(
                HTMLText.render(text, title: text) == ReferenceHTML.render(text, title: text),
                "text: \(text.unicodeScalars.map { $0.escaped(asASCII: true) }.joined())"
            )
            #expect(
                Links.split(text).map { "\($0.isLink):\($0.text)" }
                    == ReferenceLinks.split(text).map { "\($0.isLink):\($0.text)" },
                "text: \(text.unicodeScalars.map { $0.escaped(asASCII: true) }.joined())"
            )
        }
    }
}

// The definitions the byte-level code replaced (sitroom before issue 20), as the reference.
enum ReferenceHTML {
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
        for (isLink, piece) in ReferenceLinks.split(line) {
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
enum ReferenceLinks {
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
