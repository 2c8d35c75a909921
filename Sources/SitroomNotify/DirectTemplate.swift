import Mustache

/// A notice template compiled by swift-mustache and rendered here, without the library's lookups: for each name
/// and each object on the context stack swift-mustache tries a handful of dynamic casts (about 24 k instructions a
/// `{{a.b}}`, a fifth of an incident's CPU). The values a notice template sees are few and known (``TemplateScope``:
/// objects of text fields), so their lookups are plain calls here.
///
/// swift-mustache stays the parser and the reference: the tokens are the ones it made (read from the compiled
/// template by reflection), and whatever is outside the small part of Mustache rendered here — partials, blocks,
/// transforms, lambdas, a second content-type pragma, or a value that is an object rather than text — leaves the
/// template (``init(_:)`` returns `nil`) or the one render (``render(_:)`` returns `nil`) to swift-mustache, which
/// then renders exactly as before. Tests render every bundled template and a seeded corpus both ways.
struct DirectTemplate: Sendable {
    /// Where a name is looked up (swift-mustache's `getChild`).
    enum Path: Equatable, Sendable {
        /// `.`: the object on top of the stack.
        case top
        /// `.a.b`: from the object on top of the stack only.
        case fromTop([String])
        /// `a.b`: the first name from the top of the stack down, until an object has it; the rest from there.
        case inStack([String])

        init(_ name: String) {
            let names = name.split(separator: ".").map(String.init)
            if name == "." {
                self = .top
            } else if name.first == "." {
                self = .fromTop(names)
            } else {
                self = .inStack(names)
            }
        }
    }

    indirect enum Part: Sendable {
        case text(String)
        case value(Path, escaped: Bool)
        case section(Path, [Part], inverted: Bool)
    }

    private let parts: [Part]
    private let contentType: any MustacheContentType

    /// The template's parts, or `nil` when it holds anything rendered only by swift-mustache. The template must
    /// start with its content-type pragma (``NoticeTemplates`` puts one first).
    init?(_ template: MustacheTemplate) {
        guard let tokens = Self.tokens(of: template),
            case ("contentType", let value)? = tokens.first,
            let contentType = value as? any MustacheContentType,
            let parts = Self.parts(tokens.dropFirst())
        else { return nil }
        self.parts = parts
        self.contentType = contentType
    }

    /// What swift-mustache renders for `scope`, or `nil` when a value named is an object (which the library renders
    /// as its type's name): render that with swift-mustache.
    func render(_ scope: TemplateScope) -> String? {
        var out = ""
        var stack: [Entry] = [.scope(scope)]
        return render(parts, &stack, into: &out) ? out : nil
    }

    // MARK: Reading swift-mustache's tokens

    /// The compiled template's tokens as (case name, payload), in order.
    private static func tokens(of template: MustacheTemplate) -> [(String, Any)]? {
        guard let tokens = Mirror(reflecting: template).children.first(where: { $0.label == "tokens" })?.value,
            let list = tokens as? [Any]
        else { return nil }
        var result: [(String, Any)] = []
        for token in list {
            let mirror = Mirror(reflecting: token)
            guard mirror.displayStyle == .enum, let only = mirror.children.first, let label = only.label else {
                return nil
            }
            result.append((label, only.value))
        }
        return result
    }

    /// A token's labelled payload fields (`name`, `transforms`, `template`).
    private static func fields(_ payload: Any) -> [String: Any] {
        var fields: [String: Any] = [:]
        for child in Mirror(reflecting: payload).children {
            if let label = child.label { fields[label] = child.value }
        }
        return fields
    }

    private static func parts(_ tokens: ArraySlice<(String, Any)>) -> [Part]? {
        var parts: [Part] = []
        for (kind, payload) in tokens {
            switch kind {
            case "text":
                guard let text = payload as? String else { return nil }
                parts.append(.text(text))
            case "variable", "unescapedVariable":
                let fields = fields(payload)
                guard let name = fields["name"] as? String, (fields["transforms"] as? [String])?.isEmpty == true
                else { return nil }
                parts.append(.value(Path(name), escaped: kind == "variable"))
            case "section", "invertedSection":
                let fields = fields(payload)
                guard let name = fields["name"] as? String, (fields["transforms"] as? [String])?.isEmpty == true,
                    let inner = fields["template"] as? MustacheTemplate,
                    let innerTokens = Self.tokens(of: inner),
                    let innerParts = Self.parts(innerTokens[...])
                else { return nil }
                parts.append(.section(Path(name), innerParts, inverted: kind == "invertedSection"))
            default:
                // Partials, blocks, a content type changed midway: swift-mustache's to render.
                return nil
            }
        }
        return parts
    }

    // MARK: Rendering

    /// An object on the context stack.
    private enum Entry {
        case scope(TemplateScope)
        case object(TemplateScope.Fields)
        case text(String)

        /// The entry's own value named `name` (a text has none: swift-mustache finds no child in a `String`'s
        /// mirror).
        func child(_ name: String) -> Entry? {
            switch self {
            case .scope(let scope): return scope.object(named: name).map(Entry.object)
            case .object(let fields): return fields.text(named: name).map(Entry.text)
            case .text: return nil
            }
        }
    }

    private func lookUp(_ path: Path, _ stack: [Entry]) -> Entry? {
        switch path {
        case .top:
            return stack.last
        case .fromTop(let names):
            return names.reduce(stack.last) { entry, name in entry?.child(name) }
        case .inStack(let names):
            guard let first = names.first else { return stack.last }
            for entry in stack.reversed() {
                if let found = entry.child(first) {
                    return names.dropFirst().reduce(found) { entry, name in entry?.child(name) }
                }
            }
            return nil
        }
    }

    /// Appends `parts` rendered over `stack` to `out`; false when a value is not text.
    private func render(_ parts: [Part], _ stack: inout [Entry], into out: inout String) -> Bool {
        for part in parts {
            switch part {
            case .text(let text):
                out += text
            case .value(let path, let escaped):
                switch lookUp(path, stack) {
                case nil: break
                case .text(let text)?: out += escaped ? contentType.escapeText(text) : text
                case .object?, .scope?: return false
                }
            case .section(let path, let inner, let inverted):
                let value = lookUp(path, stack)
                if inverted {
                    if value == nil, !render(inner, &stack, into: &out) { return false }
                } else if let value {
                    stack.append(value)
                    defer { stack.removeLast() }
                    if !render(inner, &stack, into: &out) { return false }
                }
            }
        }
        return true
    }
}
