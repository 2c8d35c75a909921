import Foundation

/// The fixture HTTP server: Python's ThreadingHTTPServer speaking HTTP/1.1 (so keep-alive works), run as
/// `python3 -c` so the test target needs no resource declaration.
///
/// Routes: `/echo` (JSON of method, path, lower-cased headers, body, connection number; response headers
/// `X-Dup: first` then `X-Dup: second`), `/status/N`, `/delay/MS`, `/slow/MS` (counts requests in
/// flight), `/drop` (counts it, closes the connection unanswered), `/stats` (`connections`, `max_inflight`,
/// `dropped`). It binds port 0, prints the port on stdout, and
/// exits when its stdin closes, so it never outlives the test process.
let echoServerScript = #"""
    import json, os, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    stats = {"connections": 0, "inflight": 0, "max_inflight": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with lock:
                stats["connections"] += 1
                self.connection_number = stats["connections"]

        def log_message(self, *args):
            pass

        def reply(self, status, payload, extra=()):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[0] == "echo":
                self.reply(200, {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "connection": self.connection_number,
                }, [("X-Dup", "first"), ("X-Dup", "second")])
            elif parts[0] == "status":
                code = int(parts[1])
                self.reply(code, {"status": code})
            elif parts[0] == "delay":
                time.sleep(int(parts[1]) / 1000)  # // waits-on-purpose: the route's simulated latency
                self.reply(200, {"slept": int(parts[1])})
            elif parts[0] == "slow":
                with lock:
                    stats["inflight"] += 1
                    stats["max_inflight"] = max(stats["max_inflight"], stats["inflight"])
                time.sleep(int(parts[1]) / 1000)  # // waits-on-purpose: the route's simulated latency
                with lock:
                    stats["inflight"] -= 1
                self.reply(200, {"slept": int(parts[1])})
            elif parts[0] == "stats":
                with lock:
                    self.reply(200, dict(stats))
            elif parts[0] == "drop":
                # Counts the request, then closes the connection without an answer (a lost reply).
                with lock:
                    stats["dropped"] = stats.get("dropped", 0) + 1
                self.close_connection = True
                self.connection.shutdown(2)
            else:
                self.reply(404, {"error": "no route"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_stdin, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """#

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// A running fixture server process.
final class EchoServer: Sendable {
    let port: Int
    private let process: Process
    private let stdin: Pipe

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, process: Process, stdin: Pipe) {
        self.port = port
        self.process = process
        self.stdin = stdin
    }

    /// Starts the server and waits (at most `timeout` seconds) for the line with its port.
    static func start(timeout: Duration = .seconds(10)) async throws -> EchoServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", echoServerScript]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        let reader = stdout.fileHandleForReading
        do {
            let line = try await withTimeout(timeout, "echo server did not print its port") {
                try await readLine(reader)
            }
            guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw FixtureError(description: "echo server printed \(line.debugDescription), not a port")
            }
            return EchoServer(port: port, process: process, stdin: stdin)
        } catch {
            process.terminate()
            process.waitUntilExit()
            throw error
        }
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// Runs `body` with a fresh server, stopped afterwards.
func withEchoServer<R>(_ body: (EchoServer) async throws -> R) async throws -> R {
    let server = try await EchoServer.start()
    do {
        let result = try await body(server)
        server.stop()
        return result
    } catch {
        server.stop()
        throw error
    }
}

/// Reads one line on a thread of its own (the read blocks), not on the cooperative pool.
private func readLine(_ handle: FileHandle) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            var bytes: [UInt8] = []
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty {
                    continuation.resume(throwing: FixtureError(description: "echo server exited early"))
                    return
                }
                bytes.append(contentsOf: chunk)
                if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.resume(returning: String(decoding: bytes[..<newline], as: UTF8.self))
                    return
                }
            }
        }
    }
}

/// Runs `body`, failing with `message` if it takes longer than `timeout`.
func withTimeout<R: Sendable>(
    _ timeout: Duration,
    _ message: String,
    _ body: @escaping @Sendable () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)  // waits-on-purpose: the deadline racing the awaited event
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw FixtureError(description: message)
        }
        return result
    }
}
