import Foundation

/// The syntaxes of sitroom's scalar values: what YAML would coerce, durations, sizes, emails, phones, URLs,
/// RFC 3339 timestamps. Pure functions.
enum Scalars {
    // MARK: - What YAML would make of a plain scalar

    /// What YAML 1.1 (or 1.2 core) reads a plain scalar as, when that is not a string: "a boolean",
    /// "an integer", "a sexagesimal integer", "a float", "a timestamp" or "null"; `nil` for a string.
    ///
    /// Patterns from the YAML 1.1 type repository (yaml.org/type/bool.html, int.html, float.html,
    /// timestamp.html, null.html), widened to any letter case for booleans, plus YAML 1.2 `0o17` and `1e5`.
    /// Hand-written rather than Swift `Regex`, which costs ~0.5 ms a match here (measured, debug and release).
    static func yamlType(ofPlain text: String) -> String? {
        // Most plain strings are names and words: one that starts with a letter can only be one of the null and
        // boolean words below (at most 5 letters), and one that starts with a non-ASCII character is never typed.
        if let first = text.utf8.first, first >= 0x80 || (isLetter(first) && text.utf8.count > 5) { return nil }
        if YAMLDocument.isNull(text) { return "null" }
        let lower = text.lowercased()
        if ["y", "n", "yes", "no", "true", "false", "on", "off"].contains(lower) { return "a boolean" }
        if ["+.inf", "-.inf", ".inf", ".nan"].contains(lower) { return "a float" }
        let bytes = Array(text.utf8)
        if isTimestamp(bytes) { return "a timestamp" }
        var c = Cursor(bytes)
        _ = c.take("+") || c.take("-")
        guard let first = c.peek, isDigit(first) || first == UInt8(ascii: ".") else { return nil }
        let body = c
        // Integers with a base prefix.
        for (prefix, allowed) in [("0b", "01_"), ("0x", "0123456789abcdefABCDEF_"), ("0o", "01234567_")] {
            var p = body
            if p.take(prefix) && p.skip(while: { allowed.utf8.contains($0) }) > 0 && p.atEnd { return "an integer" }
        }
        // Decimal (and YAML 1.1 octal `0755`) integers.
        var p = body
        let intDigits = p.skip(while: { isDigit($0) || $0 == UInt8(ascii: "_") })
        if intDigits > 0 && p.atEnd && isDigit(first) { return "an integer" }
        // Sexagesimal: 22:30, 1:20:30, 190:20:30.15.
        if isDigit(first) && intDigits > 0 && p.peek == UInt8(ascii: ":") {
            var groups = 0
            while p.take(":") {
                let n = p.skip(maxCount: 2, while: isDigit)
                guard n > 0 else { return nil }
                if n == 2 && p.bytes[p.index - 2] > UInt8(ascii: "5") { return nil }
                groups += 1
            }
            if groups > 0 && p.atEnd { return "a sexagesimal integer" }
            guard groups > 0, p.take(".") else { return nil }
            _ = p.skip(while: { isDigit($0) || $0 == UInt8(ascii: "_") })
            return p.atEnd ? "a float" : nil
        }
        // Floats: 1.5, .5, 1., 1.5e3, 1e3.
        var f = body
        let whole = f.skip(while: { isDigit($0) || $0 == UInt8(ascii: "_") })
        var fraction = 0
        let hasPoint = f.take(".")
        if hasPoint { fraction = f.skip(while: { isDigit($0) || $0 == UInt8(ascii: "_") }) }
        guard whole > 0 || fraction > 0 else { return nil }
        if whole > 0 && !isDigit(first) { return nil }
        if f.take("e") || f.take("E") {
            _ = f.take("+") || f.take("-")
            guard f.skip(while: isDigit) > 0 else { return nil }
        } else if !hasPoint {
            return nil
        }
        return f.atEnd ? "a float" : nil
    }

