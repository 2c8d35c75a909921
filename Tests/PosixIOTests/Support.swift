import Foundation
import Glibc
import Testing

@testable import PosixIO

/// Runs `body` with a fresh temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    var template = Array("/tmp/posixio-test.XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    #expect(made != nil)
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Records what a stream delivers, so a test can wait for a condition with a deadline instead of sleeping.
actor Recorder<Element: Sendable> {
    private(set) var items: [Element] = []
    private(set) var finished = false
    private var waiters:
        [Int: (condition: @Sendable ([Element], Bool) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = [:]
    private var nextWaiter = 0

    /// Starts a task that records `stream` into a new recorder.
    static func recording<S: AsyncSequence & Sendable>(_ stream: S) -> Recorder<Element>
    where S.Element == Element {
        let recorder = Recorder<Element>()
        Task {
            do {
                for try await element in stream { await recorder.append(element) }
            } catch {}
            await recorder.finish()
        }
        return recorder
    }

    func append(_ element: Element) {
        items.append(element)
        check()
    }

    func finish() {
        finished = true
        check()
    }

    /// Waits until `condition(items, finished)` holds; `false` when `timeout` passed first.
    func wait(
        timeout: Duration = .seconds(10),
        until condition: @escaping @Sendable ([Element], Bool) -> Bool
    ) async -> Bool {
        if condition(items, finished) { return true }
        let id = nextWaiter
        nextWaiter += 1
        return await withCheckedContinuation { continuation in
            waiters[id] = (condition, continuation)
            Task {
                try? await Task.sleep(for: timeout)  // waits-on-purpose: the deadline, not a wait for the event
                self.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: false)
    }

    private func check() {
        for (id, waiter) in waiters where waiter.condition(items, finished) {
            waiters.removeValue(forKey: id)
            waiter.continuation.resume(returning: true)
        }
    }
}

/// CPU time (user + system) a thread has used, in seconds.
func cpuSeconds(of thread: pthread_t) -> Double {
    var clock = clockid_t()
    guard pthread_getcpuclockid(thread, &clock) == 0 else { return -1 }
    var time = timespec()
    clock_gettime(clock, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Writes `bytes` into the FIFO at `path` as one writer: open (blocking: the reader is there), write, close.
func writeToFIFO(_ path: String, _ bytes: [UInt8]) throws {
    let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw PosixError(call: "open", path: path, errno: errno) }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
        guard written > 0 else { throw PosixError(call: "write", path: path, errno: errno) }
        offset += written
    }
}

func writeToFIFO(_ path: String, _ text: String) throws {
    try writeToFIFO(path, Array(text.utf8))
}

/// Runs a program and returns its exit status.
func run(_ executable: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// Creates (or truncates) a file in place with open/write/close (Foundation's createFile writes a
/// temporary file and renames it, which inotify reports as a move).
func makeFile(_ path: String, _ text: String = "x") {
    let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "open(\(path)) failed: errno \(errno)")
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

func modeOf(_ path: String) -> UInt32 {
    var status = stat()
    _ = lstat(path, &status)
    return UInt32(status.st_mode) & 0o7777
}

func inodeOf(_ path: String) -> UInt {
    var status = stat()
    _ = lstat(path, &status)
    return UInt(status.st_ino)
}

/// Runs blocking work (a ControlClient exchange) on a thread of its own: the cooperative pool has only
/// as many threads as cores (2 here), and a blocked one starves the responder running on it.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try body() })
        }.start()
    }
}
