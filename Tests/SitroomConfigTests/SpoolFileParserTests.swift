import Foundation
import SitroomCore
import Testing

@testable import SitroomConfig

/// The repository's examples/ (real payload files, also used by the README).
private let examples: String = {
    var dir = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { dir.deleteLastPathComponent() }
    return dir.path + "/examples"
}()

private func example(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: "\(examples)/\(name)")))
}

private let roster = Roster(teams: [
    "payments-sre": [
        Participant(name: "Ada Lovelace", email: "ada@example.com", phone: "+15005550101", role: .commander),
        Participant(name: "Grace Hopper", email: "grace@example.com", role: .responder),
    ],
    "search": [
        Participant(name: "Alan Turing", email: "alan@example.com", phone: "+15005550102", role: .commander),
        Participant(name: "Katherine Johnson", phone: "+15005550103", role: .responder),
    ],
])

private let context = FeedContext(
    feeds: FeedSettings(
        alertmanagerSituationRoomWhen: ["severity": "critical"],
        pagerdutySituationRoomWhen: ["priority": "P1"]
    ),
    roster: roster
)

private func parseEvent(
    _ bytes: [UInt8],
    context: FeedContext = context
) throws -> (IncidentEvent, SpoolFormat, [String]) {
    guard
        case .event(let event, let format, let notes) = try SpoolFileParser.parse(
            bytes,
            file: "new/x",
            context: context
        )
    else {
        Issue.record("not an event")
        throw CancellationError()
    }
    return (event, format, notes)
}

private func errors(_ bytes: [UInt8], context: FeedContext = context) -> [String] {
    do {
        _ = try SpoolFileParser.parse(bytes, file: "new/x", context: context)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

@Suite struct StableHashes {
    @Test("FNV-1a matches the published test vectors for \"a\"")
    func vectors() {
        #expect(StableHash.fnv64(bytes: Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        let (high, low) = StableHash.fnv128(bytes: Array("a".utf8))
        #expect(StableHash.hex(high) + StableHash.hex(low) == "d228cb696f1a8caf78912b704e4a8964")
    }

    /// Ids hash their parts each followed by a 0 byte (values from Python's integers over `group\0firing\0`).
    @Test func partsAreHashedWithTheirTerminators() {
        #expect(StableHash.fnv64(["group", "firing"]) == "5fecc61131fb9399")
        #expect(StableHash.fnv128(["group", "firing"]) == "c0185ddf23c1fcd187da563abbf66df9")
    }
}

@Suite struct AlertmanagerPayloads {
    @Test("a firing group whose alerts are critical opens a situation room for the roster team")
    func firing() throws {
        let (event, format, notes) = try parseEvent(try example("alertmanager-firing.json"))
        #expect(format == .alertmanager)
        #expect(notes.isEmpty)
        #expect(event.stage == .situationRoom)
        #expect(event.incident.id.hasPrefix("am-PaymentsAPIErrorRate-"))
        #expect(event.incident.id.count == "am-PaymentsAPIErrorRate-".count + 16)
        #expect(event.incident.title == "Payments API error rate above 5%")
        #expect(event.incident.severity == "critical")
        #expect(event.incident.team == "payments-sre")
        #expect(event.participants.map(\.name) == ["Ada Lovelace", "Grace Hopper"])
        #expect(event.eventID.hasPrefix("am-") && event.eventID.count == 35)
        // The later of the two startsAt.
        #expect(event.occurredAt == Scalars.rfc3339("2026-11-29T12:00:30Z"))
    }

    @Test("resolved resolves the same incident with another event id, at the latest endsAt")
    func resolved() throws {
        let (firing, _, _) = try parseEvent(try example("alertmanager-firing.json"))
        let (resolved, _, _) = try parseEvent(try example("alertmanager-resolved.json"))
        #expect(resolved.stage == .resolved)
        #expect(resolved.incident.id == firing.incident.id)
        #expect(resolved.eventID != firing.eventID)
        #expect(resolved.occurredAt == Scalars.rfc3339("2026-11-29T12:40:15Z"))
    }

    @Test("a re-notification of an unchanged group (repeat_interval) has the same event id; a changed one does not")
    func renotification() throws {
        let original = try example("alertmanager-firing.json")
        var object = try JSONSerialization.jsonObject(with: Data(original)) as! [String: Any]
        object["receiver"] = "another"  // fields outside the id do not matter
        object["truncatedAlerts"] = 0
        let again = Array(try JSONSerialization.data(withJSONObject: object))
        #expect(try parseEvent(again).0.eventID == (try parseEvent(original).0.eventID))

        var alerts = object["alerts"] as! [[String: Any]]
        alerts.reverse()  // order does not matter either
        object["alerts"] = alerts
        #expect(
            try parseEvent(Array(try JSONSerialization.data(withJSONObject: object))).0.eventID
                == (try parseEvent(original).0.eventID)
        )

        alerts[0]["startsAt"] = "2026-11-29T13:00:00Z"  // refired: a new event
        object["alerts"] = alerts
        let refired = try parseEvent(Array(try JSONSerialization.data(withJSONObject: object))).0
        #expect(refired.eventID != (try parseEvent(original).0.eventID))
        #expect(refired.incident.id == (try parseEvent(original).0.incident.id))
    }

    @Test("alerts that do not match feeds.alertmanager only record the incident; an unknown team is noted")
    func nonMatching() throws {
        let payload = """
            {"version":"4","groupKey":"{}:{alertname=\\"DiskFilling\\"}","status":"firing","receiver":"r",
             "groupLabels":{"alertname":"DiskFilling"},"commonLabels":{"alertname":"DiskFilling","severity":"warning"},
             "commonAnnotations":{},"externalURL":"http://am","alerts":[
              {"status":"firing","labels":{"alertname":"DiskFilling","severity":"warning","team":"storage"},
               "annotations":{},"startsAt":"2026-11-29T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
               "generatorURL":"","fingerprint":"aa"},
              {"status":"firing","labels":{"alertname":"DiskFilling","severity":"warning","team":"storage"},
               "annotations":{},"startsAt":"2026-11-29T10:01:00Z","endsAt":"0001-01-01T00:00:00Z",
               "generatorURL":"","fingerprint":"bb"}]}
            """
        let (event, _, notes) = try parseEvent(Array(payload.utf8))
        #expect(event.stage == .opened)
        #expect(event.participants.isEmpty)
        #expect(event.incident.title == "DiskFilling (2 alerts)")
        #expect(notes == ["team 'storage' (label team) is not in etc/roster.yaml; nobody of it is told"])
        // An empty rule matches every alert.
        let open = FeedContext(feeds: FeedSettings(alertmanagerSituationRoomWhen: [:]), roster: roster)
        #expect(try parseEvent(Array(payload.utf8), context: open).0.stage == .situationRoom)
    }

    @Test("a wrong version, a missing fingerprint and a bad timestamp are named with their lines")
    func malformed() throws {
        let payload = """
            {
              "version": "3",
              "groupKey": "g",
              "status": "firing",
              "alerts": [
                {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "yesterday"}
              ]
            }
            """
        let found = errors(Array(payload.utf8))
        #expect(found.contains { $0.hasPrefix("new/x:2:") && $0.contains("version '3' is not supported") })
        #expect(
            found.contains {
                $0.hasPrefix("new/x:6:") && $0.contains("alerts[0].fingerprint: required field is missing")
            }
        )
        #expect(
            found.contains { $0.hasPrefix("new/x:6:") && $0.contains("alerts[0].startsAt") && $0.contains("RFC 3339") }
        )
    }
}

