import Foundation
import LMDB
import SitroomCore
import Testing

@testable import SitroomStore

/// A fresh directory under the system temp dir, removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = NSTemporaryDirectory() + "sitroom-store-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

@Suite("Store over a real LMDB")
struct StoreTests {
    @Test("rooms and incidents round-trip through LMDB")
    func roundTrip() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            var room = Room(id: "r1", incidentID: "INC-1", createdAt: 100)
            room.state = .ready
            room.joinURL = "https://zoom.example/j/1"
            room.meetingID = 42
            let record = IncidentRecord(
                info: IncidentInfo(id: "INC-1", title: "Down"),
                stage: .situationRoom,
                participants: [Participant(name: "Ada", email: "ADA@Example.com")],
                integration: nil,
                roomID: "r1",
                lastOccurredAt: 100
            )
            try store.write { txn throws in
                try txn.rooms.put(room)
                try txn.incidents.put(record)
            }
            let (readRoom, readRecord) = try store.read { txn throws in
                (try txn.rooms.get("r1"), try txn.incidents.get("INC-1"))
            }
            #expect(readRoom == room)
            #expect(readRecord == record)
            #expect(readRecord?.participants.first?.email == "ada@example.com")
        }
    }

    @Test("an event id is applied once")
    func seenEvents() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            #expect(try store.write { txn throws in try txn.events.markSeen("evt-1", at: 1) } == true)
            #expect(try store.write { txn throws in try txn.events.markSeen("evt-1", at: 2) } == false)
            #expect(try store.write { txn throws in try txn.events.markSeen("evt-2", at: 2) })
        }
    }

    @Test("a notice key (room, person, kind, channel) is queued once")
    func noticeDeduplication() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            func notice(_ channel: NoticeChannel, body: String) -> Notice {
                Notice(
                    roomID: "r1",
                    incidentID: "INC-1",
                    personID: "email:ada@example.com",
                    kind: .roomReady,
                    channel: channel,
                    recipient: "ada@example.com",
                    recipientName: "Ada",
                    subject: "s",
                    body: body,
                    createdAt: 1
                )
            }
            #expect(try store.write { txn throws in try txn.outbox.enqueue(notice(.email, body: "first")) })
            #expect(try store.write { txn throws in try txn.outbox.enqueue(notice(.email, body: "second")) } == false)
            #expect(try store.write { txn throws in try txn.outbox.enqueue(notice(.sms, body: "sms")) })
            let all = try store.read { txn throws in try txn.outbox.all() }
            #expect(all.count == 2)
            #expect(all.first { $0.channel == .email }?.body == "first")
        }
    }

    @Test("state survives closing and reopening the environment")
    func durability() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try Store(directory: dir, mapSize: 1 << 20)
                try store.write { txn throws in
                    try txn.usage.setCreates(7, day: "2026-11-29", integration: "z", host: "h")
                }
            }
            let store = try Store(directory: dir, mapSize: 1 << 20)
            #expect(
                try store.read { txn throws in try txn.usage.creates(day: "2026-11-29", integration: "z", host: "h") }
                    == 7
            )
        }
    }

    @Test("a store written by a newer schema is refused")
    func newerSchemaRefused() throws {
        try withTemporaryDirectory { dir in
            do {
                let store = try Store(directory: dir, mapSize: 1 << 20)
                _ = try store.environment.write { txn throws in
                    try txn.put(store.tables.meta, "schema_version", Array("99".utf8))
                }
            }
            #expect(throws: SitroomError.self) { try Store(directory: dir, mapSize: 1 << 20) }
        }
    }

    @Test("audit entries keep their order")
    func auditOrder() throws {
        try withTemporaryDirectory { dir in
            let store = try Store(directory: dir, mapSize: 1 << 20)
            for index in 1...12 {
                try store.write { txn throws in
                    try txn.audit.append(
                        AuditEntry(time: Double(index), uid: 0, command: "reload \(index)", outcome: "ok")
                    )
                }
            }
            let entries = try store.read { txn throws in try txn.audit.all() }
            #expect(entries.map(\.time) == (1...12).map(Double.init))
        }
    }
}
