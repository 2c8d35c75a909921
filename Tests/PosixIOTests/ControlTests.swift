import Foundation
import Glibc
import Testing

@testable import PosixIO

@Suite("ControlFIFO")
struct ControlFIFOTests {
    typealias Splitter = LineSplitter

    @Test("lines written by writers arrive in order")
    func linesArrive() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/run/sitroom.ctl")
            #expect(modeOf(dir + "/run") == 0o700)
            #expect(modeOf(dir + "/run/sitroom.ctl") == 0o600)
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            try writeToFIFO(fifo.path, "status\nreload\n")
            try writeToFIFO(fifo.path, "rooms open\n\n")
            #expect(await recorder.wait { items, _ in items.count == 4 })
            #expect(await recorder.items == [.line("status"), .line("reload"), .line("rooms open"), .line("")])
            fifo.stop()
            fifo.stop()
            #expect(await recorder.wait { _, finished in finished })
        }
    }

    @Test("1,000 writers in a row: every line arrives, and the reader thread stays idle afterwards")
    func manyWritersNoSpin() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/run/sitroom.ctl")
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            let count = 1000
            for index in 0..<count {
                try writeToFIFO(fifo.path, "command \(index)\n")
            }
            #expect(await recorder.wait { items, _ in items.count >= count })
            let items = await recorder.items
            #expect(items == (0..<count).map { .line("command \($0)") })

            let thread = try #require(fifo.readerThread.value)
            let before = cpuSeconds(of: thread)
            // waits-on-purpose: an idle window in which a spinning reader would burn CPU.
            try await Task.sleep(for: .milliseconds(500))  // waits-on-purpose
            let used = cpuSeconds(of: thread) - before
            #expect(used < 0.05, "reader thread used \(used) s of CPU while idle")

            // It still reads after all that.
            try writeToFIFO(fifo.path, "after\n")
            #expect(await recorder.wait { items, _ in items.last == .line("after") })
            fifo.stop()
        }
    }

    @Test("a line over 4096 bytes is rejected and the next line still arrives")
    func tooLong() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            let longest = String(repeating: "a", count: 4095)  // 4096 with the newline: allowed
            try writeToFIFO(fifo.path, longest + "\n")
            // Written in two parts by one writer, 10,000 bytes.
            let tooLong = Array(String(repeating: "b", count: 10_000).utf8) + [10]
            try writeToFIFO(fifo.path, tooLong + Array("status\n".utf8))
            #expect(await recorder.wait { items, _ in items.count >= 3 })
            #expect(
                await recorder.items == [
                    .line(longest), .rejected(reason: "line longer than 4096 bytes (discarded)"), .line("status"),
                ]
            )
            fifo.stop()
        }
    }

    @Test("NUL bytes and invalid UTF-8 are rejected, reading goes on")
    func badBytes() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            try writeToFIFO(
                fifo.path,
                Array("sta".utf8) + [0] + Array("tus\n".utf8) + [0xC3, 0x28, 10] + Array("héllo\n".utf8)
            )
            #expect(await recorder.wait { items, _ in items.count >= 3 })
            #expect(
                await recorder.items == [
                    .rejected(reason: "line contains a NUL byte"), .rejected(reason: "line is not valid UTF-8"),
                    .line("héllo"),
                ]
            )
            fifo.stop()
        }
    }

    @Test("a final line without a newline is rejected when its writer closes")
    func unterminated() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            try writeToFIFO(fifo.path, "status\nreload")
            // A writer that comes before the reader has seen the first one close would continue the
            // partial line (the pipe keeps no writer boundaries): wait for the rejection first.
            #expect(await recorder.wait { items, _ in items.count >= 2 })
            try writeToFIFO(fifo.path, "help\n")
            #expect(await recorder.wait { items, _ in items.count >= 3 })
            #expect(
                await recorder.items == [
                    .line("status"), .rejected(reason: "final line without a newline (discarded)"), .line("help"),
                ]
            )
            fifo.stop()
        }
    }

    @Test("a stale FIFO is replaced; a regular file, a symlink or a directory at the path is refused")
    func pathChecks() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let path = dir + "/sitroom.ctl"
            mkfifo(path, 0o644)
            let stale = open(path, O_RDONLY | O_NONBLOCK)
            defer { close(stale) }
            let fifo = try ControlFIFO(path: path)
            var status = stat()
            fstat(stale, &status)
            #expect(status.st_nlink == 0)  // the stale FIFO was unlinked
            #expect(modeOf(path) == 0o600)
            #expect(throws: Never.self) { try ReplyFIFO.owner(of: path) }
            fifo.stop()

            makeFile(dir + "/file")
            let file = #expect(throws: PathRefusal.self) { try ControlFIFO(path: dir + "/file") }
            #expect(file?.description == "\(dir)/file: is a regular file, not a FIFO (refused)")
            symlink(path, dir + "/link")
            #expect(throws: PathRefusal.self) { try ControlFIFO(path: dir + "/link") }
            mkdir(dir + "/directory", 0o700)
            #expect(throws: PathRefusal.self) { try ControlFIFO(path: dir + "/directory") }
            #expect(FileManager.default.fileExists(atPath: dir + "/file"))
        }
    }

    @Test("the parent directory: tightened to 0700 when ours, refused when another user's")
    func parentDirectory() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            mkdir(dir + "/open", 0o755)
            chmod(dir + "/open", 0o755)
            let fifo = try ControlFIFO(path: dir + "/open/sitroom.ctl")
            #expect(modeOf(dir + "/open") == 0o700)
            fifo.stop()
            guard geteuid() == 0 else { return }  // only root can give a directory away
            mkdir(dir + "/theirs", 0o700)
            chown(dir + "/theirs", 65534, 65534)
            #expect(throws: PathRefusal.self) { try ControlFIFO(path: dir + "/theirs/sitroom.ctl") }
        }
    }

    @Test("splitter: a line cut across reads is joined; an over-long line across reads is reported once")
    func splitterAcrossReads() {
        var splitter = Splitter()
        var output: [ControlInput] = []
        for chunk in ["sta", "tus\nre", "load\n"] {
            Array(chunk.utf8).withUnsafeBytes { splitter.feed($0, into: &output) }
        }
        for _ in 0..<3 {
            [UInt8](repeating: 65, count: 3000).withUnsafeBytes { splitter.feed($0, into: &output) }
        }
        Array("tail\nok\n".utf8).withUnsafeBytes { splitter.feed($0, into: &output) }
        splitter.endOfInput(into: &output)
        #expect(output == [.line("status"), .line("reload"), .rejected(reason: Splitter.tooLong), .line("ok")])
    }

    @Test("splitter: a half line a write left is never completed by a later write into a command")
    func splitterJoinedFragment() {
        var splitter = Splitter()
        var output: [ControlInput] = []
        // One writer leaves "room end INC-1" without a newline; sitroomctl's next write starts with a newline.
        for chunk in ["status\nroom end INC-1", "\nreply=/x rooms\n", "stat", "us\n", "reload\n"] {
            Array(chunk.utf8).withUnsafeBytes { splitter.feed($0, into: &output) }
            splitter.endOfRead()
        }
        #expect(
            output == [
                .line("status"), .rejected(reason: Splitter.joined), .line("reply=/x rooms"),
                .rejected(reason: Splitter.joined),
                .line("reload"),
            ]
        )
    }

    @Test("splitter: a half line and sitroomctl's command in one read: the separator's NUL rejects the half line")
    func splitterCoalescedFragment() {
        var splitter = Splitter()
        var output: [ControlInput] = []
        let chunk =
            Array("status\nroom end INC-1".utf8) + Splitter.separator + Array("reply=/x rooms\n".utf8)
            + Splitter.separator
            + Array("reply=/y status\n".utf8)
        chunk.withUnsafeBytes { splitter.feed($0, into: &output) }
        #expect(
            output == [
                .line("status"), .rejected(reason: Splitter.separated), .line("reply=/x rooms"), .line(""),
                .line("reply=/y status"),
            ]
        )
    }

    @Test("a writer's half line held open, then another client's command: the half line is rejected, the command runs")
    func fragmentOverRealFIFO() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            let holder = open(fifo.path, O_WRONLY | O_NONBLOCK)
            #expect(holder >= 0)
            defer { close(holder) }
            _ = Array("room end INC-1".utf8).withUnsafeBytes { Glibc.write(holder, $0.baseAddress, $0.count) }
            // The reader has taken the half line when the FIFO is empty again (it sees the data before the next write).
            #expect(await waitUntil { fifoBytesQueued(holder) == 0 })
            try writeToFIFO(fifo.path, "\nreply=/x status\n")
            #expect(await recorder.wait { items, _ in items.count >= 2 })
            #expect(await recorder.items == [.rejected(reason: Splitter.joined), .line("reply=/x status")])
            fifo.stop()
        }
    }
}

