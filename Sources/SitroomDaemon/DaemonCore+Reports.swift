import Foundation
import SitroomCore
import SitroomService

// What the read-only commands show: `status`, `integrations`, `integration show`, `pool show`, `rooms`, `incidents`,
// `room show`, as text tables or as the JSON reports of ControlReports.swift.
extension DaemonCore {
    /// The state at a glance (`status`), as one value.
    public func statusReport() async throws -> StatusReport {
        let integrations = await registry.snapshot()
        let readers = store.readerTable
        // The counter has the slots freed at the start too (DaemonMain adds them).
        let staleReadersCleared = metrics.staleReadersClearedTotal
        var byState: [String: Int] = [:]
        for (state, count) in try await provisioner.roomCounts() { byState[state.rawValue] = count }
        let open = RoomState.allCases.filter(\.isOpen).map { byState[$0.rawValue] ?? 0 }.reduce(0, +)
        var report = StatusReport(
            version: sitroomVersion,
            uptimeSeconds: Int(clock.now() - startedAt),
            generation: StatusReport.Generation(
                number: generation,
                appliedAt: rfc3339UTC(appliedAt),
                lastRejected: lastRejected.map {
                    StatusReport.Rejected(
                        at: rfc3339UTC($0.at),
                        errors: $0.errors,
                        validAgainAt: $0.validAgainAt.map(rfc3339UTC)
                    )
                },
                watch: StatusReport.Watch(watch)
            ),
            integrations: integrations.map {
                StatusReport.Integration(
                    name: $0.name,
                    kind: $0.kind,
                    state: $0.record.state.rawValue,
                    reason: $0.record.reason,
                    since: rfc3339UTC($0.record.since),
                    advice: $0.record.nextStep(integration: $0.name, kind: $0.kind),
                    missingScopes: $0.record.missingScopes ?? []
                )
            },
            pool: await pool.snapshot(),
            rooms: StatusReport.Rooms(open: open, byState: byState),
            outbox: StatusReport.Outbox(pending: await notifier.depth),
            spool: StatusReport.Spool(backlog: spoolBacklog(), rejected: spoolRejections(clock.now())),
            store: StatusReport.StoreState(
                readersInUse: readers.used,
                readerSlots: readers.size,
                staleReadersCleared: staleReadersCleared
            )
        )
        report.eventSubscriptions = await meetingEvents.snapshot().map {
            StatusReport.EventSubscription(integration: $0.integration, state: $0.state.rawValue)
        }
        return report
    }

    func status(json: Bool) async throws -> ControlReply {
        let report = try await statusReport()
        let intake = IntakeState.report(paths: paths)
        if json { return .ok(try Self.json(StatusJSON(report: report, intake: intake))) }
        var lines = [report.text]
        if let intake { lines.append(contentsOf: intake.lines) }
        let steps = report.nextSteps
        if !steps.isEmpty {
            lines.append("")
            lines.append("what to do:")
            lines.append(contentsOf: steps.map { "  \($0)" })
        }
        return .ok(lines.joined(separator: "\n"))
    }

    func integrationsList(json: Bool) async throws -> ControlReply {
        let all = await registry.snapshot()
        if json { return .ok(try Self.json(all.map { IntegrationJSON($0) })) }
        return .ok(
            Self.table(
                ["INTEGRATION", "KIND", "STATE", "SINCE", "REASON"],
                all.map {
                    [$0.name, $0.kind, $0.record.state.rawValue, rfc3339UTC($0.record.since), $0.record.reason ?? ""]
                }
            ).joined(separator: "\n")
        )
    }

