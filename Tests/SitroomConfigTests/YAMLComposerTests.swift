import Foundation
import Testing
import Yams

@testable import SitroomConfig

/// ``YAMLComposer`` (libyaml's events straight into ``DocumentNode``s) against Yams' composer, the reference:
/// every document it takes must come out as the tree Yams composes, and every document it declines must be one
/// Yams has something to say about (or a tree sitroom then refuses).
@Suite struct YAMLComposerTests {
    /// The repository's own YAML: etc/, the examples, the Prometheus rules.
    private static let repositoryFiles: [String] = {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        var files: [String] = []
        for directory in ["etc", "etc/integrations", "etc/prometheus", "examples"] {
            let path = root.path + "/" + directory
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                files.append(path + "/" + name)
            }
        }
        return files.sorted()
    }()

    /// Documents in the shapes sitroom's files and spool events take, and the corners of YAML's syntax.
    private static let documents: [String] = [
        "event_id: e1\noccurred_at: \"2024-05-01T10:00:00Z\"\nstage: opened\n",
        "incident: { id: INC-1, title: Storm incident 1, severity: critical, team: payments-sre }\n"
            + "participants:\n  - { name: Ada Lovelace, email: ada@example.com, phone: \"+15005550101\", role: commander }\n",
        "a:\n  b:\n    c: [1, 2, {d: e}]\n  f: 'single ''quoted'''\n",
        "text: |\n  line one\n  line two\nfolded: >\n  folded\n  text\n\nkeep: |+\n  kept\n\n",
        "plain: a multi\n  line plain scalar\nempty:\nnull_word: null\ntilde: ~\n",
        "tagged: !!str yes\nbang: ! 010\nint: !!int 7\n\"quoted key\": 1\n'single key': 2\n",
        "- one\n- two: 2\n  three: 3\n- - nested\n  - list\n",
        "---\nexplicit: document\n...\n",
        "unicode: \"caf\\u00e9 \\U0001F600\"\nraw: café ☕\n\"ключ\": значение\n",
        "# only a comment, then\nkey: value # and one after\n",
        "{\"json\": [1, 2.5, true, null, \"x\"], \"nested\": {\"a\": {}}, \"empty\": []}",
        "list: []\nmap: {}\nflow: [a, b, [c, d], {e: f}]\n",
        "windows: line\r\nendings: too\r\n",
        "scalar at the root",
        "null",
        "",
        "# comments only\n",
        "key with spaces: \"value with: colon\"\n\"a:b\": c\nurl: http://x/y?z=1#f\n",
        "- &not-an-anchor-in-a-string \"x\"\n",  // an anchor: declined
    ]

    /// Documents Yams must judge: composed by Yams, not here.
    private static let declined: [String] = [
        "a: &x 1\nb: *x\n",
        "a: *undefined\n",
        "a: 1\na: 2\n",
        "m: { k: 1, k: 2 }\n",
        "a: 1\n\"a\": 2\n",
        "? [complex, key]\n: value\n",
        "a: [unclosed\n",
        "a: 1\n---\nb: 2\n",
        "a:\tb\n  c: d\n",
        "- &anchor\n  x: 1\n",
        // A scalar starting with U+FEFF, which Yams drops (and then finds `a` twice).
        "\"\\uFEFFa\": 1\na: 2\n",
        "a: \u{FEFF}x\n",
    ]

    /// A tree as text: every node's kind, style, tag and position, scalars escaped to ASCII (keys without their
    /// tags, which Yams resolves when it checks for duplicates and ``YAMLValue`` never reads).
    static func describe(_ node: DocumentNode, isKey: Bool = false) -> String {
        switch node {
        case .scalar(let scalar):
            let tag = isKey ? "" : " !\(scalar.tag)"
            let text = scalar.string.unicodeScalars.map { $0.escaped(asASCII: true) }.joined()
            return "\(scalar.position.line):\(scalar.position.column) \(scalar.style)\(tag) \(text.debugDescription)"
        case .mapping(let pairs, let position):
            let inner = pairs.map { describe($0.key, isKey: true) + " => " + describe($0.value) }
            return "\(position.line):\(position.column) {" + inner.joined(separator: ", ") + "}"
        case .sequence(let elements, let position):
            return "\(position.line):\(position.column) [" + elements.map { describe($0) }.joined(separator: ", ") + "]"
        }
    }

    /// The tree Yams composes (as ``YAMLDocument`` did for every document before ``YAMLComposer``), or `nil`
    /// when it composes none.
    static func yamsTree(_ text: String) throws -> DocumentNode? {
        let parser = try Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
        return try parser.singleRoot().map(DocumentNode.init)
    }

    private static func check(_ text: String, source: String) throws {
        switch YAMLComposer.compose(Array(text.utf8)) {
        case .node(let node):
            let reference = try #require(try yamsTree(text), "\(source): Yams composes no document")
            #expect(describe(node) == describe(reference), "\(source)")
        case .empty:
            #expect(try yamsTree(text) == nil, "\(source): Yams composes a document")
        case .declined:
            Issue.record("\(source): declined")
        }
    }

    @Test func composesTheRepositoryFilesAsYamsDoes() throws {
        #expect(Self.repositoryFiles.count >= 8)
        for path in Self.repositoryFiles {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try Self.check(text, source: path)
        }
    }

    @Test func composesEveryShapeAsYamsDoes() throws {
        for (index, text) in Self.documents.dropLast().enumerated() {
            try Self.check(text, source: "document \(index)")
        }
    }

    /// Spool events as the storm benchmark writes them, with every value shape an event can hold.
    @Test func composesGeneratedEventsAsYamsDoes() throws {
        var generator = SystemRandomNumberGenerator()
        let values = [
            "plain", "\"double \\\"quoted\\\"\"", "'single'", "2024-05-01T10:00:00Z", "10", "yes", "~", "\"\"",
        ]
        for serial in 0..<200 {
            var text = "event_id: storm-\(serial)\nstage: \(serial % 2 == 0 ? "opened" : "situation_room")\n"
            text += "incident: { id: INC-\(serial), title: \(values.randomElement(using: &generator)!) }\n"
            text += "participants:\n"
            for person in 0..<(serial % 4) {
                text += "  - name: \(values.randomElement(using: &generator)!)\n    role: r\(person)\n"
            }
            try Self.check(text, source: text)
        }
    }

    @Test func declinesWhatYamsMustJudge() {
        for text in Self.declined + [Self.documents.last!] {
            guard case .declined = YAMLComposer.compose(Array(text.utf8)) else {
                Issue.record("taken: \(text.debugDescription)")
                continue
            }
        }
    }

    /// Nesting is limited by libyaml itself (`yaml_set_max_nest_level`, 1,000 levels by default): a deeper
    /// document is declined here, and Yams reports libyaml's error.
    @Test func leavesDeepNestingToLibyaml() {
        let deep = String(repeating: "[", count: 300_000) + String(repeating: "]", count: 300_000)
        guard case .declined = YAMLComposer.compose(Array(deep.utf8)) else {
            Issue.record("deep nesting taken")
            return
        }
        let diag = Diagnostics(file: "deep.yaml")
        guard case .failed = YAMLDocument.compose(Array(deep.utf8), diag: diag) else {
            Issue.record("deep nesting accepted")
            return
        }
        #expect(diag.errors.first?.description.contains("invalid YAML: Maximum nesting level reached") == true)
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        guard case .node = YAMLComposer.compose(Array(fine.utf8)) else {
            Issue.record("200 levels refused")
            return
        }
    }
}

/// ``YAMLMapping``'s bookkeeping past its first 64 keys (one bit per key up to 64, then an array).
@Suite struct YAMLMappingBookkeeping {
    @Test func unknownKeysAreFoundAmongManyKeys() throws {
        let text = (0..<70).map { "k\($0): v\($0)\n" }.joined()
        let diag = Diagnostics(file: "big.yaml")
        guard case .node(let root) = YAMLDocument.compose(Array(text.utf8), diag: diag) else {
            Issue.record("not composed")
            return
        }
        let mapping = try #require(YAMLMapping(YAMLValue(node: root, path: "", diag: diag), at: root.position))
        for k in 0..<69 where k != 3 && k != 66 {
            #expect(mapping.string("k\(k)") == "v\(k)")
        }
        mapping.finish()
        let messages = diag.errors.map(\.description)
        #expect(messages.count == 3)
        #expect(messages[0].hasPrefix("big.yaml:4:1: k3: unknown key (expected k0, k1, k2, k4,"))
        #expect(messages[1].hasPrefix("big.yaml:67:1: k66: unknown key"))
        #expect(messages[2].hasPrefix("big.yaml:70:1: k69: unknown key"))
    }
}