    /// YAML 1.1 timestamp: `yyyy-m-d`, or that followed by `T`/`t`/blanks, `h:mm:ss`, optional `.fraction`,
    /// optional blanks and `Z` or `±h[:mm]`.
    private static func isTimestamp(_ bytes: [UInt8]) -> Bool {
        var c = Cursor(bytes)
        guard c.skip(maxCount: 4, while: isDigit) == 4, c.take("-"),
            (1...2).contains(c.skip(maxCount: 2, while: isDigit)),
            c.take("-"), (1...2).contains(c.skip(maxCount: 2, while: isDigit))
        else { return false }
        if c.atEnd { return true }
        if !(c.take("T") || c.take("t")) {
            guard c.skip(while: { $0 == 0x20 || $0 == 0x09 }) > 0 else { return false }
        }
        guard (1...2).contains(c.skip(maxCount: 2, while: isDigit)), c.take(":"),
            c.skip(maxCount: 2, while: isDigit) == 2,
            c.take(":"), c.skip(maxCount: 2, while: isDigit) == 2
        else { return false }
        if c.take(".") { _ = c.skip(while: isDigit) }
        _ = c.skip(while: { $0 == 0x20 || $0 == 0x09 })
        if c.atEnd || (c.take("Z") && c.atEnd) { return true }
        guard c.take("+") || c.take("-"), (1...2).contains(c.skip(maxCount: 2, while: isDigit)) else { return false }
        if c.take(":") { guard c.skip(maxCount: 2, while: isDigit) == 2 else { return false } }
        return c.atEnd
    }

    /// `0`, or digits not starting with `0`, optionally after `-`; `nil` otherwise or on overflow.
    static func decimalInteger(_ text: String) -> Int? {
        var c = Cursor(Array(text.utf8))
        let negative = c.take("-")
        guard let first = c.peek, isDigit(first) else { return nil }
        let count = c.skip(while: isDigit)
        guard c.atEnd, first != UInt8(ascii: "0") || (count == 1 && !negative) else { return nil }
        return Int(text)
    }

    static func describe(_ range: ClosedRange<Int>) -> String {
        switch (range.lowerBound, range.upperBound) {
        case (Int.min, Int.max): return "an integer"
        case (let low, Int.max): return "at least \(low)"
        case (Int.min, let high): return "at most \(high)"
        case (let low, let high): return "between \(low) and \(high)"
        }
    }

    // MARK: - Durations and sizes

    /// `30s`, `5m`, `2h`, `2d` → seconds.
    static func duration(_ text: String) -> Double? {
        var c = Cursor(Array(text.utf8))
        let start = c.index
        guard (1...9).contains(c.skip(maxCount: 9, while: isDigit)), let count = Double(c.text(from: start)) else {
            return nil
        }
        let unit: Double
        if c.take("s") {
            unit = 1
        } else if c.take("m") {
            unit = 60
        } else if c.take("h") {
            unit = 3600
        } else if c.take("d") {
            unit = 86_400
        } else {
            return nil
        }
        return c.atEnd ? count * unit : nil
    }

