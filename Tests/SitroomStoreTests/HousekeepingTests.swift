import Foundation
import LMDB
import SitroomCore
import Testing

@testable import SitroomStore

/// Schema versions and migrations, purges (SPEC §8), counts for the metrics file, and backups, over a real LMDB.
@Suite("store housekeeping over a real LMDB")
struct HousekeepingTests {
    static let day = 86_400.0

    func schemaVersion(_ store: Store) throws -> String? {
        try store.environment.read { txn throws in
            try txn.get(store.tables.meta, "schema_version").map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test(
        "a new store is stamped with this build's schema; an older one is migrated step by step; a newer one is refused"
    )
    func migrations() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            #expect(try schemaVersion(store) == String(Store.schemaVersion))
            #expect(store.migrated.isEmpty)
        }
        try withTemporaryDirectory { dir in
            do {
                // A store as a schema-1 build left it.
                let first = try Store(directory: dir, mapSize: 1 << 20, schemaVersion: 1, migrations: [])
                #expect(try schemaVersion(first) == "1")
                #expect(first.migrated.isEmpty)
                _ = try first.environment.write { txn throws in try txn.put(first.tables.rooms, "r1", Array("{}".utf8))
                }
            }
            // A later build (this one's schema + 1) migrates 1 → 2 → ... step by step, in one transaction: each
            // step finds the previous one's marker.
            let later = Store.schemaVersion + 1
            let steps = (1..<later).map { from in
                Store.Migration(from: from, summary: "step \(from)") { txn, tables in
                    if from > 1, try txn.get(tables.meta, "step-\(from - 1)") == nil {
                        throw SitroomError(.store, "step \(from - 1) missing")
                    }
                    try txn.put(tables.meta, "step-\(from)", Array("done".utf8))
                }
            }
            do {
                let migrated = try Store(directory: dir, mapSize: 1 << 20, schemaVersion: later, migrations: steps)
                #expect(migrated.migrated == (1..<later).map { "\($0) → \($0 + 1): step \($0)" })
                #expect(try schemaVersion(migrated) == String(later))
                #expect(
                    try migrated.environment.read { txn throws in try txn.get(migrated.tables.meta, "step-\(later - 1)")
                    } != nil
                )
                #expect(try migrated.environment.read { txn throws in try txn.get(migrated.tables.rooms, "r1") } != nil)
            }
            // This build refuses the store now at a later version, naming both versions.
            let newer = #expect(throws: SitroomError.self) { _ = try Store(directory: dir, mapSize: 1 << 20) }
            #expect(
                newer?.message.contains(
                    "store schema version \(later) is newer than this build's \(Store.schemaVersion)"
                )
                    == true
            )
        }
    }

    @Test("a migration that fails leaves the store at its old version; a missing step is refused")
    func failedMigration() throws {
        try withTemporaryDirectory { dir in
            _ = try Store(directory: dir, mapSize: 1 << 20)
            let current = Store.schemaVersion
            let failing = [
                Store.Migration(from: current, summary: "breaks") { _, _ in throw SitroomError(.store, "boom") }
            ]
            #expect(throws: (any Error).self) {
                _ = try Store(
                    directory: dir,
                    mapSize: 1 << 20,
                    schemaVersion: current + 1,
                    migrations: Store.migrations + failing
                )
            }
            let missing = #expect(throws: SitroomError.self) {
                _ = try Store(
                    directory: dir,
                    mapSize: 1 << 20,
                    schemaVersion: current + 2,
                    migrations: Store.migrations
                )
            }
            let expected = "no migration from store schema version \(current) to \(current + 1)"
            #expect(missing?.message.contains(expected) == true)
            let again = try Store(directory: dir, mapSize: 1 << 20)
            #expect(try schemaVersion(again) == String(current))
        }
        // The real step 1 → 2 failing (a room that does not decode) leaves a schema-1 store as it was.
        try withTemporaryDirectory { dir in
            do {
                let first = try Store(directory: dir, mapSize: 1 << 20, schemaVersion: 1, migrations: [])
                _ = try first.environment.write { txn throws in try txn.put(first.tables.rooms, "r1", Array("{}".utf8))
                }
            }
            #expect(throws: (any Error).self) { _ = try Store(directory: dir, mapSize: 1 << 20) }
            let first = try Store(directory: dir, mapSize: 1 << 20, schemaVersion: 1, migrations: [])
            #expect(try schemaVersion(first) == "1")
            #expect(try first.environment.read { txn throws in try txn.count(first.tables.roomIndex) } == 0)
        }
    }

    /// A store holding: an old ended room of a resolved incident (purged with its notices and the incident), an old
    /// failed room that is the current room of a live incident (kept), a recent ended room (kept), an old room
    /// superseded by a newer open one (purged, the incident kept), old and new audit entries and usage days.
    func fixture(_ store: Store, now: Double) throws {
        let old = now - 40 * Self.day
        func room(_ id: String, incident: String, state: RoomState, at time: Double) -> Room {
            var room = Room(id: id, incidentID: incident, createdAt: time - 60)
            room.state = state
            room.updatedAt = time
            if state == .ended { room.endedAt = time }
            return room
        }
        func record(_ id: String, stage: IncidentStage, room: String?, at time: Double) -> IncidentRecord {
            IncidentRecord(
                info: IncidentInfo(id: id, title: "t"),
                stage: stage,
                participants: [Participant(name: "Ada", email: "ada@example.com", phone: "+15005550101")],
                integration: nil,
                roomID: room,
                lastOccurredAt: time
            )
        }
        func notice(room: String, incident: String, person: String, state: NoticeState, at time: Double) -> Notice {
            var notice = Notice(
                roomID: room,
                incidentID: incident,
                personID: person,
                kind: .roomReady,
                channel: .email,
                recipient: "ada@example.com",
                recipientName: "Ada",
                subject: "s",
                body: "b",
                createdAt: time
            )
            notice.state = state
            return notice
        }
        try store.environment.write { txn throws in
            try store.putRoom(room("r-old", incident: "INC-OLD", state: .ended, at: old), txn)
            try store.putIncident(record("INC-OLD", stage: .resolved, room: "r-old", at: old), txn)
            try store.enqueue(
                notice(room: "r-old", incident: "INC-OLD", person: "email:ada@example.com", state: .sent, at: old),
                txn
            )

            try store.putRoom(room("r-failed", incident: "INC-LIVE", state: .failed, at: old), txn)
            try store.putIncident(record("INC-LIVE", stage: .situationRoom, room: "r-failed", at: old), txn)

            try store.putRoom(room("r-recent", incident: "INC-RECENT", state: .ended, at: now - Self.day), txn)
            try store.putIncident(record("INC-RECENT", stage: .resolved, room: "r-recent", at: now - Self.day), txn)

            try store.putRoom(room("r-superseded", incident: "INC-AGAIN", state: .ended, at: old), txn)
            try store.putRoom(room("r-current", incident: "INC-AGAIN", state: .ready, at: now), txn)
            try store.putIncident(record("INC-AGAIN", stage: .reopened, room: "r-current", at: now), txn)
            try store.enqueue(
                notice(
                    room: "r-superseded",
                    incident: "INC-AGAIN",
                    person: "email:ada@example.com",
                    state: .sent,
                    at: old
                ),
                txn
            )
            try store.enqueue(
                notice(
                    room: "r-current",
                    incident: "INC-AGAIN",
                    person: "email:ada@example.com",
                    state: .pending,
                    at: now
                ),
                txn
            )

            try store.enqueue(
                notice(
                    room: "integration-zoom-main-1",
                    incident: "",
                    person: "admin:ops@example.org",
                    state: .sent,
                    at: old
                ),
                txn
            )
            try store.enqueue(
                notice(
                    room: "integration-zoom-main-2",
                    incident: "",
                    person: "admin:ops@example.org",
                    state: .sent,
                    at: now
                ),
                txn
            )

            try store.appendAudit(AuditEntry(time: now - 400 * Self.day, uid: 0, command: "reload", outcome: "ok"), txn)
            try store.appendAudit(AuditEntry(time: now - 10 * Self.day, uid: 0, command: "reload", outcome: "ok"), txn)
            try store.setCreates(3, day: utcDay(now - 3 * Self.day), integration: "zoom-main", host: "b1", txn)
            try store.setCreates(4, day: utcDay(now), integration: "zoom-main", host: "b1", txn)
        }
    }

    @Test("purge: ended rooms with their notices and contacts go after keep_ended_rooms, audit after keep_audit")
    func purge() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 22)
            let now = 1_800_000_000.0
            try fixture(store, now: now)
            let counts = try store.purge(now: now, keepEndedRooms: 30 * Self.day, keepAudit: 365 * Self.day)
            #expect(counts.rooms == 2)
            #expect(counts.notices == 3)
            #expect(counts.incidents == 1)
            #expect(counts.auditEntries == 1)
            #expect(counts.usageEntries == 1)

            let (rooms, incidents, notices, audit) = try store.environment.read { txn throws in
                (
                    try store.all(Room.self, store.tables.rooms, txn).map(\.id).sorted(),
                    try store.all(IncidentRecord.self, store.tables.incidents, txn).map(\.info.id).sorted(),
                    try store.all(Notice.self, store.tables.outbox, txn).map(\.roomID).sorted(),
                    try store.all(AuditEntry.self, store.tables.audit, txn).map(\.time)
                )
            }
            #expect(rooms == ["r-current", "r-failed", "r-recent"])
            #expect(incidents == ["INC-AGAIN", "INC-LIVE", "INC-RECENT"])
            #expect(notices == ["integration-zoom-main-2", "r-current"])
            #expect(audit == [now - 10 * Self.day])

            // A second run finds nothing more; purging is idempotent.
            #expect(try store.purge(now: now, keepEndedRooms: 30 * Self.day, keepAudit: 365 * Self.day).isEmpty)
        }
    }

    @Test("purge in batches: `limit` rooms at a time")
    func purgeLimit() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 22)
            try store.environment.write { txn throws in
                for index in 0..<5 {
                    var room = Room(id: "r\(index)", incidentID: "INC-\(index)", createdAt: Double(index))
                    room.state = .ended
                    room.endedAt = 10
                    try store.putRoom(room, txn)
                }
            }
            #expect(
                try store.purge(now: 100 * Self.day, keepEndedRooms: Self.day, keepAudit: Self.day, limit: 2).rooms == 2
            )
            #expect(
                try store.purge(now: 100 * Self.day, keepEndedRooms: Self.day, keepAudit: Self.day, limit: 2).rooms == 2
            )
            #expect(
                try store.purge(now: 100 * Self.day, keepEndedRooms: Self.day, keepAudit: Self.day, limit: 2).rooms == 1
            )
        }
    }

    @Test("counts: rooms and notices by state, and the longest wait")
    func counts() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 22)
            let now = 1_800_000_000.0
            try fixture(store, now: now)
            try store.environment.write { txn throws in
                var waiting = Room(id: "r-wait", incidentID: "INC-W", createdAt: now - 100)
                waiting.state = .waiting
                waiting.waitingSince = now - 90
                try store.putRoom(waiting, txn)
            }
            let counts = try store.counts()
            #expect(counts.rooms == [.provisioning: 0, .waiting: 1, .ready: 1, .failed: 1, .ended: 3, .unavailable: 0])
            #expect(counts.oldestWaitingSince == now - 90)
            #expect(counts.notices[.sent] == 4)
            #expect(counts.notices[.pending] == 1)
            #expect(counts.notices[.dead] == 0)
        }
    }

    @Test(
        "backup with the reader table full: dead processes' slots are freed for it; a copy that fails leaves no data.mdb"
    )
    func backupWithFullReaderTable() throws {
        try withTemporaryDirectory { dir in
            let live = dir + "/live"
            let copy = dir + "/copy"
            try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            let store = try Store(directory: live, mapSize: 1 << 22)
            try fixture(store, now: 1_800_000_000)
            // Python's lmdb (another LMDB build) takes every free slot and keeps them while it lives.
            let script = """
                import lmdb, sys, time
                env = lmdb.open(sys.argv[1], max_readers=126, max_dbs=16)
                txns = []
                try:
                    while True:
                        txns.append(env.begin())
                except lmdb.ReadersFullError:
                    pass
                print(len(txns), flush=True)
                time.sleep(600)  # waits-on-purpose: holds its reader slots until the test kills it
                """
            let holder = Process()
            holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            holder.arguments = ["python3", "-c", script, live]
            let output = Pipe()
            holder.standardOutput = output
            try holder.run()
            defer { if holder.isRunning { holder.terminate() } }
            let taken = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            #expect((Int(taken.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0, "\(taken)")
            #expect(store.environment.readerTable.used == store.environment.readerTable.size)

            // Live readers hold every slot: the copy fails, and leaves nothing in the directory.
            #expect(throws: (any Error).self) { _ = try store.backup(to: copy) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: copy).isEmpty)

            // Killed with SIGKILL, its slots stay taken but are dead: the same directory takes the backup.
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
            #expect(store.environment.readerTable.used == store.environment.readerTable.size)
            #expect(try store.backup(to: copy) > 0)
            let restored = try Store(directory: copy, mapSize: 1 << 22)
            #expect(
                try restored.environment.read { txn throws in
                    try restored.all(Room.self, restored.tables.rooms, txn).count
                } == 5
            )
        }
    }

    @Test("backup: a compacted copy into an empty directory opens as a store with the same data")
    func backup() throws {
        try withTemporaryDirectory { dir in
            let live = dir + "/live"
            let copy = dir + "/copy"
            try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            let now = 1_800_000_000.0
            do {
                let store = try Store(directory: live, mapSize: 1 << 22)
                try fixture(store, now: now)
                let bytes = try store.backup(to: copy)
                #expect(bytes > 0)
                // A second copy into the same directory is refused by LMDB (data.mdb exists).
                #expect(throws: (any Error).self) { _ = try store.backup(to: copy) }
            }
            let restored = try Store(directory: copy, mapSize: 1 << 22)
            let rooms = try restored.environment.read { txn throws in
                try restored.all(Room.self, restored.tables.rooms, txn).map(\.id).sorted()
            }
            #expect(rooms == ["r-current", "r-failed", "r-old", "r-recent", "r-superseded"])
        }
    }
}