@Suite struct PagerDutyPayloads {
    @Test("triggered low-priority records the incident; the priority raised to P1 opens the room; escalation merges")
    func lifecycle() throws {
        let (triggered, format, notes) = try parseEvent(try example("pagerduty-triggered.json"))
        #expect(format == .pagerduty)
        #expect(notes.isEmpty)
        #expect(triggered.stage == .opened)
        #expect(triggered.eventID == "pd-01F1BWW3CBE6DM1CSGQ4VJXR1A")
        #expect(
            triggered.incident
                == IncidentInfo(
                    id: "pd-Q2K3PJ7ZB1XV4L",
                    title: "Search latency over SLO",
                    severity: "P3",
                    team: "search"
                )
        )
        #expect(triggered.participants.map(\.name) == ["Alan Turing"])
        #expect(triggered.occurredAt == Scalars.rfc3339("2026-11-29T13:00:00Z"))

        let (raised, _, _) = try parseEvent(try example("pagerduty-priority-updated.json"))
        #expect(raised.stage == .situationRoom)
        #expect(raised.incident.severity == "P1")

        let (escalated, _, _) = try parseEvent(try example("pagerduty-escalated.json"))
        #expect(escalated.stage == .situationRoom)
        #expect(escalated.participants.map(\.name) == ["Alan Turing", "Katherine Johnson"])