/// Bytes waiting in the pipe behind `fd` (`FIONREAD`).
private func fifoBytesQueued(_ fd: Int32) -> Int32 {
    var count: Int32 = 0
    _ = ioctl(fd, UInt(FIONREAD), &count)
    return count
}

/// Polls `condition` every 5 ms for up to 5 s.
private func waitUntil(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<1000 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))  // waits-on-purpose: the step of a bounded poll
    }
    return condition()
}

@Suite("ReplyFIFO and ControlClient")
struct ControlClientTests {
    /// A stand-in for the daemon: answers every `reply=` line with "ok\nhello\n".
    /// Returns (command, reply path) pairs.
    static func respond(to fifo: ControlFIFO, reply: String = "ok\nhello\n") -> Task<[[String]], Never> {
        Task {
            var commands: [[String]] = []
            for await input in fifo.inputs {
                guard case .line(let line) = input, line.hasPrefix("reply=") else { continue }
                let parts = line.dropFirst("reply=".count).split(separator: " ", maxSplits: 1)
                let path = String(parts[0])
                commands.append([parts.count > 1 ? String(parts[1]) : "", path])
                do {
                    let uid = try ReplyFIFO.owner(of: path)
                    #expect(uid == geteuid())
                    #expect(try ReplyFIFO.write(reply, to: path) == uid)
                } catch {
                    Issue.record("reply failed: \(error)")
                }
            }
            return commands
        }
    }

