import Foundation
import LMDB
import SitroomCore

/// What one ``Store/purge(now:keepEndedRooms:keepAudit:limit:)`` deleted.
public struct PurgeCounts: Sendable, Hashable, CustomStringConvertible {
    /// Rooms that ended (or failed, or became unavailable) before the cut-off.
    public var rooms = 0
    /// Notices of those rooms, and admin notices about integrations, sent or dead before the cut-off.
    public var notices = 0
    /// Resolved or closed incidents (with their participants' contacts) whose rooms are gone.
    public var incidents = 0
    /// Audit entries older than `keep_audit`.
    public var auditEntries = 0
    /// Per-host daily create counts of past UTC days.
    public var usageEntries = 0

    public init() {}

    /// Whether nothing was deleted.
    public var isEmpty: Bool { rooms + notices + incidents + auditEntries + usageEntries == 0 }

    public var description: String {
        "\(rooms) rooms, \(notices) notices, \(incidents) incidents, \(auditEntries) audit entries, \(usageEntries) usage entries"
    }
}

/// Counts for the metrics file, read in one transaction.
public struct StoreCounts: Sendable, Hashable {
    /// Rooms by state (every state present, zero included).
    public var rooms: [RoomState: Int]
    /// Seconds since 1970 since when the longest-waiting room has been `waiting`, if any room waits.
    public var oldestWaitingSince: Double?
    /// Outbox notices by state (every state present, zero included).
    public var notices: [NoticeState: Int]

    public init(rooms: [RoomState: Int], oldestWaitingSince: Double?, notices: [NoticeState: Int]) {
        self.rooms = rooms
        self.oldestWaitingSince = oldestWaitingSince
        self.notices = notices
    }
}

extension Store {
    /// Forgets what SPEC §8 says to forget after its age, in one write transaction:
    /// - a room that is no longer open (`ended`, `failed`, `unavailable`) and last changed before
    ///   `now - keepEndedRooms`, unless it is the current room of an incident that is still open (a failed room
    ///   of a live incident stays visible); with it go its notices (recipients' addresses and bodies);
    /// - an incident that was resolved or closed whose room is gone (or that never had one and whose last event
    ///   is older than the cut-off): its record holds the participants' contacts;
    /// - admin notices about an integration (no room) that were sent or parked `dead` before the cut-off;
    /// - audit entries older than `now - keepAudit`;
    /// - the per-host create counts of UTC days before yesterday.
    ///
    /// Seen event ids are kept (they hold no personal data and stop a redelivered old event from opening a room).
    /// - Parameters:
    ///   - now: seconds since 1970.
    ///   - keepEndedRooms: seconds (`store.keep_ended_rooms`).
    ///   - keepAudit: seconds (`store.keep_audit`).
    ///   - limit: the most rooms deleted per call (so one transaction stays small); call again while `rooms == limit`.
    /// - Returns: what was deleted.
    /// - Throws: store errors; nothing is deleted then.
    /// - Complexity: O(incidents) decodes and O(rooms + outbox) index entries (``RoomSummary``, ``NoticeSummary``);
    ///   O(c log c) to order the c rooms old enough to go, oldest first, and a decode per one considered; a decode
    ///   per settled notice of no stored room; the audit entries deleted (and one more) decoded.
    public func purge(now: Double, keepEndedRooms: Double, keepAudit: Double, limit: Int = 5_000) throws -> PurgeCounts
    {
        let roomCutoff = now - keepEndedRooms
        let auditCutoff = now - keepAudit
        let oldestDay = utcDay(now - 86_400)
        return try environment.write { txn in
            var counts = PurgeCounts()
            var incidents: [String: IncidentRecord] = [:]
            try txn.forEach(tables.incidents, prefix: "") { key, bytes in
                incidents[key] = try Store.decode(IncidentRecord.self, bytes)
                return true
            }
            let isClosed: (IncidentRecord) -> Bool = { $0.stage == .resolved || $0.stage == .closed }

            // The room index gives every room's state, age and creation time: only the rooms old enough to go
            // are decoded (for their incident).
            let summaries = try roomSummaries(txn)
            let candidates = summaries.filter { !$0.value.state.isOpen && $0.value.since < roomCutoff }
                .sorted { ($0.value.createdAt, $0.key) < ($1.value.createdAt, $1.key) }
            var purgedRooms: Set<String> = []
            for (id, _) in candidates where purgedRooms.count < limit {
                guard let room = try room(id, txn) else { continue }
                if let record = incidents[room.incidentID], record.roomID == room.id, !isClosed(record) { continue }
                try deleteRoom(id, txn)
                purgedRooms.insert(id)
            }
            counts.rooms = purgedRooms.count

            // The outbox index gives every notice's state and room: only settled notices of no stored room (admin
            // notices about an integration, or leftovers) are decoded, for their incident and age.
            var deadNotices: [String] = []
            var roomless: [String] = []
            try txn.forEach(tables.outboxIndex, prefix: "") { id, bytes in
                guard let summary = NoticeSummary(bytes: bytes) else { throw Self.badIndexEntry("outbox_index", id) }
                if purgedRooms.contains(summary.roomID) {
                    deadNotices.append(id)
                } else if summary.isSettled && summaries[summary.roomID] == nil {
                    roomless.append(id)
                }
                return true
            }
            for id in roomless {
                guard let notice = try get(Notice.self, tables.outbox, id, txn) else { continue }
                if notice.incidentID.isEmpty && notice.createdAt < roomCutoff { deadNotices.append(id) }
            }
            for id in deadNotices { try deleteNotice(id, txn) }
            counts.notices = deadNotices.count

            for (id, record) in incidents where isClosed(record) {
                let gone: Bool
                if let roomID = record.roomID {
                    gone =
                        purgedRooms.contains(roomID) || (summaries[roomID] == nil && record.lastOccurredAt < roomCutoff)
                } else {
                    gone = record.lastOccurredAt < roomCutoff
                }
                if gone {
                    try txn.delete(tables.incidents, id)
                    counts.incidents += 1
                }
            }

            var oldAudit: [String] = []
            try txn.forEach(tables.audit, prefix: "") { key, bytes in
                guard let entry = try? Store.decode(AuditEntry.self, bytes), entry.time < auditCutoff else {
                    return false
                }
                oldAudit.append(key)
                return true
            }
            for key in oldAudit { try txn.delete(tables.audit, key) }
            counts.auditEntries = oldAudit.count

            var oldUsage: [String] = []
            try txn.forEach(tables.usage, prefix: "") { key, _ in
                if key.prefix(10) < oldestDay { oldUsage.append(key) }
                return true
            }
            for key in oldUsage { try txn.delete(tables.usage, key) }
            counts.usageEntries = oldUsage.count
            return counts
        }
    }

