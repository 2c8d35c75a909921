import Foundation
import LMDB
import Synchronization
import Testing

/// The reader table and the map's growth, against real LMDB environments and real processes (Python's `lmdb`
/// package from PyPI, another LMDB build: it fills reader slots and dies with SIGKILL, as a killed tool does).
@Suite("LMDB reader table and map growth")
struct ReaderTableTests {
    @Test("growing the map reports the old and the new size")
    func mapGrowthIsReported() throws {
        try withTemporaryDirectory { path throws in
            let grown = Mutex<[(Int, Int)]>([])
            let env = try Environment(
                path: path,
                mapSize: 64 * 1024,
                onMapGrowth: { old, new in grown.withLock { $0.append((old, new)) } }
            )
            let db = try env.database(named: "main")
            let before = env.mapSize
            try env.write { txn throws in
                for i in 0..<4 { try txn.put(db, "blob/\(i)", [UInt8](repeating: 0xAB, count: 64 * 1024)) }
            }
            let steps = grown.withLock { $0 }
            #expect(!steps.isEmpty)
            #expect(steps.first?.0 == before)
            #expect(steps.allSatisfy { $0.1 == 2 * $0.0 })
            #expect(steps.last?.1 == env.mapSize)
        }
    }

    /// Runs Python with `script` and arguments; returns its exit status and output.
    static func python(_ script: String, _ arguments: [String], wait: Bool = true) throws -> (Process, Pipe) {
        let process = Process()
        // `python3` from PATH, as the other Python fixtures: the one scripts/install-deps installed py-lmdb for.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        if wait { process.waitUntilExit() }
        return (process, pipe)
    }

    /// Opens the environment and keeps it open (so no later opener may reset the lock file) until killed.
    static let hold = """
        import lmdb, sys, time
        env = lmdb.open(sys.argv[1], max_readers=126, max_dbs=16)
        print("holding", flush=True)
        time.sleep(600)  # waits-on-purpose: holds its reader slots until the test kills it
        """
    /// Begins read transactions until `n` or the table is full, then dies with SIGKILL: its slots stay taken.
    static let fillAndDie = """
        import lmdb, os, signal, sys
        env = lmdb.open(sys.argv[1], max_readers=126, max_dbs=16)
        txns = []
        try:
            for i in range(int(sys.argv[2])):
                txns.append(env.begin())
        except lmdb.ReadersFullError:
            pass
        print(len(txns), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """

    @Test("slots left by killed processes are freed: on demand, and by a read that finds the table full")
    func staleReadersAreCleared() throws {
        try withTemporaryDirectory { path throws in
            let env = try Environment(path: path, mapSize: 1 << 20)
            let db = try env.database(named: "main")
            try env.write { txn throws in try txn.put(db, "k", [1]) }
            // Another live process holds the environment open, as a second tool or an earlier daemon would.
            let (holder, holderOutput) = try Self.python(Self.hold, [path], wait: false)
            defer { holder.terminate() }
            _ = holderOutput.fileHandleForReading.availableData  // "holding": it has the environment open

            let (filler, _) = try Self.python(Self.fillAndDie, [path, "40"])
            #expect(filler.terminationReason == .uncaughtSignal)
            #expect(env.readerTable.used >= 40)
            #expect(try env.clearStaleReaders() == 40)
            #expect(try env.clearStaleReaders() == 0)

            // The whole table taken by a dead process: a read clears it and goes on instead of failing.
            let (full, _) = try Self.python(Self.fillAndDie, [path, "200"])
            #expect(full.terminationReason == .uncaughtSignal)
            #expect(env.readerTable.used == env.readerTable.size)
            #expect(try env.read { txn in try txn.get(db, "k") } == [1])
            #expect(env.readerTable.used < env.readerTable.size)
        }
    }
}
