/// Text from outside (a sender's names and titles, Zoom's messages) made safe to show on one line: in a log line,
/// a table row, a mail header or body. Control characters (Unicode category Cc: CR, LF, TAB, ESC, NUL, ...) would
/// start a new line or a new header, or drive a terminal; they become one space each and the text is cut at
/// `limit` characters.
public enum OneLine {
    /// `text` with each control character replaced by a space, at most `limit` characters (an ellipsis marks a cut).
    /// - Complexity: O(n); returns `text` itself when it has no control character and fits.
    public static func clean(_ text: String, limit: Int = 1_000) -> String {
        let hasControl = text.unicodeScalars.contains { $0.properties.generalCategory == .control }
        if !hasControl && text.count <= limit { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(scalar.properties.generalCategory == .control ? " " : scalar)
        }
        let cleaned = String(out)
        return cleaned.count <= limit ? cleaned : String(cleaned.prefix(limit)) + "…"
    }
}