    /// `512KiB`, `1MiB`, `1GiB`, `1TiB` or a number of bytes.
    static func size(_ text: String) -> Int? {
        var c = Cursor(Array(text.utf8))
        let start = c.index
        let digits = c.skip(maxCount: 16, while: isDigit)
        guard digits > 0, let count = Int(c.text(from: start)) else { return nil }
        if digits > 1 && c.bytes[start] == UInt8(ascii: "0") { return nil }
        var shift = 0
        for (suffix, bits) in [("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40)] where c.take(suffix) {
            shift = bits
            break
        }
        guard c.atEnd else { return nil }
        let (result, overflow) = count.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : result
    }

    // MARK: - Contacts

    /// A simple but real check: one `@`, a non-empty local part, a domain with a dot (or `localhost`) and no
    /// empty labels, and no spaces, controls or mailbox punctuation (`<>()[],;:"\`).
    static func isEmail(_ text: String) -> Bool {
        // Byte by byte: specials and ASCII controls and spaces; only a non-ASCII text is looked at by scalar (for
        // Unicode whitespace).
        var ascii = true
        for byte in text.utf8 {
            switch byte {
            case 0x00...0x20, 0x7F, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "("), UInt8(ascii: ")"),
                UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: ":"),
                UInt8(ascii: "\""), UInt8(ascii: "\\"):
                return false
            case 0x80...: ascii = false
            default: break
            }
        }
        if !ascii, text.unicodeScalars.contains(where: { $0.properties.isWhitespace }) { return false }
        // Over the bytes: `@`, `.` and `-` are ASCII and never part of a multi-byte UTF-8 sequence.
        let bytes = Array(text.utf8)
        guard let at = bytes.firstIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1,
            !bytes[(at + 1)...].contains(UInt8(ascii: "@"))
        else { return false }
        let domain = bytes[(at + 1)...]
        if domain.count == 9, String(decoding: domain, as: UTF8.self).lowercased() == "localhost" { return true }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return labels.count >= 2
            && labels.allSatisfy { !$0.isEmpty && $0.first != UInt8(ascii: "-") && $0.last != UInt8(ascii: "-") }
    }

    /// E.164: `+`, then 8 to 15 digits, the first not 0.
    static func isE164(_ text: String) -> Bool {
        var c = Cursor(Array(text.utf8))
        guard c.take("+"), let first = c.peek, first != UInt8(ascii: "0") else { return false }
        return (8...15).contains(c.skip(while: isDigit)) && c.atEnd
    }

    /// An RFC 5322 mailbox as used in `From:`: `addr@example.org` or `Display Name <addr@example.org>`.
    static func isMailbox(_ text: String) -> Bool {
        if let open = text.lastIndex(of: "<") {
            guard text.hasSuffix(">") else { return false }
            let address = text[text.index(after: open)..<text.index(before: text.endIndex)]
            return isEmail(String(address)) && !text[..<open].contains(where: { $0 == "<" || $0 == ">" || $0 == "\n" })
        }
        return isEmail(text)
    }

    // MARK: - URLs

    /// Why `text` is not an acceptable URL: not one of `schemes`, no host, or a password inside it.
    static func urlProblem(_ text: String, schemes: [String]) -> String? {
        let expected = schemes.joined(separator: " or ")
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return "'\(text)' is not a URL (expected \(expected))"
        }
        guard schemes.contains(scheme) else {
            return "'\(text)' must use \(expected), not \(scheme)"
        }
        guard let host = components.host, !host.isEmpty else {
            return "'\(text)' has no host"
        }
        if components.password != nil {
            return "must not carry a password; put it in a password_file"
        }
        return nil
    }

    // MARK: - Time

    /// RFC 3339 `date-time` (section 5.6) with a `Z` or `±hh:mm` offset and optional fractional seconds →
    /// seconds since 1970-01-01T00:00:00Z. `T` may be `t` or a space (as RFC 3339 allows); a leap second `:60`
    /// counts as the next second.
    static func rfc3339(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count, b[range].allSatisfy(isDigit) else { return nil }
            return b[range].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
        func byte(_ i: Int, _ allowed: String) -> Bool { i < b.count && allowed.utf8.contains(b[i]) }
        guard let year = number(0..<4), byte(4, "-"), let month = number(5..<7), byte(7, "-"), let day = number(8..<10),
            byte(10, "Tt "), let hour = number(11..<13), byte(13, ":"), let minute = number(14..<16), byte(16, ":"),
            let second = number(17..<19)
        else { return nil }
        var i = 19
        var fraction = 0.0
        if byte(i, ".") {
            let start = i + 1
            i = start
            while i < b.count, isDigit(b[i]) { i += 1 }
            guard (1...9).contains(i - start), let value = Double("0." + String(decoding: b[start..<i], as: UTF8.self))
            else {
                return nil
            }
            fraction = value
        }
        var offset = 0
        if byte(i, "Zz") {
            i += 1
        } else if byte(i, "+-"), let oh = number(i + 1..<i + 3), byte(i + 3, ":"), let om = number(i + 4..<i + 6) {
            guard (0...23).contains(oh), (0...59).contains(om) else { return nil }
            offset = (oh * 60 + om) * 60 * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Double(seconds) + fraction
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// Whether `byte` is an ASCII digit.
func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

/// A forward cursor over bytes for the small hand-written matchers above.
struct Cursor {
    let bytes: [UInt8]
    private(set) var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index == bytes.count }
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// Consumes `literal` if the bytes continue with it.
    mutating func take(_ literal: String) -> Bool {
        let literal = Array(literal.utf8)
        guard index + literal.count <= bytes.count, Array(bytes[index..<index + literal.count]) == literal else {
            return false
        }
        index += literal.count
        return true
    }

    /// Consumes up to `maxCount` bytes satisfying `predicate`; returns how many.
    mutating func skip(maxCount: Int = .max, while predicate: (UInt8) -> Bool) -> Int {
        let start = index
        while index < bytes.count, index - start < maxCount, predicate(bytes[index]) { index += 1 }
        return index - start
    }

    func text(from start: Int) -> String { String(decoding: bytes[start..<index], as: UTF8.self) }
}
/// Whether `byte` is an ASCII letter.
func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }
