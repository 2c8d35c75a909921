import Foundation

/// The syntaxes of sitroom's scalar values: what YAML would coerce, durations, sizes, emails, phones, URLs,
/// RFC 3339 timestamps. Pure functions.
enum Scalars {
    // MARK: - What YAML would make of a plain scalar

    /// What YAML 1.1 (or 1.2 core) reads a plain scalar as, when that is not a string: "a boolean",
    /// "an integer", "a float", "a timestamp" or "null"; `nil` for a string.
    ///
    /// Patterns from the YAML 1.1 type repository (yaml.org/type/bool.html, int.html, float.html,
    /// timestamp.html, null.html), widened to any letter case for booleans, plus YAML 1.2 `0o17` and `1e5`.
    static func yamlType(ofPlain text: String) -> String? {
        if YAMLDocument.isNull(text) { return "null" }
        let lower = text.lowercased()
        if ["y", "n", "yes", "no", "true", "false", "on", "off"].contains(lower) { return "a boolean" }
        if text.wholeMatch(of: #/[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)/#) != nil {
            return "an integer"
        }
        if text.wholeMatch(of: #/[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+/#) != nil { return "a sexagesimal integer" }
        if text.contains(where: \.isNumber) {
            if text.wholeMatch(of: #/[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?/#) != nil
                || text.wholeMatch(of: #/[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+/#) != nil
                || text.wholeMatch(of: #/[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*/#) != nil
            {
                return "a float"
            }
        }
        if ["+.inf", "-.inf", ".inf", ".nan"].contains(lower) { return "a float" }
        if text.wholeMatch(
            of: #/[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?/#
        ) != nil {
            return "a timestamp"
        }
        return nil
    }

    /// `0`, or digits not starting with `0`, optionally after `-`; `nil` otherwise or on overflow.
    static func decimalInteger(_ text: String) -> Int? {
        guard text.wholeMatch(of: #/-?(0|[1-9][0-9]*)/#) != nil, text != "-0" else { return nil }
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
        guard let match = text.wholeMatch(of: #/([0-9]{1,9})(s|m|h|d)/#) else { return nil }
        guard let count = Double(match.1) else { return nil }
        switch match.2 {
        case "s": return count
        case "m": return count * 60
        case "h": return count * 3600
        default: return count * 86_400
        }
    }

    /// `512KiB`, `1MiB`, `1GiB`, `1TiB` or a number of bytes.
    static func size(_ text: String) -> Int? {
        guard let match = text.wholeMatch(of: #/(0|[1-9][0-9]{0,15})(KiB|MiB|GiB|TiB)?/#) else { return nil }
        guard let count = Int(match.1) else { return nil }
        let shift: Int
        switch match.2 {
        case "KiB": shift = 10
        case "MiB": shift = 20
        case "GiB": shift = 30
        case "TiB": shift = 40
        default: shift = 0
        }
        let (result, overflow) = count.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : result
    }

    // MARK: - Contacts

    /// A simple but real check: one `@`, a non-empty local part, a domain with a dot (or `localhost`) and no
    /// empty labels, and no spaces, controls or mailbox punctuation (`<>()[],;:"\`).
    static func isEmail(_ text: String) -> Bool {
        let forbidden = Set("<>()[],;:\"\\")
        guard !text.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F }),
            !text.contains(where: { forbidden.contains($0) })
        else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return false }
        let domain = parts[1].lowercased()
        if domain == "localhost" { return true }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") && !$0.hasSuffix("-") })
        else { return false }
        return true
    }

    /// E.164: `+`, then 8 to 15 digits, the first not 0.
    static func isE164(_ text: String) -> Bool {
        text.wholeMatch(of: #/\+[1-9][0-9]{7,14}/#) != nil
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
        let pattern =
            #/([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?([Zz]|([-+])([0-9]{2}):([0-9]{2}))/#
        guard let m = text.wholeMatch(of: pattern) else { return nil }
        guard let year = Int(m.1), let month = Int(m.2), let day = Int(m.3), let hour = Int(m.4),
            let minute = Int(m.5), let second = Int(m.6)
        else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        var offset = 0
        if let sign = m.9, let oh = m.10.flatMap({ Int($0) }), let om = m.11.flatMap({ Int($0) }) {
            guard (0...23).contains(oh), (0...59).contains(om) else { return nil }
            offset = (oh * 60 + om) * 60 * (sign == "-" ? -1 : 1)
        }
        let fraction = m.7.flatMap { Double("0" + $0) } ?? 0
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
