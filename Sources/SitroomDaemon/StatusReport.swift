import Foundation
import SitroomCore
import SitroomService
import SitroomStore

/// What `status` shows (SPEC §7), as one value: `status --json` is its JSON encoding, `status` its ``text``.
/// Absent values are JSON `null`; times are RFC 3339 UTC. A part added to `status` is a field added here.
public struct StatusReport: Sendable, Encodable {
    /// sitroom's version.
    public var version: String
    /// Seconds since the daemon started.
    public var uptimeSeconds: Int
    public var generation: Generation
    public var integrations: [Integration]
    /// Every host of every pool (as `pool NAME` shows them).
    public var pool: [PoolHostSnapshot]
    public var rooms: Rooms
    public var outbox: Outbox
    public var spool: Spool
    public var store: StoreState
    /// Each integration's Zoom WebSocket event subscription: `{integration, state}` (`connecting`, `connected`,
    /// `disconnected`); empty when none is configured.
    public var eventSubscriptions: [EventSubscription] = []

    /// One WebSocket event subscription in `status`.
    public struct EventSubscription: Sendable, Encodable {
        public var integration: String
        public var state: String
    }

    enum CodingKeys: String, CodingKey {
        case version, generation, integrations, pool, rooms, outbox, spool, store
        case eventSubscriptions = "event_subscriptions"
        case uptimeSeconds = "uptime_seconds"
    }

    /// What an admin should do now, one line each: integrations that are not active (their advice from the table of
    /// Zoom answers, docs/zoom.md), hosts out of their daily quota, failed rooms.
    public var nextSteps: [String] {
        var steps = integrations.compactMap { entry in
            entry.state == IntegrationState.active.rawValue
                ? nil : entry.advice.map { "\(entry.name) (\(entry.state)): \($0)" }
        }
        for host in pool where host.state == "out of quota" {
            steps.append(
                "\(host.integration)/\(host.host) is out of its daily create quota until 00:00 UTC: other hosts take rooms"
            )
        }
        if let failed = rooms.byState[RoomState.failed.rawValue], failed > 0 {
            steps.append(
                "\(failed) room(s) failed: `sitroomctl rooms all` lists them, `sitroomctl room show INCIDENT` says what to do"
            )
        }
        return steps
    }

    /// The live configuration generation.
    public struct Generation: Sendable, Encodable {
        public var number: Int
        /// When it was applied (RFC 3339 UTC).
        public var appliedAt: String
        /// The last generation refused since start, if any.
        public var lastRejected: Rejected?
        public var watch: Watch

        enum CodingKeys: String, CodingKey {
            case number, watch
            case appliedAt = "applied_at"
            case lastRejected = "last_rejected"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(number, forKey: .number)
            try container.encode(appliedAt, forKey: .appliedAt)
            try container.encodeOrNull(lastRejected, forKey: .lastRejected)
            try container.encode(watch, forKey: .watch)
        }
    }

    /// A refused generation.
    public struct Rejected: Sendable, Encodable {
        /// When it was refused (RFC 3339 UTC).
        public var at: String
        /// Every error, `file:line:col: message`, one per entry.
        public var errors: [String]
        /// When `etc/` was found valid again (RFC 3339 UTC), if it was.
        public var validAgainAt: String?

        enum CodingKeys: String, CodingKey {
            case at, errors
            case validAgainAt = "valid_again_at"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(at, forKey: .at)
            try container.encode(errors, forKey: .errors)
            try container.encodeOrNull(validAgainAt, forKey: .validAgainAt)
        }
    }

    /// How `etc/` is watched: `mode` (`inotify`, `polling`, `off`), `directories` and `check_interval_seconds`
    /// (inotify), `interval_seconds` and `reason` (polling); the others are `null`.
    public struct Watch: Sendable, Encodable {
        public var mode: String
        public var summary: String
        public var directories: [String]?
        public var checkIntervalSeconds: Double?
        public var intervalSeconds: Double?
        public var reason: String?

        init(_ mode: ConfigWatchMode) {
            self.mode = mode.name
            summary = mode.summary
            switch mode {
            case .off: break
            case .inotify(let directories, let safety):
                self.directories = directories
                checkIntervalSeconds = safety
            case .polling(let interval, let reason):
                intervalSeconds = interval
                self.reason = reason
            }
        }

