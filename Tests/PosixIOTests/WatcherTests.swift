import Foundation
import Glibc
import Testing

@testable import PosixIO

@Suite("DirectoryWatcher")
struct DirectoryWatcherTests {
    @Test("a rename into the directory is movedIn; a file written in place is created then closedWrite")
    func maildirDelivery() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/tmp", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/new", mode: 0o700)
            let watcher = try DirectoryWatcher(directories: [dir + "/new"])
            let recorder = Recorder<[DirectoryEvent]>.recording(watcher.events)

            try DurableFile.write(Array("e".utf8), name: "e1", tmpDirectory: dir + "/tmp", finalDirectory: dir + "/new")
            let moved = DirectoryEvent(kind: .movedIn, directory: dir + "/new", name: "e1")
            #expect(await recorder.wait { batches, _ in batches.joined().contains(moved) })

            makeFile(dir + "/new/direct", "d")
            let expected = [
                DirectoryEvent(kind: .created, directory: dir + "/new", name: "direct"),
                DirectoryEvent(kind: .closedWrite, directory: dir + "/new", name: "direct"),
            ]
            #expect(
                await recorder.wait { batches, _ in
                    batches.joined().filter { $0.name == "direct" }.prefix(2).elementsEqual(expected)
                }
            )

            try FileManager.default.moveItem(atPath: dir + "/new/e1", toPath: dir + "/tmp/e1")
            try FileManager.default.removeItem(atPath: dir + "/new/direct")
            #expect(
                await recorder.wait { batches, _ in
                    let all = Array(batches.joined())
                    return all.contains(DirectoryEvent(kind: .movedOut, directory: dir + "/new", name: "e1"))
                        && all.contains(DirectoryEvent(kind: .deleted, directory: dir + "/new", name: "direct"))
                }
            )
            watcher.stop()
            #expect(await recorder.wait { _, finished in finished })
        }
    }

    @Test("with deliver, batches are handed over on the watcher's thread, in order, and events stays empty")
    func deliverOnTheReaderThread() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/tmp", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/new", mode: 0o700)
            let (handed, into) = AsyncStream.makeStream(of: (thread: String, events: [DirectoryEvent]).self)
            let watcher = try DirectoryWatcher(directories: [dir + "/new"]) { batch in
                let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
                into.yield((name.trimmingCharacters(in: .newlines), batch))
            }
            let recorder = Recorder<(thread: String, events: [DirectoryEvent])>.recording(handed)
            let streamed = Recorder<[DirectoryEvent]>.recording(watcher.events)
            let names = (0..<50).map { "e\($0)" }
            for name in names {
                try DurableFile.write([1], name: name, tmpDirectory: dir + "/tmp", finalDirectory: dir + "/new")
            }
            #expect(
                await recorder.wait { batches, _ in
                    batches.flatMap(\.events).filter { $0.kind == .movedIn }.compactMap(\.name) == names
                }
            )
            let threads = Set(await recorder.items.map(\.thread))
            #expect(threads == ["sitroom-inotify"])
            watcher.stop()
            #expect(await streamed.wait { items, finished in finished && items.isEmpty })
        }
    }

    @Test("coalescing: a storm of renames arrives in a few batches, every name once and in order")
    func coalescing() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/tmp", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/new", mode: 0o700)
            let (handed, into) = AsyncStream.makeStream(of: [DirectoryEvent].self)
            // A tenth of a second between reads: the 300 renames below take far less.
            let watcher = try DirectoryWatcher(directories: [dir + "/new"], coalescing: 0.1) { into.yield($0) }
            defer { watcher.stop() }
            let recorder = Recorder<[DirectoryEvent]>.recording(handed)
            let names = (0..<300).map { "f\($0)" }
            for name in names { makeFile(dir + "/tmp/" + name, "x") }
            for name in names { #expect(rename(dir + "/tmp/" + name, dir + "/new/" + name) == 0) }
            #expect(
                await recorder.wait { batches, _ in
                    batches.joined().filter { $0.kind == .movedIn }.compactMap(\.name) == names
                }
            )
            let batches = await recorder.items.count
            #expect(batches < 30, "\(batches) batches for 300 renames")
        }
    }

    @Test("stop finishes the stream and is idempotent")
    func stopFinishes() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let watcher = try DirectoryWatcher(directories: [dir])
            let recorder = Recorder<[DirectoryEvent]>.recording(watcher.events)
            watcher.stop()
            watcher.stop()
            #expect(await recorder.wait { _, finished in finished })
        }
    }

    @Test("removing the watched directory surfaces directoryGone")
    func directoryGone() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/a", mode: 0o700)
            try DurableFile.makeDirectory(dir + "/b", mode: 0o700)
            let watcher = try DirectoryWatcher(directories: [dir + "/a", dir + "/b"])
            let recorder = Recorder<[DirectoryEvent]>.recording(watcher.events)
            rmdir(dir + "/a")
            #expect(
                await recorder.wait { batches, _ in
                    batches.joined().contains(DirectoryEvent(kind: .directoryGone, directory: dir + "/a", name: nil))
                }
            )
            makeFile(dir + "/b/still")
            #expect(
                await recorder.wait { batches, _ in
                    batches.joined().contains(DirectoryEvent(kind: .closedWrite, directory: dir + "/b", name: "still"))
                }
            )
            watcher.stop()
        }
    }

    @Test("a symbolic link to a directory is followed")
    func followsSymlinkedDirectory() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            try DurableFile.makeDirectory(dir + "/real", mode: 0o700)
            symlink(dir + "/real", dir + "/link")
            let watcher = try DirectoryWatcher(directories: [dir + "/link"])
            let recorder = Recorder<[DirectoryEvent]>.recording(watcher.events)
            makeFile(dir + "/real/f")
            #expect(
                await recorder.wait { batches, _ in
                    batches.joined().contains(DirectoryEvent(kind: .closedWrite, directory: dir + "/link", name: "f"))
                }
            )
            watcher.stop()
        }
    }

    @Test("a missing directory or a file throws PosixError from inotify_add_watch")
    func errors() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let missing = #expect(throws: PosixError.self) { try DirectoryWatcher(directories: [dir + "/missing"]) }
            #expect(missing?.call == "inotify_add_watch")
            #expect(missing?.errno == ENOENT)
            makeFile(dir + "/file")
            let file = #expect(throws: PosixError.self) { try DirectoryWatcher(directories: [dir + "/file"]) }
            #expect(file?.errno == ENOTDIR)
        }
    }

    @Test("IN_Q_OVERFLOW (wd -1) decodes as overflow, in order with the other events")
    func overflowDecoding() {
        // struct inotify_event records as the kernel lays them out: wd, mask, cookie, len, name[len].
        func record(wd: Int32, mask: Int32, name: String?) -> [UInt8] {
            var bytes: [UInt8] = []
            var nameBytes: [UInt8] = name.map { Array($0.utf8) + [0] } ?? []
            while nameBytes.count % 16 != 0 { nameBytes.append(0) }
            withUnsafeBytes(of: wd.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: UInt32(bitPattern: mask).littleEndian) { bytes += $0 }
            withUnsafeBytes(of: UInt32(0)) { bytes += $0 }
            withUnsafeBytes(of: UInt32(nameBytes.count).littleEndian) { bytes += $0 }
            return bytes + nameBytes
        }
        let buffer =
            record(wd: 1, mask: IN_MOVED_TO, name: "a") + record(wd: -1, mask: IN_Q_OVERFLOW, name: nil)
            + record(wd: 1, mask: IN_CLOSE_WRITE, name: "a-much-longer-name")
            + record(wd: 7, mask: IN_CREATE, name: "x")
        var paths: [Int32: [String]] = [1: ["/spool/new"]]
        let events = buffer.withUnsafeBytes { InotifyReader.parse($0, paths: &paths, removeWatch: { _ in }) }
        #expect(
            events == [
                DirectoryEvent(kind: .movedIn, directory: "/spool/new", name: "a"),
                DirectoryEvent(kind: .overflow, directory: "", name: nil),
                DirectoryEvent(kind: .closedWrite, directory: "/spool/new", name: "a-much-longer-name"),
            ]
        )
    }
}
