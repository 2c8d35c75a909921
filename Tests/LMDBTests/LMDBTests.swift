import Foundation
import LMDB
import Testing

/// Runs `body` with a fresh temporary directory, removed afterwards.
@discardableResult
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lmdb-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
}

/// Runs `body` with a fresh environment (1 MiB map unless told) and one database named "main".
@discardableResult
func withEnvironment<R>(mapSize: Int = 1 << 20, _ body: (Environment, Database) throws -> R) throws -> R {
    try withTemporaryDirectory { path throws in
        let env = try Environment(path: path, mapSize: mapSize)
        let db = try env.database(named: "main")
        return try body(env, db)
    }
}

struct Boom: Error {}

@Suite("LMDB")
struct LMDBTests {
    @Test func putGetDelete() throws {
        try withEnvironment { env, db throws in
            try env.write { txn throws in
                #expect(try txn.put(db, [1, 2, 3], [9, 9]))
                #expect(try txn.put(db, "incident/1", Array("hello".utf8)))
                #expect(try txn.put(db, "empty", []))
            }
            try env.read { txn throws in
                let readOnly = txn.isReadOnly
                #expect(readOnly)
                #expect(try txn.get(db, [1, 2, 3]) == [9, 9])
                #expect(try txn.get(db, "incident/1") == Array("hello".utf8))
                #expect(try txn.get(db, "empty") == [])
                #expect(try txn.get(db, "absent") == nil)
            }
            try env.write { txn throws in
                #expect(try txn.delete(db, "incident/1"))
                #expect(try txn.delete(db, "incident/1") == false)
                #expect(try txn.delete(db, [1, 2, 3]))
            }
            let remaining = try env.read { txn in try txn.count(db) }
            #expect(remaining == 1)
        }
    }

    @Test func noOverwriteKeepsTheExistingValue() throws {
        try withEnvironment { env, db throws in
            let results = try env.write { txn throws in
                (
                    try txn.put(db, "k", [1], noOverwrite: true),
                    try txn.put(db, "k", [2], noOverwrite: true),
                    try txn.get(db, "k")
                )
            }
            #expect(results.0 == true)
            #expect(results.1 == false)
            #expect(results.2 == [1])
            try env.write { txn in try txn.put(db, "k", [3]) }
            #expect(try env.read { try $0.get(db, "k") } == [3])
        }
    }

