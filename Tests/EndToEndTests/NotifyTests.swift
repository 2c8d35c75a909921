import Foundation
import SitroomTestFixtures
import Testing

/// Nested in the main job's serialized suite so the end-to-end tests run one at a time: each starts zoom-sim,
/// sitroomd and Python servers, and running them together only starves the machine (and timing-bound tests).
extension MainJobTests {
    /// Notices end to end: sitroomd and zoom-sim as processes, a real SMTP server (aiosmtpd, STARTTLS and AUTH),
    /// an SMS gateway double and a chat webhook double, all on 127.0.0.1.
    @Suite("notices end to end", .serialized)
    struct NotifyEndToEndTests {
        static let smtpAuth = (user: "sitroom", password: "smtp-e2e-secret")

        /// The servers a notify test talks to, stopped at the end.
        final class Servers: @unchecked Sendable {
            // Invariant: used by one test at a time.
            let smtp: SMTPServerFixture
            let http: HTTPRecorderFixture

            init() async throws {
                smtp = try await SMTPServerFixture.start(tls: .starttls, auth: NotifyEndToEndTests.smtpAuth)
                http = try await HTTPRecorderFixture.start()
            }

            func tearDown() {
                smtp.tearDown()
                http.tearDown()
            }

            var sms: [HTTPRecorderFixture.Request] { http.requests().filter { $0.path.hasSuffix("/Messages.json") } }
            var chat: [HTTPRecorderFixture.Request] { http.requests().filter { $0.path.hasPrefix("/services/") } }
        }

        /// Writes etc/sitroom.yaml with SMTP, the HTTP SMS gateway and the chat webhook, retries in seconds.
        func configure(_ sandbox: Sandbox, _ servers: Servers, component: String = "video") throws {
            try sandbox.write("etc/secrets/smtp.secret", Self.smtpAuth.password + "\n", mode: 0o600)
            try sandbox.write("etc/secrets/sms.secret", servers.http.password + "\n", mode: 0o600)
            try sandbox.write(
                "etc/sitroom.yaml",
                """
                conference: { component: \(component), follow_up: [email, sms], follow_up_delay: 2s, invitation_duration: 45m, integrations: [zoom-main] }
                notify:
                  channels: [email, sms]
                  admins: [{ name: Ops Admin, email: ops-admin@example.org }]
                  email:
                    transport: smtp
                    from: "sitroom <sitroom@example.org>"
                    url: \(servers.smtp.url)
                    username: \(Self.smtpAuth.user)
                    password_file: secrets/smtp.secret
                    starttls: required
                    ca_file: \(servers.smtp.certificate!.cert)
                    timeout: 30s
                  sms:
                    transport: http
                    url: \(servers.http.smsURL)
                    from: "+15005550006"
                    username: \(servers.http.user)
                    password_file: secrets/sms.secret
                  chat: { webhook_url: "\(servers.http.chatURL)" }
                  retry: { first: 1s, max: 2s, give_up_after: 1h }
                store: { map_size: 64MiB }

                """
            )
        }

        /// `status --json`'s `outbox.pending`.
        func outboxPending(_ sandbox: Sandbox) async throws -> Int? {
            let result = try await sandbox.ctl(["status", "--json"])
            guard result.code == 0,
                let object = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
            else { return nil }
            return (object["outbox"] as? [String: Any])?["pending"] as? Int
        }