        let (resolved, _, _) = try parseEvent(try example("pagerduty-resolved.json"))
        #expect(resolved.stage == .resolved)
        #expect(resolved.incident.id == triggered.incident.id)
    }

    @Test("reopened reopens when the rule holds; an unknown assignee is noted and the team's roster used")
    func reopened() throws {
        var object =
            try JSONSerialization.jsonObject(with: Data(try example("pagerduty-escalated.json"))) as! [String: Any]
        var inner = object["event"] as! [String: Any]
        inner["event_type"] = "incident.reopened"
        var data = inner["data"] as! [String: Any]
        data["assignees"] = [["id": "PZZZ", "summary": "Somebody Else", "type": "user_reference"]]
        inner["data"] = data
        object["event"] = inner
        let (event, _, notes) = try parseEvent(Array(try JSONSerialization.data(withJSONObject: object)))
        #expect(event.stage == .reopened)
        #expect(event.participants.map(\.name) == ["Alan Turing", "Katherine Johnson"])  // team "search"
        #expect(notes == ["assignee 'Somebody Else' is not in etc/roster.yaml; not told"])
    }

    @Test("an event about something else than an incident is ignored; an annotation only updates")
    func otherEvents() throws {
        let service = """
            {"event":{"id":"E1","event_type":"service.updated","resource_type":"service",
             "occurred_at":"2026-11-29T13:00:00Z","data":{"id":"PSVC","type":"service"}}}
            """
        guard
            case .ignored(.pagerduty, let reason) = try SpoolFileParser.parse(
                Array(service.utf8),
                file: "new/x",
                context: context
            )
        else {
            Issue.record("not ignored")
            return
        }
        #expect(reason.contains("service.updated"))

        let note = """
            {"event":{"id":"E2","event_type":"incident.annotated","resource_type":"incident",
             "occurred_at":"2026-11-29T13:01:00Z","data":{"incident":{"id":"Q2K3PJ7ZB1XV4L","summary":"Search"},
             "content":"looking","type":"incident_note"}}}
            """
        let (annotated, _, _) = try parseEvent(Array(note.utf8))
        #expect(annotated.stage == .updated)
        #expect(annotated.incident.id == "pd-Q2K3PJ7ZB1XV4L")
    }

    @Test("a v2 payload and a v3 payload without its event id are refused with a reason")
    func malformed() throws {
        #expect(errors(Array(#"{"messages":[{"event":"incident.trigger"}]}"#.utf8)).first?.contains("v2") == true)
        let noID = #"{"event":{"event_type":"incident.triggered","occurred_at":"2026-11-29T13:00:00Z","data":{}}}"#
        #expect(errors(Array(noID.utf8)).contains { $0.contains("event.id: required field is missing") })
    }
}

@Suite struct ZoomWebhookFiles {
    @Test("an app_deauthorized webhook with its headers is recognised and its body kept byte for byte")
    func deauthorized() throws {
        let bytes = try example("zoom-app-deauthorized.http")
        guard case .zoomWebhook(let webhook) = try SpoolFileParser.parse(bytes, file: "new/z", context: context) else {
            Issue.record("not a Zoom webhook")
            return
        }
        #expect(webhook.event == "app_deauthorized")
        #expect(webhook.accountID == "AcctSim1")
        #expect(webhook.clientID == "sitroom-sim-client")
        #expect(webhook.userID == "u-bridge-1")
        #expect(webhook.requestTimestamp == 1_795_957_200)
        #expect(webhook.signature.hasPrefix("v0=") && webhook.signature.count == 67)
        #expect(webhook.header("Content-Type") == "application/json")
        let text = String(decoding: bytes, as: UTF8.self)
        let body = text.components(separatedBy: "\r\n\r\n")[1]
        #expect(webhook.body == Array(body.utf8))
    }

    @Test("a missing signature header and another Zoom event are refused, naming the line")
    func malformed() throws {
        let noSignature =
            "x-zm-request-timestamp: 1795957200\n\n{\"event\":\"app_deauthorized\",\"payload\":{\"account_id\":\"A\"}}"
        #expect(errors(Array(noSignature.utf8)) == ["new/x:2:1: header x-zm-signature: required header is missing"])
        let other =
            "x-zm-signature: v0=\(String(repeating: "ab", count: 32))\nx-zm-request-timestamp: 1\n\n"
            + "{\n\"event\": \"recording.completed\",\n\"payload\": {\"account_id\": \"A\"}\n}"
        let found = errors(Array(other.utf8))
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("new/x:5:") == true)
        #expect(found.first?.contains("recording.completed") == true)
    }
}

@Suite struct SpoolFileRecognition {
    @Test("invalid UTF-8 is refused with the byte and its position")
    func invalidUTF8() {
        let bytes = Array("event_id: e\nstage: ".utf8) + [0xC3, 0x28] + Array("\n".utf8)
        #expect(errors(bytes) == ["new/x:2:8: invalid UTF-8 (byte 0xc3)"])
    }

    @Test("a document of no known format says which formats exist")
    func unknown() {
        let found = errors(Array(#"{"hello": "world"}"#.utf8))
        #expect(found.count == 1)
        #expect(found.first?.contains("Alertmanager") == true)
        #expect(found.first?.contains("PagerDuty") == true)
    }

    @Test("the native format is still read, and an over-long event id refused")
    func native() throws {
        let text = """
            event_id: evt-1
            occurred_at: "2026-11-29T12:00:00Z"
            stage: situation_room
            incident: { id: INC-1, title: Down }

            """
        let (parsed, format, _) = try parseEvent(Array(text.utf8))
        #expect(format == .native)
        #expect(parsed.eventID == "evt-1")
        let long = text.replacingOccurrences(of: "evt-1", with: String(repeating: "x", count: 300))
        #expect(errors(Array(long.utf8)) == ["new/x:1:11: event_id: is 300 bytes long; at most 256 are allowed"])
    }
}
