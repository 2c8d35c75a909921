import Foundation
import SitroomCore
import Testing

@testable import SitroomConfig

/// The repository's examples/ (real payload files).
private let examples: String = {
    var dir = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { dir.deleteLastPathComponent() }
    return dir.path + "/examples"
}()

private let context = FeedContext(
    feeds: FeedSettings(
        alertmanagerSituationRoomWhen: ["severity": "critical"],
        pagerdutySituationRoomWhen: ["urgency": "high"]
    ),
    roster: Roster(teams: [
        "payments-sre": [
            Participant(name: "Ada Lovelace", email: "ada@example.com", phone: "+15005550101", role: .commander)
        ]
    ])
)

/// What the spool parser makes of `text`: the item, or the errors as `file:line:col: message`.
private func outcome(_ text: String, json: Bool) -> Result<SpoolItem, ConfigErrors> {
    YAMLDocument.$readsJSONAsJSON.withValue(json) {
        Result { () throws(ConfigErrors) in
            try SpoolFileParser.parse(Array(text.utf8), file: "new/x.json", context: context)
        }
    }
}

private func parseJSON(_ text: String) -> (JSONDocument.Result, [String]) {
    let diag = Diagnostics(file: "x.json")
    let result = JSONDocument.parse(Array(text.utf8), diag: diag)
    return (result, diag.errors.map(\.description))
}

@Suite("JSON payloads are parsed as JSON, with the YAML reader's strictness and errors")
struct JSONPayloads {
    /// Bad JSON payloads of every format: each must be refused by the JSON parser exactly as the YAML composer
    /// refuses it (the same `file:line:col: message` lines).
    static let badPayloads: [String] = [
        // native: a missing field, an unknown stage, a number for a timestamp, a bad email, an unknown key
        #"{"event_id": "e1", "occurred_at": "2026-11-29T12:00:00Z", "incident": {"id": "INC-1", "title": "t"}}"#,
        """
        {
          "event_id": "e1",
          "occurred_at": "2026-11-29T12:00:00Z",
          "stage": "bogus",
          "incident": {"id": "INC-1", "title": "t"}
        }
        """,
        #"{"event_id": "e1", "occurred_at": 1764417600, "stage": "opened", "incident": {"id": "INC-1", "title": "t"}}"#,
        """
        {"event_id": "e1", "occurred_at": "2026-11-29T12:00:00Z", "stage": "situation_room",
         "incident": {"id": "INC-1", "title": "Ünïcödé títle"},
         "participants": [{"name": "Ada", "email": "not-an-email"}], "colour": "red"}
        """,
        // a list where a mapping belongs, a number where a string belongs, true where a string belongs
        #"{"event_id": "e1", "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened", "incident": ["INC-1"]}"#,
        #"{"event_id": 17, "occurred_at": "2026-11-29T12:00:00Z", "stage": "opened", "incident": {"id": true, "title": "t"}}"#,
        // a key given twice
        """
        {
          "event_id": "e1",
          "occurred_at": "2026-11-29T12:00:00Z",
          "event_id": "e2",
          "stage": "opened",
          "incident": {"id": "INC-1", "title": "t"}
        }
        """,
        // Alertmanager: a wrong version, a missing fingerprint and a bad timestamp
        """
        {
          "version": "3",
          "groupKey": "g",
          "status": "firing",
          "alerts": [
            {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "yesterday"}
          ]
        }
        """,
        // PagerDuty: an event without its id; a v2 payload
        #"{"event": {"event_type": "incident.triggered", "occurred_at": "2026-11-29T13:00:00Z", "data": {"id": "Q1", "type": "incident"}}}"#,
        #"{"messages": [{"event": "incident.trigger"}]}"#,
        // nothing sitroom knows; an empty object; null
        #"{"hello": "world"}"#,
        "{}",
        "null",
    ]

    @Test("bad payloads get the same errors from the JSON parser as from the YAML composer", arguments: badPayloads)
    func sameRejections(_ payload: String) throws {
        guard case .failure(let viaYAML) = outcome(payload, json: false) else {
            Issue.record("the YAML composer accepted a bad payload: \(payload)")
            return
        }
        guard case .failure(let viaJSON) = outcome(payload, json: true) else {
            Issue.record("the JSON parser accepted a bad payload: \(payload)")
            return
        }
        #expect(!viaJSON.errors.isEmpty)
        #expect(viaJSON.errors.map(\.description) == viaYAML.errors.map(\.description))
    }

    @Test(
        "the examples read the same through both parsers",
        arguments: [
            "alertmanager-firing.json", "alertmanager-resolved.json", "incident-search.json",
            "pagerduty-escalated.json",
            "pagerduty-priority-updated.json", "pagerduty-resolved.json", "pagerduty-triggered.json",
            "zoom-app-deauthorized.http",
        ]
    )
    func sameItems(_ name: String) throws {
        let text = try String(contentsOfFile: "\(examples)/\(name)", encoding: .utf8)
        let viaJSON = try outcome(text, json: true).get()
        let viaYAML = try outcome(text, json: false).get()
        #expect(viaJSON == viaYAML)
    }

