import Foundation
import LMDB
import SitroomCore
import SitroomTestFixtures
import Testing

@testable import SitroomStore

/// The room and outbox indexes (schema 2) over a real LMDB: their encoding, that every write keeps them equal to
/// what a full decode of the tables gives, and the migration that builds them from a schema-1 store.
@Suite("room and outbox indexes over a real LMDB")
struct IndexTests {

    /// What start-up recovery (`RoomProvisioner.recover()`) does something with: a waiting room (queued), an
    /// open room not simply `ready` or with an end requested (driven), an ended room with a deletion pending.
    static func recoveryActs(on room: Room) -> Bool {
        if room.state == .waiting && !room.endRequested { return true }
        if room.state.isOpen, room.state != .ready || room.endRequested { return true }
        return room.state == .ended && room.deleteAfter != nil
    }

    /// The counts a full decode of the tables gives (what `Store.counts()` computed before the indexes).
    static func countsByDecoding(_ store: Store) throws -> StoreCounts {
        try store.environment.read { txn throws in
            var rooms = Dictionary(uniqueKeysWithValues: RoomState.allCases.map { ($0, 0) })
            var oldest: Double? = nil
            for room in try store.all(Room.self, store.tables.rooms, txn) {
                rooms[room.state, default: 0] += 1
                if room.state == .waiting {
                    let since = room.waitingSince ?? room.updatedAt
                    oldest = min(oldest ?? since, since)
                }
            }
            var notices = Dictionary(uniqueKeysWithValues: NoticeState.allCases.map { ($0, 0) })
            for notice in try store.all(Notice.self, store.tables.outbox, txn) {
                notices[notice.state, default: 0] += 1
            }
            return StoreCounts(rooms: rooms, oldestWaitingSince: oldest, notices: notices)
        }
    }

    /// The rooms and notices the purge deleted before the indexes, by decoding every room, incident and notice
    /// (its rooms oldest first, at most `limit`; ties of `createdAt` by id).
    static func purgeByDecoding(
        _ store: Store,
        cutoff: Double,
        limit: Int
    ) throws -> (rooms: Set<String>, notices: Set<String>) {
        try store.environment.read { txn throws in
            let incidents = Dictionary(
                uniqueKeysWithValues: try store.all(IncidentRecord.self, store.tables.incidents, txn).map {
                    ($0.info.id, $0)
                }
            )
            let rooms = try store.all(Room.self, store.tables.rooms, txn)
            let stored = Set(rooms.map(\.id))
            var purged: Set<String> = []
            for room in rooms.sorted(by: { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }) where purged.count < limit {
                guard !room.state.isOpen, (room.endedAt ?? room.updatedAt) < cutoff else { continue }
                if let record = incidents[room.incidentID], record.roomID == room.id,
                    record.stage != .resolved && record.stage != .closed
                {
                    continue
                }
                purged.insert(room.id)
            }
            let notices = try store.all(Notice.self, store.tables.outbox, txn).filter { notice in
                purged.contains(notice.roomID)
                    || (notice.incidentID.isEmpty && !stored.contains(notice.roomID)
                        && notice.state.isSettled && notice.createdAt < cutoff)
            }
            return (purged, Set(notices.map(\.id)))
        }
    }