        enum CodingKeys: String, CodingKey {
            case mode, directories, reason
            case checkIntervalSeconds = "check_interval_seconds"
            case intervalSeconds = "interval_seconds"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(mode, forKey: .mode)
            try container.encodeOrNull(directories, forKey: .directories)
            try container.encodeOrNull(checkIntervalSeconds, forKey: .checkIntervalSeconds)
            try container.encodeOrNull(intervalSeconds, forKey: .intervalSeconds)
            try container.encodeOrNull(reason, forKey: .reason)
        }
    }

    /// One integration and its state.
    public struct Integration: Sendable, Encodable {
        public var name: String
        public var kind: String
        public var state: String
        public var reason: String?
        /// When it entered its state (RFC 3339 UTC).
        public var since: String
        /// What an admin should do about it (from the table of Zoom answers); `nil` when nothing.
        public var advice: String?
        /// The scopes Zoom said the app lacks (state `missing_scope`), else empty.
        public var missingScopes: [String]

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(kind, forKey: .kind)
            try container.encode(state, forKey: .state)
            try container.encodeOrNull(reason, forKey: .reason)
            try container.encode(since, forKey: .since)
            try container.encodeOrNull(advice, forKey: .advice)
            try container.encode(missingScopes, forKey: .missingScopes)
        }

        enum CodingKeys: String, CodingKey {
            case name, kind, state, reason, since, advice
            case missingScopes = "missing_scopes"
        }
    }

    /// Rooms by state: `open` counts `provisioning`, `waiting` and `ready`; `by_state` has every state that has
    /// rooms, open or not.
    public struct Rooms: Sendable, Encodable {
        public var open: Int
        public var byState: [String: Int]

        enum CodingKeys: String, CodingKey {
            case open
            case byState = "by_state"
        }
    }

    /// The outbox: notices not yet sent or dead (a follow-up waiting for its `follow_up_delay` counts).
    public struct Outbox: Sendable, Encodable {
        public var pending: Int
    }

    /// The LMDB store's reader table: `readers_in_use` (by any process, stale slots of dead processes included
    /// until cleared) of `reader_slots`, and `stale_readers_cleared` since the start (at the start and every
    /// minute, `mdb_reader_check`).
    public struct StoreState: Sendable, Encodable {
        public var readersInUse: Int
        public var readerSlots: Int
        public var staleReadersCleared: Int

        enum CodingKeys: String, CodingKey {
            case readersInUse = "readers_in_use"
            case readerSlots = "reader_slots"
            case staleReadersCleared = "stale_readers_cleared"
        }
    }

    /// The incident spool: files waiting in `new/`, and rejected files.
    public struct Spool: Sendable, Encodable {
        public var backlog: Int
        public var rejected: SpoolRejections
    }

    /// The `status` text: the generation, the tables of integrations and hosts, then one line each for rooms,
    /// outbox and spool.
    public var text: String {
        var lines = [
            "sitroomd \(version), up \(uptimeSeconds)s, config generation \(generation.number) applied \(generation.appliedAt)",
            "config watch: \(generation.watch.summary)",
        ]
        if let rejected = generation.lastRejected {
            let since = rejected.validAgainAt.map { "; etc/ is valid again since \($0)" } ?? ""
            lines.append("last rejected config (\(rejected.at)\(since)):")
            lines.append(contentsOf: rejected.errors.map { "  \($0)" })
        }
        lines.append("")
        lines.append(
            contentsOf: TextTable.render(
                ["INTEGRATION", "KIND", "STATE", "REASON"],
                integrations.map { [$0.name, $0.kind, $0.state, $0.reason ?? ""] }
            )
        )
        lines.append("")
        lines.append(
            contentsOf: TextTable.render(
                ["INTEGRATION", "HOST", "USER", "OPEN", "CREATES TODAY", "STATE"],
                pool.map {
                    [
                        $0.integration, $0.host, $0.user, "\($0.openRooms)/\($0.concurrentMeetings)",
                        "\($0.createsToday)/\($0.dailyCreateLimit)", $0.state,
                    ]
                }
            )
        )
        lines.append("")
        lines.append(rooms.line)
        lines.append("outbox: \(outbox.pending) pending")
        lines.append(spool.line)
        lines.append(
            "store: LMDB readers \(store.readersInUse)/\(store.readerSlots) in use; \(store.staleReadersCleared) stale "
                + "cleared since start"
        )
        if !eventSubscriptions.isEmpty {
            lines.append(
                "zoom events (websocket): "
                    + eventSubscriptions.map { "\($0.integration) \($0.state)" }.joined(separator: ", ")
            )
        }
        return lines.joined(separator: "\n")
    }
}

