import SitroomCore

/// One value in a composed YAML tree with the key path that leads to it (`notify.admins[0].email`), read under
/// sitroom's strict scalar rules (SPEC §3). Every failed read reports `path: message` at the value's line and
/// column and returns `nil`.
struct YAMLValue {
    let node: DocumentNode
    /// The parent's key path, and this value's key or index in it: the path is spelled out only when a message
    /// or a child needs it (most values are scalars read without complaint, in payloads read by the thousand).
    private let parentPath: String
    private let step: Step
    let diag: Diagnostics
    /// Mapping keys: Yams resolves (and so overwrites) the tags of keys when it checks for duplicates, so a
    /// key's tag says nothing about how it was written; keys are judged by their style alone.
    var isKey = false

    private enum Step {
        case none
        case key(String)
        case index(Int)
    }

    init(node: DocumentNode, path: String, diag: Diagnostics, isKey: Bool = false) {
        self.node = node
        self.parentPath = path
        self.step = .none
        self.diag = diag
        self.isKey = isKey
    }

    /// The value under `key` of a mapping whose path is `parent`.
    init(node: DocumentNode, parent: String, key: String, diag: Diagnostics, isKey: Bool = false) {
        self.node = node
        self.parentPath = parent
        self.step = .key(key)
        self.diag = diag
        self.isKey = isKey
    }

    private init(node: DocumentNode, parent: String, index: Int, diag: Diagnostics) {
        self.node = node
        self.parentPath = parent
        self.step = .index(index)
        self.diag = diag
    }

    /// The key path, e.g. `hosts[1].id`; empty for the root.
    var path: String {
        switch step {
        case .none: return parentPath
        case .key(let key): return parentPath.isEmpty ? key : "\(parentPath).\(key)"
        case .index(let index): return "\(parentPath)[\(index)]"
        }
    }

    var position: Position { node.position }

    /// Whether the scalar was explicitly made a string (`!!str yes`, `! yes`) though written plain.
    private func isExplicitString(_ scalar: DocumentScalar) -> Bool {
        !isKey && (scalar.tag == YAMLValue.stringTag || scalar.tag == "!")
    }

    /// YAML's tag for strings (`!!str`).
    static let stringTag = "tag:yaml.org,2002:str"

    func fail(_ message: String) {
        diag.report(path.isEmpty ? message : "\(path): \(message)", at: position)
    }

    /// Whether this is a plain `null`, `~` or empty scalar.
    var isNull: Bool {
        if !isKey, case .scalar(let scalar) = node, scalar.style == .plain, scalar.tag.isEmpty {
            return YAMLDocument.isNull(scalar.string)
        }
        return false
    }

    /// The scalar's text, refusing mappings, sequences and explicit tags other than `!!str`.
    private func scalar(expected: String) -> DocumentScalar? {
        guard case .scalar(let scalar) = node else {
            fail("must be \(expected), not a \(kindName)")
            return nil
        }
        guard isKey || Self.isStringTag(scalar.tag) else {
            fail("explicit tag '\(scalar.tag)' is not supported")
            return nil
        }
        return scalar
    }

    /// Whether a value's tag leaves it a string: none, the non-specific `!`, or `!!str`; any other is refused.
    static func isStringTag(_ tag: String) -> Bool { tag.isEmpty || tag == "!" || tag == stringTag }

    private var kindName: String { YAMLMapping.kind(node) }

    /// A string. A plain (unquoted) scalar that YAML 1.1 or 1.2 would read as a boolean, number, null or
    /// timestamp is refused with a hint to quote it; empty strings are refused.
    func string() -> String? {
        guard let scalar = scalar(expected: "a string") else { return nil }
        if scalar.style == .plain && !isExplicitString(scalar) {
            if let kind = Scalars.yamlType(ofPlain: scalar.string) {
                if kind == "null" {
                    fail("must be a string, not null")
                } else {
                    fail(
                        "must be a string, but \(scalar.string) is read as \(kind) by YAML; quote it (\"\(scalar.string)\")"
                    )
                }
                return nil
            }
        }
        guard !scalar.string.isEmpty else {
            fail("must not be empty")
            return nil
        }
        return scalar.string
    }

    /// The text of any scalar, quoted or plain, without the YAML 1.1 check: for values that have their own
    /// syntax (enumerations, durations, sizes, timestamps), checked by the caller.
    func text(expected: String) -> String? {
        guard let scalar = scalar(expected: expected) else { return nil }
        return scalar.string
    }

    /// `true` or `false`, plain; nothing else (no `yes`, `on`, `True`, `"true"`).
    func bool() -> Bool? {
        guard let scalar = scalar(expected: "true or false") else { return nil }
        if scalar.style == .plain {
            if scalar.string == "true" { return true }
            if scalar.string == "false" { return false }
        }
        let shown = scalar.style == .plain ? scalar.string : "\"\(scalar.string)\""
        fail("must be true or false, not \(shown)")
        return nil
    }

