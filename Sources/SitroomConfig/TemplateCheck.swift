import Mustache

/// Checks notification templates (`etc/templates/*.mustache`) and the meeting `topic`: that they compile with
/// swift-mustache and name only the variables sitroom provides.
public enum TemplateRules {
    /// The notice kinds a template may be written for (`<kind>.<channel>.mustache`).
    public static let kinds = [
        "room-ready", "room-ended", "room-failed", "invitation", "follow-up", "nudge",
        "admin-room-failed", "admin-reauthorize", "admin-waiting", "admin-unreachable",
    ]
    /// The channels a template may be written for.
    public static let channels = ["email", "sms", "chat"]

    /// The variables templates may use: top-level object → its fields.
    public static let variables: [String: [String]] = [
        "incident": ["id", "title", "severity", "team", "stage"],
        "room": [
            "id", "state", "reason", "advice", "note", "join_url", "meeting_id", "passcode", "host", "integration",
            "closed_by_operator",
        ],
        "person": ["name", "email", "phone", "role"],
        "integration": ["name"],
        "admin": ["name", "email"],
    ]

    static let rootList = ["incident", "room", "person", "integration", "admin"]
}

enum TemplateCheck {
    /// Compiles `text` and checks its tags. Problems are reported at their position in the file when `base`
    /// is 1:1 (a template file), else at `base` (a YAML string such as `meeting.topic`); `prefix` starts each
    /// message (e.g. `meeting.topic: `).
    static func check(
        _ text: String,
        prefix: String = "",
        base: Position = .start,
        roots: [String] = TemplateRules.rootList,
        diag: Diagnostics
    ) {
        // Inside a YAML string, positions within the text do not map to the file: use the string's own.
        func place(_ position: Position) -> Position { base == .start ? position : base }
        do {
            _ = try MustacheTemplate(string: text)
        } catch let error as MustacheTemplate.ParserError {
            let position = Position(line: error.context.lineNumber, column: error.context.columnNumber)
            diag.report("\(prefix)template does not compile: \(describe(error.error))", at: place(position))
            return
        } catch {
            diag.report("\(prefix)template does not compile: \(error)", at: base)
            return
        }
        for problem in tagProblems(text, roots: roots) {
            diag.report(prefix + problem.message, at: place(problem.position))
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? MustacheTemplate.Error {
            switch error {
            case .sectionCloseNameIncorrect: return "a section is closed with a different name than it was opened"
            case .unfinishedName: return "unfinished tag"
            case .expectedSectionEnd: return "a section is never closed"
            case .invalidSetDelimiter: return "invalid set-delimiter tag"
            default: return "\(error)"
            }
        }
        let text = "\(error)"
        return text == "overflow" ? "unexpected end of template (unclosed tag or section)" : text
    }

    struct Problem {
        var message: String
        var position: Position
    }

    /// Scans `{{...}}` tags (a simple scan: the default delimiters only) and checks the names they use.
    static func tagProblems(_ text: String, roots: [String] = TemplateRules.rootList) -> [Problem] {
        var problems: [Problem] = []
        let scalars = Array(text.unicodeScalars)
        var sections: [String] = []
        /// The sections that set a context (`{{#x}}`), innermost last; an inverted one (`{{^x}}`) renders only when
        /// its value is absent and sets none, so `.` and bare names inside it mean what they mean outside it.
        var contexts: [String] = []
        var inverted: [Bool] = []
        var line = 1
        var column = 1
        var index = 0

        func advance(to end: Int) {
            while index < end {
                if scalars[index] == "\n" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
                index += 1
            }
        }

        while index < scalars.count {
            guard scalars[index] == "{", index + 1 < scalars.count, scalars[index + 1] == "{" else {
                advance(to: index + 1)
                continue
            }
            let position = Position(line: line, column: column)
            let triple = index + 2 < scalars.count && scalars[index + 2] == "{"
            let contentStart = index + (triple ? 3 : 2)
            let closer: [Unicode.Scalar] = triple ? ["}", "}", "}"] : ["}", "}"]
            var end = contentStart
            while end + closer.count <= scalars.count, Array(scalars[end..<end + closer.count]) != closer { end += 1 }
            guard end + closer.count <= scalars.count else {
                problems.append(Problem(message: "unclosed tag", position: position))
                break
            }
            var content = String(String.UnicodeScalarView(scalars[contentStart..<end]))
            advance(to: end + closer.count)
            content = content.trimmingWhitespace()
            guard let sigil = content.first else {
                problems.append(Problem(message: "empty tag", position: position))
                continue
            }
            var name = content
            switch sigil {
            case "!":
                continue
            case "=":
                problems.append(Problem(message: "set-delimiter tags are not supported", position: position))
                continue
            case ">", "<", "$":
                problems.append(
                    Problem(message: "partials and blocks are not supported ('\(content)')", position: position)
                )
                continue
            case "#", "^", "/", "&":
                name = String(content.dropFirst()).trimmingWhitespace()
            default:
                break
            }
            if !triple && sigil == "{" {
                name = String(content.dropFirst()).trimmingWhitespace()
            }
            // Transforms: `uppercased(incident.title)` or `first(x)`: check the innermost argument.
            while let open = name.firstIndex(of: "("), name.hasSuffix(")") {
                name = String(name[name.index(after: open)..<name.index(before: name.endIndex)]).trimmingWhitespace()
            }
            if sigil == "/" {
                if inverted.popLast() == false { contexts.removeLast() }
                if let top = sections.popLast() {
                    if top != name {
                        problems.append(
                            Problem(message: "section '\(top)' is closed by '\(name)'", position: position)
                        )
                    }
                }
                continue
            }
            let renders = sigil != "#" && sigil != "^"
            if let problem = nameProblem(name, renders: renders, sections: contexts, roots: roots) {
                problems.append(Problem(message: problem, position: position))
            }
            if sigil == "#" || sigil == "^" {
                sections.append(name)
                inverted.append(sigil == "^")
                if sigil == "#" { contexts.append(name) }
            }
        }
        return problems
    }

    /// Why `name` is not a variable templates may use, or `nil`. `renders`: the tag prints the value (`{{x}}`,
    /// `{{{x}}}`, `{{&x}}`), not a section: an object printed whole would show its Swift type's name.
    private static func nameProblem(
        _ name: String,
        renders: Bool,
        sections: [String],
        roots rootList: [String]
    ) -> String? {
        if name == "." {
            // `{{.}}` prints the innermost section's value: fine inside `{{#room.join_url}}`, not at the top or
            // inside an object's section.
            guard renders, sections.last.map({ rootList.contains($0) }) ?? true else { return nil }
            return "'.' outside a field's section would print a whole object: name a field (e.g. incident.title)"
        }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let roots = rootList.joined(separator: ", ")
        if rootList.contains(parts[0]), let fields = TemplateRules.variables[parts[0]] {
            if parts.count == 1 {
                guard renders else { return nil }
                return
                    "'\(name)' is an object, not a value: name one of its fields (\(fields.map { "\(name).\($0)" }.joined(separator: ", ")))"
            }
            if parts.count == 2, fields.contains(parts[1]) { return nil }
            return "unknown variable '\(name)' (\(parts[0]) has \(fields.joined(separator: ", ")))"
        }
        // Inside `{{#incident}}...{{/incident}}` the object's fields may be named bare.
        if parts.count == 1 {
            for section in sections.reversed() where rootList.contains(section) {
                if let fields = TemplateRules.variables[section], fields.contains(name) { return nil }
            }
        }
        return "unknown variable '\(name)' (expected \(roots), e.g. incident.title)"
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