    @Test("round trip: the reply text comes back, the temporary directory is removed")
    func roundTrip() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            ignoreSIGPIPE()
            let fifo = try ControlFIFO(path: dir + "/run/sitroom.ctl")
            let responder = Self.respond(to: fifo)
            let reply = try await onThread {
                try ControlClient.send("room show INC-1 --json", controlFIFO: dir + "/run/sitroom.ctl", timeout: 10)
            }
            #expect(reply == "ok\nhello\n")
            let second = try await onThread {
                try ControlClient.send("status", controlFIFO: dir + "/run/sitroom.ctl", timeout: 10)
            }
            #expect(second == "ok\nhello\n")
            fifo.stop()
            let seen = await responder.value
            #expect(seen.map { $0[0] } == ["room show INC-1 --json", "status"])
            for replyPath in seen.map({ $0[1] }) {
                #expect(replyPath.hasPrefix("/"))
                #expect(!FileManager.default.fileExists(atPath: parentDirectory(of: replyPath)))
            }
        }
    }

    @Test("a large reply (more than the FIFO buffer) arrives whole")
    func largeReply() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            ignoreSIGPIPE()
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            let big = "ok\n" + String(repeating: "0123456789abcdef\n", count: 20_000)  // 340 kB
            let responder = Self.respond(to: fifo, reply: big)
            let reply = try await onThread {
                try ControlClient.send("audit 10000", controlFIFO: dir + "/sitroom.ctl", timeout: 10)
            }
            #expect(reply == big)
            fifo.stop()
            _ = await responder.value
        }
    }

    @Test("no daemon: notRunning at once, for a missing FIFO and for a FIFO nobody reads")
    func notRunning() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let start = monotonicSeconds()
            #expect {
                try ControlClient.send("status", controlFIFO: dir + "/missing.ctl", timeout: 60)
            } throws: { error in
                if case .notRunning = error as? ControlClientError { return true }
                return false
            }
            mkfifo(dir + "/orphan.ctl", 0o600)
            #expect {
                try ControlClient.send("status", controlFIFO: dir + "/orphan.ctl", timeout: 60)
            } throws: { error in
                if case .notRunning = error as? ControlClientError { return true }
                return false
            }
            // "At once": far below the 60 s timeout it was given (a generous bound, so a busy machine cannot flake it).
            #expect(monotonicSeconds() - start < 10)
        }
    }

    @Test("a daemon that never answers: timedOut after the timeout")
    func timesOut() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            let recorder = Recorder<ControlInput>.recording(fifo.inputs)
            let start = monotonicSeconds()
            await #expect(throws: ControlClientError.timedOut) {
                try await onThread {
                    try ControlClient.send("status", controlFIFO: dir + "/sitroom.ctl", timeout: 0.5)
                }
            }
            let elapsed = monotonicSeconds() - start
            // Waited for the timeout, and did not hang (the bound is generous for a busy machine).
            #expect(elapsed >= 0.5 && elapsed < 30)
            #expect(
                await recorder.wait { items, _ in
                    items.contains {
                        if case .line(let line) = $0 { return line.hasSuffix(" status") } else { return false }
                    }
                }
            )
            fifo.stop()
        }
    }

    @Test("a too-long command and a control path that is not a FIFO fail")
    func failures() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            let fifo = try ControlFIFO(path: dir + "/sitroom.ctl")
            #expect {
                try ControlClient.send(String(repeating: "x", count: 4090), controlFIFO: fifo.path, timeout: 1)
            } throws: { error in
                if case .failed = error as? ControlClientError { return true }
                return false
            }
            makeFile(dir + "/regular")
            #expect {
                try ControlClient.send("status", controlFIFO: dir + "/regular", timeout: 1)
            } throws: { error in
                if case .failed = error as? ControlClientError { return true }
                return false
            }
            fifo.stop()
        }
    }

    @Test("ReplyFIFO refuses a regular file and a symlink, and a FIFO without reader gives ENXIO")
    func replyRefusals() async throws {
        try await withTemporaryDirectory { (dir) async throws in
            makeFile(dir + "/regular")
            #expect(throws: PathRefusal.self) { try ReplyFIFO.owner(of: dir + "/regular") }
            #expect(throws: PathRefusal.self) { try ReplyFIFO.write("ok\n", to: dir + "/regular") }
            #expect(try String(contentsOfFile: dir + "/regular", encoding: .utf8) == "x")
            mkfifo(dir + "/fifo", 0o600)
            symlink(dir + "/fifo", dir + "/link")
            #expect(throws: PathRefusal.self) { try ReplyFIFO.owner(of: dir + "/link") }
            let loop = #expect(throws: PosixError.self) { try ReplyFIFO.write("ok\n", to: dir + "/link") }
            #expect(loop?.errno == ELOOP)
            #expect(try ReplyFIFO.owner(of: dir + "/fifo") == geteuid())
            let noReader = #expect(throws: PosixError.self) { try ReplyFIFO.write("ok\n", to: dir + "/fifo") }
            #expect(noReader?.errno == ENXIO)
        }
    }
}
