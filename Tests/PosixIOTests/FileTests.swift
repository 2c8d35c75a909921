import Foundation
import Glibc
import Testing

@testable import PosixIO

@Suite("FileLock")
struct FileLockTests {
    @Test("a second acquirer fails while the lock is held, succeeds after release")
    func exclusive() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let path = dir + "/sitroom.lock"
            let lock = try #require(try FileLock.acquire(path: path))
            #expect(modeOf(path) == 0o600)
            // Another process: flock(1) exits 1 when it cannot take the lock at once.
            #expect(try run("/usr/bin/flock", ["-n", path, "true"]) == 1)
            // Another open file description in this process fails too.
            #expect(try FileLock.acquire(path: path) == nil)
            lock.release()
            lock.release()  // idempotent
            #expect(try run("/usr/bin/flock", ["-n", path, "true"]) == 0)
            let again = try #require(try FileLock.acquire(path: path))
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(getpid())\n")
            again.release()
        }
    }

    @Test("isHeld sees a lock another open file description holds, and only looks")
    func isHeld() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let path = dir + "/intake.lock"
            #expect(!FileLock.isHeld(path: path))
            let lock = try #require(try FileLock.acquire(path: path))
            #expect(FileLock.isHeld(path: path))
            #expect(FileLock.isHeld(path: path), "looking does not take it")
            lock.release()
            #expect(!FileLock.isHeld(path: path))
            #expect(try FileLock.acquire(path: path) != nil)
        }
    }

    @Test("a symbolic link at the lock path is refused")
    func symlinkRefused() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            symlink(dir + "/elsewhere", dir + "/lock")
            #expect(throws: PosixError.self) { try FileLock.acquire(path: dir + "/lock") }
        }
    }
}