    /// A plain decimal integer without sign, leading zeros or underscores (`-` allowed when `range` allows it).
    func int(in range: ClosedRange<Int> = Int.min...Int.max) -> Int? {
        guard let scalar = scalar(expected: "an integer") else { return nil }
        guard scalar.style == .plain else {
            fail("must be a number, not the quoted string \"\(scalar.string)\"")
            return nil
        }
        guard let value = Scalars.decimalInteger(scalar.string) else {
            fail("must be a plain decimal integer (no leading zeros, underscores or signs), not \(scalar.string)")
            return nil
        }
        guard range.contains(value) else {
            fail("must be \(Scalars.describe(range)), not \(value)")
            return nil
        }
        return value
    }

    /// One of `E`'s raw values; `noun` names the thing in the error ("unknown stage 'foo' (expected ...)").
    /// `aliases` are older words still accepted for a value (not listed in the error).
    func enumeration<E: RawRepresentable & CaseIterable>(_: E.Type, noun: String, aliases: [String: E] = [:]) -> E?
    where E.RawValue == String {
        // The usual case first, without spelling out the expected values for a message that is not written.
        if case .scalar(let scalar) = node,
            isKey || Self.isStringTag(scalar.tag),
            let value = E(rawValue: scalar.string) ?? aliases[scalar.string]
        {
            return value
        }
        let expected = E.allCases.map(\.rawValue).joined(separator: ", ")
        guard let text = text(expected: "one of \(expected)") else { return nil }
        guard let value = E(rawValue: text) ?? aliases[text] else {
            fail("unknown \(noun) '\(text)' (expected \(expected))")
            return nil
        }
        return value
    }

    /// A duration such as `30s`, `5m`, `2h`, `2d`, in seconds.
    func duration(in range: ClosedRange<Double> = 0...Double.greatestFiniteMagnitude) -> Double? {
        guard let text = text(expected: "a duration") else { return nil }
        guard let seconds = Scalars.duration(text) else {
            fail("must be a duration like 30s, 5m, 2h or 2d, not '\(text)'")
            return nil
        }
        guard range.contains(seconds) else {
            if seconds > range.upperBound {
                fail("must be at most \(Int(range.upperBound))s")
            } else if range.lowerBound > 1 {
                fail("must be at least \(Int(range.lowerBound))s")
            } else {
                fail(range.lowerBound > 0 ? "must be longer than 0s" : "is out of range")
            }
            return nil
        }
        return seconds
    }

    /// A size such as `512KiB`, `1MiB`, `1GiB`, or a plain number of bytes.
    func size(in range: ClosedRange<Int> = 1...Int.max) -> Int? {
        guard let text = text(expected: "a size") else { return nil }
        guard let bytes = Scalars.size(text) else {
            fail("must be a size like 512KiB, 1MiB, 1GiB or a number of bytes, not '\(text)'")
            return nil
        }
        guard range.contains(bytes) else {
            fail(
                "must be between \(FileReading.describeSize(range.lowerBound)) and \(FileReading.describeSize(range.upperBound))"
            )
            return nil
        }
        return bytes
    }

    /// An email address (simple but real check), lower-cased.
    func email() -> String? {
        guard let text = string() else { return nil }
        guard Scalars.isEmail(text) else {
            fail("'\(text)' is not a valid email address")
            return nil
        }
        return text.lowercased()
    }

    /// An E.164 phone number: `+`, then 8 to 15 digits, the first not 0. Must be quoted in YAML.
    func phone() -> String? {
        guard let text = string() else { return nil }
        guard Scalars.isE164(text) else {
            fail("'\(text)' is not an E.164 phone number (+ then 8 to 15 digits, e.g. \"+15005550006\")")
            return nil
        }
        return text
    }

    /// An absolute URL with one of `schemes` and a host; never with a password in it. Trailing `/` removed
    /// when `trimSlash`.
    func url(schemes: [String], trimSlash: Bool = false) -> String? {
        guard let text = string() else { return nil }
        switch Scalars.urlProblem(text, schemes: schemes) {
        case .some(let problem):
            fail(problem)
            return nil
        case .none:
            var result = text
            while trimSlash && result.hasSuffix("/") { result.removeLast() }
            return result
        }
    }

    /// A path, made absolute against `directory` (the directory of the file naming it).
    func path(relativeTo directory: String) -> String? {
        string().map { FileReading.resolve($0, relativeTo: directory) }
    }

