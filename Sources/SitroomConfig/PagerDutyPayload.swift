import SitroomCore

/// A PagerDuty webhook v3 payload read into one incident event (SPEC §4).
///
/// The payload, as PagerDuty documents it (developer.pagerduty.com, "Webhooks v3 Overview", event data):
/// `{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}`. For incident events
/// (`event_type` `incident.*`, `resource_type` `incident`) `data` is the incident: `id`, `type: incident`,
/// `title`, `status` (`triggered` | `acknowledged` | `resolved`), `urgency` (`high` | `low`), `priority`
/// (`{summary: "P1", ...}` or null), `service` (`{summary}`), `teams[]` (`{summary}`), `assignees[]`
/// (`{summary, ...}`: a user reference whose `summary` is the user's name). For events about something
/// attached to an incident (`incident.annotated`, `incident.responder.added`, ...) `data` has an `incident`
/// reference (`{id, summary}`) instead. Keys sitroom does not use are ignored.
///
/// Mapping:
/// - `event_id` is `pd-` and `event.id`; `occurred_at` is `event.occurred_at`; `incident.id` is `pd-` and the
///   incident's `id`; `title` its `title`; `severity` its `priority.summary`, else its `urgency`; `team` the
///   first of its `teams`;
/// - `stage`: `incident.resolved` (or an incident whose `status` is `resolved`) gives `resolved`; an open
///   incident that holds every `key: value` of `feeds.pagerduty.situation_room_when` gives `situation_room`
///   (`reopened` for `incident.reopened`); otherwise `opened` for `incident.triggered`, `updated` for the
///   rest (escalation, priority change, acknowledgement...: participants merge, the room stays). Rule keys:
///   `urgency`, `priority` (the summary, e.g. `P1`), `status`, `service` (its summary), `team` (any of the
///   teams' summaries), `event_type`;
/// - `participants`: the assignees found in `etc/roster.yaml` by email (when the reference carries one), else
///   by name; when none is found, the members of the roster team named like one of the incident's teams.
///   `incident.responder.added` adds its `data.user` the same way.
///
/// Events that are not about incidents (`service.updated`, ...) are ``SpoolItem/ignored(format:reason:)``.
enum PagerDutyPayload {
    static func read(_ top: YAMLMapping, context: FeedContext) -> SpoolItem? {
        let diag = top.diag
        let before = diag.count
        guard let event = top.value("event")?.mapping() else { return nil }
        let id = event.string("id", required: true)
        let eventType = event.string("event_type", required: true)
        let resourceType = event.string("resource_type")
        let occurredAt = event.required("occurred_at")?.timestamp()
        guard diag.count == before, let id, let eventType else { return nil }
        guard eventType.hasPrefix("incident."), resourceType == nil || resourceType == "incident" else {
            return .ignored(
                format: .pagerduty,
                reason: "PagerDuty event \(id) is a \(eventType), not about an incident; sitroom uses incident.* events"
            )
        }
        guard let occurredAt else { return nil }
        guard id.utf8.count <= IncidentEventParser.maxIDLength - 3 else {
            event.value("id")?.fail("is longer than \(IncidentEventParser.maxIDLength - 3) bytes")
            return nil
        }
        guard let dataValue = event.required("data"), let data = dataValue.mapping() else { return nil }

        var notes: [String] = []
        var participants: [Participant] = []
        let stage: IncidentStage
        let info: IncidentInfo
        if data.value("type")?.text(expected: "a string") == "incident" {
            guard let incident = readIncident(data, eventType: eventType, context: context, notes: &notes) else {
                return nil
            }
            (stage, info, participants) = incident
        } else if let reference = data.value("incident")?.mapping() {
            // Something attached to an incident: an annotation, a responder request, a status update.
            let incidentID = reference.string("id", required: true)
            let summary = reference.string("summary")
            if eventType == "incident.responder.added", let user = data.value("user")?.mapping() {
                let name = user.string("summary")
                let email = user.value("email")?.text(expected: "an email")
                if let person = context.roster.person(email: email, name: name) {
                    participants.append(person)
                } else {
                    notes.append("responder '\(email ?? name ?? "?")' is not in etc/roster.yaml; not told")
                }
            }
            guard diag.count == before, let incidentID else { return nil }
            stage = .updated
            info = IncidentInfo(
                id: "pd-\(incidentID)",
                title: OneLine.clean(String((summary ?? incidentID).prefix(300)))
            )
        } else {
            dataValue.fail("holds neither an incident (type: incident) nor an incident reference (incident: {id})")
            return nil
        }
        guard diag.count == before else { return nil }
        guard info.id.utf8.count <= IncidentEventParser.maxIDLength else {
            dataValue.fail("the incident id is longer than \(IncidentEventParser.maxIDLength - 3) bytes")
            return nil
        }
        let parsed = IncidentEvent(
            eventID: "pd-\(id)",
            occurredAt: occurredAt,
            stage: stage,
            incident: info,
            participants: participants
        )
        return .event(parsed, format: .pagerduty, notes: notes)
    }

    private static func readIncident(
        _ data: YAMLMapping,
        eventType: String,
        context: FeedContext,
        notes: inout [String]
    ) -> (IncidentStage, IncidentInfo, [Participant])? {
        let id = data.string("id", required: true)
        let title = data.string("title", required: true)
        let status = data.value("status")?.text(expected: "a status")
        let urgency = data.value("urgency")?.text(expected: "an urgency")
        let priority = data.value("priority")?.mapping()?.string("summary")
        let service = data.value("service")?.mapping()?.string("summary")
        var teams: [String] = []
        for item in data.value("teams")?.list() ?? [] {
            if let name = item.mapping()?.string("summary") { teams.append(name) }
        }
        var assignees: [(name: String?, email: String?)] = []
        for item in data.value("assignees")?.list() ?? [] {
            guard let reference = item.mapping() else { continue }
            assignees.append(
                (reference.string("summary"), reference.value("email")?.text(expected: "an email"))
            )
        }
        guard let id, let title else { return nil }

        let resolved = eventType == "incident.resolved" || status == "resolved"
        let rule = context.feeds.pagerdutySituationRoomWhen
        let matches = ruleMatches(rule) { key in
            switch key {
            case "urgency": return urgency.map { [$0] } ?? []
            case "priority": return priority.map { [$0] } ?? []
            case "status": return status.map { [$0] } ?? []
            case "service": return service.map { [$0] } ?? []
            case "team": return teams
            case "event_type": return [eventType]
            default: return []
            }
        }
        let stage: IncidentStage
        if resolved {
            stage = .resolved
        } else if matches {
            stage = eventType == "incident.reopened" ? .reopened : .situationRoom
        } else {
            stage = eventType == "incident.triggered" ? .opened : .updated
        }

        var participants: [Participant] = []
        for assignee in assignees {
            if let person = context.roster.person(email: assignee.email, name: assignee.name) {
                appendPeople([person], to: &participants)
            } else {
                notes.append("assignee '\(assignee.email ?? assignee.name ?? "?")' is not in etc/roster.yaml; not told")
            }
        }
        if participants.isEmpty {
            for team in teams {
                if let members = context.roster.members(ofTeam: team) { appendPeople(members, to: &participants) }
            }
        }
        let info = IncidentInfo(
            id: "pd-\(id)",
            title: OneLine.clean(String(title.prefix(300))),
            severity: priority ?? urgency,
            team: teams.first
        )
        return (stage, info, participants)
    }
}
