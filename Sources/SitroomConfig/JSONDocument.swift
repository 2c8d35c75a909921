/// Parses a JSON document (RFC 8259) into a ``DocumentNode`` tree with the line and column of every value, for
/// the spool's JSON payloads (Alertmanager, PagerDuty, Zoom, native JSON events): a JSON decoder rather than the
/// YAML composer, at a fraction of its cost.
///
/// No JSON library here keeps where each value was written or sees a key given twice (Foundation's
/// `JSONSerialization` keeps the last silently), and sitroom's errors name `file:line:col` and refuse duplicate
/// keys; hence this small parser. It is strict where RFC 8259 is: a document that is not JSON (a YAML flow
/// mapping such as `{event_id: e1}`, a trailing comma, a comment) is reported as ``Result/notJSON`` and the
/// caller reads it as YAML instead, so such files get exactly the answers they got before.
enum JSONDocument {
    enum Result {
        /// The document's root value.
        case node(DocumentNode)
        /// A bare `null`.
        case empty
        /// Valid JSON whose objects repeat a key; the diagnostics say where (as the YAML reader would).
        case failed
        /// Not RFC 8259 JSON: read it as YAML.
        case notJSON
    }

    /// Nesting deeper than this is refused as not JSON (the YAML reader then reports it): no payload sitroom
    /// reads is deep, and the parser recurses.
    static let maxDepth = 256