    @Test("a YAML flow mapping that is not JSON is still read as YAML")
    func flowMapping() throws {
        let text =
            #"{event_id: e1, occurred_at: "2026-11-29T12:00:00Z", stage: opened, incident: {id: INC-1, title: t},}"#
        #expect(parseJSON(text).0.isNotJSON)
        guard case .event(let event, _, _) = try outcome(text, json: true).get() else {
            Issue.record("not an event")
            return
        }
        #expect(event.eventID == "e1")
        #expect(event.incident.id == "INC-1")
    }
}

@Suite("JSONDocument follows RFC 8259")
struct JSONDocumentParsing {
    @Test("values, escapes and surrogate pairs are decoded; numbers are kept as written")
    func values() throws {
        let (result, errors) = parseJSON(
            #"{"a": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "n": -1.5e+3, "t": true, "z": null, "l": [1, {}, []]}"#
        )
        #expect(errors.isEmpty)
        guard case .node(.mapping(let pairs, _)) = result else {
            Issue.record("not a mapping")
            return
        }
        #expect(pairs.count == 5)
        guard case .scalar(let a) = pairs[0].value, case .scalar(let n) = pairs[1].value,
            case .scalar(let t) = pairs[2].value, case .scalar(let z) = pairs[3].value,
            case .sequence(let list, _) = pairs[4].value
        else {
            Issue.record("unexpected shapes")
            return
        }
        #expect(a.string == "x\"\\/\u{8}\u{c}\n\r\té😀")
        #expect(a.style == .doubleQuoted)
        #expect(n.string == "-1.5e+3" && n.style == .plain)
        #expect(t.string == "true" && t.style == .plain)
        #expect(z.string == "null" && z.style == .plain)
        #expect(list.count == 3)
    }

    @Test("positions are 1-based lines and columns in Unicode scalars, on long single lines too")
    func positions() {
        let (result, _) = parseJSON("{\n  \"é\": \"ü\", \"k\":\n\t[ 1 ]}")
        guard case .node(.mapping(let pairs, let at)) = result else {
            Issue.record("not a mapping")
            return
        }
        #expect(at == Position(line: 1, column: 1))
        #expect(pairs[0].key.position == Position(line: 2, column: 3))
        #expect(pairs[0].value.position == Position(line: 2, column: 8))
        #expect(pairs[1].key.position == Position(line: 2, column: 13))
        #expect(pairs[1].value.position == Position(line: 3, column: 2))
        // A minified payload is one long line: the 2,000th key's column counts every scalar before it.
        let entries = (0..<2_000).map { "\"k\($0)\": \"v\"" }
        let long = "{" + entries.joined(separator: ", ") + "}"
        let before = "{" + entries.dropLast().joined(separator: ", ") + ", "
        guard case .node(.mapping(let many, _)) = parseJSON(long).0 else {
            Issue.record("not a mapping")
            return
        }
        #expect(many[1_999].key.position == Position(line: 1, column: before.unicodeScalars.count + 1))
    }

    @Test(
        "what is not JSON is handed back as not JSON",
        arguments: [
            "{\"a\": 1,}", "{\"a\": 01}", "{\"a\": 1.}", "{\"a\": .5}", "{\"a\": +1}", "{'a': 1}",
            "{\"a\": \"tab\there\"}",
            "{\"a\": \"\\x\"}", "{\"a\": \"\\ud800\"}", "{\"a\": \"\\udc00\"}", "{\"a\": tru}", "{\"a\": 1} x",
            "{\"a\" 1}",
            "{\"a\": [1 2]}", "{\"a\": \"open", "{# comment\n}", "[1, 2,]",
        ]
    )
    func notJSON(_ text: String) {
        #expect(parseJSON(text).0.isNotJSON)
    }

    @Test("nesting deeper than the limit is not read as JSON")
    func depth() {
        let deep =
            String(repeating: "[", count: JSONDocument.maxDepth + 1)
            + String(repeating: "]", count: JSONDocument.maxDepth + 1)
        #expect(parseJSON("{\"a\": \(deep)}").0.isNotJSON)
        let fine = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect(!parseJSON("{\"a\": \(fine)}").0.isNotJSON)
    }

    @Test("a key given twice is reported at its second occurrence, naming the first line")
    func duplicates() {
        let (result, errors) = parseJSON("{\"a\": {\"b\": 1,\n \"b\": 2}}")
        guard case .failed = result else {
            Issue.record("duplicate keys accepted")
            return
        }
        #expect(errors == ["x.json:2:2: duplicate key 'b' (first at line 1)"])
        // A big object (its keys hashed, not searched): a key of the first few given again near the end.
        let keys = (0..<20).map { "\"k\($0)\": \($0)" } + ["\"k2\": 0"]
        let (big, bigErrors) = parseJSON("{\n" + keys.joined(separator: ",\n") + "\n}")
        guard case .failed = big else {
            Issue.record("duplicate keys accepted in a big object")
            return
        }
        #expect(bigErrors == ["x.json:22:1: duplicate key 'k2' (first at line 4)"])
    }
}

extension JSONDocument.Result {
    fileprivate var isNotJSON: Bool {
        if case .notJSON = self { return true }
        return false
    }
}
