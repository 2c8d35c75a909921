import Foundation
import SitroomCore
import SitroomTestFixtures
import Testing

@testable import SitroomStore

/// The store's record format (``RecordFormat``): every value round-trips, older and newer layouts read, broken
/// bytes are errors (never a crash), and JSON of older stores transcodes to the same values.
@Suite("record format of the store's values")
struct RecordCodecTests {
    struct Everything: Codable, Equatable {
        enum Kind: String, Codable { case one, two }
        var string = "Zürich 🚒 \"quoted\"\n"
        var empty = ""
        var int = -1_234_567_890_123
        var small: Int8 = -7
        var unsigned: UInt32 = 4_000_000_000
        var big: UInt64 = .max
        var double = 1_795_950_000.125
        var negativeZero = -0.0
        var float: Float = 3.5
        var flag = true
        var kind = Kind.two
        var optional: String? = nil
        var present: Int? = 0
        var list = [[1, 2], [], [3]]
        var map = ["b": 2, "a": 1]
        var intKeys = [3: "three", -1: "minus one"]
        var nested = [Participant(name: "Ada", email: "ada@example.com", role: .commander)]
    }

    @Test("every kind of value round-trips")
    func roundTrip() throws {
        let value = Everything()
        let bytes = try RecordEncoder().encode(value)
        #expect(RecordFormat.isRecord(bytes))
        #expect(try RecordDecoder().decode(Everything.self, from: bytes) == value)
    }

    @Test("the store's own values round-trip through Store.encode and Store.decode")
    func storeValues() throws {
        var room = Room(id: "r0123456789abcdef", incidentID: "INC-1", createdAt: 1_795_950_000.5)
        room.state = .ready
        room.meetingID = 85_739_201_33
        room.joinURL = "https://zoom.us/j/8573920133?pwd=x"
        room.endRequested = true
        room.deleteAfter = 1_795_950_900
        #expect(try Store.decode(Room.self, Store.encode(room)) == room)
        let record = IncidentRecord(
            info: IncidentInfo(id: "INC-1", title: "Payments", severity: "critical", team: "payments-sre"),
            stage: .situationRoom,
            participants: [Participant(name: "Ada", email: "ada@example.com", phone: "+15005550101", role: .commander)],
            integration: nil,
            roomID: room.id,
            lastOccurredAt: 1_795_950_000
        )
        #expect(try Store.decode(IncidentRecord.self, Store.encode(record)) == record)
        let entry = AuditEntry(time: 1, uid: nil, command: "room end INC-1", outcome: "ok")
        #expect(try Store.decode(AuditEntry.self, Store.encode(entry)) == entry)
    }

    struct Old: Codable, Equatable {
        var id: String
        var count: Int
    }

    struct New: Codable, Equatable {
        var id: String
        var count: Int
        var note: String?
    }

    @Test("a field added later reads as absent from an older record; a field dropped is skipped")
    func evolution() throws {
        let old = try RecordEncoder().encode(Old(id: "a", count: 2))
        #expect(try RecordDecoder().decode(New.self, from: old) == New(id: "a", count: 2, note: nil))
        let new = try RecordEncoder().encode(New(id: "a", count: 2, note: "n"))
        #expect(try RecordDecoder().decode(Old.self, from: new) == Old(id: "a", count: 2))
    }

    @Test("a missing field or a wrong type is a decoding error naming the field")
    func mismatches() throws {
        struct Other: Codable { var id: Int }
        let bytes = try RecordEncoder().encode(Old(id: "a", count: 2))
        #expect(throws: DecodingError.self) { try RecordDecoder().decode(Other.self, from: bytes) }
        struct Missing: Codable { var absent: String }
        #expect(throws: DecodingError.self) { try RecordDecoder().decode(Missing.self, from: bytes) }
    }

    @Test("every truncation and a flipped tag of a record is an error, never a crash")
    func brokenBytes() throws {
        let bytes = try RecordEncoder().encode(Everything())
        for length in 0..<bytes.count {
            #expect(throws: (any Error).self) {
                try RecordDecoder().decode(Everything.self, from: Array(bytes[..<length]))
            }
        }
        var trailing = bytes
        trailing.append(0)
        #expect(throws: (any Error).self) { try RecordDecoder().decode(Everything.self, from: trailing) }
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<2_000 {
            var flipped = bytes
            flipped[Int.random(in: 1..<flipped.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            _ = try? RecordDecoder().decode(Everything.self, from: flipped)  // may decode or throw; must not crash
        }
    }

    @Test("JSON written before schema 3 transcodes to a record holding the same values")
    func transcoding() throws {
        let value = Everything()
        let json = Array(try JSONEncoder().encode(value))
        let record = try #require(try RecordFormat.transcode(json: json))
        #expect(try RecordDecoder().decode(Everything.self, from: record) == value)
        #expect(try RecordFormat.transcode(json: Array("1767225600.5".utf8)) == nil)  // raw ASCII values stay
        #expect(try RecordFormat.transcode(json: Array("1".utf8)) == nil)
    }

}
