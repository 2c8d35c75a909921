import Foundation
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomStore
import SitroomTestFixtures
import Testing

@testable import SitroomDaemon

/// A transport double that holds every delivery until opened, and records what it was handed.
actor GateTransport: NoticeTransport {
    private(set) var calls: [String] = []
    private var closed = true
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func deliver(_ notice: Notice) async throws -> String {
        calls.append(notice.id)
        if closed { await withCheckedContinuation { waiting.append($0) } }
        return "through the gate"
    }

    func open() {
        closed = false
        for continuation in waiting { continuation.resume() }
        waiting = []
    }
}

/// A transport double that records what it delivered.
actor RecordingTransport: NoticeTransport {
    private(set) var delivered: [Notice] = []

    func deliver(_ notice: Notice) async throws -> String {
        delivered.append(notice)
        return "recorded"
    }
}

/// The notifier's outbox over a real LMDB store, with real transports to real servers on 127.0.0.1.
@Suite("Notifier: outbox, transports, retries", .serialized)
struct NotifierTests {
    /// A store in a fresh directory, a notifier over it, removed afterwards.
    final class Harness: @unchecked Sendable {
        // Invariant: used by one test at a time.
        let directory: String
        let store: Store
        var notifier: Notifier

        init() throws {
            directory = try makeTemporaryDirectory("notifier")
            try FileManager.default.createDirectory(atPath: "\(directory)/lib", withIntermediateDirectories: true)
            store = try Store(directory: "\(directory)/lib", mapSize: 64 << 20)
            notifier = Notifier(store: store, clock: SystemWallClock(), logger: .init(label: "test"))
        }

        /// A fresh notifier over the same store, as after a restart.
        func restart() async throws {
            await notifier.stop()
            notifier = Notifier(store: store, clock: SystemWallClock(), logger: .init(label: "test"))
        }

        func configure(
            email: EmailTransport = .maildir(from: "sitroom <sitroom@example.org>"),
            sms: SMSTransport = .file,
            chat: String? = nil,
            retry: RetrySettings = RetrySettings(first: 0.2, max: 0.4, giveUpAfter: 60)
        ) async {
            let configuration = Configuration(
                etcDirectory: directory,
                daemon: DaemonSettings(notify: NotifySettings(email: email, sms: sms, chatWebhookURL: chat)),
                integrations: [:],
                roster: Roster(),
                templates: [:]
            )
            await notifier.configure(configuration, varDirectory: directory)
            await notifier.setRetry(retry)
        }

        /// Commits notices to the outbox, as the provisioner does, and tells the notifier.
        func queue(_ notices: [Notice]) async throws {
            let store = self.store
            try store.write { txn in
                for notice in notices { try txn.outbox.enqueue(notice) }
            }
            await notifier.enqueued(notices)
        }

        func notice(_ id: String) throws -> Notice? {
            let store = self.store
            return try store.read { txn in try txn.outbox.get(id) }
        }

        func waitForState(_ id: String, _ state: NoticeState, timeout: Double = 20) async throws -> Notice {
            try await poll("notice \(id) to be \(state.rawValue)", timeout: timeout) {
                guard let notice = try notice(id), notice.state == state else { return nil }
                return notice
            }
        }

        func secret(_ name: String, _ text: String) throws -> String {
            let path = "\(directory)/\(name)"
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o600)
            return path
        }