    /// A secret file path: resolved against `directory`, then checked like ssh checks a key (exists, regular,
    /// readable, mode 0600 or stricter). The file is never read.
    ///
    /// A path starting with `$CREDENTIALS_DIRECTORY/` (or `${CREDENTIALS_DIRECTORY}/`) names a credential that
    /// systemd passed with `LoadCredential=`: the variable is taken from the environment (an error when unset),
    /// and the file is checked as ``SecretFile`` checks credentials.
    func secretFile(relativeTo directory: String) -> String? {
        guard let text = string() else { return nil }
        let path: String
        switch SecretFile.expandCredentials(text) {
        case .notCredential: path = FileReading.resolve(text, relativeTo: directory)
        case .credential(let expanded): path = expanded
        case .unset:
            fail(
                "names $CREDENTIALS_DIRECTORY, which is not set: sitroomd is not running under systemd with "
                    + "LoadCredential= (run it from its unit, or name the file itself)"
            )
            return nil
        }
        if let problem = FileReading.secretFileProblem(path) {
            fail(problem)
            return nil
        }
        return path
    }

    /// A mapping, with the keys' use tracked (see ``YAMLMapping``).
    func mapping() -> YAMLMapping? {
        YAMLMapping(self, at: position)
    }

    /// The elements of a list, each with its path (`hosts[0]`).
    func list() -> [YAMLValue]? {
        guard case .sequence(let sequence, _) = node else {
            fail("must be a list, not a \(kindName)")
            return nil
        }
        let path = self.path
        return sequence.enumerated().map { YAMLValue(node: $1, parent: path, index: $0, diag: diag) }
    }

    /// A list of strings (each checked by ``string()``).
    func stringList() -> [String]? {
        guard let items = list() else { return nil }
        let strings = items.compactMap { $0.string() }
        return strings.count == items.count ? strings : nil
    }

    /// A list of enumeration values.
    func enumerationList<E: RawRepresentable & CaseIterable>(_ type: E.Type, noun: String) -> [E]?
    where E.RawValue == String {
        guard let items = list() else { return nil }
        let values = items.compactMap { $0.enumeration(type, noun: noun) }
        return values.count == items.count ? values : nil
    }

    /// A mapping of user-chosen string keys to string values (keys and values checked by ``string()``).
    func stringMap() -> [String: String]? {
        guard let mapping = mapping() else { return nil }
        var result: [String: String] = [:]
        var ok = true
        for (key, value) in mapping.freeEntries() {
            guard let key = key.string(), let value = value.string() else {
                ok = false
                continue
            }
            result[key] = value
        }
        return ok ? result : nil
    }
}

/// A YAML mapping whose keys are read one by one; ``finish()`` reports every key that was never asked for
/// ("unknown key"), with its line and column. Keys must be scalars; a key given twice is an error even where
/// Yams' own check (which compares resolved tags, so `1` and `"1"` differ) lets it through.
final class YAMLMapping {
    let path: String
    let diag: Diagnostics
    /// Where to report a missing key: the key that introduced this mapping, or its first line.
    let position: Position

    /// The pairs as composed: the composed array itself when every key is a scalar written once (no copy), else
    /// the pairs that are (each bad key reported once, at init). `names[i]` is the text of `pairs[i].key`.
    private var pairs: [(key: DocumentNode, value: DocumentNode)] = []
    // Found by a linear search while the mapping is small (most are: payload objects, config sections) and
    // through `index` when it is not; cheaper than hashing every key.
    private var names: [String] = []
    private var index: [String: Int]? = nil
    /// Whether each pair's key was asked for: one bit per pair (the first 64), then `knownBeyond`.
    private var knownBits: UInt64 = 0
    private var knownBeyond: [Bool] = []
    /// Keys asked for, present or not, in order, repeats included (the "expected ..." list of unknown-key messages).
    private var asked: [String] = []
    /// Keys known but not applicable here (``forbid(_:because:)``): not offered in "expected ..." lists.
    private var hidden: [String] = []

    private static let indexedFrom = 16

    init?(_ value: YAMLValue, at position: Position) {
        self.path = value.path
        self.diag = value.diag
        self.position = position
        guard case .mapping(let mapping, _) = value.node else {
            value.fail("must be a mapping (key: value), not a \(value.isNull ? "null" : Self.kind(value.node))")
            return nil
        }
        names.reserveCapacity(mapping.count)
        asked.reserveCapacity(mapping.count + 2)
        // The pairs kept so far, once one has been left out (a key that is not a scalar, or is there already).
        var kept: [(key: DocumentNode, value: DocumentNode)]? = nil
        for offset in mapping.indices {
            guard case .scalar(let scalar) = mapping[offset].key else {
                let key = mapping[offset].key
                YAMLValue(node: key, path: path, diag: diag).fail("keys must be plain strings, not a \(Self.kind(key))")
                if kept == nil { kept = Array(mapping[..<offset]) }
                continue
            }
            let name = scalar.string
            if let first = find(name) {
                let firstLine = (kept ?? mapping)[first].key.position.line
                diag.report("\(childPath(name)): duplicate key (first at line \(firstLine))", at: scalar.position)
                if kept == nil { kept = Array(mapping[..<offset]) }
                continue
            }
            kept?.append(mapping[offset])
            names.append(name)
            if index != nil {
                index![name] = names.count - 1
            } else if names.count == Self.indexedFrom {
                index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
            }
        }
        pairs = kept ?? mapping
        if names.count > 64 { knownBeyond = Array(repeating: false, count: names.count - 64) }
    }

