import Yams

/// Turns the bytes of one file into Yams' composed `Node` tree under sitroom's strict rules (SPEC §3):
/// at most 1 MiB, valid UTF-8, one document, no duplicate keys, no anchors or aliases.
///
/// Yams expands aliases silently and keeps a node's anchor only as a weak reference that lives as long as
/// its `Parser`, so the tree is walked for anchors while the parser is still alive.
enum YAMLDocument {
    enum Result {
        /// The document's root node.
        case node(DocumentNode)
        /// No content (empty, only comments, or a bare `null`).
        case empty
        /// Unusable; the reasons are in the diagnostics.
        case failed
    }

    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - limit: the largest accepted size in bytes (1 MiB by default).
    ///   - diag: where problems go.
    static func compose(_ bytes: [UInt8], limit: Int = FileReading.maxFileSize, diag: Diagnostics) -> Result {
        compose(bytes, limit: limit, diag: diag, readingJSONAsJSON: readsJSONAsJSON)
    }

    /// Whether JSON documents go to ``JSONDocument`` (true but in the tests that compare both parsers' errors).
    @TaskLocal static var readsJSONAsJSON = true

    private static func compose(_ bytes: [UInt8], limit: Int, diag: Diagnostics, readingJSONAsJSON: Bool) -> Result {
        guard bytes.count <= limit else {
            diag.report(
                "file is \(bytes.count) bytes, larger than the limit of \(FileReading.describeSize(limit))",
                at: .unknown
            )
            return .failed
        }
        if let bad = firstInvalidUTF8(bytes) {
            diag.report("invalid UTF-8 (byte 0x\(String(bytes[bad], radix: 16)))", at: position(ofByte: bad, in: bytes))
            return .failed
        }
        var bytes = bytes
        if let first = bytes.first(where: { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }), first == UInt8(ascii: "{") {
            if readingJSONAsJSON {
                // JSON (every JSON payload of the spool is an object) is read by a JSON parser, many times faster than
                // the YAML composer; what is not RFC 8259 JSON (a YAML flow mapping) is read as YAML below.
                switch JSONDocument.parse(bytes, diag: diag) {
                case .node(let node): return .node(node)
                case .empty: return .empty
                case .failed: return .failed
                case .notJSON: break
                }
            }
            // JSON may be indented with tabs, which YAML forbids as indentation; a raw tab cannot occur inside a
            // JSON string, so in a JSON document every tab is whitespace between tokens.
            for index in bytes.indices where bytes[index] == 0x09 { bytes[index] = 0x20 }
        }
        switch YAMLComposer.compose(bytes) {
        case .node(let root):
            if case .scalar(let scalar) = root, scalar.style == .plain, isNull(scalar.string) { return .empty }
            return .node(root)
        case .empty:
            return .empty
        case .declined:
            break  // Yams composes it, and its errors are reported below.
        }
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            // The basic resolver (no implicit types) keeps Yams from matching every scalar against its regular
            // expressions, most of a YAML file's cost: ``YAMLValue`` judges plain scalars itself (``Scalars``), and
            // keys compare as the strings they are, so `1` and `"1"` are the same key, as ``YAMLMapping`` holds.
            let parser = try Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
            guard let root = try parser.singleRoot() else { return .empty }
            // An anchor needs a `&` and an alias a `*`: a text with neither has none, and its tree is not walked for them.
            if bytes.contains(UInt8(ascii: "&")) || bytes.contains(UInt8(ascii: "*")) {
                let clean = withExtendedLifetime(parser) { rejectAnchors(root, text: text, diag: diag) }
                guard clean else { return .failed }
            }
            if case .scalar(let scalar) = root, scalar.style == .plain, isNull(scalar.string) { return .empty }
            return .node(DocumentNode(root))
        } catch let error as YamlError {
            report(error, text: text, diag: diag)
            return .failed
        } catch {
            diag.report("invalid YAML: \(error)", at: .unknown)
            return .failed
        }
    }

    /// Plain scalars that YAML reads as null.
    static func isNull(_ plain: String) -> Bool {
        plain.isEmpty || plain == "~" || plain.lowercased() == "null"
    }

    // MARK: - Anchors and aliases

    /// Reports every anchor (and every `*alias` naming one); returns whether there were none.
    /// An anchored subtree is not descended into, so alias-expanded copies (billion laughs) cost nothing.
    private static func rejectAnchors(_ root: Node, text: String, diag: Diagnostics) -> Bool {
        var names: Set<String> = []
        var stack = [root]
        while let node = stack.popLast() {
            if let anchor = node.anchor {
                names.insert(anchor.rawValue)
                diag.report(
                    "anchors and aliases are not allowed (&\(anchor.rawValue)); write the value out",
                    at: Position(node.mark)
                )
                continue
            }
            switch node {
            case .mapping(let mapping):
                for (key, value) in mapping {
                    stack.append(key)
                    stack.append(value)
                }
            case .sequence(let sequence):
                stack.append(contentsOf: sequence)
            case .alias(let alias):
                names.insert(alias.anchor.rawValue)
                diag.report("anchors and aliases are not allowed (*\(alias.anchor.rawValue))", at: Position(alias.mark))
            case .scalar:
                break
            }
        }
        guard !names.isEmpty else { return true }
        // Yams does not keep where an alias was written; find `*name` in the text.
        for (offset, position) in occurrences(of: names.map { "*" + $0 }, in: text) {
            let name = offset
            diag.report("anchors and aliases are not allowed (\(name))", at: position)
        }
        return false
    }

    /// Where each of `tokens` occurs in `text` as a whole token (not followed by an anchor character).
    private static func occurrences(of tokens: [String], in text: String) -> [(String, Position)] {
        var found: [(String, Position)] = []
        for (lineIndex, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let scalars = Array(line.unicodeScalars)
            for token in tokens {
                let tokenScalars = Array(token.unicodeScalars)
                guard scalars.count >= tokenScalars.count else { continue }
                for start in 0...(scalars.count - tokenScalars.count)
                where Array(scalars[start..<start + tokenScalars.count]) == tokenScalars {
                    let end = start + tokenScalars.count
                    if end < scalars.count, isAnchorCharacter(scalars[end]) { continue }
                    found.append((token, Position(line: lineIndex + 1, column: start + 1)))
                }
            }
        }
        return found
    }

    private static func isAnchorCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_": return true
        default: return false
        }
    }

    // MARK: - Yams errors

    private static func report(_ error: YamlError, text: String, diag: Diagnostics) {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line))" }
            if problem.contains("undefined alias") { message = "anchors and aliases are not allowed (\(problem))" }
            diag.report(message, at: Position(mark))
        case .reader(let problem, let offset, _, _):
            diag.report("invalid YAML: \(problem)", at: offset.map { position(ofCharacter: $0, in: text) } ?? .unknown)
        case .duplicatedKeysInMapping(let duplicates, let context):
            for key in duplicates {
                let first = Position(context.mark)
                let second = secondOccurrence(ofKey: key, after: first, in: text)
                diag.report(
                    "duplicate key '\(key)' (first at line \(first.line))",
                    at: second ?? first
                )
            }
        default:
            diag.report("invalid YAML: \(error)", at: .unknown)
        }
    }

    /// Yams reports a duplicated key at its first occurrence; the one to delete is the later one. Finds the
    /// next place after `first` where `key` (plain or quoted) stands as a key of the same mapping: in a block
    /// mapping, at the same column with only indentation (or `- `) before it; in a flow mapping, after `{` or `,`.
    private static func secondOccurrence(ofKey key: String, after first: Position, in text: String) -> Position? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        guard first.line >= 1, first.line <= lines.count else { return nil }
        let spellings = [key, "\"\(key)\"", "'\(key)'"].map { Array($0.unicodeScalars) }
        func isIndentation(_ scalars: ArraySlice<Unicode.Scalar>) -> Bool {
            scalars.allSatisfy { $0 == " " || $0 == "-" }
        }
        func isKey(_ scalars: [Unicode.Scalar], at column: Int) -> Bool {
            for spelling in spellings where column + spelling.count <= scalars.count {
                guard Array(scalars[column..<column + spelling.count]) == spelling else { continue }
                var after = column + spelling.count
                while after < scalars.count, scalars[after] == " " || scalars[after] == "\t" { after += 1 }
                if after < scalars.count, scalars[after] == ":" { return true }
            }
            return false
        }
        let firstLine = lines[first.line - 1]
        let column = first.column - 1
        guard column >= 0, column <= firstLine.count else { return nil }
        if isIndentation(firstLine[..<column]) {
            for lineIndex in first.line..<lines.count {
                let scalars = lines[lineIndex]
                if column <= scalars.count, isIndentation(scalars[..<column]), isKey(scalars, at: column) {
                    return Position(line: lineIndex + 1, column: column + 1)
                }
            }
            return nil
        }
        for lineIndex in (first.line - 1)..<lines.count {
            let scalars = lines[lineIndex]
            var index = lineIndex == first.line - 1 ? column + 1 : 0
            while index < scalars.count {
                let before: Unicode.Scalar = index == 0 ? " " : scalars[index - 1]
                if [" ", "\t", "{", ","].contains(before), isKey(scalars, at: index) {
                    return Position(line: lineIndex + 1, column: index + 1)
                }
                index += 1
            }
        }
        return nil
    }

    // MARK: - Positions and UTF-8

    static func position(ofByte offset: Int, in bytes: [UInt8]) -> Position {
        var line = 1
        var lineStart = 0
        for index in 0..<offset where bytes[index] == 0x0A {
            line += 1
            lineStart = index + 1
        }
        // Column in scalars: count the lead bytes between the line start and the offset.
        let column = bytes[lineStart..<offset].filter { $0 & 0xC0 != 0x80 }.count + 1
        return Position(line: line, column: column)
    }

    static func position(ofCharacter offset: Int, in text: String) -> Position {
        var line = 1
        var column = 1
        for (index, character) in text.enumerated() {
            if index == offset { break }
            if character == "\n" || character == "\r\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return Position(line: line, column: column)
    }

    /// The offset of the first byte that is not part of well-formed UTF-8, or `nil`.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        // The standard library's validation first (vectorised); the byte-by-byte walk below only to find where
        // a file that is not UTF-8 goes wrong.
        if String(validating: bytes, as: UTF8.self) != nil { return nil }
        return firstInvalidUTF8Offset(bytes)
    }

    private static func firstInvalidUTF8Offset(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0x00...0x7F: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                upper = 0x9F
            case 0xF0:
                length = 4
                lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                upper = 0x8F
            default: return index
            }
            guard index + length <= bytes.count else { return index }
            for k in 1..<length {
                let byte = bytes[index + k]
                let (lo, hi) = k == 1 ? (lower, upper) : (UInt8(0x80), UInt8(0xBF))
                guard byte >= lo && byte <= hi else { return index }
            }
            index += length
        }
        return nil
    }
}

extension Position {
    init(_ mark: Mark?) {
        if let mark {
            self.init(line: mark.line, column: mark.column)
        } else {
            self = .unknown
        }
    }
}
