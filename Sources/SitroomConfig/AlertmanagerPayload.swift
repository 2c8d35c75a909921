import SitroomCore

/// A Prometheus Alertmanager webhook payload (the `webhook_config` receiver's JSON body, `version: "4"`) read
/// into one incident event (SPEC §4).
///
/// The payload, as Alertmanager documents it (prometheus.io/docs/alerting/latest/configuration/#webhook_config):
/// `version`, `groupKey`, `truncatedAlerts`, `status` (`firing` | `resolved`), `receiver`, `groupLabels`,
/// `commonLabels`, `commonAnnotations`, `externalURL`, and `alerts[]` of `{status, labels, annotations,
/// startsAt, endsAt, generatorURL, fingerprint}`. Keys sitroom does not use are ignored (Alertmanager may add
/// fields); the ones it uses are checked strictly.
///
/// Mapping:
/// - the incident is the group: `incident.id` is `am-<alertname>-<16 hex digits of FNV-1a over groupKey>`
///   (`am-<hex>` when the group has no `alertname` label), since a groupKey (`{}:{alertname="X"}`) is long and
///   holds spaces and quotes;
/// - `event_id` is `am-` and 32 hex digits of FNV-1a/128 over `groupKey`, `status` and every alert's
///   `fingerprint`, `startsAt` and `endsAt` (sorted): a re-notification of an unchanged group every
///   `repeat_interval` has the same id and is applied once; any change (an alert added, resolved, refiring
///   with a new `startsAt`) is a new event. Alertmanager sends `endsAt` `0001-01-01T00:00:00Z` for firing alerts;
/// - `occurred_at` is the latest `startsAt` of the alerts and `endsAt` of the resolved ones;
/// - `stage`: `resolved` when `status` is `resolved`; `situation_room` when a firing alert's labels hold
///   every `key: value` of `feeds.alertmanager.situation_room_when` (an empty rule matches every alert);
///   otherwise `opened`;
/// - `participants`: the members of the roster teams named by the alerts' `team` labels;
/// - `title`: `commonAnnotations.summary`, else the `alertname` (with the number of alerts when several);
///   `severity` and `team`: `commonLabels`, else the first alert's labels.
enum AlertmanagerPayload {
    struct Alert {
        var status: String
        var labels: [String: String]
        var startsAtText: String
        var startsAt: Double
        var endsAtText: String
        var endsAt: Double?
        var fingerprint: String
    }

    static func read(_ top: YAMLMapping, context: FeedContext) -> SpoolItem? {
        let diag = top.diag
        let before = diag.count
        if let value = top.required("version"), let version = value.string(), version != "4" {
            value.fail("Alertmanager webhook version '\(version)' is not supported (expected \"4\")")
        }
        let groupKey = top.string("groupKey", required: true)
        var status: String?
        if let value = top.required("status"), let text = value.string() {
            if text == "firing" || text == "resolved" {
                status = text
            } else {
                value.fail("unknown status '\(text)' (expected firing or resolved)")
            }
        }
        let groupLabels = top.value("groupLabels")?.labels() ?? [:]
        let commonLabels = top.value("commonLabels")?.labels() ?? [:]
        let commonAnnotations = top.value("commonAnnotations")?.labels() ?? [:]
        var alerts: [Alert] = []
        if let value = top.required("alerts"), let items = value.list() {
            if items.isEmpty { value.fail("must hold at least one alert") }
            for item in items {
                guard let entry = item.mapping() else { continue }
                var alertStatus: String?
                if let value = entry.required("status"), let text = value.string() {
                    if text == "firing" || text == "resolved" {
                        alertStatus = text
                    } else {
                        value.fail("unknown status '\(text)' (expected firing or resolved)")
                    }
                }
                let labels = entry.required("labels")?.labels()
                let startsValue = entry.required("startsAt")
                let startsAt = startsValue?.timestamp()
                let endsValue = entry.value("endsAt")
                let endsAt = endsValue?.timestamp()
                let fingerprint = entry.string("fingerprint", required: true)
                if let alertStatus, let labels, let startsAt, let fingerprint, endsValue == nil || endsAt != nil {
                    alerts.append(
                        Alert(
                            status: alertStatus,
                            labels: labels,
                            startsAtText: startsValue?.text(expected: "") ?? "",
                            startsAt: startsAt,
                            endsAtText: endsValue?.text(expected: "") ?? "",
                            endsAt: endsAt.flatMap { $0 > 0 ? $0 : nil },
                            fingerprint: fingerprint
                        )
                    )
                }
            }
        }
        guard diag.count == before, let groupKey, let status, !alerts.isEmpty else { return nil }

        let sorted = alerts.sorted { ($0.fingerprint, $0.startsAtText) < ($1.fingerprint, $1.startsAtText) }
        var parts = [groupKey, status]
        for alert in sorted { parts += [alert.fingerprint, alert.startsAtText, alert.endsAtText] }
        let eventID = "am-" + StableHash.fnv128(parts)

        var occurredAt = alerts.map(\.startsAt).max()!
        for alert in alerts where alert.status == "resolved" {
            if let ends = alert.endsAt { occurredAt = max(occurredAt, ends) }
        }

        let firing = alerts.filter { $0.status == "firing" }
        let rule = context.feeds.alertmanagerSituationRoomWhen
        let stage: IncidentStage
        if status == "resolved" {
            stage = .resolved
        } else if firing.contains(where: { alert in ruleMatches(rule) { key in alert.labels[key].map { [$0] } ?? [] } })
        {
            stage = .situationRoom
        } else {
            stage = .opened
        }

        var notes: [String] = []
        var participants: [Participant] = []
        var teams: [String] = []
        for alert in status == "resolved" ? alerts : firing {
            if let team = alert.labels["team"], !teams.contains(team) { teams.append(team) }
        }
        if let team = commonLabels["team"], !teams.contains(team) { teams.insert(team, at: 0) }
        for team in teams {
            if let members = context.roster.members(ofTeam: team) {
                appendPeople(members, to: &participants)
            } else {
                notes.append("team '\(team)' (label team) is not in etc/roster.yaml; nobody of it is told")
            }
        }
        if teams.isEmpty { notes.append("no alert has a team label; nobody is told from the roster") }

        let alertname = groupLabels["alertname"] ?? commonLabels["alertname"]
        let groupHash = StableHash.fnv64([groupKey])
        let incidentID = alertname.map { "am-\(idFragment($0))-\(groupHash)" } ?? "am-\(groupHash)"
        var title =
            commonAnnotations["summary"] ?? alertname ?? alerts[0].labels["alertname"] ?? "Alertmanager alert group"
        if commonAnnotations["summary"] == nil, alerts.count > 1 { title += " (\(alerts.count) alerts)" }
        let severity = commonLabels["severity"] ?? (firing.first ?? alerts[0]).labels["severity"]
        let team = commonLabels["team"] ?? teams.first

        let event = IncidentEvent(
            eventID: eventID,
            occurredAt: occurredAt,
            stage: stage,
            incident: IncidentInfo(
                id: incidentID,
                title: OneLine.clean(String(title.prefix(300))),
                severity: severity,
                team: team
            ),
            participants: participants
        )
        return .event(event, format: .alertmanager, notes: notes)
    }
}
