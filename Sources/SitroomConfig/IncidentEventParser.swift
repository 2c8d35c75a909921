import SitroomCore

/// Parses native incident events from the spool (SPEC §4), in YAML or JSON, under the strict YAML rules of
/// SPEC §3.
public enum IncidentEventParser {
    /// The largest spool file parsed by default (1 MiB).
    public static let defaultMaxFileSize = FileReading.maxFileSize

    /// Parses one spool file in the native YAML or JSON format of SPEC §4.
    ///
    /// Accepted keys: `event_id` (string), `occurred_at` (RFC 3339 with `Z` or an offset), `stage`
    /// (``IncidentStage``), `incident: {id, title, severity?, team?}` (strings), `participants` (optional list of
    /// `{name, email?, phone?, role?}`; emails are lower-cased; one with neither, or a malformed one, is not an error but
    /// listed in ``IncidentEvent/unreachable``), `integration?`.
    /// Unknown keys, duplicate keys, anchors, numbers or booleans where strings belong are errors.
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - file: the name used in errors (e.g. `new/x.yaml`).
    ///   - maxFileSize: files larger than this (bytes) are refused; 1 MiB by default.
    /// - Returns: the event; `occurredAt` is seconds since 1970-01-01T00:00:00Z.
    /// - Throws: ``ConfigErrors`` naming each bad field and its line, e.g.
    ///   `new/x.yaml:3:1: incident.id: required field is missing`.
    public static func parse(
        _ bytes: [UInt8],
        file: String,
        maxFileSize: Int = defaultMaxFileSize
    ) throws(ConfigErrors) -> IncidentEvent {
        let diag = Diagnostics(file: file)
        let event = read(YAMLDocument.compose(bytes, limit: maxFileSize, diag: diag), diag: diag)
        guard diag.isEmpty, let event else {
            throw ConfigErrors(
                errors: diag.isEmpty
                    ? [ConfigError(file: file, line: 0, column: 0, message: "internal error: event not read")]
                    : diag.errors
            )
        }
        return event
    }

    /// The longest `event_id` and `incident.id` accepted, in bytes: both are LMDB keys (at most 511 bytes).
    public static let maxIDLength = 256

    private static func read(_ root: YAMLDocument.Result, diag: Diagnostics) -> IncidentEvent? {
        let top: YAMLMapping
        switch root {
        case .failed: return nil
        case .empty:
            diag.report("the file is empty; an event needs event_id, occurred_at, stage and incident", at: .start)
            return nil
        case .node(let node):
            guard let mapping = YAMLValue(node: node, path: "", diag: diag).mapping() else { return nil }
            top = mapping
        }
        return read(top: top)
    }

    /// Reads a native event from its composed top-level mapping (``SpoolFileParser`` has told the format).
    static func read(top: YAMLMapping) -> IncidentEvent? {
        let eventID = top.required("event_id").flatMap(identifier)
        var occurredAt: Double?
        if let value = top.required("occurred_at"), let text = value.text(expected: "an RFC 3339 timestamp") {
            if case .scalar(let scalar) = value.node, scalar.style == .plain,
                Scalars.decimalInteger(text) != nil || Scalars.yamlType(ofPlain: text) == "a float"
            {
                value.fail("must be an RFC 3339 timestamp such as 2024-05-01T10:00:00Z, not a number")
            } else if let seconds = Scalars.rfc3339(text) {
                occurredAt = seconds
            } else {
                value.fail(
                    "'\(text)' is not an RFC 3339 timestamp (e.g. 2024-05-01T10:00:00Z or 2024-05-01T12:00:00+02:00)"
                )
            }
        }
        let stage = top.required("stage")?.enumeration(IncidentStage.self, noun: "stage")

        var incident: IncidentInfo?
        if let value = top.required("incident"), let mapping = YAMLMapping(value, at: top.keyPosition("incident")) {
            let id = mapping.required("id").flatMap(identifier)
            let title = mapping.string("title", required: true)
            let severity = mapping.string("severity")
            let team = mapping.string("team")
            mapping.finish()
            if let id, let title {
                incident = IncidentInfo(
                    id: id,
                    title: OneLine.clean(title, limit: 100_000),
                    severity: severity,
                    team: team
                )
            }
        }

        // A participant who cannot be told (no email or phone, or a malformed one) does not cost the others their
        // room: the event is kept, and that person is listed as unreachable (with why) instead.
        var participants: [Participant] = []
        var unreachable: [UnreachablePerson] = []
        if let items = top.value("participants")?.list() {
            for item in items {
                guard let entry = item.mapping() else { continue }
                let name = entry.string("name", required: true)
                // Contacts are read leniently: an empty or malformed one makes the person unreachable, not the file bad.
                let emailText = entry.value("email")?.text(expected: "an email address")
                let phoneText = entry.value("phone")?.text(expected: "an E.164 phone number")
                let role = entry.value("role")?.enumeration(ParticipantRole.self, noun: "role")
                entry.finish()
                guard let name = name.map({ OneLine.clean($0, limit: 200) }) else { continue }
                var problems: [String] = []
                var email: String? = nil
                var phone: String? = nil
                if let text = emailText, text.isEmpty {
                    problems.append("email is empty")
                } else if let text = emailText {
                    if Scalars.isEmail(text) {
                        email = text.lowercased()
                    } else {
                        problems.append("email '\(OneLine.clean(text, limit: 100))' is not a valid address")
                    }
                }
                if let text = phoneText, text.isEmpty {
                    problems.append("phone is empty")
                } else if let text = phoneText {
                    if Scalars.isE164(text) {
                        phone = text
                    } else {
                        problems.append("phone '\(OneLine.clean(text, limit: 100))' is not an E.164 number")
                    }
                }
                if email == nil && phone == nil {
                    if problems.isEmpty { problems.append("no email and no phone") }
                    unreachable.append(UnreachablePerson(name: name, reason: problems.joined(separator: "; ")))
                    continue
                }
                if !problems.isEmpty {
                    let still = email != nil ? "told by email only" : "told by SMS only"
                    unreachable.append(
                        UnreachablePerson(name: name, reason: problems.joined(separator: "; ") + " (\(still))")
                    )
                }
                participants.append(Participant(name: name, email: email, phone: phone, role: role))
            }
        }
        let integration = top.string("integration")
        top.finish()

        guard let eventID, let occurredAt, let stage, let incident, top.diag.isEmpty else { return nil }
        return IncidentEvent(
            eventID: eventID,
            occurredAt: occurredAt,
            stage: stage,
            incident: incident,
            participants: participants,
            integration: integration,
            unreachable: unreachable
        )
    }

    /// A string id of at most ``maxIDLength`` bytes; `nil` (with the error reported) otherwise.
    private static func identifier(_ value: YAMLValue) -> String? {
        guard let text = value.string() else { return nil }
        guard text.utf8.count <= maxIDLength else {
            value.fail("is \(text.utf8.count) bytes long; at most \(maxIDLength) are allowed")
            return nil
        }
        return text
    }
}