        @Test(
            "video: SMTP email (MIME, link, headers), HTTP SMS, chat; a later participant alone gets the link; resolve tells everyone told"
        )
        func videoComponent() async throws {
            let sandbox = try Sandbox()
            let servers = try await Servers()
            defer {
                sandbox.tearDown()
                servers.tearDown()
            }
            try await sandbox.recordingLogs {
                try await sandbox.startSim()
                try sandbox.writeIntegration()
                try configure(sandbox, servers)
                try await sandbox.startDaemon()

                try sandbox.submit("inc-1.yaml", incidentEvent(id: "evt-1", stage: "situation_room", incident: "INC-1"))
                let room = try await sandbox.waitForRoom("INC-1", state: "ready")
                let roomID = try #require(room["room_id"] as? String)
                let joinURL = try #require(room["join_url"] as? String)
                let passcode = try #require(room["passcode"] as? String)

                let mails = try await poll("two emails") {
                    servers.smtp.messages().count == 2 ? servers.smtp.messages() : nil
                }
                #expect(Set(mails.flatMap(\.recipients)) == ["ada@example.com", "grace@example.com"])
                var to: [String] = []
                for mail in mails {
                    #expect(mail.tls)
                    #expect(mail.authUser == "sitroom")
                    #expect(mail.mailFrom == "sitroom@example.org")
                    let parsed = try await MailInspector.inspect(path: mail.path)
                    #expect(parsed["content_type"] as? String == "multipart/alternative")
                    let headers = try #require(parsed["headers"] as? [String: String])
                    to.append(headers["To"] ?? "")
                    #expect(headers["From"] == "sitroom <sitroom@example.org>")
                    #expect(headers["Subject"] == "[critical] Situation room: Payments API down")
                    #expect(headers["Message-ID"]?.hasSuffix(".\(roomID)@example.org>") == true)
                    #expect(headers["Auto-Submitted"] == "auto-generated")
                    let parts = try #require(parsed["parts"] as? [[String: Any]])
                    #expect(parts.map { $0["content_type"] as? String } == ["text/plain", "text/html"])
                    let text = try #require(parts[0]["text"] as? String)
                    #expect(text.contains("Join: \(joinURL)"))
                    #expect(text.contains("Passcode: \(passcode)"))
                    #expect(
                        (parts[1]["text"] as? String)?.contains(
                            "href=\"\(joinURL.replacingOccurrences(of: "&", with: "&amp;"))\""
                        ) == true
                    )
                    #expect(!mail.raw.contains("zak="))  // start_url carries the host key: never sent
                }
                #expect(Set(to) == ["Ada Lovelace <ada@example.com>", "Grace Hopper <grace@example.com>"])

                let texts = try await poll("one SMS") { servers.sms.count == 1 ? servers.sms : nil }
                #expect(texts[0].authOK)
                #expect(texts[0].form["To"] == "+15005550101")
                #expect(texts[0].form["From"] == "+15005550006")
                #expect(texts[0].form["Body"]?.contains(joinURL) == true)
                #expect(texts[0].form["Body"]?.contains("zak=") == false)

                let posts = try await poll("one chat post") { servers.chat.count == 1 ? servers.chat : nil }
                #expect(posts[0].headers["content-type"] == "application/json")
                let json = try #require(
                    try JSONSerialization.jsonObject(with: Data(posts[0].body.utf8)) as? [String: String]
                )
                #expect(json.keys.sorted() == ["text"])
                #expect(json["text"]?.contains("INC-1") == true)
                #expect(json["text"]?.contains(joinURL) == true)

                // An `updated` event adds Linus: he alone gets the link, once; nobody else gets anything new.
                try sandbox.submit(
                    "inc-1-updated.yaml",
                    incidentEvent(
                        id: "evt-1b",
                        stage: "updated",
                        incident: "INC-1",
                        at: "2026-11-29T12:05:00Z",
                        participants: """
                              - { name: Ada Lovelace, email: ada@example.com, phone: "+15005550101", role: commander }
                              - { name: Linus Torvalds, email: linus@example.com, phone: "+15005550103" }
                            """
                    )
                )
                _ = try await poll("Linus's email and SMS") {
                    servers.smtp.messages().count >= 3 && servers.sms.count >= 2 ? true : nil
                }
                _ = try await poll("an empty outbox") { try await outboxPending(sandbox) == 0 ? true : nil }
                #expect(servers.smtp.messages().count == 3)
                #expect(servers.smtp.messages().last?.recipients == ["linus@example.com"])
                #expect(servers.sms.count == 2)
                #expect(servers.sms.last?.form["To"] == "+15005550103")
                #expect(servers.chat.count == 1)
                #expect(Set(servers.smtp.messages().compactMap(\.messageID)).count == 3)