extension StatusReport.Rooms {
    /// `rooms: 3 open (ready 2, waiting 1); 1 ended`: the open states inside the parentheses add up to the open
    /// count; the other states follow it.
    var line: String {
        let openStates = RoomState.allCases.filter(\.isOpen).map(\.rawValue)
        func list(_ states: [String]) -> [String] {
            states.sorted().compactMap { state in byState[state].flatMap { $0 > 0 ? "\(state) \($0)" : nil } }
        }
        let inside = list(openStates)
        let closed = list(byState.keys.filter { !openStates.contains($0) })
        var line = "rooms: \(open) open"
        if !inside.isEmpty { line += " (\(inside.joined(separator: ", ")))" }
        if !closed.isEmpty { line += "; " + closed.joined(separator: ", ") }
        return line
    }
}

extension StatusReport.Spool {
    /// `spool: 0 waiting in new/; rejected: 1 in the last hour, 3 in rejected/ (newest 2026-...: new/x: reason)`.
    var line: String {
        var line =
            "spool: \(backlog) waiting in new/; rejected: \(rejected.lastHour) in the last hour, \(rejected.total) in rejected/"
        if let newest = rejected.newest {
            line += "\n  newest rejected: rejected/\(newest.file) at \(newest.at): \(newest.reason)"
        }
        return line
    }
}

/// The files in the spool's `rejected/` (SPEC §4), for `status`.
public struct SpoolRejections: Sendable, Encodable, Hashable {
    /// Files rejected (moved to `rejected/`) in the last hour.
    public var lastHour: Int
    /// Files in `rejected/` (their `.error` files not counted).
    public var total: Int
    /// The most recently rejected file, if any.
    public var newest: Newest?

    /// A rejected file and why.
    public struct Newest: Sendable, Encodable, Hashable {
        /// Its name in `rejected/`.
        public var file: String
        /// When it was rejected (RFC 3339 UTC).
        public var at: String
        /// The first line of its `.error` file.
        public var reason: String
    }

    public init(lastHour: Int = 0, total: Int = 0, newest: Newest? = nil) {
        self.lastHour = lastHour
        self.total = total
        self.newest = newest
    }

    enum CodingKeys: String, CodingKey {
        case total, newest
        case lastHour = "last_hour"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lastHour, forKey: .lastHour)
        try container.encode(total, forKey: .total)
        try container.encodeOrNull(newest, forKey: .newest)
    }
}

extension KeyedEncodingContainer {
    /// Encodes `value`, or `null` when it is `nil` (the synthesized encoding leaves the key out).
    mutating func encodeOrNull<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

/// Aligned text tables for the control commands' human output.
enum TextTable {
    /// Left-aligned columns separated by two spaces; an empty cell is shown as `-`.
    static func render(_ header: [String], _ rows: [[String]]) -> [String] {
        let all = [header] + rows.map { $0.map { $0.isEmpty ? "-" : $0 } }
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                column == row.count - 1
                    ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }

    /// An age for people: `45s`, `12m`, `3h05m`, `2d04h`.
    static func age(_ seconds: Double) -> String {
        let total = max(0, Int(seconds))
        switch total {
        case ..<60: return "\(total)s"
        case ..<3600: return "\(total / 60)m"
        case ..<86_400: return "\(total / 3600)h" + String(format: "%02dm", total % 3600 / 60)
        default: return "\(total / 86_400)d" + String(format: "%02dh", total % 86_400 / 3600)
        }
    }
}

/// One incident of `incidents --json`: `incident`, `title`, `severity`, `team`, `stage`, `last_event_at`,
/// `participants` (a count), `room_id` and `room_state` (`null` without a room).
struct IncidentListing: Encodable {
    var incident: String
    var title: String
    var severity: String?
    var team: String?
    var stage: String
    var lastEventAt: String
    var participants: Int
    var roomID: String?
    var roomState: String?

    enum CodingKeys: String, CodingKey {
        case incident, title, severity, team, stage, participants
        case lastEventAt = "last_event_at"
        case roomID = "room_id"
        case roomState = "room_state"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(incident, forKey: .incident)
        try container.encode(title, forKey: .title)
        try container.encodeOrNull(severity, forKey: .severity)
        try container.encodeOrNull(team, forKey: .team)
        try container.encode(stage, forKey: .stage)
        try container.encode(lastEventAt, forKey: .lastEventAt)
        try container.encode(participants, forKey: .participants)
        try container.encodeOrNull(roomID, forKey: .roomID)
        try container.encodeOrNull(roomState, forKey: .roomState)
    }
}
