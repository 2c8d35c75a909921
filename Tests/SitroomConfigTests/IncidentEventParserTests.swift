import Foundation
import SitroomCore
import Testing

@testable import SitroomConfig

@Suite struct IncidentEventParsing {
    static let yaml = """
        event_id: evt-0001
        occurred_at: 2024-05-01T10:00:00.250Z
        stage: situation_room
        incident:
          id: INC-42
          title: Payments API returns 500
          severity: critical
          team: payments-sre
        participants:
          - { name: Ada Lovelace, email: Ada@Example.COM, role: commander }
          - name: Bob
            phone: "+15005550006"
            role: responder
        integration: zoom-main

        """

    static let expected = IncidentEvent(
        eventID: "evt-0001",
        occurredAt: 1_714_557_600.25,
        stage: .situationRoom,
        incident: IncidentInfo(
            id: "INC-42",
            title: "Payments API returns 500",
            severity: "critical",
            team: "payments-sre"
        ),
        participants: [
            Participant(name: "Ada Lovelace", email: "ada@example.com", role: .commander),
            Participant(name: "Bob", phone: "+15005550006", role: .responder),
        ],
        integration: "zoom-main"
    )

    @Test func validYAML() throws {
        let event = try IncidentEventParser.parse(Array(Self.yaml.utf8), file: "new/x.yaml")
        #expect(event == Self.expected)
        #expect(event.participants[0].email == "ada@example.com")
    }

    @Test func validJSONWithTabs() throws {
        let json = """
            {
            \t"event_id": "evt-0001",
            \t"occurred_at": "2024-05-01T12:00:00.25+02:00",
            \t"stage": "situation_room",
            \t"incident": {"id": "INC-42", "title": "Payments API returns 500", "severity": "critical", "team": "payments-sre"},
            \t"participants": [
            \t\t{"name": "Ada Lovelace", "email": "Ada@Example.COM", "role": "commander"},
            \t\t{"name": "Bob", "phone": "+15005550006", "role": "responder"}
            \t],
            \t"integration": "zoom-main"
            }
            """
        let event = try IncidentEventParser.parse(Array(json.utf8), file: "new/x.json")
        #expect(event == Self.expected)
    }

    @Test func minimalEvent() throws {
        let text =
            "event_id: e1\noccurred_at: \"2024-02-29T23:59:59-00:30\"\nstage: opened\nincident: { id: \"1\", title: t }\n"
        let event = try IncidentEventParser.parse(Array(text.utf8), file: "new/m")
        #expect(event.occurredAt == 1_709_251_199 + 1800)
        #expect(event.participants.isEmpty)
        #expect(event.integration == nil)
        #expect(event.incident.severity == nil)
    }

    @Test func jsonStringYesIsAString() throws {
        let json =
            #"{"event_id": "yes", "occurred_at": "2024-05-01T10:00:00Z", "stage": "opened", "incident": {"id": "010", "title": "no"}}"#
        let event = try IncidentEventParser.parse(Array(json.utf8), file: "new/j")
        #expect(event.eventID == "yes")
        #expect(event.incident.id == "010")
        #expect(event.incident.title == "no")
    }

    @Test func badYAML() {
        let errors = eventErrors("event_id: e1\nstage: [opened\nincident: {}\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("new/x.yaml:3:") == true)
        #expect(errors.first?.contains("invalid YAML") == true)
    }

    @Test func missingIncidentID() {
        let errors = eventErrors(
            "event_id: e1\noccurred_at: 2024-05-01T10:00:00Z\nincident:\n  title: t\nstage: opened\n"
        )
        #expect(errors == ["new/x.yaml:3:1: incident.id: required field is missing"])
    }

    @Test func unknownStage() {
        let errors = eventErrors(
            "event_id: e1\noccurred_at: 2024-05-01T10:00:00Z\nstage: foo\nincident: { id: i, title: t }\n"
        )
        #expect(
            errors == [
                "new/x.yaml:3:8: stage: unknown stage 'foo' (expected opened, situation_room, updated, resolved, closed, reopened)"
            ]
        )
    }

    @Test(arguments: [
        (
            "incident: { id: 42, title: t }",
            "4:17: incident.id: must be a string, but 42 is read as an integer by YAML; quote it (\"42\")"
        ),
        ("incident: { id: i, title: [a] }", "4:27: incident.title: must be a string, not a list"),
        ("incident: i", "4:11: incident: must be a mapping (key: value), not a scalar"),
    ])
    func wrongTypes(line: String, message: String) {
        let errors = eventErrors("event_id: e1\noccurred_at: 2024-05-01T10:00:00Z\nstage: opened\n\(line)\n")
        #expect(errors == ["new/x.yaml:\(message)"])
    }