    func integrationShow(_ name: String, json: Bool) async throws -> ControlReply {
        guard let entry = await registry.snapshot().first(where: { $0.name == name }) else {
            return .error("no integration named \(name)")
        }
        let hosts = await pool.snapshot(integration: name)
        let authorizations = try await registry.hostAuthorizations(name)
        let perHost = entry.kind == "zoom-oauth"
        func authorization(_ host: String) -> String {
            guard perHost else { return "by the app (server-to-server)" }
            guard let record = authorizations[host] else { return "pending_authorization" }
            return record.state.rawValue + (record.reason.map { ": \($0)" } ?? "")
        }
        if json {
            let rows = hosts.map {
                IntegrationJSON.Host(
                    host: $0.host,
                    user: $0.user,
                    state: $0.state,
                    authorization: authorization($0.host),
                    openRooms: $0.openRooms,
                    createsToday: $0.createsToday
                )
            }
            return .ok(try Self.json(IntegrationJSON(entry, hosts: rows)))
        }
        var lines = [
            "integration  \(name)", "kind         \(entry.kind)", "state        \(entry.record.state.rawValue)",
            "since        \(rfc3339UTC(entry.record.since))",
        ]
        if let reason = entry.record.reason { lines.append("reason       \(reason)") }
        if let scopes = entry.record.missingScopes, entry.record.state == .missingScope {
            lines.append("missing      \(scopes.joined(separator: ", "))")
        }
        if let step = entry.record.nextStep(integration: name, kind: entry.kind) {
            lines.append("what to do   \(step)")
        }
        for (host, record) in authorizations.sorted(by: { $0.key < $1.key }) where perHost && record.state != .active {
            lines.append("what to do   host \(host): `sitroomctl integration authorize \(name) \(host)`")
        }
        lines.append("")
        lines.append(
            contentsOf: Self.table(
                ["HOST", "USER", "AUTHORIZATION", "OPEN", "CREATES TODAY", "STATE"],
                hosts.map {
                    [
                        $0.host, $0.user, authorization($0.host), "\($0.openRooms)/\($0.concurrentMeetings)",
                        "\($0.createsToday)/\($0.dailyCreateLimit)", $0.state,
                    ]
                }
            )
        )
        return .ok(lines.joined(separator: "\n"))
    }

    func poolShow(_ integration: String, json: Bool) async throws -> ControlReply {
        guard await pool.hasPool(integration) else { return .error("no integration named \(integration)") }
        let hosts = await pool.snapshot(integration: integration)
        if json { return .ok(try Self.json(hosts)) }
        return .ok(
            Self.table(
                ["HOST", "USER", "OPEN", "CREATES TODAY", "STATE", "WHY"],
                hosts.map {
                    [
                        $0.host, $0.user, "\($0.openRooms)/\($0.concurrentMeetings)",
                        "\($0.createsToday)/\($0.dailyCreateLimit)",
                        $0.state, $0.detail,
                    ]
                }
            ).joined(separator: "\n")
        )
    }

    /// `rooms [open|all]`: a table with the room's age (since it was made) and reason, `-` in empty cells; an
    /// empty listing says so.
    func rooms(all: Bool, json: Bool) async throws -> ControlReply {
        let rooms = try await provisioner.rooms(openOnly: !all)
        let people = try await provisioner.participants(of: rooms.filter { $0.live != nil }.map(\.incidentID))
        func presence(_ room: Room) -> LivePresence? {
            room.live.map { LivePresence($0, participants: people[room.incidentID] ?? []) }
        }
        if json { return .ok(try Self.json(rooms.map { RoomJSON(room: $0, present: presence($0)?.present) })) }
        if rooms.isEmpty { return .ok(all ? "no rooms" : "no open rooms (`rooms all` lists ended ones too)") }
        let now = clock.now()
        return .ok(
            Self.table(
                ["INCIDENT", "ROOM", "STATE", "AGE", "PRESENT", "INTEGRATION", "HOST", "JOIN URL", "REASON"],
                rooms.map {
                    [
                        $0.incidentID, $0.id, $0.state.rawValue, TextTable.age(now - $0.createdAt),
                        presence($0)?.column ?? "", $0.integration ?? "", $0.hostID ?? "", $0.joinURL ?? "",
                        $0.reason ?? "",
                    ]
                }
            ).joined(separator: "\n")
        )
    }

