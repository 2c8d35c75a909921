/// Text from outside (a sender's names and titles, Zoom's messages) made safe to show on one line: in a log line,
/// a table row, a mail header or body. Control characters (Unicode category Cc: CR, LF, TAB, ESC, NUL, ...) would
/// start a new line or a new header, or drive a terminal, and line separators and bidirectional controls would fake
/// line breaks or reverse the text shown; they become one space each and the text is cut at
/// `limit` characters.
public enum OneLine {
    /// Whether `scalar` would break a line or reorder text where it is shown: control characters (Cc), the line and
    /// paragraph separators (U+2028, U+2029) and the bidirectional embedding, override and isolate controls
    /// (U+202A–U+202E, U+2066–U+2069), which can make a name display reversed.
    static func breaks(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: return true
        default: return (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
        }
    }

    /// `text` with each control character replaced by a space, at most `limit` characters (an ellipsis marks a cut).
    /// - Complexity: O(n); returns `text` itself when it has no control character and fits.
    public static func clean(_ text: String, limit: Int = 1_000) -> String {
        // The common case, printable ASCII that fits, is told by its bytes alone (no Unicode properties, no count).
        let utf8 = text.utf8
        if utf8.count <= limit, utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
        let hasControl = text.unicodeScalars.contains(where: breaks)
        if !hasControl && text.count <= limit { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(breaks(scalar) ? " " : scalar)
        }
        let cleaned = String(out)
        return cleaned.count <= limit ? cleaned : String(cleaned.prefix(limit)) + "…"
    }
}

extension Character {
    /// LF or CR LF, the line ends a text file may use. (`"\r\n"` is one `Character`: text split at `"\n"` alone
    /// keeps CR LF lines together.)
    public var isLineEnd: Bool { self == "\n" || self == "\r\n" }
}