    @Test func numericEventIDIsRefused() {
        let errors = eventErrors(
            #"{"event_id": 7, "occurred_at": "2024-05-01T10:00:00Z", "stage": "opened", "incident": {"id": "i", "title": "t"}}"#
        )
        #expect(
            errors == [
                "new/x.yaml:1:14: event_id: must be a string, but 7 is read as an integer by YAML; quote it (\"7\")"
            ]
        )
    }

    @Test(arguments: [
        "2024-05-01", "2024-05-01T10:00:00", "2024-13-01T10:00:00Z", "2023-02-29T10:00:00Z", "2024-05-01T24:00:00Z",
        "yesterday", "2024-05-01T10:00Z",
    ])
    func badOccurredAt(value: String) {
        let errors = eventErrors("event_id: e1\noccurred_at: \(value)\nstage: opened\nincident: { id: i, title: t }\n")
        #expect(errors.count == 1)
        #expect(
            errors.first?.hasPrefix("new/x.yaml:2:14: occurred_at: '\(value)' is not an RFC 3339 timestamp") == true
        )
    }

    @Test func numericOccurredAtIsRefused() {
        let errors = eventErrors(
            "event_id: e1\noccurred_at: 1714557600\nstage: opened\nincident: { id: i, title: t }\n"
        )
        #expect(
            errors == [
                "new/x.yaml:2:14: occurred_at: must be an RFC 3339 timestamp such as 2024-05-01T10:00:00Z, not a number"
            ]
        )
    }

    @Test func badEmail() {
        let text = """
            event_id: e1
            occurred_at: 2024-05-01T10:00:00Z
            stage: opened
            incident: { id: i, title: t }
            participants:
              - name: Ada
                email: ada.example.com

            """
        // Not an error: the event is kept, and Ada is listed as someone who cannot be told (issue 15).
        #expect(eventErrors(text) == [])
        let event = try? IncidentEventParser.parse(Array(text.utf8), file: "new/x.yaml")
        #expect(event?.participants == [])
        #expect(
            event?.unreachable == [
                UnreachablePerson(name: "Ada", reason: "email 'ada.example.com' is not a valid address")
            ]
        )
    }

    @Test func participantRules() {
        let text = """
            event_id: e1
            occurred_at: 2024-05-01T10:00:00Z
            stage: updated
            incident: { id: i, title: t }
            participants:
              - { name: Ada }
              - { email: bob@example.org }
              - { name: Cy, phone: "+15005550006", role: observer }
              - { name: Di, phone: "5550006" }

            """
        // A missing name and an unknown role are errors of the file; people without a usable contact are not (they
        // are listed as unreachable, test `reachableAndNot`).
        #expect(
            eventErrors(text) == [
                "new/x.yaml:7:5: participants[1].name: required field is missing",
                "new/x.yaml:8:46: participants[2].role: unknown role 'observer' (expected commander, responder)",
            ]
        )
    }

    @Test func reachableAndNot() throws {
        let text = """
            event_id: e1
            occurred_at: 2024-05-01T10:00:00Z
            stage: situation_room
            incident: { id: i, title: t }
            participants:
              - { name: Ada }
              - { name: Bo, email: Bo@Example.org }
              - { name: Di, phone: "5550006" }
              - { name: Ed, email: "ed@", phone: "+15005550006" }

            """
        let event = try IncidentEventParser.parse(Array(text.utf8), file: "new/x.yaml")
        #expect(event.participants.map(\.name) == ["Bo", "Ed"])
        #expect(event.participants.first?.email == "bo@example.org")
        #expect(event.participants.last?.email == nil)
        #expect(
            event.unreachable == [
                UnreachablePerson(name: "Ada", reason: "no email and no phone"),
                UnreachablePerson(name: "Di", reason: "phone '5550006' is not an E.164 number"),
                UnreachablePerson(name: "Ed", reason: "email 'ed@' is not a valid address (told by SMS only)"),
            ]
        )
    }

    @Test(
        "empty contacts make a person unreachable, not the file bad; control characters in names, titles, severities and teams become spaces"
    )
    func emptyContactsAndControlCharacters() throws {
        let text = """
            event_id: e1
            occurred_at: 2024-05-01T10:00:00Z
            stage: situation_room
            incident: { id: i, title: "Down\\r\\nBcc: x@example.org\\u2028\\u202Eevil", severity: "P1\\r\\nBcc: y@example.org", team: "ops\\nX: 1" }
            participants:
              - { name: Ada, email: "", phone: "+15005550101" }
              - { name: Bo, email: "" }
              - { name: "Cy\\r\\nX-Injected: 1", email: cy@example.org, phone: "" }

            """
        let event = try IncidentEventParser.parse(Array(text.utf8), file: "new/x.yaml")
        #expect(event.incident.title == "Down  Bcc: x@example.org  evil")
        #expect(event.incident.severity == "P1  Bcc: y@example.org")
        #expect(event.incident.team == "ops X: 1")
        #expect(event.participants.map(\.name) == ["Ada", "Cy  X-Injected: 1"])
        #expect(
            event.unreachable == [
                UnreachablePerson(name: "Ada", reason: "email is empty (told by SMS only)"),
                UnreachablePerson(name: "Bo", reason: "email is empty"),
                UnreachablePerson(name: "Cy  X-Injected: 1", reason: "phone is empty (told by email only)"),
            ]
        )
    }

    @Test func everyMissingFieldIsListed() {
        #expect(
            eventErrors("integration: zoom-main\n") == [
                "new/x.yaml:1:1: event_id: required field is missing",
                "new/x.yaml:1:1: occurred_at: required field is missing",
                "new/x.yaml:1:1: stage: required field is missing",
                "new/x.yaml:1:1: incident: required field is missing",
            ]
        )
    }

    @Test func unknownKeysDuplicatesAndAnchorsInEvents() {
        let base = "event_id: e1\noccurred_at: 2024-05-01T10:00:00Z\nstage: opened\nincident: { id: i, title: t }\n"
        #expect(
            eventErrors(base + "priority: p1\n") == [
                "new/x.yaml:5:1: priority: unknown key (expected event_id, occurred_at, stage, incident, participants, integration)"
            ]
        )
        #expect(eventErrors(base + "stage: resolved\n") == ["new/x.yaml:5:1: duplicate key 'stage' (first at line 3)"])
        #expect(
            eventErrors(#"{"event_id": "a", "event_id": "b"}"#) == [
                "new/x.yaml:1:19: duplicate key 'event_id' (first at line 1)"
            ]
        )
        let anchored =
            "event_id: &e e1\noccurred_at: 2024-05-01T10:00:00Z\nstage: opened\nincident: { id: *e, title: t }\n"
        #expect(
            eventErrors(anchored) == [
                "new/x.yaml:1:11: anchors and aliases are not allowed (&e); write the value out",
                "new/x.yaml:4:17: anchors and aliases are not allowed (*e)",
            ]
        )
    }

    @Test func sizeLimitAndEmptyFile() {
        let big = Array(("event_id: e1\n# " + String(repeating: "x", count: 2000)).utf8)
        #expect(throws: ConfigErrors.self) { try IncidentEventParser.parse(big, file: "f", maxFileSize: 1000) }
        #expect(
            eventErrors("") == [
                "new/x.yaml:1:1: the file is empty; an event needs event_id, occurred_at, stage and incident"
            ]
        )
    }
}

