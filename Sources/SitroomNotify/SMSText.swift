/// SMS length rules (3GPP TS 23.038 alphabets, TS 23.040 concatenation): how many segments a text takes, and
/// shortening a text to fit without ever cutting a link.
public enum SMSText {
    /// How a text is encoded on the air.
    public enum Encoding: String, Sendable {
        /// The GSM 7-bit default alphabet: 160 septets in one segment, 153 per segment when concatenated.
        case gsm7
        /// UCS-2 (UTF-16 code units): 70 in one segment, 67 per segment when concatenated.
        case ucs2
    }

    /// The GSM 7-bit default alphabet (TS 23.038 §6.2.1), one septet each.
    static let gsmBasic: Set<Character> = Set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
            + "¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    /// The default alphabet extension table (TS 23.038 §6.2.1.1): an escape plus one septet each.
    static let gsmExtension: Set<Character> = Set("^{}\\[~]|€\u{0C}")

    /// The encoding a gateway will use for `text`: GSM 7-bit when every character is in the default alphabet
    /// or its extension, else UCS-2.
    public static func encoding(of text: String) -> Encoding {
        if let septets = asciiSeptets(text) { return septets.gsm ? .gsm7 : .ucs2 }
        return text.allSatisfy { gsmBasic.contains($0) || gsmExtension.contains($0) } ? .gsm7 : .ucs2
    }

    /// For a text of ASCII without carriage returns (each byte one `Character` then), its length in septets
    /// (extension characters count 2) and whether every byte is in the alphabet, counted over the bytes; `nil`
    /// for any other text (counted by `Character`, since `\r\n` is one).
    private static func asciiSeptets(_ text: String) -> (count: Int, gsm: Bool)? {
        var count = 0
        var gsm = true
        for byte in text.utf8 {
            guard byte < 0x80, byte != 0x0D else { return nil }
            let septets = asciiSeptetTable[Int(byte)]
            count += septets == 2 ? 2 : 1
            if septets == 0 { gsm = false }
        }
        return (count, gsm)
    }

    /// Each ASCII byte's septets: 1 in the default alphabet, 2 in its extension, 0 in neither.
    private static let asciiSeptetTable: [UInt8] = (0..<128).map { byte in
        let character = Character(Unicode.Scalar(UInt8(byte)))
        return gsmBasic.contains(character) ? 1 : gsmExtension.contains(character) ? 2 : 0
    }

    /// The length of `text` in its encoding's units: septets (extension characters count 2) or UTF-16 code units.
    public static func units(_ text: String, _ encoding: Encoding) -> Int {
        switch encoding {
        case .gsm7:
            if let septets = asciiSeptets(text) { return septets.count }
            return text.reduce(0) { $0 + (gsmExtension.contains($1) ? 2 : 1) }
        case .ucs2: return text.utf16.count
        }
    }

    /// The number of segments `text` takes (at least 1).
    public static func segments(_ text: String) -> Int {
        let encoding = encoding(of: text)
        let length = units(text, encoding)
        let (single, multi) = encoding == .gsm7 ? (160, 153) : (70, 67)
        if length <= single { return 1 }
        return (length + multi - 1) / multi
    }

    /// The most units `segments` segments hold in `encoding`.
    public static func capacity(segments: Int, _ encoding: Encoding) -> Int {
        let (single, multi) = encoding == .gsm7 ? (160, 153) : (70, 67)
        return segments <= 1 ? single : segments * multi
    }

    /// Shortens `text` to at most `maxSegments` segments. Links (`http://`, `https://`) are never cut: the
    /// longest run of other text is shortened first (ending in `...`), then the next longest, until it fits. A
    /// text whose links alone do not fit keeps its links and little else.
    /// - Parameters:
    ///   - text: The rendered SMS text.
    ///   - maxSegments: The most segments allowed (at least 1).
    /// - Returns: The text, shortened when needed.
    /// - Complexity: O(n²) in the length of the text (SMS texts are short).
    public static func fit(_ text: String, maxSegments: Int) -> String {
        let encoding = encoding(of: text)
        let capacity = capacity(segments: max(1, maxSegments), encoding)
        var runs = Links.split(text)
        func total() -> Int { runs.reduce(0) { $0 + units($1.text, encoding) } }
        var done = Set<Int>()
        while total() > capacity {
            let open = runs.indices.filter { !runs[$0].isLink && !done.contains($0) }
            guard let index = open.max(by: { units(runs[$0].text, encoding) < units(runs[$1].text, encoding) }) else {
                break
            }
            done.insert(index)
            let run = runs[index].text
            let target = units(run, encoding) - (total() - capacity)
            // A space that separates the run from a neighbouring link stays, so the link stays whole and apart.
            let spaceBefore = index > 0 && run.first?.isWhitespace == true
            let spaceAfter = index + 1 < runs.count && run.last?.isWhitespace == true
            let prefix = spaceBefore ? " " : ""
            let suffix = "..." + (spaceAfter ? " " : "")
            var core = Substring(run)
            if spaceBefore { core = core.drop(while: { $0.isWhitespace }) }
            if spaceAfter { core = Substring(String(core.reversed().drop(while: { $0.isWhitespace }).reversed())) }
            while !core.isEmpty && units(prefix + core + suffix, encoding) > target { core.removeLast() }
            while core.last?.isWhitespace == true { core.removeLast() }
            runs[index].text = core.isEmpty ? (spaceBefore || spaceAfter ? " " : "") : prefix + core + suffix
        }
        return runs.map(\.text).joined()
    }
}