    private func find(_ key: String) -> Int? {
        if let index { return index[key] }
        return names.firstIndex(of: key)
    }

    private func isKnown(_ position: Int) -> Bool {
        position < 64 ? knownBits & (1 << UInt64(position)) != 0 : knownBeyond[position - 64]
    }

    private func markKnown(_ position: Int) {
        if position < 64 {
            knownBits |= 1 << UInt64(position)
        } else {
            knownBeyond[position - 64] = true
        }
    }

    private func markAsked(_ key: String) -> Int? {
        asked.append(key)  // repeats are dropped when a message lists them (rare), not searched for on every read
        guard let found = find(key) else { return nil }
        markKnown(found)
        return found
    }

    /// The value of the pair at `position`, with its path.
    private func valueAt(_ position: Int) -> YAMLValue {
        YAMLValue(node: pairs[position].value, parent: path, key: names[position], diag: diag)
    }

    /// The key of the pair at `position`, with its path.
    private func keyAt(_ position: Int) -> YAMLValue {
        YAMLValue(node: pairs[position].key, parent: path, key: names[position], diag: diag, isKey: true)
    }

    /// An empty mapping standing for a section that was not given (reads return `nil`, defaults apply).
    init(empty path: String, diag: Diagnostics) {
        self.path = path
        self.diag = diag
        self.position = .unknown
    }

    static func kind(_ node: DocumentNode) -> String {
        switch node {
        case .mapping: return "mapping"
        case .sequence: return "list"
        case .scalar: return "scalar"
        }
    }

    private func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value of `key`, or `nil` when the key is absent or null. Marks the key as known.
    func value(_ key: String) -> YAMLValue? {
        guard let found = markAsked(key) else { return nil }
        let value = valueAt(found)
        return value.isNull ? nil : value
    }

    /// Whether `key` is present (even if null). Does not mark it as known.
    func contains(_ key: String) -> Bool { find(key) != nil }

    /// The position of `key`'s name in the file.
    func keyPosition(_ key: String) -> Position { find(key).map { pairs[$0].key.position } ?? position }

    /// The value of a required key; reports "required field is missing" (at the mapping) when absent or null.
    func required(_ key: String) -> YAMLValue? {
        if let value = value(key) { return value }
        if let found = find(key) {
            valueAt(found).fail("required field is empty")
        } else {
            diag.report("\(childPath(key)): required field is missing", at: position)
        }
        return nil
    }

    /// Reports `key` when it is present although it does not apply (e.g. `redirect_uri` for zoom-s2s).
    func forbid(_ key: String, because reason: String) {
        _ = value(key)
        if !hidden.contains(key) { hidden.append(key) }
        if let found = find(key) {
            diag.report("\(childPath(key)): \(reason)", at: pairs[found].key.position)
        }
    }

    func string(_ key: String, required isRequired: Bool = false) -> String? {
        (isRequired ? required(key) : value(key))?.string()
    }

    /// A child mapping; an absent or null key gives an empty mapping, so defaults apply.
    func mapping(_ key: String) -> YAMLMapping {
        guard let value = value(key) else { return YAMLMapping(empty: childPath(key), diag: diag) }
        return YAMLMapping(value, at: keyPosition(key)) ?? YAMLMapping(empty: childPath(key), diag: diag)
    }

    /// All entries, for mappings whose keys are user-chosen (team names, label names). Marks them all known.
    func freeEntries() -> [(key: YAMLValue, value: YAMLValue)] {
        for position in names.indices { markKnown(position) }
        return names.indices.map { (keyAt($0), valueAt($0)) }
    }

    /// Reports every key never asked for.
    func finish() {
        for (position, name) in names.enumerated() where !isKnown(position) {
            var seen: Set<String> = []
            let expected = asked.filter { !hidden.contains($0) && seen.insert($0).inserted }.joined(separator: ", ")
            diag.report(
                "\(childPath(name)): unknown key (expected \(expected.isEmpty ? "no keys" : expected))",
                at: pairs[position].key.position
            )
        }
    }
}