    /// `incidents [open|all]`: incidents with their room's state, or `-` for those without a room (an `opened`
    /// PagerDuty incident, say); open ones are those not resolved or closed.
    func incidents(all: Bool, json: Bool) async throws -> ControlReply {
        let listed = try await provisioner.incidents(openOnly: !all)
        if json {
            return .ok(
                try Self.json(
                    listed.map { record, room in
                        IncidentListing(
                            incident: record.info.id,
                            title: record.info.title,
                            severity: record.info.severity,
                            team: record.info.team,
                            stage: record.stage.rawValue,
                            lastEventAt: rfc3339UTCMillis(record.lastOccurredAt),
                            participants: record.participants.count,
                            roomID: room?.id,
                            roomState: room?.state.rawValue
                        )
                    }
                )
            )
        }
        if listed.isEmpty {
            return .ok(all ? "no incidents" : "no open incidents (`incidents all` lists resolved ones too)")
        }
        let now = clock.now()
        return .ok(
            Self.table(
                ["INCIDENT", "STAGE", "SEVERITY", "ROOM", "LAST EVENT", "PEOPLE", "TITLE"],
                listed.map { record, room in
                    [
                        record.info.id, record.stage.rawValue, record.info.severity ?? "",
                        room.map { "\($0.state.rawValue) (\($0.id))" } ?? "",
                        TextTable.age(now - record.lastOccurredAt) + " ago",
                        "\(record.participants.count)", record.info.title,
                    ]
                }
            ).joined(separator: "\n")
        )
    }

    func roomShow(_ incident: String, json: Bool) async throws -> ControlReply {
        guard let (record, room) = try await provisioner.show(incident: incident) else {
            return .error("no incident \(incident)")
        }
        guard let room else { return .error("incident \(incident) has no room (stage \(record.stage.rawValue))") }
        let live = room.live.map {
            LivePresence($0, participants: record.participants, readyAt: room.readyAt, roomOpen: room.state.isOpen)
        }
        if json {
            return .ok(
                try Self.json(
                    RoomJSON(room: room, present: live?.present, detail: .init(record: record, presence: live))
                )
            )
        }
        let rows: [(String, String)] =
            [
                ("incident", "\(record.info.id): \(record.info.title)"), ("stage", record.stage.rawValue),
                ("room", room.id),
                ("state", room.state.rawValue), ("reason", room.reason ?? ""),
                ("what to do", Self.nextStep(room) ?? "nothing"), ("note", room.note ?? ""),
                ("integration", room.integration ?? ""),
                ("host", room.hostUser.map { "\(room.hostID ?? "") (\($0))" } ?? ""),
                ("meeting id", room.meetingID.map(String.init) ?? ""), ("join url", room.joinURL ?? ""),
                ("passcode", room.passcode ?? ""), ("participants", "\(record.participants.count)"),
            ]
            + record.unreachable.enumerated().map { index, person in
                (index == 0 ? "not told" : "", "\(person.name): \(person.reason)")
            } + (live?.rows ?? [("meeting", "no event from Zoom yet")])
        return .ok(
            rows.map { "\($0.0.padding(toLength: 13, withPad: " ", startingAt: 0))\($0.1.isEmpty ? "-" : $0.1)" }
                .joined(separator: "\n")
        )
    }

    /// What people should do about a room: its own advice (from the table of Zoom answers), else what its state
    /// calls for; `nil` when nothing.
    static func nextStep(_ room: Room) -> String? {
        if let advice = room.advice { return advice }
        switch room.state {
        case .provisioning: return "wait: the meeting is being created"
        case .waiting:
            return "none: it is retried by itself when a host can take it (the reason says what it waits for)"
        case .ready, .ended: return nil
        case .failed: return "fix what the reason names, then `sitroomctl room retry \(room.incidentID)`"
        case .unavailable: return "re-integrate Zoom, then `sitroomctl room retry \(room.incidentID)`"
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Left-aligned columns separated by two spaces, `-` in empty cells (``TextTable``).
    static func table(_ header: [String], _ rows: [[String]]) -> [String] { TextTable.render(header, rows) }
}

/// `status --json`: the report's fields, and sitroom-intake's part as its own object (`null` without an intake).
struct StatusJSON: Encodable {
    var report: StatusReport
    var intake: IntakeState.Report?

    private enum CodingKeys: String, CodingKey { case intake }

    func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let intake {
            try container.encode(intake, forKey: .intake)
        } else {
            try container.encodeNil(forKey: .intake)
        }
    }
}
