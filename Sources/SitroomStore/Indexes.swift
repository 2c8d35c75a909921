import LMDB
import SitroomCore

/// What the store keeps of a room beside the room itself, in the `room_index` table (schema 2), so that counting
/// rooms, finding those start-up must look at and choosing what to purge read a few bytes per room instead of
/// decoding its JSON.
///
/// Written in the same write transaction as the room by ``Store/putRoom(_:_:)`` and removed with it by
/// ``Store/deleteRoom(_:_:)``; built from the `rooms` table by the migration from schema 1.
///
/// Stored as ASCII, four fields separated by one space: `<state> <R|-> <createdAt> <since>`, e.g.
/// `ended - 1767225600.5 1767229200.0`. The state is ``RoomState``'s raw value; `R` marks ``needsRecovery``;
/// the times are seconds since 1970 as Swift prints a `Double` (shortest form that reads back exactly).
public struct RoomSummary: Sendable, Hashable {
    public var state: RoomState
    /// Whether start-up recovery must look at the room: it is open (it holds, or may come to hold, a host, and
    /// may have work left), or it ended with its meeting's deletion pending (``Room/deleteAfter`` set), or it
    /// failed and its end asks for a sweep of its host for a meeting a create may have left (``Room/sweepMarker``).
    public var needsRecovery: Bool
    /// ``Room/createdAt``: seconds since 1970 (the purge deletes oldest first).
    public var createdAt: Double
    /// Seconds since 1970 from which the room's state counts: for `waiting`, ``Room/waitingSince`` (or
    /// ``Room/updatedAt`` when unset), for the metrics' longest wait; for a room no longer open, ``Room/endedAt``
    /// (or ``Room/updatedAt``), the purge's age; otherwise ``Room/updatedAt``.
    public var since: Double

    public init(state: RoomState, needsRecovery: Bool, createdAt: Double, since: Double) {
        self.state = state
        self.needsRecovery = needsRecovery
        self.createdAt = createdAt
        self.since = since
    }

    /// The summary of `room`.
    public init(_ room: Room) {
        state = room.state
        needsRecovery =
            room.state.isOpen || (room.state == .ended && room.deleteAfter != nil)
            || (room.state == .failed && room.endRequested && room.sweepMarker)
        createdAt = room.createdAt
        if room.state == .waiting {
            since = room.waitingSince ?? room.updatedAt
        } else if !room.state.isOpen {
            since = room.endedAt ?? room.updatedAt
        } else {
            since = room.updatedAt
        }
    }

    /// The stored ASCII bytes.
    public var bytes: [UInt8] {
        Array("\(state.rawValue) \(needsRecovery ? "R" : "-") \(createdAt) \(since)".utf8)
    }

    /// Reads the stored bytes. - Returns: `nil` when they are not a summary.
    public init?(bytes: [UInt8]) {
        let fields = bytes.split(separator: UInt8(ascii: " "), maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, let state = RoomState(rawValue: String(decoding: fields[0], as: UTF8.self)),
            fields[1].count == 1, let flag = fields[1].first, flag == UInt8(ascii: "R") || flag == UInt8(ascii: "-"),
            let createdAt = Double(String(decoding: fields[2], as: UTF8.self)),
            let since = Double(String(decoding: fields[3], as: UTF8.self))
        else { return nil }
        self.init(state: state, needsRecovery: flag == UInt8(ascii: "R"), createdAt: createdAt, since: since)
    }

    /// Reads only the state of the stored bytes (what counting by state needs). - Returns: `nil` when they do not
    /// start with a state and a space.
    static func state(of bytes: [UInt8]) -> RoomState? {
        guard let space = bytes.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        return RoomState(rawValue: String(decoding: bytes[..<space], as: UTF8.self))
    }
}

/// What the store keeps of an outbox notice beside the notice itself, in the `outbox_index` table (schema 2):
/// its state and its room, so that counting notices, loading those still to deliver and purging a room's
/// notices decode only the notices concerned.
///
/// Written in the same write transaction as the notice by ``Store/enqueue(_:_:)`` and ``Store/putNotice(_:_:)``,
/// removed with it by the purge; built from the `outbox` table by the migration from schema 1.
///
/// Stored as ASCII: `<state> <roomID>`, e.g. `sent r-0b1c…`; the state is ``NoticeState``'s raw value, the room
/// id runs to the end of the value.
public struct NoticeSummary: Sendable, Hashable {
    public var state: NoticeState
    /// ``Notice/roomID``.
    public var roomID: String

    public init(state: NoticeState, roomID: String) {
        self.state = state
        self.roomID = roomID
    }

    /// The summary of `notice`.
    public init(_ notice: Notice) {
        self.init(state: notice.state, roomID: notice.roomID)
    }

    /// Whether the notice is settled: `sent`, `dead` or `withdrawn` (nothing more is tried without
    /// `notify resend`).
    public var isSettled: Bool { state.isSettled }

    /// The stored ASCII bytes.
    public var bytes: [UInt8] {
        Array("\(state.rawValue) \(roomID)".utf8)
    }

