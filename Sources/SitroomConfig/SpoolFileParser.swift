import SitroomCore

/// The formats a spool file may be in (SPEC §4), told apart by content.
public enum SpoolFormat: String, Sendable, CaseIterable {
    /// sitroom's own YAML or JSON event.
    case native
    /// A Prometheus Alertmanager webhook payload (`version: "4"`).
    case alertmanager
    /// A PagerDuty webhook v3 payload (`event.event_type`).
    case pagerduty
    /// A Zoom webhook as received: header lines, a blank line, the raw body.
    case zoomWebhook = "zoom-webhook"
}

/// What one spool file holds.
public enum SpoolItem: Sendable, Hashable {
    /// An incident event. `notes` tell the operator about things that did not stop the event (an
    /// Alertmanager `team` label or a PagerDuty assignee that is not in `etc/roster.yaml`); they go to the log.
    case event(IncidentEvent, format: SpoolFormat, notes: [String])
    /// A Zoom `app_deauthorized` webhook, parsed but not verified.
    case zoomWebhook(ZoomWebhookEvent)
    /// A payload of a known format that sitroom has no use for (a PagerDuty event about something other
    /// than an incident); `reason` says which. It leaves `new/` for `cur/` with a log line.
    case ignored(format: SpoolFormat, reason: String)
}

/// What the foreign formats need from the live configuration (SPEC §3 `feeds:` and `etc/roster.yaml`).
public struct FeedContext: Sendable {
    public var feeds: FeedSettings
    public var roster: Roster

    public init(feeds: FeedSettings = FeedSettings(), roster: Roster = Roster()) {
        self.feeds = feeds
        self.roster = roster
    }
}

/// Reads one spool file in any of the formats of SPEC §4, recognising the format by content:
///
/// 1. a Zoom webhook file: header lines (`Name: value`, an optional request line first) of which at least
///    one is an `x-zm-*` header, a blank line, then the body;
/// 2. otherwise a YAML or JSON document under the strict rules of SPEC §3 (valid UTF-8, no duplicate keys, no
///    anchors) whose top-level keys tell the rest: `groupKey` and `alerts` make an Alertmanager payload, an
///    `event` mapping with `event_type` a PagerDuty v3 payload, `event_id` the native format.
public enum SpoolFileParser {
    /// Parses one spool file.
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - file: the name used in errors (e.g. `new/x.json`).
    ///   - context: `feeds` rules and the roster, for Alertmanager and PagerDuty payloads.
    ///   - maxFileSize: larger files are refused (bytes; SPEC §3 `spool.max_file_size`).
    /// - Returns: the event (or webhook, or the reason it is ignored).
    /// - Throws: ``ConfigErrors`` naming each problem as `file:line:col: field: message`.
    public static func parse(
        _ bytes: [UInt8],
        file: String,
        context: FeedContext,
        maxFileSize: Int = IncidentEventParser.defaultMaxFileSize
    ) throws(ConfigErrors) -> SpoolItem {
        let diag = Diagnostics(file: file)
        let item = read(bytes, context: context, maxFileSize: maxFileSize, diag: diag)
        guard diag.isEmpty, let item else {
            throw ConfigErrors(
                errors: diag.isEmpty
                    ? [ConfigError(file: file, line: 0, column: 0, message: "internal error: nothing read")]
                    : diag.errors
            )
        }
        return item
    }

    private static func read(_ bytes: [UInt8], context: FeedContext, maxFileSize: Int, diag: Diagnostics) -> SpoolItem?
    {
        guard bytes.count <= maxFileSize else {
            diag.report(
                "file is \(bytes.count) bytes, larger than the limit of \(FileReading.describeSize(maxFileSize))",
                at: .unknown
            )
            return nil
        }
        if let bad = YAMLDocument.firstInvalidUTF8(bytes) {
            diag.report(
                "invalid UTF-8 (byte 0x\(String(bytes[bad], radix: 16)))",
                at: YAMLDocument.position(ofByte: bad, in: bytes)
            )
            return nil
        }
        if let message = ZoomWebhookFile.split(bytes) {
            return ZoomWebhookFile.read(message, bytes: bytes, diag: diag).map { .zoomWebhook($0) }
        }
        let top: YAMLMapping
        switch YAMLDocument.compose(bytes, limit: maxFileSize, diag: diag) {
        case .failed: return nil
        case .empty:
            diag.report("the file is empty; an event needs event_id, occurred_at, stage and incident", at: .start)
            return nil
        case .node(let node):
            guard let mapping = YAMLValue(node: node, path: "", diag: diag).mapping() else { return nil }
            top = mapping
        }
        if top.contains("groupKey") && top.contains("alerts") {
            return AlertmanagerPayload.read(top, context: context)
        }
        if top.contains("event"), let event = top.value("event"), event.node.mappingKeys.contains("event_type") {
            return PagerDutyPayload.read(top, context: context)
        }
        if top.contains("messages") && !top.contains("event_id") {
            diag.report(
                "looks like a PagerDuty webhook v2 payload (messages); sitroom reads PagerDuty webhooks v3 "
                    + "(event.event_type): subscribe a v3 webhook",
                at: .start
            )
            return nil
        }
        if !top.contains("event_id") && !top.contains("stage") {
            diag.report(
                "not an incident event sitroom knows: expected a native event (event_id, occurred_at, stage, "
                    + "incident), an Alertmanager webhook (version \"4\", groupKey, alerts) or a PagerDuty webhook v3 "
                    + "(event.event_type)",
                at: .start
            )
            return nil
        }
        return IncidentEventParser.read(top: top).map { .event($0, format: .native, notes: []) }
    }
}

// MARK: - Shared by the foreign formats