        func tearDown() async {
            await notifier.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    static func email(_ person: String, room: String = "r1", kind: NoticeKind = .roomReady) -> Notice {
        Notice(
            roomID: room,
            incidentID: "INC-1",
            personID: "email:\(person)",
            kind: kind,
            channel: .email,
            recipient: person,
            recipientName: "Test Person",
            subject: "Situation room",
            body: "Join: https://zoom.example/j/1?pwd=x\n",
            createdAt: Date().timeIntervalSince1970
        )
    }

    static func sms(_ phone: String, room: String = "r1") -> Notice {
        Notice(
            roomID: room,
            incidentID: "INC-1",
            personID: "phone:\(phone)",
            kind: .roomReady,
            channel: .sms,
            recipient: phone,
            recipientName: "Test Person",
            subject: "",
            body: "Room: https://zoom.example/j/1?pwd=x",
            createdAt: Date().timeIntervalSince1970
        )
    }

    static let smtpAuth = (user: "sitroom", password: "smtp-secret")

    func smtp(_ server: SMTPServerFixture, _ harness: Harness) throws -> EmailTransport {
        .smtp(
            SMTPSettings(
                from: "sitroom <sitroom@example.org>",
                url: server.url,
                username: Self.smtpAuth.user,
                passwordFile: try harness.secret("smtp.secret", Self.smtpAuth.password + "\n"),
                startTLS: server.tls == .starttls ? .required : .never,
                caFile: server.certificate?.cert,
                timeout: 5
            )
        )
    }

    @Test("a hanging email transport holds up neither SMS nor chat; the email stays 'sending' until it returns")
    func channelsAreIndependent() async throws {
        let harness = try Harness()
        let gate = GateTransport()
        let texts = RecordingTransport()
        await harness.notifier.setTransport(gate, for: .email)
        await harness.notifier.setTransport(texts, for: .sms)
        let mail = Self.email("ada@example.com")
        let texts1 = [Self.sms("+15005550101"), Self.sms("+15005550102")]
        try await harness.queue([mail] + texts1)

        _ = try await poll("both SMS delivered") { await texts.delivered.count == 2 ? true : nil }
        #expect(await gate.calls == [mail.id])
        for notice in texts1 { _ = try await harness.waitForState(notice.id, .sent) }
        #expect(try harness.notice(mail.id)?.state == .sending)
        #expect(await harness.notifier.depth == 1)

        await gate.open()
        let sent = try await harness.waitForState(mail.id, .sent)
        #expect(sent.attempts == 1)
        #expect(sent.sentAt != nil)
        #expect(await harness.notifier.depth == 0)
        await harness.tearDown()
    }

    @Test("a notice left 'sending' by a crash is delivered after the restart, once")
    func sendingSurvivesRestart() async throws {
        let harness = try Harness()
        let gate = GateTransport()
        await harness.notifier.setTransport(gate, for: .email)
        let mail = Self.email("ada@example.com")
        try await harness.queue([mail])
        _ = try await harness.waitForState(mail.id, .sending)

        // The process "dies": a new notifier over the same LMDB finds the notice 'sending'.
        try await harness.restart()
        let after = RecordingTransport()
        await harness.notifier.setTransport(after, for: .email)
        try await harness.notifier.restore()
        let sent = try await harness.waitForState(mail.id, .sent)
        #expect(sent.attempts == 2)
        #expect(await after.delivered.map(\.id) == [mail.id])
        await harness.tearDown()
    }

    @Test("SMTP down, then up: the notice retries and is delivered once")
    func smtpDownThenUp() async throws {
        let harness = try Harness()
        let server = try await SMTPServerFixture.start(tls: .starttls, auth: Self.smtpAuth)
        defer { server.tearDown() }
        let port = server.port
        server.stop()
        await harness.configure(email: try smtp(server, harness))
        let mail = Self.email("ada@example.com")
        try await harness.queue([mail])

        let retrying = try await harness.waitForState(mail.id, .retrying)
        #expect(retrying.detail?.contains("curl error 7") == true)
        try await server.start(port: port)
        let sent = try await harness.waitForState(mail.id, .sent)
        #expect(sent.attempts >= 2)
        let received = server.messages()
        #expect(received.count == 1)
        #expect(received.first?.messageID == "<\(mail.id).r1@example.org>")
        #expect(received.first?.authUser == "sitroom")
        #expect(received.first?.tls == true)
        #expect(sent.detail == "smtp 250 <\(mail.id).r1@example.org>")
        await harness.tearDown()
    }

    @Test("a connection dropped after DATA is retried with the same Message-ID")
    func dropAfterData() async throws {
        let harness = try Harness()
        let server = try await SMTPServerFixture.start(tls: .starttls, auth: Self.smtpAuth)
        defer { server.tearDown() }
        try server.setMode(["drop_after_data": 1])
        await harness.configure(email: try smtp(server, harness))
        let mail = Self.email("ada@example.com")
        try await harness.queue([mail])

        let sent = try await harness.waitForState(mail.id, .sent)
        #expect(sent.attempts == 2)
        let received = server.messages()
        #expect(received.map(\.dropped) == [true, false])
        #expect(Set(received.compactMap(\.messageID)) == ["<\(mail.id).r1@example.org>"])
        #expect(received[0].raw == received[1].raw)
        await harness.tearDown()
    }

    @Test("550 for one recipient: that notice is dead at once with the reason, the others are sent")
    func permanentFailureIsolated() async throws {
        let harness = try Harness()
        let server = try await SMTPServerFixture.start(tls: .starttls, auth: Self.smtpAuth)
        defer { server.tearDown() }
        try server.setMode(["reject_rcpt": ["ghost@example.com"]])
        await harness.configure(email: try smtp(server, harness))
        let bad = Self.email("ghost@example.com")
        let good = [Self.email("ada@example.com"), Self.email("grace@example.com")]
        try await harness.queue([bad] + good)

        let dead = try await harness.waitForState(bad.id, .dead)
        #expect(dead.attempts == 1)
        #expect(dead.detail?.contains("550") == true)
        for notice in good { _ = try await harness.waitForState(notice.id, .sent) }
        #expect(Set(server.messages().flatMap(\.recipients)) == ["ada@example.com", "grace@example.com"])
        #expect(try await harness.notifier.outbox(states: [.dead]).map(\.id) == [bad.id])
        #expect(try await harness.notifier.outbox(states: [.pending, .sending, .retrying]).isEmpty)

        // `notify resend INC-1` queues the dead notice again; once the address works it is delivered.
        try server.setMode([:])
        let requeued = try await harness.notifier.resend(incident: "INC-1")
        #expect(requeued.map(\.id) == [bad.id])
        let resent = try await harness.waitForState(bad.id, .sent)
        #expect(resent.attempts == 1)
        #expect(server.messages().count == 3)
        // Resending for a person takes that person's sent notices too; an unknown incident has none.
        #expect(
            try await harness.notifier.resend(incident: "INC-1", person: "ada@example.com").map(\.id) == [good[0].id]
        )
        #expect(try await harness.notifier.resend(incident: "INC-9").isEmpty)
        _ = try await harness.waitForState(good[0].id, .sent)
        await harness.tearDown()
    }