    /// Reads the stored bytes. - Returns: `nil` when they are not a summary.
    public init?(bytes: [UInt8]) {
        guard let space = bytes.firstIndex(of: UInt8(ascii: " ")),
            let state = NoticeState(rawValue: String(decoding: bytes[..<space], as: UTF8.self))
        else { return nil }
        self.init(state: state, roomID: String(decoding: bytes[(space + 1)...], as: UTF8.self))
    }
}

extension Store {
    /// The summaries of every room, by room id, read from the room index.
    /// - Throws: store errors; ``SitroomError`` `.store` for an index entry that is not a summary.
    /// - Complexity: O(rooms) index entries, no room decoded.
    func roomSummaries(_ txn: borrowing Transaction) throws -> [String: RoomSummary] {
        var summaries: [String: RoomSummary] = [:]
        try txn.forEach(tables.roomIndex, prefix: "") { id, bytes in
            guard let summary = RoomSummary(bytes: bytes) else { throw Self.badIndexEntry("room_index", id) }
            summaries[id] = summary
            return true
        }
        return summaries
    }

    /// The rooms whose summaries satisfy `wanted`, decoded, in room id order. An index entry without its room
    /// (which writes through ``putRoom(_:_:)`` and ``deleteRoom(_:_:)`` never leave) is skipped.
    /// - Throws: store errors; ``SitroomError`` `.store` for an index entry that is not a summary.
    /// - Complexity: O(rooms) index entries, plus a lookup and decode per room wanted.
    func rooms(where wanted: (RoomSummary) -> Bool, _ txn: borrowing Transaction) throws -> [Room] {
        var ids: [String] = []
        try txn.forEach(tables.roomIndex, prefix: "") { id, bytes in
            guard let summary = RoomSummary(bytes: bytes) else { throw Self.badIndexEntry("room_index", id) }
            if wanted(summary) { ids.append(id) }
            return true
        }
        return try ids.compactMap { try room($0, txn) }
    }

    /// The rooms in each state (every state present, zero included) and since when the longest-waiting room has
    /// waited (seconds since 1970; `nil` when none waits), from the room index.
    /// - Throws: store errors; ``SitroomError`` `.store` for an index entry that is not a summary.
    /// - Complexity: O(rooms) index entries, no room decoded.
    func roomCounts(
        _ txn: borrowing Transaction
    ) throws -> (byState: [RoomState: Int], oldestWaitingSince: Double?) {
        var rooms = Dictionary(uniqueKeysWithValues: RoomState.allCases.map { ($0, 0) })
        var oldestWaiting: Double? = nil
        try txn.forEach(tables.roomIndex, prefix: "") { id, bytes in
            guard let state = RoomSummary.state(of: bytes) else { throw Self.badIndexEntry("room_index", id) }
            rooms[state, default: 0] += 1
            if state == .waiting {
                guard let since = RoomSummary(bytes: bytes)?.since else { throw Self.badIndexEntry("room_index", id) }
                oldestWaiting = min(oldestWaiting ?? since, since)
            }
            return true
        }
        return (rooms, oldestWaiting)
    }

    /// The outbox notices in each state (every state present, zero included), from the outbox index.
    /// - Throws: store errors; ``SitroomError`` `.store` for an index entry that is not a summary.
    /// - Complexity: O(outbox) index entries, no notice decoded.
    func noticeCounts(_ txn: borrowing Transaction) throws -> [NoticeState: Int] {
        var notices = Dictionary(uniqueKeysWithValues: NoticeState.allCases.map { ($0, 0) })
        try txn.forEach(tables.outboxIndex, prefix: "") { id, bytes in
            guard let summary = NoticeSummary(bytes: bytes) else { throw Self.badIndexEntry("outbox_index", id) }
            notices[summary.state, default: 0] += 1
            return true
        }
        return notices
    }

    /// The outbox notices whose summaries satisfy `wanted`, decoded, in id order. An index entry without its
    /// notice is skipped.
    /// - Throws: store errors; ``SitroomError`` `.store` for an index entry that is not a summary.
    /// - Complexity: O(outbox) index entries, plus a lookup and decode per notice wanted.
    func notices(where wanted: (NoticeSummary) -> Bool, _ txn: borrowing Transaction) throws -> [Notice] {
        var ids: [String] = []
        try txn.forEach(tables.outboxIndex, prefix: "") { id, bytes in
            guard let summary = NoticeSummary(bytes: bytes) else { throw Self.badIndexEntry("outbox_index", id) }
            if wanted(summary) { ids.append(id) }
            return true
        }
        return try ids.compactMap { try get(Notice.self, tables.outbox, $0, txn) }
    }

    /// Rebuilds both indexes from the `rooms` and `outbox` tables (the migration from schema 1).
    /// - Throws: store errors; decoding errors for a room or notice that does not decode.
    /// - Complexity: O(rooms + outbox) decodes.
    static func rebuildIndexes(_ txn: borrowing Transaction, _ tables: Tables) throws {
        try txn.drop(tables.roomIndex)
        try txn.drop(tables.outboxIndex)
        var rooms: [(String, [UInt8])] = []
        try txn.forEach(tables.rooms, prefix: "") { id, bytes in
            rooms.append((id, RoomSummary(try Store.decode(Room.self, bytes)).bytes))
            return true
        }
        for (id, summary) in rooms { try txn.put(tables.roomIndex, id, summary) }
        var notices: [(String, [UInt8])] = []
        try txn.forEach(tables.outbox, prefix: "") { id, bytes in
            let notice = try Store.decode(NoticeStateAndRoom.self, bytes)
            notices.append((id, NoticeSummary(state: notice.state, roomID: notice.roomID).bytes))
            return true
        }
        for (id, summary) in notices { try txn.put(tables.outboxIndex, id, summary) }
    }

    static func badIndexEntry(_ table: String, _ key: String) -> SitroomError {
        SitroomError(.store, "\(table): the entry of \(key) cannot be read")
    }
}

/// The fields of a stored notice its summary needs.
private struct NoticeStateAndRoom: Decodable {
    var state: NoticeState
    var roomID: String
}