/// Stable ids derived from feed data: FNV-1a over the parts (each followed by a 0 byte), 64 or 128 bits.
///
/// FNV-1a is not a cryptographic hash; the ids only need to be stable and, at 128 bits, not collide by
/// accident (http://www.isthe.com/chongo/tech/comp/fnv/ gives the offset bases and primes).
enum StableHash {
    /// FNV-1a/64 over the parts, each followed by a 0 byte; 16 hex digits.
    static func fnv64(_ parts: [String]) -> String {
        var hash = fnv64Basis
        for part in parts {
            hash = fnv64(bytes: part.utf8, from: hash)
            hash = fnv64(bytes: CollectionOfOne(0), from: hash)
        }
        return hex(hash)
    }

    /// FNV-1a/128 over the parts, each followed by a 0 byte; 32 hex digits.
    static func fnv128(_ parts: [String]) -> String {
        var hash = fnv128Basis
        for part in parts {
            hash = fnv128(bytes: part.utf8, from: hash)
            hash = fnv128(bytes: CollectionOfOne(0), from: hash)
        }
        return hex(hash.high) + hex(hash.low)
    }

    /// FNV-1a/64's offset basis.
    static let fnv64Basis: UInt64 = 0xcbf2_9ce4_8422_2325
    /// FNV-1a/128's offset basis, as two 64-bit halves.
    static let fnv128Basis: (high: UInt64, low: UInt64) = (0x6c62_272e_07bb_0142, 0x62b8_2175_6295_c58d)

    /// FNV-1a/64 over `bytes`, continuing from `hash` (the offset basis for a new hash).
    static func fnv64(bytes: some Sequence<UInt8>, from hash: UInt64 = fnv64Basis) -> UInt64 {
        var hash = hash
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// FNV-1a/128 over `bytes`, continuing from `hash`. The prime is 2^88 + 0x13B, so the product is
    /// `x * 0x13B + (x << 88)` modulo 2^128.
    static func fnv128(
        bytes: some Sequence<UInt8>,
        from hash: (high: UInt64, low: UInt64) = fnv128Basis
    ) -> (high: UInt64, low: UInt64) {
        var (high, low) = hash
        for byte in bytes {
            low ^= UInt64(byte)
            let product = low.multipliedFullWidth(by: 0x13B)
            high = (high &* 0x13B) &+ product.high &+ (low << 24)
            low = product.low
        }
        return (high, low)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

extension YAMLValue {
    /// A mapping of label names to values (Alertmanager `labels`, `annotations`): any scalar values, read
    /// as text; a non-scalar value is an error.
    func labels() -> [String: String]? {
        // The usual case straight from the nodes (no mapping bookkeeping): scalar names and values, no value with
        // a tag other than a string's, no name twice. Anything else takes the reading below, which reports it.
        if case .mapping(let pairs, _) = node {
            var result = [String: String](minimumCapacity: pairs.count)
            var usual = true
            for pair in pairs {
                guard case .scalar(let name) = pair.key, case .scalar(let value) = pair.value,
                    YAMLValue.isStringTag(value.tag),
                    result.updateValue(value.string, forKey: name.string) == nil
                else {
                    usual = false
                    break
                }
            }
            if usual { return result }
        }
        guard let mapping = mapping() else { return nil }
        var result: [String: String] = [:]
        var ok = true
        for (key, value) in mapping.freeEntries() {
            guard let name = key.text(expected: "a label name"), let text = value.text(expected: "a label value")
            else {
                ok = false
                continue
            }
            result[name] = text
        }
        return ok ? result : nil
    }

    /// An RFC 3339 timestamp in seconds since 1970.
    func timestamp() -> Double? {
        guard let text = text(expected: "an RFC 3339 timestamp") else { return nil }
        guard let seconds = Scalars.rfc3339(text) else {
            fail("'\(text)' is not an RFC 3339 timestamp (e.g. 2024-05-01T10:00:00Z)")
            return nil
        }
        return seconds
    }
}

extension Roster {
    /// The members of `team`: an exact name match first, else one that differs only in case.
    func members(ofTeam team: String) -> [Participant]? {
        if let members = teams[team] { return members }
        let wanted = team.lowercased()
        return teams.first { $0.key.lowercased() == wanted }?.value
    }

    /// The roster member with this email (case-insensitive), else the one with this name (case-insensitive),
    /// searching every team; `nil` when nobody matches or several different people share the name.
    func person(email: String?, name: String?) -> Participant? {
        let everyone = teams.keys.sorted().flatMap { teams[$0]! }
        if let email = email?.lowercased(), let found = everyone.first(where: { $0.email == email }) { return found }
        guard let name = name?.lowercased() else { return nil }
        if let found = everyone.first(where: { $0.email == name }) { return found }
        let named = everyone.filter { $0.name.lowercased() == name }
        guard let first = named.first, named.allSatisfy({ $0.personID == first.personID }) else { return nil }
        return first
    }
}

/// Appends people not yet in `list` (same ``Participant/personID``), keeping order.
func appendPeople(_ people: [Participant], to list: inout [Participant]) {
    for person in people where !list.contains(where: { $0.personID == person.personID }) {
        list.append(person)
    }
}

/// Whether every `key: value` of a `situation_room_when` rule holds, `field` giving the value(s) of a key.
/// An empty rule matches everything.
func ruleMatches(_ rule: [String: String], _ field: (String) -> [String]) -> Bool {
    rule.allSatisfy { key, value in field(key).contains(value) }
}

/// A readable piece of an id: letters, digits, `.`, `_`, `-`; other characters become `-`; at most 48.
func idFragment(_ text: String) -> String {
    let mapped = text.unicodeScalars.map { scalar -> Character in
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return Character(scalar)
        default: return "-"
        }
    }
    return String(String(mapped).prefix(48))
}