    /// Rooms and outbox notices by state, for the metrics file, from the room and outbox indexes.
    /// - Throws: store errors; ``SitroomError`` `.store` for an index entry that cannot be read.
    /// - Complexity: O(rooms + outbox) index entries (a few bytes each); no room or notice is decoded.
    public func counts() throws -> StoreCounts {
        try environment.read { txn in
            let rooms = try roomCounts(txn)
            return StoreCounts(
                rooms: rooms.byState,
                oldestWaitingSince: rooms.oldestWaitingSince,
                notices: try noticeCounts(txn)
            )
        }
    }

    /// Copies the environment into `directory` as a consistent, compacted snapshot while it is in use, then makes
    /// the copy durable. The directory must not exist (it is made, mode 0700, in an existing directory) or be empty;
    /// anything else is refused (``SitroomError`` `.badCommand`) before anything is written.
    /// - Parameter directory: where `data.mdb` is written.
    /// - Returns: the size of the copy in bytes.
    /// - Throws: `LMDBError` from the copy; ``SitroomError`` `.store` when the copy cannot be synced.
    /// The corresponding C function is `mdb_env_copy2` with `MDB_CP_COMPACT`, then `fsync` of the file and directory.
    ///
    /// The copy needs a reader slot of its own: slots of dead processes are freed first, and once more when LMDB
    /// finds the table full. A copy that fails leaves no `data.mdb` behind, so the same directory can be used again.
    public func backup(to directory: String) throws -> Int {
        try Self.prepareBackupDirectory(directory)
        let file = directory + "/data.mdb"
        // LMDB refuses an existing data.mdb (an earlier backup): that one is never removed here.
        let existed = access(file, F_OK) == 0
        _ = try? environment.clearStaleReaders()
        do {
            do {
                try environment.copy(to: directory, compact: true)
            } catch let error as LMDBError where error == .readersFull && !existed {
                unlink(file)
                _ = try environment.clearStaleReaders()
                try environment.copy(to: directory, compact: true)
            }
        } catch {
            if !existed { unlink(file) }
            throw error
        }
        for path in [file, directory] {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0, fsync(fd) == 0 else {
                let code = errno
                if fd >= 0 { close(fd) }
                throw SitroomError(.store, "\(path): cannot sync the backup: \(String(cString: strerror(code)))")
            }
            close(fd)
        }
        var info = stat()
        return stat(file, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Makes the backup directory, or accepts an existing empty one; refuses anything else.
    private static func prepareBackupDirectory(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SitroomError(.badCommand, "\(path) exists and is not a directory; name a new one")
            }
            let entries = try FileManager.default.contentsOfDirectory(atPath: path)
            guard entries.isEmpty else {
                throw SitroomError(.badCommand, "\(path) is not empty; name a new or empty directory")
            }
            return
        }
        guard mkdir(path, 0o700) == 0 else {
            throw SitroomError(
                .cannotCreateState,
                "\(path): cannot make the directory: \(String(cString: strerror(errno)))"
            )
        }
    }
}