                // Resolve: everyone who was told about the room hears it ended, on the same channels, and chat too.
                try sandbox.submit(
                    "inc-1-resolved.yaml",
                    incidentEvent(id: "evt-1c", stage: "resolved", incident: "INC-1", at: "2026-11-29T12:30:00Z")
                )
                try await sandbox.waitForRoom("INC-1", state: "ended")
                _ = try await poll("the room-ended notices") {
                    servers.smtp.messages().count == 6 && servers.sms.count == 4 && servers.chat.count == 2 ? true : nil
                }
                let ended = servers.smtp.messages().suffix(3)
                #expect(
                    Set(ended.flatMap(\.recipients)) == ["ada@example.com", "grace@example.com", "linus@example.com"]
                )
                #expect(
                    ended.allSatisfy {
                        $0.raw.contains("Subject: [critical] Situation room: Payments API down (closed)")
                    }
                )
                // The room-ended mail threads with the ready mail each person got first (RFC 5322 In-Reply-To, References).
                let first = servers.smtp.messages().prefix(3)
                for mail in ended {
                    let ready = try #require(first.first { $0.recipients == mail.recipients })
                    let readyID = try #require(mailHeader("Message-ID", ready.raw))
                    #expect(mailHeader("In-Reply-To", mail.raw) == readyID)
                    #expect(mailHeader("References", mail.raw)?.contains(readyID) == true)
                }
                #expect(servers.chat.last?.body.contains("resolved") == true)
            }
        }

        @Test(
            "meeting: an RFC 5545 invitation (icalendar parses it), then the follow-up; resolve sends the matching CANCEL"
        )
        func meetingComponent() async throws {
            let sandbox = try Sandbox()
            let servers = try await Servers()
            defer {
                sandbox.tearDown()
                servers.tearDown()
            }
            try await sandbox.recordingLogs {
                try await sandbox.startSim()
                try sandbox.writeIntegration()
                try configure(sandbox, servers, component: "meeting")
                try await sandbox.startDaemon()

                let opened = Date()
                try sandbox.submit("inc-2.yaml", incidentEvent(id: "evt-2", stage: "situation_room", incident: "INC-2"))
                let room = try await sandbox.waitForRoom("INC-2", state: "ready")
                let roomID = try #require(room["room_id"] as? String)
                let joinURL = try #require(room["join_url"] as? String)

                // Ada and Grace: an invitation first; the follow-ups follow after `follow_up_delay` (2 s here).
                let early = try await poll("two invitations") {
                    servers.smtp.messages().count >= 2 ? servers.smtp.messages() : nil
                }
                #expect(early.prefix(2).allSatisfy { $0.raw.contains("text/calendar") })
                // Then a follow-up email each; Ada (who has a phone) a follow-up SMS.
                let mails = try await poll("four emails") {
                    servers.smtp.messages().count == 4 ? servers.smtp.messages() : nil
                }
                var parsed: [[String: Any]] = []
                for mail in mails { parsed.append(try await MailInspector.inspect(path: mail.path)) }
                let invitations = parsed.filter { !(($0["calendars"] as? [Any]) ?? []).isEmpty }
                #expect(invitations.count == 2)
                var uids: Set<String> = []
                for invitation in invitations {
                    let parts = try #require(invitation["parts"] as? [[String: Any]])
                    #expect(
                        parts.map { $0["content_type"] as? String } == ["text/plain", "text/html", "text/calendar"]
                    )
                    #expect((parts[2]["params"] as? [String: String])?["method"] == "REQUEST")
                    let calendar = try #require((invitation["calendars"] as? [[String: Any]])?.first)
                    #expect(calendar["method"] as? String == "REQUEST")
                    #expect(calendar["raw_lines_ok"] as? Bool == true)
                    let event = try #require((calendar["events"] as? [[String: Any]])?.first)
                    let uid = try #require(event["uid"] as? String)
                    uids.insert(uid)
                    #expect(uid == "\(roomID)@example.org")
                    #expect(event["sequence"] as? Int == 0)
                    // `conference.invitation_duration: 45m` is the invitation's DURATION (RFC 5545 §3.8.2.5).
                    #expect(event["duration_seconds"] as? Int == 45 * 60)
                    #expect(event["location"] as? String == joinURL)
                    #expect(event["url"] as? String == joinURL)
                    #expect((event["description"] as? String)?.contains(joinURL) == true)
                    // The description is the invitation's text, not a mail about an attachment.
                    #expect((event["description"] as? String)?.contains("attached") == false)
                    #expect(event["summary"] as? String == "[critical] Situation room: Payments API down")
                    #expect(event["organizer"] as? String == "mailto:sitroom@example.org")
                    let start = try #require(ISO8601DateFormatter().date(from: event["dtstart"] as? String ?? ""))
                    #expect(abs(start.timeIntervalSince(opened)) < 120)
                    #expect(ISO8601DateFormatter().date(from: event["dtstamp"] as? String ?? "") != nil)
                    let attendees = try #require(event["attendees"] as? [[String: Any]])
                    #expect(
                        Set(attendees.compactMap { $0["address"] as? String })
                            == ["mailto:ada@example.com", "mailto:grace@example.com"]
                    )
                    #expect(attendees.allSatisfy { ($0["params"] as? [String: String])?["RSVP"] == "TRUE" })
                }
                #expect(uids.count == 1)
                let followUps = parsed.filter { (($0["calendars"] as? [Any]) ?? []).isEmpty }
                #expect(followUps.count == 2)
                #expect(
                    followUps.allSatisfy {
                        ($0["headers"] as? [String: String])?["Subject"]
                            == "[critical] Situation room: Payments API down (join now)"
                    }
                )
                let texts = try await poll("the follow-up SMS") { servers.sms.count == 1 ? servers.sms : nil }
                #expect(texts[0].form["Body"]?.contains(joinURL) == true)

                try sandbox.submit(
                    "inc-2-resolved.yaml",
                    incidentEvent(id: "evt-2b", stage: "resolved", incident: "INC-2", at: "2026-11-29T12:30:00Z")
                )
                try await sandbox.waitForRoom("INC-2", state: "ended")
                let all = try await poll("two cancellations") {
                    servers.smtp.messages().count == 6 ? servers.smtp.messages() : nil
                }
                for mail in all.suffix(2) {
                    let cancel = try await MailInspector.inspect(path: mail.path)
                    let parts = try #require(cancel["parts"] as? [[String: Any]])
                    #expect((parts.last?["params"] as? [String: String])?["method"] == "CANCEL")
                    let calendar = try #require((cancel["calendars"] as? [[String: Any]])?.first)
                    #expect(calendar["method"] as? String == "CANCEL")
                    let event = try #require((calendar["events"] as? [[String: Any]])?.first)
                    #expect(event["uid"] as? String == uids.first)
                    #expect((event["sequence"] as? Int ?? 0) > 0)
                    #expect(event["status"] as? String == "CANCELLED")
                    // The cancellation says the room ended; it offers no link to join.
                    #expect((event["description"] as? String)?.contains(joinURL) == false)
                    #expect((event["description"] as? String)?.contains("ended") == true)
                }
                _ = try await poll("Ada's room-ended SMS") { servers.sms.count == 2 ? true : nil }
            }
        }

        @Test("an SMTP server that never answers holds up neither rooms nor SMS; killed while sending, nothing is lost")
        func silentSMTPAndKill() async throws {
            let sandbox = try Sandbox()
            let servers = try await Servers()
            defer {
                sandbox.tearDown()
                servers.tearDown()
            }
            try await sandbox.recordingLogs {
                try servers.smtp.setMode(["hang": true])
                try await sandbox.startSim()
                try sandbox.writeIntegration()
                try configure(sandbox, servers)
                try await sandbox.startDaemon()

                try sandbox.submit("inc-a.yaml", incidentEvent(id: "evt-a", stage: "situation_room", incident: "INC-A"))
                try sandbox.submit(
                    "inc-b.yaml",
                    incidentEvent(
                        id: "evt-b",
                        stage: "situation_room",
                        incident: "INC-B",
                        title: "Search is slow",
                        participants: """
                              - { name: Linus Torvalds, email: linus@example.com, phone: "+15005550103" }
                            """
                    )
                )
                try await sandbox.waitForRoom("INC-A", state: "ready")
                try await sandbox.waitForRoom("INC-B", state: "ready")
                let texts = try await poll("both incidents' SMS") { servers.sms.count == 2 ? servers.sms : nil }
                #expect(Set(texts.compactMap { $0.form["To"] }) == ["+15005550101", "+15005550103"])
                _ = try await poll("the chat posts") { servers.chat.count == 2 ? true : nil }
                _ = try await poll("sitroomd to be stuck in an SMTP conversation") {
                    servers.smtp.connections >= 1 ? true : nil
                }
                #expect(servers.smtp.messages().isEmpty)
                // Only the three emails are left: the SMS and chat notices are recorded `sent` (a kill between the
                // gateway's answer and that commit would, rightly, send them again: delivery is at least once).
                _ = try await poll("only the emails to be pending") {
                    try await outboxPending(sandbox) == 3 ? true : nil
                }

                sandbox.daemon?.signal(SIGKILL)
                _ = try await sandbox.daemon?.waitForExit()
                try servers.smtp.setMode([:])
                try await sandbox.startDaemon()

                let mails = try await poll("the three emails after the restart") {
                    servers.smtp.messages().count >= 3 ? servers.smtp.messages() : nil
                }
                _ = try await poll("an empty outbox") { try await outboxPending(sandbox) == 0 ? true : nil }
                #expect(servers.smtp.messages().count == 3)
                #expect(
                    Set(mails.flatMap(\.recipients)) == ["ada@example.com", "grace@example.com", "linus@example.com"]
                )
                #expect(Set(mails.compactMap(\.messageID)).count == 3)
                #expect(servers.sms.count == 2)  // sent before the kill, not again
                #expect(servers.chat.count == 2)
            }
        }
    }
}

/// The value of header `name` in a raw RFC 5322 message (case-insensitive, folded lines joined), `nil` when absent.
private func mailHeader(_ name: String, _ raw: String) -> String? {
    var value: String? = nil
    for line in raw.replacingOccurrences(of: "\r\n", with: "\n").split(
        separator: "\n",
        omittingEmptySubsequences: false
    ) {
        if line.isEmpty { break }
        if line.first == " " || line.first == "\t" {
            if value != nil { value! += " " + line.trimmingCharacters(in: .whitespaces) }
            continue
        }
        if value != nil { return value }
        if let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name.lowercased() {
            value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }
    return value
}