    /// - Parameters:
    ///   - bytes: the whole file, already checked to be valid UTF-8.
    ///   - diag: where duplicate keys are reported.
    /// - Complexity: O(bytes).
    static func parse(_ bytes: [UInt8], diag: Diagnostics) -> Result {
        bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(bytes: buffer)
            do {
                parser.skipSpace()
                let root = try parser.value(depth: 0)
                parser.skipSpace()
                guard parser.index == buffer.count else { return .notJSON }
                if parser.duplicates.isEmpty {
                    if case .scalar(let scalar) = root, scalar.style == .plain, scalar.string == "null" {
                        return .empty
                    }
                    return .node(root)
                }
                for duplicate in parser.duplicates {
                    diag.report(
                        "duplicate key '\(duplicate.key)' (first at line \(duplicate.first.line))",
                        at: duplicate.at
                    )
                }
                return .failed
            } catch {
                return .notJSON
            }
        }
    }

    private struct NotJSON: Error {}

    private struct Duplicate {
        var key: String
        var first: Position
        var at: Position
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        var line = 1
        /// Index of the first byte of the current line (columns count Unicode scalars from it).
        var lineStart = 0
        var duplicates: [Duplicate] = []

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        /// The column at ``columnIndex``, so that positions cost O(bytes) in all (a minified payload is one line).
        var columnIndex = 0
        var column = 1

        /// Where `index` is: 1-based line, and column in Unicode scalars (as libyaml counts).
        mutating func position() -> Position {
            if columnIndex < lineStart {
                columnIndex = lineStart
                column = 1
            }
            while columnIndex < index {
                if bytes[columnIndex] & 0xC0 != 0x80 { column += 1 }
                columnIndex += 1
            }
            return Position(line: line, column: column)
        }

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0D: index += 1
                case 0x0A:
                    index += 1
                    line += 1
                    lineStart = index
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(NotJSON) -> DocumentNode {
            guard index < bytes.count, depth < JSONDocument.maxDepth else { throw NotJSON() }
            let start = position()
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(at: start, depth: depth)
            case UInt8(ascii: "["): return try array(at: start, depth: depth)
            case UInt8(ascii: "\""):
                return .scalar(DocumentScalar(string: try string(), style: .doubleQuoted, tag: "", position: start))
            case UInt8(ascii: "t"): return try literal("true", at: start)
            case UInt8(ascii: "f"): return try literal("false", at: start)
            case UInt8(ascii: "n"): return try literal("null", at: start)
            default: return .scalar(DocumentScalar(string: try number(), style: .plain, tag: "", position: start))
            }
        }

        private mutating func literal(_ word: StaticString, at start: Position) throws(NotJSON) -> DocumentNode {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw NotJSON() }
            for k in 0..<count where bytes[index + k] != word.utf8Start[k] { throw NotJSON() }
            index += count
            return .scalar(DocumentScalar(string: word.description, style: .plain, tag: "", position: start))
        }

        private mutating func object(at start: Position, depth: Int) throws(NotJSON) -> DocumentNode {
            index += 1  // {
            var pairs: [(key: DocumentNode, value: DocumentNode)] = []
            // Keys seen so far, searched linearly while the object is small (most are), hashed once it is not.
            var seen: [(key: String, at: Position)] = []
            var seenIndex: [String: Position]? = nil
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .mapping(pairs, at: start)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw NotJSON() }
                let keyAt = position()
                let key = try string()
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw NotJSON() }
                index += 1
                skipSpace()
                let element = try value(depth: depth + 1)
                let first = seenIndex.map { $0[key] } ?? seen.first(where: { $0.key == key })?.at
                if let first {
                    duplicates.append(Duplicate(key: key, first: first, at: keyAt))
                } else if seenIndex != nil {
                    seenIndex![key] = keyAt
                } else {
                    seen.append((key, keyAt))
                    if seen.count == 16 { seenIndex = Dictionary(seen, uniquingKeysWith: { first, _ in first }) }
                }
                pairs.append(
                    (
                        key: .scalar(DocumentScalar(string: key, style: .doubleQuoted, tag: "", position: keyAt)),
                        value: element
                    )
                )
                skipSpace()
                guard index < bytes.count else { throw NotJSON() }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "}") else { throw NotJSON() }
                index += 1
                return .mapping(pairs, at: start)
            }
        }

        private mutating func array(at start: Position, depth: Int) throws(NotJSON) -> DocumentNode {
            index += 1  // [
            var elements: [DocumentNode] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .sequence(elements, at: start)
            }
            while true {
                skipSpace()
                elements.append(try value(depth: depth + 1))
                skipSpace()
                guard index < bytes.count else { throw NotJSON() }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "]") else { throw NotJSON() }
                index += 1
                return .sequence(elements, at: start)
            }
        }

        /// A number's text as written (`-12`, `1.5e3`): kept as text, like a plain YAML scalar, for the reader
        /// to judge.
        private mutating func number() throws(NotJSON) -> String {
            let begin = index
            func digits(_ parser: inout Parser) -> Int {
                let from = parser.index
                while parser.index < parser.bytes.count, (0x30...0x39).contains(parser.bytes[parser.index]) {
                    parser.index += 1
                }
                return parser.index - from
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw NotJSON() }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if digits(&self) == 0 {
                throw NotJSON()
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits(&self) > 0 else { throw NotJSON() }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digits(&self) > 0 else { throw NotJSON() }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[begin..<index]), as: UTF8.self)
        }

        /// A string's value, escapes decoded; the opening quote is at `index`.
        private mutating func string() throws(NotJSON) -> String {
            index += 1  // "
            let begin = index
            // The common case: no escapes, one copy.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[begin..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw NotJSON() }  // control characters must be escaped
                index += 1
            }
            var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[begin..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw NotJSON() }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            // A high surrogate must be followed by an escaped low one (RFC 8259 §7).
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                                bytes[index + 1] == UInt8(ascii: "u")
                            else { throw NotJSON() }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw NotJSON() }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let decoded = Unicode.Scalar(scalar) else { throw NotJSON() }  // a lone low surrogate
                        utf8.append(contentsOf: String(decoded).utf8)
                    default: throw NotJSON()
                    }
                default:
                    guard byte >= 0x20 else { throw NotJSON() }
                    utf8.append(byte)
                    index += 1
                }
            }
            throw NotJSON()
        }

        private mutating func hex4() throws(NotJSON) -> UInt32 {
            guard index + 4 <= bytes.count else { throw NotJSON() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: throw NotJSON()
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }
    }
}