@Suite("DurableFile")
struct DurableFileTests {
    @Test("write lands in the final directory with the mode, nothing left in tmp")
    func write() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/tmp", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/new", mode: 0o700)
            try DurableFile.write(
                Array("hello".utf8),
                name: "a",
                tmpDirectory: dir + "/tmp",
                finalDirectory: dir + "/new"
            )
            try DurableFile.write(
                Array("again".utf8),
                name: "a",
                tmpDirectory: dir + "/tmp",
                finalDirectory: dir + "/new",
                mode: 0o640
            )
            #expect(try String(contentsOfFile: dir + "/new/a", encoding: .utf8) == "again")
            #expect(modeOf(dir + "/new/a") == 0o640)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/tmp").isEmpty)
            #expect(throws: PosixError.self) {
                try DurableFile.write([], name: "../x", tmpDirectory: dir + "/tmp", finalDirectory: dir + "/new")
            }
        }
    }

    @Test("writeBatch delivers every good file with one directory fsync; a bad one fails alone and leaves no trace")
    func writeBatch() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/tmp", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/new", mode: 0o700)
            let results = DurableFile.writeBatch(
                [("a", Array("one".utf8)), ("../b", [1]), ("c", Array("three".utf8))],
                tmpDirectory: dir + "/tmp",
                finalDirectory: dir + "/new",
                mode: 0o640
            )
            #expect(results.map { (try? $0.get()) != nil } == [true, false, true])
            #expect(try String(contentsOfFile: dir + "/new/a", encoding: .utf8) == "one")
            #expect(try String(contentsOfFile: dir + "/new/c", encoding: .utf8) == "three")
            #expect(modeOf(dir + "/new/c") == 0o640)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/tmp").isEmpty)
            // The same with the fsyncs spread over a pool's threads.
            let pool = FsyncPool(threads: 3, name: "test-fsync")
            let many = (0..<40).map { ("p\($0)", Array("file \($0)".utf8)) }
            let pooled = DurableFile.writeBatch(
                many,
                tmpDirectory: dir + "/tmp",
                finalDirectory: dir + "/new",
                fsyncs: pool
            )
            #expect(pooled.allSatisfy { (try? $0.get()) != nil })
            #expect(try String(contentsOfFile: dir + "/new/p39", encoding: .utf8) == "file 39")
            #expect(pool.fsync([-1, -1]) == [EBADF, EBADF])
            // A name already in tmp/ (another writer's) is never overwritten.
            try Data("theirs".utf8).write(to: URL(fileURLWithPath: dir + "/tmp/d"))
            let taken = DurableFile.writeBatch([("d", [1])], tmpDirectory: dir + "/tmp", finalDirectory: dir + "/new")
            #expect(throws: PosixError.self) { try taken[0].get() }
            #expect(try String(contentsOfFile: dir + "/tmp/d", encoding: .utf8) == "theirs")
            // Not exclusive (a notice delivered again after a crash): its own leftover in tmp/ is replaced, whole.
            try Data("a longer leftover of a write cut short".utf8).write(to: URL(fileURLWithPath: dir + "/tmp/e"))
            let again = DurableFile.writeBatch(
                [("e", Array("new".utf8)), ("f", Array("other".utf8))],
                tmpDirectory: dir + "/tmp",
                finalDirectory: dir + "/new",
                exclusive: false
            )
            #expect(again.allSatisfy { (try? $0.get()) != nil })
            #expect(try String(contentsOfFile: dir + "/new/e", encoding: .utf8) == "new")
            #expect(try String(contentsOfFile: dir + "/new/f", encoding: .utf8) == "other")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/tmp") == ["d"])
        }
    }

    @Test("writeBatch into a missing final directory fails every file and leaves tmp/ empty")
    func writeBatchMissing() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/tmp", mode: 0o700)
            let results = DurableFile.writeBatch(
                [("a", [1]), ("b", [2])],
                tmpDirectory: dir + "/tmp",
                finalDirectory: dir + "/missing"
            )
            for result in results {
                let error = #expect(throws: PosixError.self) { try result.get() }
                #expect(error?.call == "rename")
                #expect(error?.errno == ENOENT)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/tmp").isEmpty)
            let noTmp = DurableFile.writeBatch([("a", [1])], tmpDirectory: dir + "/gone", finalDirectory: dir + "/tmp")
            #expect(throws: PosixError.self) { try noTmp[0].get() }
        }
    }

    @Test("write into a missing directory names the call and path")
    func writeError() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let error = #expect(throws: PosixError.self) {
                try DurableFile.write([1], name: "a", tmpDirectory: dir + "/missing", finalDirectory: dir)
            }
            #expect(error?.description == "open(\(dir)/missing/a): No such file or directory (errno 2)")
        }
    }

    @Test("moveNoReplace picks NAME.N when NAME is taken")
    func moveNoReplace() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/new", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/cur", mode: 0o700)
            makeFile(dir + "/cur/e", "old0")
            makeFile(dir + "/cur/e.1", "old1")
            makeFile(dir + "/new/e", "first")
            #expect(try DurableFile.moveNoReplace(from: dir + "/new/e", to: dir + "/cur/e") == dir + "/cur/e.2")
            makeFile(dir + "/new/e", "second")
            #expect(try DurableFile.moveNoReplace(from: dir + "/new/e", to: dir + "/cur/e") == dir + "/cur/e.3")
            makeFile(dir + "/new/f", "free")
            #expect(try DurableFile.moveNoReplace(from: dir + "/new/f", to: dir + "/cur/f") == dir + "/cur/f")
            #expect(try String(contentsOfFile: dir + "/cur/e", encoding: .utf8) == "old0")
            #expect(try String(contentsOfFile: dir + "/cur/e.1", encoding: .utf8) == "old1")
            #expect(try String(contentsOfFile: dir + "/cur/e.2", encoding: .utf8) == "first")
            #expect(try String(contentsOfFile: dir + "/cur/e.3", encoding: .utf8) == "second")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/new").isEmpty)
        }
    }

    @Test("readRegularFile reads a file within the limit")
    func readsRegular() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            makeFile(dir + "/f", "12345")
            #expect(try DurableFile.readRegularFile(dir + "/f", maxSize: 5) == Array("12345".utf8))
            makeFile(dir + "/empty", "")
            #expect(try DurableFile.readRegularFile(dir + "/empty", maxSize: 5) == [])
        }
    }

    @Test("readRegularFile refuses a symlink, a FIFO (without blocking), a directory, an oversize file")
    func refusals() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            makeFile(dir + "/f", "123456")
            symlink(dir + "/f", dir + "/link")
            mkfifo(dir + "/fifo", 0o600)
            #expect(throws: ReadRefusal.symlink) { try DurableFile.readRegularFile(dir + "/link", maxSize: 100) }
            // No writer on the FIFO: a blocking open or read would hang this test.
            #expect(throws: ReadRefusal.notRegularFile(kind: "FIFO")) {
                try DurableFile.readRegularFile(dir + "/fifo", maxSize: 100)
            }
            #expect(throws: ReadRefusal.notRegularFile(kind: "directory")) {
                try DurableFile.readRegularFile(dir, maxSize: 100)
            }
            #expect(throws: ReadRefusal.tooLarge(size: 6, limit: 5)) {
                try DurableFile.readRegularFile(dir + "/f", maxSize: 5)
            }
            #expect(throws: PosixError.self) { try DurableFile.readRegularFile(dir + "/missing", maxSize: 5) }
        }
    }

    @Test("makeDirectory creates parents and sets the leaf's mode")
    func makeDirectory() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/a/b/c", mode: 0o700)
            #expect(modeOf(dir + "/a/b/c") == 0o700)
            chmod(dir + "/a/b/c", 0o755)
            try DurableFile.makeDirectory(dir + "/a/b/c/", mode: 0o700)
            #expect(modeOf(dir + "/a/b/c") == 0o700)
            makeFile(dir + "/file")
            #expect(throws: PosixError.self) { try DurableFile.makeDirectory(dir + "/file/sub", mode: 0o700) }
        }
    }
}

