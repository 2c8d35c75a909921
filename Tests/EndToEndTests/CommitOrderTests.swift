import Foundation
import Testing

/// What sitroomd syncs for one incident, and in which order against what it does, as the kernel sees it: sitroomd
/// runs as usual and `strace` (Debian's, installed by scripts/install-deps) attaches to it and records its
/// `fdatasync` (LMDB's synced commits), the requests it sends to zoom-sim and the answers it reads, and the notice
/// files it opens. docs/performance.md: three synced commits per incident, and nothing acted on before the commit
/// that allows it.
@Suite("synced commits of one incident, seen by strace")
struct CommitOrderTests {
    /// One line of the trace, reduced to what the test looks at.
    struct Call {
        enum Kind: Equatable { case syncStart, syncDone, createSent, createAnswered, noticeOpened }
        var kind: Kind
        var line: String
    }

    /// The calls of `trace` in the order strace saw them. A call another thread interrupts is split in two lines
    /// (`<unfinished ...>`, then `<... resumed>`): a sync counts as done at its `resumed` line.
    static func calls(_ trace: String) -> [Call] {
        var calls: [Call] = []
        for line in trace.split(separator: "\n").map(String.init) {
            if line.contains("<... fdatasync resumed>") {
                calls.append(Call(kind: .syncDone, line: line))
            } else if line.contains("fdatasync(") {
                calls.append(Call(kind: .syncStart, line: line))
                if !line.contains("<unfinished") { calls.append(Call(kind: .syncDone, line: line)) }
            } else if line.contains("sendto(") && line.contains("\"POST /v2/users/") {
                calls.append(Call(kind: .createSent, line: line))
            } else if line.contains("HTTP/1.1 201") {
                calls.append(Call(kind: .createAnswered, line: line))
            } else if line.contains("openat(") && (line.contains("/var/mail/tmp/") || line.contains("/var/sms/tmp/")) {
                calls.append(Call(kind: .noticeOpened, line: line))
            }
        }
        return calls
    }

    @Test(
        "one incident, one at a time: three synced commits; the create goes out after the commit of its intent, the notices after the commit of the room ready, their outcomes in one commit"
    )
    func threeCommitsInOrder() async throws {
        let strace = "/usr/bin/strace"
        try #require(
            FileManager.default.isExecutableFile(atPath: strace),
            "strace is missing: run scripts/install-deps"
        )
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon(logLevel: "info")
            // A first incident: the access token is fetched and stored once per process, not per incident.
            try sandbox.submit(
                "warm-up.yaml",
                incidentEvent(id: "ev-warm", stage: "situation_room", incident: "INC-WARM")
            )
            try await sandbox.waitForRoom("INC-WARM", state: "ready")
            try await Self.waitForOutbox(sandbox)

            let daemon = try #require(sandbox.daemon)
            let trace = "\(sandbox.root)/logs/sitroomd.strace"
            let tracer = try Child(
                strace,
                [
                    "-f", "-p", "\(daemon.process.processIdentifier)", "-o", trace, "-s", "48",
                    "-e", "trace=fdatasync,sendto,recvfrom,openat",
                ],
                logs: "\(sandbox.root)/logs",
                name: "strace"
            )
            sandbox.children.append(tracer)
            // strace says so on its standard error once it traces every thread of the process
            // ("Process N attached with M threads").
            _ = try await waitFor("strace to attach to sitroomd") { () -> Bool? in
                tracer.stderr.contains("attached") ? true : nil
            }

            let mailBefore = sandbox.files("var/mail/new").count
            let smsBefore = sandbox.files("var/sms/new").count
            try sandbox.submit("incident.yaml", incidentEvent(id: "ev-1", stage: "situation_room", incident: "INC-1"))
            try await sandbox.waitForRoom("INC-1", state: "ready")
            // Ada by email and SMS, Grace by email.
            _ = try await waitFor("the notices in var/mail/new and var/sms/new") { () -> Bool? in
                sandbox.files("var/mail/new").count == mailBefore + 2
                    && sandbox.files("var/sms/new").count == smsBefore + 1
                    ? true : nil
            }
            try await Self.waitForOutbox(sandbox)
            // The last commit (the outcomes) is done before the outbox says so; strace may still be writing its line.
            let calls = try await waitFor("the trace of the outcomes' commit") { () -> [Call]? in
                let calls = Self.calls((try? String(contentsOfFile: trace, encoding: .utf8)) ?? "")
                guard let lastOpen = calls.lastIndex(where: { $0.kind == .noticeOpened }),
                    calls[lastOpen...].contains(where: { $0.kind == .syncDone })
                else { return nil }
                return calls
            }
            let kinds = calls.map(\.kind)
            let described = calls.map { "\($0.kind): \($0.line)" }.joined(separator: "\n")
            #expect(kinds.filter { $0 == .syncDone }.count == 3, "synced commits:\n\(described)")
            #expect(kinds.filter { $0 == .createSent }.count == 1, "\(described)")
            let firstSync = try #require(kinds.firstIndex(of: .syncDone), "\(described)")
            let create = try #require(kinds.firstIndex(of: .createSent), "\(described)")
            let answer = try #require(kinds.firstIndex(of: .createAnswered), "\(described)")
            let firstNotice = try #require(kinds.firstIndex(of: .noticeOpened), "\(described)")
            let lastNotice = try #require(kinds.lastIndex(of: .noticeOpened), "\(described)")
            // 1: the event, the room, its host and the create's intent; only then the create.
            #expect(firstSync < create, "the create went out before the commit of its intent:\n\(described)")
            // 2: the room ready with its notices queued (and their first attempts counted); only then the notices.
            #expect(
                kinds[answer..<firstNotice].filter { $0 == .syncDone }.count == 1,
                "not one commit between Zoom's answer and the first notice:\n\(described)"
            )
            #expect(create < answer && answer < firstNotice, "\(described)")
            // 3: every notice's outcome, after the last notice file.
            #expect(kinds[lastNotice...].filter { $0 == .syncDone }.count == 1, "\(described)")
        }
    }

    /// Waits until no notice is left to send.
    static func waitForOutbox(_ sandbox: Sandbox) async throws {
        _ = try await waitFor("the outbox to be empty") { () -> Bool? in
            let out = try await sandbox.ctl(["status", "--json"]).out
            let status = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
            let outbox = status?["outbox"] as? [String: Any]
            guard let pending = outbox?["pending"] as? Int else { return nil }
            return pending == 0 ? true : nil
        }
    }
}
