import Foundation
import SitroomTestFixtures
import Testing

@testable import Curl

/// The libcurl SMTP client against a real SMTP server (aiosmtpd) on 127.0.0.1.
@Suite("SMTP through libcurl", .serialized)
struct SMTPTests {
    static let auth = (user: "sitroom", password: "smtp-secret")

    static func message(_ id: String = "1") -> [UInt8] {
        let text = [
            "From: sitroom <sitroom@example.org>", "To: ada@example.com", "Subject: test \(id)",
            "Message-ID: <\(id).test@example.org>", "", "Join: https://zoom.example/j/1?pwd=x", ".leading dot", "end",
            "",
        ].joined(separator: "\r\n")
        return Array(text.utf8)
    }

    func request(
        _ server: SMTPServerFixture,
        to recipients: [String] = ["ada@example.com"],
        password: String = auth.password,
        timeout: Double = 20
    ) -> SMTPRequest {
        SMTPRequest(
            url: server.url,
            from: "sitroom@example.org",
            recipients: recipients,
            message: Self.message(),
            credentials: server.auth == nil ? nil : (Self.auth.user, password),
            startTLS: server.tls == .starttls ? .required : .disabled,
            caFile: server.certificate?.cert,
            timeout: timeout
        )
    }

    @Test("STARTTLS, AUTH, envelope and the exact message bytes (dot-stuffing undone by the server)")
    func startTLSAndAuth() async throws {
        let server = try await SMTPServerFixture.start(tls: .starttls, auth: Self.auth)
        defer { server.tearDown() }
        let client = SMTPClient()
        defer { client.shutdown() }
        let response = try await client.send(request(server))
        #expect(response.replyCode == 250)
        let received = try #require(server.messages().first)
        #expect(received.tls)
        #expect(received.authUser == "sitroom")
        #expect(received.mailFrom == "sitroom@example.org")
        #expect(received.recipients == ["ada@example.com"])
        #expect(Array(received.raw.utf8) == Self.message())
    }

    @Test("smtps:// is TLS from the first byte")
    func implicitTLS() async throws {
        let server = try await SMTPServerFixture.start(tls: .implicit, auth: Self.auth)
        defer { server.tearDown() }
        let client = SMTPClient()
        defer { client.shutdown() }
        #expect(server.url.hasPrefix("smtps://"))
        _ = try await client.send(request(server))
        let received = try #require(server.messages().first)
        #expect(received.tls)
        #expect(received.authUser == "sitroom")
    }

    @Test("a server without STARTTLS is refused when TLS is required, before anything is sent")
    func startTLSRequired() async throws {
        let server = try await SMTPServerFixture.start(tls: .none)
        defer { server.tearDown() }
        let client = SMTPClient()
        defer { client.shutdown() }
        var plain = request(server)
        plain.startTLS = .required
        let error = try await #require(throws: SMTPError.self) { try await client.send(plain) }
        #expect(error.curl.code == 64)  // CURLE_USE_SSL_FAILED
        #expect(!error.isPermanent)
        #expect(server.messages().isEmpty)
    }

    @Test("reply codes: 550 is permanent, 451 is not, refused credentials are not")
    func replyCodes() async throws {
        let server = try await SMTPServerFixture.start(tls: .starttls, auth: Self.auth)
        defer { server.tearDown() }
        try server.setMode(["reject_rcpt": ["nobody@example.com"], "tempfail_rcpt": ["later@example.com"]])
        let client = SMTPClient()
        defer { client.shutdown() }

        let rejected = try await #require(throws: SMTPError.self) {
            try await client.send(request(server, to: ["nobody@example.com"]))
        }
        #expect(rejected.replyCode == 550)
        #expect(rejected.isPermanent)
        #expect(rejected.description.contains("550"))

        let deferred = try await #require(throws: SMTPError.self) {
            try await client.send(request(server, to: ["later@example.com"]))
        }
        #expect(deferred.replyCode == 451)
        #expect(!deferred.isPermanent)

        let denied = try await #require(throws: SMTPError.self) {
            try await client.send(request(server, password: "wrong"))
        }
        #expect(denied.curl.code == 67)  // CURLE_LOGIN_DENIED
        #expect(!denied.isPermanent)
        #expect(!denied.description.contains("wrong"))
        #expect(server.messages().isEmpty)

        // The same client still delivers afterwards.
        _ = try await client.send(request(server))
        #expect(server.messages().count == 1)
    }

    @Test("a connection dropped after DATA fails as possibly delivered; a refused connection as never sent")
    func dropsAndRefusals() async throws {
        let server = try await SMTPServerFixture.start(tls: .none)
        defer { server.tearDown() }
        try server.setMode(["drop_after_data": 1])
        let client = SMTPClient()
        defer { client.shutdown() }
        let dropped = try await #require(throws: SMTPError.self) { try await client.send(request(server)) }
        #expect(dropped.messageMayHaveBeenDelivered)
        #expect(!dropped.isPermanent)
        #expect(server.messages().count == 1)
        #expect(server.messages().first?.dropped == true)

        let port = server.port
        server.stop()
        let refused = try await #require(throws: SMTPError.self) {
            try await client.send(
                SMTPRequest(
                    url: "smtp://127.0.0.1:\(port)",
                    from: "a@example.org",
                    recipients: ["b@example.org"],
                    message: Self.message(),
                    startTLS: .disabled
                )
            )
        }
        #expect(refused.curl.code == CurlError.couldNotConnect.code)
        #expect(!refused.messageMayHaveBeenDelivered)
    }

    @Test("a server that never answers is given up at the timeout")
    func silentServerTimesOut() async throws {
        let server = try await SMTPServerFixture.start(tls: .none)
        defer { server.tearDown() }
        try server.setMode(["hang": true])
        let client = SMTPClient()
        defer { client.shutdown() }
        let started = Date()
        let error = try await #require(throws: SMTPError.self) { try await client.send(request(server, timeout: 1)) }
        #expect(error.curl.code == CurlError.operationTimedOut.code)
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test("bad envelope addresses are refused before connecting", arguments: ["", "a@b\r\nRCPT TO:<x@y>", "<a@b>"])
    func badAddresses(_ address: String) async throws {
        let client = SMTPClient()
        defer { client.shutdown() }
        let error = try await #require(throws: SMTPError.self) {
            try await client.send(
                SMTPRequest(
                    url: "smtp://127.0.0.1:1",
                    from: "a@example.org",
                    recipients: [address],
                    message: Self.message()
                )
            )
        }
        #expect(error.curl.code == CurlError.badFunctionArgument.code)
    }
}