    @Test("a notice still failing after give_up_after is dead")
    func givesUp() async throws {
        let harness = try Harness()
        let server = try await SMTPServerFixture.start(tls: .none)
        defer { server.tearDown() }
        try server.setMode(["tempfail_rcpt": ["ada@example.com"]])
        await harness.configure(
            email: .smtp(SMTPSettings(from: "sitroom@example.org", url: server.url, startTLS: .never, timeout: 5)),
            // 2 s of retries 0.1–0.2 s apart: several attempts even on a loaded machine (a CI run once had the first
            // attempt alone take longer than a 0.5 s give_up_after).
            retry: RetrySettings(first: 0.1, max: 0.2, giveUpAfter: 2)
        )
        let mail = Self.email("ada@example.com")
        try await harness.queue([mail])
        let dead = try await harness.waitForState(mail.id, .dead)
        #expect(dead.attempts >= 2)
        #expect(dead.detail?.contains("gave up after") == true)
        #expect(dead.detail?.contains("451") == true)
        await harness.tearDown()
    }

    @Test("SMS through the HTTP gateway: form fields, Basic auth, the gateway's sid recorded; a bad number is dead")
    func httpSMS() async throws {
        let harness = try Harness()
        let gateway = try await HTTPRecorderFixture.start()
        defer { gateway.tearDown() }
        try gateway.setMode(["invalid_numbers": ["+15005550001"]])
        let password = try harness.secret("sms.secret", gateway.password + "\n")
        await harness.configure(
            sms: .http(url: gateway.smsURL, from: "+15005550006", username: gateway.user, passwordFile: password)
        )
        let good = Self.sms("+15005550101")
        let bad = Self.sms("+15005550001")
        try await harness.queue([good, bad])

        let sent = try await harness.waitForState(good.id, .sent)
        #expect(sent.detail?.hasPrefix("sid SM") == true)
        let dead = try await harness.waitForState(bad.id, .dead)
        #expect(dead.detail?.contains("21211") == true)
        let requests = gateway.requests()
        #expect(requests.count == 2)
        let request = try #require(requests.first { $0.form["To"] == "+15005550101" })
        #expect(request.method == "POST")
        #expect(request.path == "/2010-04-01/Accounts/\(gateway.user)/Messages.json")
        #expect(request.authOK)
        #expect(request.form == ["To": "+15005550101", "From": "+15005550006", "Body": good.body])
        #expect(request.headers["content-type"]?.hasPrefix("application/x-www-form-urlencoded") == true)
        #expect(request.headers["idempotency-key"] == good.id)
        await harness.tearDown()
    }