@Suite struct ScalarSyntax {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0.0), ("2000-03-01T00:00:00Z", 951_868_800),
        ("2024-05-01T10:00:00.5z", 1_714_557_600.5),
        ("2024-05-01 12:00:00+02:00", 1_714_557_600), ("1969-12-31T23:59:59Z", -1),
    ])
    func rfc3339(text: String, seconds: Double) {
        #expect(Scalars.rfc3339(text) == seconds)
    }

    @Test(arguments: ["a@b.co", "first.last+tag@sub.example.org", "root@localhost", "ü@exämple.de"])
    func goodEmails(email: String) {
        #expect(Scalars.isEmail(email))
    }

    @Test(arguments: ["", "@example.org", "a@", "a@b", "a b@c.org", "a@b@c.org", "<a@b.org>", "a@.b.org", "a@b.org."])
    func badEmails(email: String) {
        #expect(!Scalars.isEmail(email))
    }

    @Test(arguments: ["plain", "payments-sre", "P1", "v1.2.3", "1h", "30s", "a:b", "+", "-", "."])
    func stringsThatYAMLKeepsAsStrings(text: String) {
        #expect(Scalars.yamlType(ofPlain: text) == nil)
    }
}

extension ScalarSyntax {
    @Test(arguments: [
        ("yes", "a boolean"), ("OFF", "a boolean"), ("~", "null"), ("Null", "null"), ("0", "an integer"),
        ("-12", "an integer"), ("+0755", "an integer"), ("0b101", "an integer"), ("0o17", "an integer"),
        ("0xFF", "an integer"), ("1_000", "an integer"), ("22:30", "a sexagesimal integer"),
        ("190:20:30", "a sexagesimal integer"), ("190:20:30.15", "a float"), ("1.5", "a float"), ("-.5", "a float"),
        ("1.", "a float"), ("6.8523015e+5", "a float"), ("1e3", "a float"), ("-.INF", "a float"), (".NaN", "a float"),
        ("2001-12-14", "a timestamp"), ("2001-12-14t21:59:43.10-05:00", "a timestamp"),
        ("2001-12-14 21:59:43.10 -5", "a timestamp"), ("2001-12-15T02:59:43.1Z", "a timestamp"),
    ])
    func plainScalarsYAMLCoerces(text: String, kind: String) {
        #expect(Scalars.yamlType(ofPlain: text) == kind)
    }

    @Test(arguments: ["22:70", "1:2:", "1.2.3", "0x", "0b", "1e", "e3", "2001-12-14 lunch", "12:30pm"])
    func nearMissesStayStrings(text: String) {
        #expect(Scalars.yamlType(ofPlain: text) == nil)
    }

    @Test(arguments: [("0", 0), ("7", 7), ("-3", -3), ("100", 100)])
    func decimalIntegers(text: String, value: Int) {
        #expect(Scalars.decimalInteger(text) == value)
    }

    @Test(arguments: ["00", "07", "-0", "+1", "1_0", "", "-", "99999999999999999999"])
    func notDecimalIntegers(text: String) {
        #expect(Scalars.decimalInteger(text) == nil)
    }
}