    @Test func throwingBodyAborts() throws {
        try withEnvironment { env, db throws in
            try env.write { txn in try txn.put(db, "kept", [1]) }
            #expect(throws: Boom.self) {
                try env.write { txn throws in
                    try txn.put(db, "lost", [1])
                    try txn.delete(db, "kept")
                    throw Boom()
                }
            }
            try env.read { txn throws in
                #expect(try txn.get(db, "lost") == nil)
                #expect(try txn.get(db, "kept") == [1])
            }
        }
    }

    @Test("a nested transaction that throws leaves its parent's and siblings' writes; one that returns joins them")
    func nestedTransactions() throws {
        try withEnvironment { env, db throws in
            let outcomes: [Bool] = try env.write { txn throws in
                try txn.put(db, "parent", [0])
                var outcomes: [Bool] = []
                for i in 0..<3 {
                    do {
                        try txn.nested { child throws in
                            try child.put(db, "child/\(i)", [UInt8(i)])
                            // A child sees its parent's writes and its earlier siblings'.
                            #expect(try child.get(db, "parent") == [0])
                            if i > 0 { #expect(try child.get(db, "child/0") == [0]) }
                            if i == 1 {
                                try child.delete(db, "parent")
                                throw Boom()
                            }
                        }
                        outcomes.append(true)
                    } catch is Boom {
                        outcomes.append(false)
                    }
                }
                return outcomes
            }
            #expect(outcomes == [true, false, true])
            try env.read { txn throws in
                #expect(try txn.get(db, "parent") == [0])
                #expect(try txn.get(db, "child/0") == [0])
                #expect(try txn.get(db, "child/1") == nil)
                #expect(try txn.get(db, "child/2") == [2])
            }
            #expect(throws: LMDBError(rawValue: EACCES)) {
                try env.read { txn in try txn.nested { _ in } }
            }
        }
    }

    @Test("a nested transaction that fills the map makes the whole write grow the map and run again")
    func nestedTransactionGrowsTheMap() throws {
        try withEnvironment(mapSize: 64 * 1024) { env, db throws in
            let value = [UInt8](repeating: 0xCD, count: 100 * 1024)
            var runs = 0
            try env.write { txn throws in
                runs += 1
                for i in 0..<5 { try? txn.nested { child in try child.put(db, "blob/\(i)", value) } }
            }
            #expect(runs > 1)
            #expect(try env.read { try $0.count(db) } == 5)
        }
    }

    @Test func readOnlyTransactionRejectsWrites() throws {
        try withEnvironment { env, db throws in
            #expect(throws: LMDBError(rawValue: EACCES)) {
                try env.read { txn in try txn.put(db, "k", [1]) }
            }
        }
    }

    @Test func forEachInKeyOrderFromAKeyAndByPrefix() throws {
        try withEnvironment { env, db throws in
            try env.write { txn throws in
                for key in ["room/b", "incident/2", "room/a", "incident/10", "incident/1", "roomz"] {
                    try txn.put(db, key, Array(key.utf8))
                }
            }
            try env.read { txn throws in
                var all: [String] = []
                try txn.forEach(db) { key, value in
                    #expect(key == value)
                    all.append(String(decoding: key, as: UTF8.self))
                    return true
                }
                #expect(all == ["incident/1", "incident/10", "incident/2", "room/a", "room/b", "roomz"])

                var fromR: [String] = []
                try txn.forEach(db, from: Array("r".utf8)) { key, _ in
                    fromR.append(String(decoding: key, as: UTF8.self))
                    return true
                }
                #expect(fromR == ["room/a", "room/b", "roomz"])

                var rooms: [String] = []
                try txn.forEach(db, prefix: "room/") { key, value in
                    #expect(Array(key.utf8) == value)
                    rooms.append(key)
                    return true
                }
                #expect(rooms == ["room/a", "room/b"])

                var first: [String] = []
                try txn.forEach(db, prefix: "incident/") { key, _ in
                    first.append(key)
                    return first.count < 2
                }
                #expect(first == ["incident/1", "incident/10"])

                var none = 0
                try txn.forEach(db, prefix: "zzz") { _, _ in
                    none += 1
                    return true
                }
                #expect(none == 0)

                var byteKeys: [[UInt8]] = []
                try txn.forEach(db, prefix: Array("room".utf8)) { key, _ in
                    byteKeys.append(key)
                    return true
                }
                #expect(byteKeys.count == 3)
            }
        }
    }

    @Test func deletingWhileIteratingVisitsEveryKey() throws {
        try withEnvironment { env, db throws in
            try env.write { txn throws in
                for i in 0..<100 { try txn.put(db, "old/\(1000 + i)", [UInt8(i)]) }
                try txn.put(db, "other", [1])
            }
            let deleted = try env.write { txn throws in
                var deleted = 0
                try txn.forEach(db, prefix: "old/") { key, _ in
                    try txn.delete(db, key)
                    deleted += 1
                    return true
                }
                return deleted
            }
            #expect(deleted == 100)
            #expect(try env.read { try $0.count(db) } == 1)
        }
    }

    @Test func countAndDrop() throws {
        try withEnvironment { env, db throws in
            let other = try env.database(named: "other")
            try env.write { txn throws in
                for i in 0..<50 { try txn.put(db, "k\(i)", [UInt8(i)]) }
                try txn.put(other, "x", [1])
            }
            #expect(try env.read { try $0.count(db) } == 50)
            try env.write { txn in try txn.drop(db) }
            try env.read { txn throws in
                #expect(try txn.count(db) == 0)
                #expect(try txn.count(other) == 1)
            }
            try env.write { txn in try txn.put(db, "again", [1]) }
            #expect(try env.read { try $0.count(db) } == 1)
        }
    }

    @Test func mapGrowsFromATinyMap() throws {
        try withEnvironment(mapSize: 64 * 1024) { env, db throws in
            let initial = env.mapSize
            let value = [UInt8](repeating: 0xAB, count: 100 * 1024)
            // 10 MB in 10 transactions of 1 MB each.
            for batch in 0..<10 {
                try env.write { txn throws in
                    for i in 0..<10 { try txn.put(db, "blob/\(batch)/\(i)", value) }
                }
            }
            // And one transaction that alone needs several doublings.
            try env.write { txn throws in
                for i in 0..<30 { try txn.put(db, "big/\(i)", value) }
            }
            #expect(env.mapSize > initial)
            #expect(env.mapSize >= 13 * 1024 * 1024)
            try env.read { txn throws in
                #expect(try txn.count(db) == 130)
                #expect(try txn.get(db, "blob/9/9") == value)
                #expect(try txn.get(db, "big/29") == value)
            }
        }
    }

    @Test func mapFullSwallowedByTheBodyStillRetries() throws {
        try withEnvironment(mapSize: 64 * 1024) { env, db throws in
            let value = [UInt8](repeating: 1, count: 200 * 1024)
            var attempts = 0
            let stored = try env.write { txn throws in
                attempts += 1
                do {
                    return try txn.put(db, "big", value)
                } catch {
                    #expect(error as? LMDBError == .mapFull)
                    return false
                }
            }
            #expect(stored)
            #expect(attempts > 1)
            #expect(try env.read { try $0.get(db, "big") } == value)
        }
    }

    @Test func concurrentReadersAndWritersWhileTheMapGrows() throws {
        try withEnvironment(mapSize: 64 * 1024) { env, db throws in
            let value = [UInt8](repeating: 7, count: 8 * 1024)
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                for i in 0..<100 {
                    do {
                        if worker % 2 == 0 {
                            try env.write { txn in try txn.put(db, "w\(worker)/\(i)", value) }
                        } else {
                            _ = try env.read { txn in try txn.count(db) }
                        }
                    } catch {
                        Issue.record(error)
                    }
                }
            }
            #expect(try env.read { try $0.count(db) } == 200)
        }
    }

    @Test func openingTheSamePathTwiceThrows() throws {
        try withTemporaryDirectory { path throws in
            let env = try Environment(path: path, mapSize: 1 << 20)
            #expect(throws: LMDBError.alreadyOpen) {
                _ = try Environment(path: path + "/.", mapSize: 1 << 20)
            }
            _ = env.mapSize
        }
        // Closing releases the path.
        try withTemporaryDirectory { path throws in
            do {
                let env = try Environment(path: path, mapSize: 1 << 20)
                let db = try env.database(named: "a")
                try env.write { try $0.put(db, "k", [1]) }
            }
            let env = try Environment(path: path, mapSize: 1 << 20)
            let db = try env.database(named: "a")
            #expect(try env.read { try $0.get(db, "k") } == [1])
        }
    }

    @Test func missingDirectoryThrows() {
        #expect(throws: LMDBError(rawValue: ENOENT)) {
            _ = try Environment(path: "/nonexistent/sitroom-\(UUID().uuidString)", mapSize: 1 << 20)
        }
    }

    @Test func compactCopyReopens() throws {
        try withTemporaryDirectory { copyPath throws in
            try withEnvironment { env, db throws in
                try env.write { txn throws in
                    for i in 0..<200 { try txn.put(db, "k\(i)", [UInt8](repeating: 1, count: 1000)) }
                }
                try env.write { txn throws in
                    for i in 0..<150 { try txn.delete(db, "k\(i)") }
                }
                try env.sync()
                try env.copy(to: copyPath, compact: true)
                #expect(throws: LMDBError(rawValue: EEXIST)) { try env.copy(to: copyPath, compact: true) }
            }
            let copy = try Environment(path: copyPath, mapSize: 1 << 20)
            let db = try copy.database(named: "main")
            try copy.read { txn throws in
                #expect(try txn.count(db) == 50)
                #expect(try txn.get(db, "k199") == [UInt8](repeating: 1, count: 1000))
            }
        }
    }

    @Test func errorsMatchAndDescribeTheOperation() {
        let error = LMDBError(LMDBError.mapFull.rawValue, operation: "mdb_put")
        #expect(error == .mapFull)
        #expect(LMDBError.mapFull ~= (error as any Error))
        #expect(!(LMDBError.notFound ~= (error as any Error)))
        #expect(error.description == "mdb_put: MDB_MAP_FULL: Environment mapsize limit reached")
        switch error as any Error {
        case LMDBError.mapFull: break
        default: Issue.record("pattern did not match")
        }
    }

    @Test("a corrupt data file fails to open with an error, without crashing the process")
    func corruptDataFile() throws {
        let dir = NSTemporaryDirectory() + "lmdb-corrupt-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var generator = SystemRandomNumberGenerator()
        let garbage = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        FileManager.default.createFile(atPath: dir + "/data.mdb", contents: Data(garbage))
        #expect(throws: LMDBError.self) { _ = try Environment(path: dir, mapSize: 1 << 20) }
        // The path is free again: a second try fails the same way, not with "already open".
        let again = #expect(throws: LMDBError.self) { _ = try Environment(path: dir, mapSize: 1 << 20) }
        #expect(again != LMDBError.alreadyOpen)
    }
}