    /// Checks every index-backed answer against a full decode of `rooms` and `outbox`.
    static func expectIndexesMatchTables(_ store: Store, _ note: Comment) throws {
        let (rooms, notices, summaries, recovery, open, unsettled) = try store.environment.read { txn throws in
            (
                try store.all(Room.self, store.tables.rooms, txn),
                try store.all(Notice.self, store.tables.outbox, txn),
                try store.roomSummaries(txn),
                try store.rooms(where: { $0.needsRecovery }, txn),
                try store.rooms(where: { $0.state.isOpen }, txn),
                try store.notices(where: { !$0.isSettled }, txn)
            )
        }
        #expect(summaries == Dictionary(uniqueKeysWithValues: rooms.map { ($0.id, RoomSummary($0)) }), note)
        #expect(try store.environment.read { txn throws in try txn.count(store.tables.roomIndex) } == rooms.count, note)
        let indexed: [String: NoticeSummary] = try store.environment.read { txn throws in
            var found: [String: NoticeSummary] = [:]
            try txn.forEach(store.tables.outboxIndex, prefix: "") { id, bytes in
                found[id] = NoticeSummary(bytes: bytes)
                return true
            }
            return found
        }
        #expect(indexed == Dictionary(uniqueKeysWithValues: notices.map { ($0.id, NoticeSummary($0)) }), note)
        #expect(try store.counts() == countsByDecoding(store), note)
        // Recovery decodes a superset of the rooms it acts on, and exactly the open ones plus pending deletions.
        let recoveryIDs = Set(recovery.map(\.id))
        #expect(rooms.filter(Self.recoveryActs).allSatisfy { recoveryIDs.contains($0.id) }, note)
        #expect(
            recoveryIDs
                == Set(rooms.filter { $0.state.isOpen || ($0.state == .ended && $0.deleteAfter != nil) }.map(\.id)),
            note
        )
        #expect(recovery == rooms.filter { recoveryIDs.contains($0.id) }, note)
        #expect(open == rooms.filter(\.state.isOpen), note)
        #expect(unsettled == notices.filter { !$0.state.isSettled }, note)
    }

    @Test("summaries read back what was written, times exactly; a notice's room id may hold spaces")
    func encoding() throws {
        for time in [0.0, 0.1, 1_767_225_600.123_456_7, 1e20, -5.5, Double.leastNonzeroMagnitude] {
            for state in RoomState.allCases {
                let summary = RoomSummary(state: state, needsRecovery: time > 1, createdAt: time, since: time + 1)
                #expect(RoomSummary(bytes: summary.bytes) == summary)
                #expect(RoomSummary.state(of: summary.bytes) == state)
            }
        }
        #expect(
            String(
                decoding: RoomSummary(state: .ended, needsRecovery: false, createdAt: 1.5, since: 3).bytes,
                as: UTF8.self
            )
                == "ended - 1.5 3.0"
        )
        for state in NoticeState.allCases {
            for room in ["r-1", "integration-zoom-main-1", "a room with spaces", ""] {
                let summary = NoticeSummary(state: state, roomID: room)
                #expect(NoticeSummary(bytes: summary.bytes) == summary)
            }
        }
        for bad in ["", "ended", "ended - 1", "ended x 1 2", "over - 1 2", "ended - one 2"] {
            #expect(RoomSummary(bytes: Array(bad.utf8)) == nil, "\(bad)")
        }
        #expect(NoticeSummary(bytes: Array("sent".utf8)) == nil)
        #expect(NoticeSummary(bytes: Array("gone r1".utf8)) == nil)
    }

    @Test("a summary says what recovery, the metrics and the purge need of a room")
    func summaryOfRoom() {
        var room = Room(id: "r1", incidentID: "INC-1", createdAt: 100)
        room.updatedAt = 110
        #expect(RoomSummary(room) == RoomSummary(state: .provisioning, needsRecovery: true, createdAt: 100, since: 110))
        room.state = .waiting
        #expect(RoomSummary(room).since == 110)
        room.waitingSince = 105
        #expect(RoomSummary(room).since == 105)
        room.state = .ready
        #expect(RoomSummary(room) == RoomSummary(state: .ready, needsRecovery: true, createdAt: 100, since: 110))
        room.state = .ended
        #expect(RoomSummary(room) == RoomSummary(state: .ended, needsRecovery: false, createdAt: 100, since: 110))
        room.endedAt = 120
        #expect(RoomSummary(room).since == 120)
        room.deleteAfter = 200
        #expect(RoomSummary(room).needsRecovery)
        room.state = .failed
        #expect(!RoomSummary(room).needsRecovery)
    }

    @Test("the indexes follow a seeded random sequence of room and notice writes, deletes and purges")
    func randomSequence() throws {
        try withTemporaryDirectory { dir in
            var rng = SeededGenerator(seed: 0x5172_0077)
            var current: Store? = try Store(directory: dir, mapSize: 1 << 24)
            var purged = 0
            let base = 1_800_000_000.0
            func time(_ rng: inout SeededGenerator) -> Double {
                base - Double(Int.random(in: 0..<(60 * 86_400), using: &rng)) - Double(
                    Int.random(in: 0..<1000, using: &rng)
                ) / 1000
            }
            func randomRoom(_ id: String, _ rng: inout SeededGenerator) -> Room {
                var room = Room(id: id, incidentID: "INC-\(id)", createdAt: time(&rng))
                room.state = RoomState.allCases.randomElement(using: &rng)!
                room.updatedAt = room.createdAt + Double(Int.random(in: 0..<3_600, using: &rng))
                room.endRequested = Bool.random(using: &rng)
                if Bool.random(using: &rng) { room.waitingSince = time(&rng) }
                if Bool.random(using: &rng) { room.endedAt = time(&rng) }
                if Bool.random(using: &rng) { room.deleteAfter = time(&rng) }
                if Bool.random(using: &rng) { room.meetingDeletedAt = time(&rng) }
                return room
            }
            func randomNotice(room: String, _ rng: inout SeededGenerator) -> Notice {
                var notice = Notice(
                    roomID: room,
                    incidentID: Bool.random(using: &rng) ? "INC-\(room)" : "",
                    personID: "email:p\(Int.random(in: 0..<3, using: &rng))@example.com",
                    kind: NoticeKind.allCases.randomElement(using: &rng)!,
                    channel: .email,
                    recipient: "p@example.com",
                    recipientName: "P",
                    subject: "s",
                    body: "b",
                    createdAt: time(&rng)
                )
                notice.state = NoticeState.allCases.randomElement(using: &rng)!
                return notice
            }
            for round in 0..<40 {
                if round > 0 && round % 13 == 0 {
                    // The indexes are in the same environment: they survive a reopen with the tables.
                    // (One environment per path in a process: the old one is closed first.)
                    current = nil
                    let reopened = try Store(directory: dir, mapSize: 1 << 24)
                    #expect(reopened.migrated.isEmpty)
                    try Self.expectIndexesMatchTables(reopened, "before round \(round), reopened")
                    current = reopened
                }
                let store = try #require(current)
                try store.environment.write { txn throws in
                    for _ in 0..<Int.random(in: 1...25, using: &rng) {
                        let id = "r\(Int.random(in: 0..<60, using: &rng))"
                        switch Int.random(in: 0..<10, using: &rng) {
                        case 0..<4:
                            let room = randomRoom(id, &rng)
                            try store.putRoom(room, txn)
                            if Bool.random(using: &rng) {
                                try store.putIncident(
                                    IncidentRecord(
                                        info: IncidentInfo(id: room.incidentID, title: "t"),
                                        stage: IncidentStage.allCases.randomElement(using: &rng)!,
                                        participants: [],
                                        integration: nil,
                                        roomID: Bool.random(using: &rng) ? room.id : nil,
                                        lastOccurredAt: time(&rng)
                                    ),
                                    txn
                                )
                            }
                        case 4:
                            try store.deleteRoom(id, txn)
                        case 5, 6:
                            try store.enqueue(randomNotice(room: id, &rng), txn)
                        case 7, 8:
                            // A state change of a stored notice, or a write of a new one.
                            var ids: [String] = []
                            try txn.forEach(store.tables.outbox, prefix: "") { key, _ in
                                ids.append(key)
                                return true
                            }
                            if let pick = ids.randomElement(using: &rng),
                                var notice = try store.get(Notice.self, store.tables.outbox, pick, txn)
                            {
                                notice.state = NoticeState.allCases.randomElement(using: &rng)!
                                try store.putNotice(notice, txn)
                            } else {
                                try store.putNotice(randomNotice(room: id, &rng), txn)
                            }
                        default:
                            var ids: [String] = []
                            try txn.forEach(store.tables.outbox, prefix: "") { key, _ in
                                ids.append(key)
                                return true
                            }
                            if let pick = ids.randomElement(using: &rng) { try store.deleteNotice(pick, txn) }
                        }
                    }
                }
                if round % 10 == 9 {
                    let expected = try Self.purgeByDecoding(store, cutoff: base - 30 * 86_400, limit: 5)
                    let counts = try store.purge(
                        now: base,
                        keepEndedRooms: 30 * 86_400,
                        keepAudit: 365 * 86_400,
                        limit: 5
                    )
                    #expect(counts.rooms == expected.rooms.count, "round \(round)")
                    #expect(counts.notices == expected.notices.count, "round \(round)")
                    let (rooms, notices) = try store.environment.read { txn throws in
                        (
                            Set(try store.all(Room.self, store.tables.rooms, txn).map(\.id)),
                            Set(try store.all(Notice.self, store.tables.outbox, txn).map(\.id))
                        )
                    }
                    #expect(rooms.isDisjoint(with: expected.rooms) && notices.isDisjoint(with: expected.notices))
                    purged += counts.rooms
                }
                try Self.expectIndexesMatchTables(store, "round \(round)")
            }
            let counts = try #require(current).counts()
            #expect(counts.rooms.values.reduce(0, +) > 0)
            #expect(purged > 0)
        }
    }

    @Test("a notice queued twice keeps its first state in the index")
    func enqueueTwice() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            var notice = Notice(
                roomID: "r1",
                incidentID: "INC-1",
                personID: "email:ada@example.com",
                kind: .roomReady,
                channel: .email,
                recipient: "ada@example.com",
                recipientName: "Ada",
                subject: "s",
                body: "b",
                createdAt: 1
            )
            #expect(try store.environment.write { txn throws in try store.enqueue(notice, txn) })
            notice.state = .sent
            try store.environment.write { txn throws in try store.putNotice(notice, txn) }
            notice.state = .pending
            #expect(try store.environment.write { txn throws in try store.enqueue(notice, txn) } == false)
            #expect(try store.counts().notices[.sent] == 1)
            #expect(try store.counts().notices[.pending] == 0)
            #expect(try store.environment.write { txn throws in try store.deleteNotice(notice.id, txn) })
            #expect(try store.counts().notices.values.reduce(0, +) == 0)
            #expect(try store.environment.write { txn throws in try store.deleteNotice(notice.id, txn) } == false)
        }
    }

    @Test(
        "a schema-1 store with rooms and notices opens with both indexes built and its JSON values rewritten as records"
    )
    func migrationFromVersion1() throws {
        try withTemporaryDirectory { dir in
            var rooms: [Room] = []
            var notices: [Notice] = []
            do {
                // As a schema-1 build wrote it: the tables only, no index entries.
                let first = try Store(directory: dir, mapSize: 1 << 22, schemaVersion: 1, migrations: [])
                for n in 0..<200 {
                    var room = Room(id: "r\(n)", incidentID: "INC-\(n)", createdAt: 1_000 + Double(n))
                    room.state = RoomState.allCases[n % RoomState.allCases.count]
                    room.updatedAt = room.createdAt + 5
                    if room.state == .waiting { room.waitingSince = room.createdAt + Double(n % 7) }
                    if room.state == .ended {
                        room.endedAt = room.createdAt + 60
                        if n % 4 == 0 { room.deleteAfter = room.createdAt + 900 }
                    }
                    rooms.append(room)
                    for channel in [NoticeChannel.email, .sms] {
                        var notice = Notice(
                            roomID: room.id,
                            incidentID: room.incidentID,
                            personID: "email:ada@example.com",
                            kind: .roomReady,
                            channel: channel,
                            recipient: "ada@example.com",
                            recipientName: "Ada",
                            subject: "s",
                            body: "b",
                            createdAt: room.createdAt
                        )
                        notice.state =
                            NoticeState.allCases[(n + (channel == .sms ? 1 : 0)) % NoticeState.allCases.count]
                        notices.append(notice)
                    }
                }
                // As a schema-1 build wrote them: JSON.
                let json = JSONEncoder()
                try first.environment.write { txn throws in
                    for room in rooms { try txn.put(first.tables.rooms, room.id, Array(try json.encode(room))) }
                    for notice in notices {
                        try txn.put(first.tables.outbox, notice.id, Array(try json.encode(notice)))
                    }
                }
                #expect(try first.environment.read { txn throws in try txn.count(first.tables.roomIndex) } == 0)
            }
            do {
                let store = try Store(directory: dir, mapSize: 1 << 22)
                #expect(
                    store.migrated == [
                        "1 → 2: room and outbox indexes built", "2 → 3: values rewritten from JSON as records",
                    ]
                )
                #expect(
                    try store.environment.read { txn throws in
                        try txn.get(store.tables.meta, "schema_version").map { String(decoding: $0, as: UTF8.self) }
                    } == String(Store.schemaVersion)
                )
                // Every room and notice is a record now, and reads back as it was written.
                try store.environment.read { txn throws in
                    for room in rooms {
                        let bytes = try #require(try txn.get(store.tables.rooms, room.id))
                        #expect(RecordFormat.isRecord(bytes))
                        #expect(try Store.decode(Room.self, bytes) == room)
                    }
                    for notice in notices {
                        #expect(try store.get(Notice.self, store.tables.outbox, notice.id, txn) == notice)
                    }
                }
                try Self.expectIndexesMatchTables(store, "migrated")
                #expect(try store.environment.read { txn throws in try txn.count(store.tables.roomIndex) } == 200)
                #expect(try store.environment.read { txn throws in try txn.count(store.tables.outboxIndex) } == 400)
                #expect(try store.counts().rooms[.ended] == rooms.filter { $0.state == .ended }.count)
                #expect(
                    try store.counts().oldestWaitingSince
                        == rooms.filter { $0.state == .waiting }.compactMap(\.waitingSince).min()
                )
            }
            // Opened again, nothing more to migrate.
            let again = try Store(directory: dir, mapSize: 1 << 22)
            #expect(again.migrated.isEmpty)
        }
    }
}
