// libyaml, the C parser Yams is built on (Yams vendors it as its `CYaml` module and links it into every
// program that uses Yams): its event API, read directly here.
import CYaml

/// Composes a YAML document into ``DocumentNode``s straight from libyaml's parser events, for the documents
/// that need nothing more: no anchors or aliases, no duplicate keys, no syntax error (libyaml's own limit of
/// 1,000 levels of nesting included).
///
/// Yams' composer builds a tree of its own `Node`s first (an object per parser event, a tag object per node,
/// every mapping's keys hashed into a dictionary to look for duplicates), which ``DocumentNode`` then copies:
/// about two thirds of what reading a small native spool event cost (docs/performance.md). A document this
/// composer does not take (``Outcome/declined``) goes to Yams as before, whose errors ``YAMLDocument``
/// reports, so the messages a user sees do not depend on which composer read the file.
///
/// Events and their fields as libyaml 0.2 defines them (`yaml.h`: `yaml_parser_parse`, `yaml_event_t`);
/// marks are 0-based there and 1-based in a ``Position``, columns counted in Unicode scalars.
enum YAMLComposer {
    enum Outcome {
        /// The document's root.
        case node(DocumentNode)
        /// No document at all (empty, or only comments).
        case empty
        /// Something Yams must judge (a syntax error, an anchor or alias, a duplicate key, more than one
        /// document, a scalar starting with a byte-order mark): compose the document with Yams instead.
        case declined
    }

    /// YAML's tag for strings, which libyaml leaves implicit for quoted scalars (Yams names it, and so here).
    private static let stringTag = "tag:yaml.org,2002:str"

    /// Composes `bytes` (well-formed UTF-8, already checked).
    /// - Complexity: O(bytes); a mapping's keys are compared pairwise while it has few, hashed when it has many.
    static func compose(_ bytes: [UInt8]) -> Outcome {
        // No bytes, no document (and libyaml wants a non-null input pointer, which an empty array need not have).
        guard !bytes.isEmpty else { return .empty }
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { return .declined }
        defer { yaml_parser_delete(parser) }
        return bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
            var composer = Composer(parser: parser)
            return composer.run()
        }
    }

    /// An open mapping or sequence: its start and what it holds so far.
    private struct Open {
        var isMapping: Bool
        var position: Position
        var elements: [DocumentNode] = []
        /// A mapping's keys and values alternate in `elements`; its scalar keys, for the duplicate check.
        var keys: [String] = []
        var keyIndex: Set<String>? = nil
    }

    private struct Composer {
        let parser: UnsafeMutablePointer<yaml_parser_t>
        var event = yaml_event_t()
        var stack: [Open] = []
        var root: DocumentNode? = nil

        init(parser: UnsafeMutablePointer<yaml_parser_t>) {
            self.parser = parser
        }

        /// The next event into `event` (the previous one deleted); `false` on a parser error.
        private mutating func next() -> Bool {
            yaml_event_delete(&event)
            return yaml_parser_parse(parser, &event) == 1
        }

        mutating func run() -> Outcome {
            defer { yaml_event_delete(&event) }
            // STREAM-START, then DOCUMENT-START or STREAM-END.
            guard next(), event.type == YAML_STREAM_START_EVENT, next() else { return .declined }
            if event.type == YAML_STREAM_END_EVENT { return .empty }
            guard event.type == YAML_DOCUMENT_START_EVENT else { return .declined }
            while root == nil {
                guard next() else { return .declined }
                let position = Position(line: event.start_mark.line + 1, column: event.start_mark.column + 1)
                switch event.type {
                case YAML_SCALAR_EVENT:
                    let scalar = event.data.scalar
                    guard scalar.anchor == nil else { return .declined }
                    // A scalar that starts with U+FEFF (EF BB BF): Yams builds its text with Foundation's
                    // `String(bytes:encoding:)`, which drops one leading byte-order mark; Yams composes such a document
                    // so that its text and its duplicate keys come out as before.
                    if scalar.length >= 3, scalar.value[0] == 0xEF, scalar.value[1] == 0xBB, scalar.value[2] == 0xBF {
                        return .declined
                    }
                    let string = String(
                        decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length),
                        as: UTF8.self
                    )
                    let tag: String
                    if scalar.quoted_implicit == 1 {
                        tag = YAMLComposer.stringTag
                    } else if let written = scalar.tag {
                        tag = String(cString: written)
                    } else {
                        tag = ""
                    }
                    let style: DocumentScalar.Style
                    switch scalar.style {
                    case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                    case YAML_LITERAL_SCALAR_STYLE: style = .literal
                    case YAML_FOLDED_SCALAR_STYLE: style = .folded
                    default: style = .plain
                    }
                    let node = DocumentNode.scalar(
                        DocumentScalar(string: string, style: style, tag: tag, position: position)
                    )
                    guard add(node, keyText: string) else { return .declined }
                case YAML_MAPPING_START_EVENT, YAML_SEQUENCE_START_EVENT:
                    let isMapping = event.type == YAML_MAPPING_START_EVENT
                    let anchor = isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor
                    guard anchor == nil else { return .declined }
                    stack.append(Open(isMapping: isMapping, position: position))
                case YAML_MAPPING_END_EVENT:
                    let open = stack.removeLast()
                    var pairs: [(key: DocumentNode, value: DocumentNode)] = []
                    pairs.reserveCapacity(open.elements.count / 2)
                    var index = 0
                    while index + 1 < open.elements.count {
                        pairs.append((key: open.elements[index], value: open.elements[index + 1]))
                        index += 2
                    }
                    guard add(.mapping(pairs, at: open.position), keyText: nil) else { return .declined }
                case YAML_SEQUENCE_END_EVENT:
                    let open = stack.removeLast()
                    guard add(.sequence(open.elements, at: open.position), keyText: nil) else { return .declined }
                default:
                    // An alias, or an event out of place.
                    return .declined
                }
            }
            // DOCUMENT-END, then STREAM-END: a second document is Yams' to report.
            guard next(), event.type == YAML_DOCUMENT_END_EVENT, next(), event.type == YAML_STREAM_END_EVENT else {
                return .declined
            }
            return .node(root!)
        }

        /// Adds a finished node to the innermost open collection (or makes it the root). A scalar key of a
        /// mapping is remembered by its text; `false` when the same text is already a key there, or a key is
        /// not a scalar (both Yams' to judge: it compares keys by text and resolved tag).
        private mutating func add(_ node: DocumentNode, keyText: String?) -> Bool {
            guard !stack.isEmpty else {
                root = node
                return true
            }
            let last = stack.count - 1
            if stack[last].isMapping && stack[last].elements.count % 2 == 0 {
                guard let keyText else { return false }
                if stack[last].keyIndex != nil {
                    guard stack[last].keyIndex!.insert(keyText).inserted else { return false }
                } else {
                    guard !stack[last].keys.contains(keyText) else { return false }
                    stack[last].keys.append(keyText)
                    if stack[last].keys.count == 16 { stack[last].keyIndex = Set(stack[last].keys) }
                }
            }
            stack[last].elements.append(node)
            return true
        }
    }
}
