import Yams

/// One node of a parsed document, YAML (composed by Yams) or JSON (parsed by ``JSONDocument``), with where it
/// was written. ``YAMLValue`` and ``YAMLMapping`` read it under sitroom's strict rules (SPEC §3), whichever
/// parser made it, so a JSON payload and the same payload written as YAML get the same errors.
///
/// Anchors and aliases have no case: ``YAMLDocument`` refuses a document that has any before it gets here.
enum DocumentNode {
    case scalar(DocumentScalar)
    /// Pairs in the order written; keys are not yet checked for duplicates (``YAMLMapping`` does that).
    case mapping([(key: DocumentNode, value: DocumentNode)], at: Position)
    case sequence([DocumentNode], at: Position)

    /// Where the node starts (1-based line and column, in Unicode scalars as libyaml counts).
    var position: Position {
        switch self {
        case .scalar(let scalar): return scalar.position
        case .mapping(_, let position), .sequence(_, let position): return position
        }
    }

    /// The keys of a mapping as written (empty for other nodes).
    var mappingKeys: [String] {
        guard case .mapping(let pairs, _) = self else { return [] }
        return pairs.compactMap { pair in
            if case .scalar(let scalar) = pair.key { return scalar.string }
            return nil
        }
    }
}

/// A scalar: its text, how it was written, and its explicit tag.
struct DocumentScalar {
    /// How a scalar was written. Only `plain` scalars are subject to YAML's implicit typing (`yes`, `010`,
    /// `null`); JSON strings are `doubleQuoted`, JSON numbers, `true`, `false` and `null` are `plain`.
    enum Style {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    var string: String
    var style: Style
    /// The explicit tag as written (`!`, `tag:yaml.org,2002:str`, ...), or empty when there is none.
    var tag: String
    var position: Position
}

extension DocumentNode {
    /// The tree of a node Yams composed. Tags are taken as Yams holds them (an untagged scalar's is empty).
    /// - Complexity: O(nodes).
    init(_ node: Node) {
        switch node {
        case .scalar(let scalar):
            let style: DocumentScalar.Style
            switch scalar.style {
            case .singleQuoted: style = .singleQuoted
            case .doubleQuoted: style = .doubleQuoted
            case .literal: style = .literal
            case .folded: style = .folded
            case .plain, .any: style = .plain
            }
            self = .scalar(
                DocumentScalar(
                    string: scalar.string,
                    style: style,
                    tag: scalar.tag.rawValue,
                    position: Position(scalar.mark)
                )
            )
        case .mapping(let mapping):
            self = .mapping(
                mapping.map { (key: DocumentNode($0.key), value: DocumentNode($0.value)) },
                at: Position(node.mark)
            )
        case .sequence(let sequence):
            self = .sequence(sequence.map { DocumentNode($0) }, at: Position(node.mark))
        case .alias(let alias):
            // Refused before a tree is read (``YAMLDocument``); kept readable all the same.
            self = .scalar(
                DocumentScalar(
                    string: "*" + alias.anchor.rawValue,
                    style: .plain,
                    tag: "!alias",
                    position: Position(alias.mark)
                )
            )
        }
    }
}