@Suite("DurableFile: settled reads, listing, touch")
struct SettledFileTests {
    /// Sets a file's modification time `age` seconds into the past.
    func age(_ path: String, _ seconds: Double) {
        let past = Date().addingTimeInterval(-seconds).timeIntervalSince1970
        var times = [
            timespec(tv_sec: Int(past), tv_nsec: 0), timespec(tv_sec: Int(past), tv_nsec: 0),
        ]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    @Test("a file open for writing is not read; once closed it is")
    func openForWriting() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let path = dir + "/slow"
            let writer = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            try #require(writer >= 0)
            _ = Array("half".utf8).withUnsafeBytes { Glibc.write(writer, $0.baseAddress, $0.count) }
            #expect(throws: FileNotSettled(path: path, reason: .openForWriting)) {
                try DurableFile.readSettledFile(path, maxSize: 100, quietPeriod: nil)
            }
            close(writer)
            #expect(try DurableFile.readSettledFile(path, maxSize: 100, quietPeriod: nil) == Array("half".utf8))
            // A read-only opener does not count as a writer.
            let reader = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            defer { close(reader) }
            #expect(try DurableFile.readSettledFile(path, maxSize: 100, quietPeriod: nil) == Array("half".utf8))
        }
    }

    @Test("a recently modified file waits for the quiet period")
    func quietPeriod() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let path = dir + "/fresh"
            makeFile(path, "content")
            do {
                _ = try DurableFile.readSettledFile(path, maxSize: 100, quietPeriod: 60)
                Issue.record("read a file modified just now")
            } catch let error as FileNotSettled {
                guard case .modifiedRecently(let age) = error.reason else {
                    Issue.record("wrong reason \(error)")
                    return
                }
                #expect(age < 60)
            }
            age(path, 120)
            #expect(try DurableFile.readSettledFile(path, maxSize: 100, quietPeriod: 60) == Array("content".utf8))
            // The refusals of readRegularFile still apply.
            symlink(path, dir + "/link")
            #expect(throws: ReadRefusal.symlink) {
                try DurableFile.readSettledFile(dir + "/link", maxSize: 100, quietPeriod: nil)
            }
            #expect(throws: ReadRefusal.tooLarge(size: 7, limit: 3)) {
                try DurableFile.readSettledFile(path, maxSize: 3, quietPeriod: nil)
            }
        }
    }

    @Test("list gives kinds and times without following links; touch sets the time to now")
    func listAndTouch() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            makeFile(dir + "/file", "abc")
            age(dir + "/file", 3600)
            symlink("/nonexistent", dir + "/link")
            mkdir(dir + "/sub", 0o700)
            makeFile(dir + "/.hidden")
            let entries = try DurableFile.list(dir).sorted { $0.name < $1.name }
            #expect(entries.map(\.name) == ["file", "link", "sub"])
            #expect(entries.map(\.kind) == [.regular, .symlink, .directory])
            #expect(entries[0].size == 3)
            #expect(DurableFile.now() - entries[0].modified > 3000)
            #expect(try DurableFile.list(dir, includeHidden: true).count == 4)
            try DurableFile.touch(dir + "/file")
            try DurableFile.touch(dir + "/link")  // the link itself; its target does not exist
            let touched = try DurableFile.list(dir).first { $0.name == "file" }
            #expect(DurableFile.now() - (touched?.modified ?? 0) < 60)
            try DurableFile.remove(dir + "/file")
            #expect(throws: PosixError.self) { try DurableFile.remove(dir + "/sub") }
            #expect(throws: PosixError.self) { try DurableFile.list(dir + "/missing") }
        }
    }
}