    @Test("chat webhook: a JSON POST with the text; the webhook URL is never in a notice or error")
    func chatWebhook() async throws {
        let harness = try Harness()
        let chat = try await HTTPRecorderFixture.start()
        defer { chat.tearDown() }
        await harness.configure(chat: chat.chatURL)
        var notice = Notice(
            roomID: "r1",
            incidentID: "INC-1",
            personID: NoticePlanner.chatPerson,
            kind: .roomReady,
            channel: .chat,
            recipient: "chat webhook",
            recipientName: "chat",
            subject: "",
            body: "Situation room for \"INC-1\": https://zoom.example/j/1?pwd=x",
            createdAt: Date().timeIntervalSince1970
        )
        try await harness.queue([notice])
        _ = try await harness.waitForState(notice.id, .sent)
        let request = try #require(chat.requests().first)
        #expect(request.path == "/services/T000/B000/secretwebhooktoken")
        #expect(request.headers["content-type"] == "application/json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: String])
        #expect(json == ["text": notice.body])

        try chat.setMode(["chat_status": 404])
        notice = Notice(
            roomID: "r2",
            incidentID: "INC-1",
            personID: NoticePlanner.chatPerson,
            kind: .roomReady,
            channel: .chat,
            recipient: "chat webhook",
            recipientName: "chat",
            subject: "",
            body: "second",
            createdAt: Date().timeIntervalSince1970
        )
        try await harness.queue([notice])
        let dead = try await harness.waitForState(notice.id, .dead)
        #expect(dead.detail?.contains("404") == true)
        #expect(dead.detail?.contains("secretwebhooktoken") == false)
        await harness.tearDown()
    }

    @Test("an unreadable password file leaves the channel retrying with the reason, never the secret")
    func unreadableSecret() async throws {
        let harness = try Harness()
        let password = try harness.secret("loose.secret", "hunter2\n")
        chmod(password, 0o644)
        await harness.configure(
            email: .smtp(
                SMTPSettings(
                    from: "sitroom@example.org",
                    url: "smtp://127.0.0.1:1",
                    username: "u",
                    passwordFile: password
                )
            )
        )
        let mail = Self.email("ada@example.com")
        try await harness.queue([mail])
        let retrying = try await harness.waitForState(mail.id, .retrying)
        #expect(retrying.detail?.contains("chmod 600") == true)
        #expect(retrying.detail?.contains("hunter2") == false)
        await harness.tearDown()
    }
}
