import Foundation
import SitroomCore
import SitroomTestFixtures
import Testing

@testable import SitroomNotify

/// Messages built to the standards, checked with real parsers (Python's `email`, `icalendar`).
@Suite("email, calendar and SMS messages", .serialized)
struct MessageTests {
    static let joinURL = "https://zoom.example/j/123456789?pwd=AbC&uname=x"

    func notice(
        name: String = "Zoë Ünal",
        subject: String = "Salle de crise ☎ pour l'incident",
        body: String? = nil,
        calendar: String? = nil
    ) -> Notice {
        Notice(
            roomID: "r00000000000000a1",
            incidentID: "INC-1",
            personID: "email:zoe@example.com",
            kind: .invitation,
            channel: .email,
            recipient: "zoe@example.com",
            recipientName: name,
            subject: subject,
            body: body ?? "Hello Zoë,\n\nJoin: \(Self.joinURL)\nPasscode: s3cr3t\n\n-- sitroom\n",
            createdAt: 1_795_958_400,
            calendar: calendar
        )
    }

    func invitation(_ method: CalendarInvitation.Method, sequence: Int) -> CalendarInvitation {
        CalendarInvitation(
            method: method,
            uid: CalendarInvitation.uid(roomID: "r00000000000000a1", domain: "example.org"),
            sequence: sequence,
            stamp: 1_795_958_460,
            start: 1_795_958_400,
            summary: "Situation Room: Payments API, EU; all 5xx — très long titre qui dépasse la ligne",
            description: "Hello Zoë,\nJoin: \(Self.joinURL)\nPasscode: s3cr3t",
            joinURL: Self.joinURL,
            organizer: Mailbox(parsing: "sitroom <sitroom@example.org>"),
            attendees: [
                Mailbox(name: "Zoë Ünal", address: "zoe@example.com"),
                Mailbox(name: "Lovelace, Ada", address: "ada@example.com"),
            ]
        )
    }

    @Test("multipart/alternative with text and HTML; headers decode; Message-ID stable")
    func multipart() async throws {
        let notice = notice()
        let text = EmailMessage(notice: notice, from: "sitroom <sitroom@example.org>").rendered()
        #expect(text == EmailMessage(notice: notice, from: "sitroom <sitroom@example.org>").rendered())
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        let parsed = try await MailInspector.inspect(text: text)
        let headers = try #require(parsed["headers"] as? [String: String])
        #expect(headers["To"] == "Zoë Ünal <zoe@example.com>")
        #expect(headers["Subject"] == "Salle de crise ☎ pour l'incident")
        #expect(headers["From"] == "sitroom <sitroom@example.org>")
        #expect(headers["Message-ID"] == "<\(notice.id).r00000000000000a1@example.org>")
        #expect(headers["Date"] == "Sun, 29 Nov 2026 13:20:00 +0000")
        #expect(parsed["content_type"] as? String == "multipart/alternative")
        #expect((parsed["defects"] as? [String])?.isEmpty == true)
        let parts = try #require(parsed["parts"] as? [[String: Any]])
        #expect(parts.map { $0["content_type"] as? String } == ["text/plain", "text/html"])
        let plain = try #require(parts[0]["text"] as? String)
        #expect(plain.contains("Join: \(Self.joinURL)"))
        #expect(plain.contains("Hello Zoë,"))
        let html = try #require(parts[1]["text"] as? String)
        #expect(html.contains("<a href=\"https://zoom.example/j/123456789?pwd=AbC&amp;uname=x\">"))
        #expect(html.contains("Hello Zoë,"))
    }

    @Test(
        "the maildir transport delivers a batch whole into new/ (Python's email reads each), replacing its own leftover in tmp/"
    )
    func maildirBatch() async throws {
        let dir = try makeTemporaryDirectory("sitroom-maildir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["tmp", "new"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
        }
        let notices = (0..<5).map { index in
            var notice = notice(name: "Person \(index)", subject: "Room \(index)")
            notice.id = "\(notice.id)\(index)"
            return notice
        }
        // A delivery of the first notice cut short by a crash left part of its file in tmp/.
        let leftover = "\(Int64(notices[0].createdAt)).\(notices[0].id).sitroom"
        try Data("Subject: half a mess".utf8).write(to: URL(fileURLWithPath: "\(dir)/tmp/\(leftover)"))
        let results = await MaildirTransport(directory: dir, from: "sitroom <sitroom@example.org>").deliver(
            batch: notices
        )
        let paths = try results.map { try $0.get() }
        #expect(paths.first == "\(dir)/new/\(leftover)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/new").count == 5)
        for (index, path) in paths.enumerated() {
            let parsed = try await MailInspector.inspect(path: path)
            let headers = try #require(parsed["headers"] as? [String: String])
            #expect(headers["Subject"] == "Room \(index)")
            #expect((parsed["defects"] as? [String])?.isEmpty == true)
        }
        // Into a maildir without new/, every notice fails, retryably, and tmp/ is left clean.
        try FileManager.default.removeItem(atPath: "\(dir)/new")
        let failed = await MaildirTransport(directory: dir, from: "sitroom@example.org").deliver(batch: notices)
        for result in failed {
            let error = #expect(throws: DeliveryError.self) { try result.get() }
            #expect(error?.permanent == false)
            #expect(error?.message.contains("rename") == true)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/tmp").isEmpty)
    }

    @Test("names with specials are quoted; long subjects are folded into several encoded words")
    func headerForms() async throws {
        let long = String(repeating: "Très long sujet ", count: 8)
        let text = EmailMessage(
            notice: notice(name: "Lovelace, Ada", subject: long),
            from: "\"Ops, Team\" <ops@example.org>"
        )
        .rendered()
        for line in text.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78, "header line too long: \(line)")
        }
        let headers = try #require(try await MailInspector.inspect(text: text)["headers"] as? [String: String])
        #expect(headers["To"] == "\"Lovelace, Ada\" <zoe@example.com>")
        #expect(headers["From"] == "\"Ops, Team\" <ops@example.org>")
        #expect(headers["Subject"] == long)
    }

    @Test("lines longer than 998 octets go quoted-printable and come back intact")
    func longLines() async throws {
        let line = String(repeating: "abcdéf ", count: 200)
        let parsed = try await MailInspector.inspect(
            text: EmailMessage(notice: notice(body: line + "\n"), from: "s@example.org").rendered()
        )
        let parts = try #require(parsed["parts"] as? [[String: Any]])
        #expect(parts[0]["encoding"] as? String == "quoted-printable")
        #expect((parts[0]["text"] as? String)?.hasPrefix(line) == true)
    }

    @Test("an invitation is a third alternative, text/calendar; method=REQUEST, that icalendar reads")
    func invitationPart() async throws {
        let calendar = invitation(.request, sequence: 0).rendered()
        let text = EmailMessage(notice: notice(calendar: calendar), from: "sitroom <sitroom@example.org>").rendered()
        let parsed = try await MailInspector.inspect(text: text)
        let parts = try #require(parsed["parts"] as? [[String: Any]])
        #expect(parts.map { $0["content_type"] as? String } == ["text/plain", "text/html", "text/calendar"])
        #expect((parts[2]["params"] as? [String: String])?["method"] == "REQUEST")
        let calendars = try #require(parsed["calendars"] as? [[String: Any]])
        let request = try #require(calendars.first)
        #expect(request["method"] as? String == "REQUEST")
        #expect(request["raw_lines_ok"] as? Bool == true)
        let event = try #require((request["events"] as? [[String: Any]])?.first)
        #expect(event["uid"] as? String == "r00000000000000a1@example.org")
        #expect(event["sequence"] as? Int == 0)
        #expect(event["dtstart"] as? String == "2026-11-29T13:20:00+00:00")
        #expect(event["dtstamp"] as? String == "2026-11-29T13:21:00+00:00")
        #expect(event["location"] as? String == Self.joinURL)
        #expect(event["url"] as? String == Self.joinURL)
        #expect((event["description"] as? String)?.contains(Self.joinURL) == true)
        #expect(
            event["summary"] as? String
                == "Situation Room: Payments API, EU; all 5xx — très long titre qui dépasse la ligne"
        )
        #expect(event["status"] as? String == "CONFIRMED")
        #expect(event["organizer"] as? String == "mailto:sitroom@example.org")
        #expect(event["organizer_cn"] as? String == "sitroom")
        let attendees = try #require(event["attendees"] as? [[String: Any]])
        #expect(attendees.map { $0["address"] as? String } == ["mailto:zoe@example.com", "mailto:ada@example.com"])
        let first = try #require(attendees.first?["params"] as? [String: String])
        #expect(first["RSVP"] == "TRUE")
        #expect(first["CN"] == "Zoë Ünal")
        #expect((attendees[1]["params"] as? [String: String])?["CN"] == "Lovelace, Ada")
    }

    @Test("the cancellation has the request's UID, a higher SEQUENCE and STATUS:CANCELLED")
    func cancellation() async throws {
        let text = EmailMessage(
            notice: notice(calendar: invitation(.cancel, sequence: 1).rendered()),
            from: "sitroom <sitroom@example.org>"
        ).rendered()
        let parsed = try await MailInspector.inspect(text: text)
        let parts = try #require(parsed["parts"] as? [[String: Any]])
        #expect((parts.last?["params"] as? [String: String])?["method"] == "CANCEL")
        let calendar = try #require((parsed["calendars"] as? [[String: Any]])?.first)
        #expect(calendar["method"] as? String == "CANCEL")
        let event = try #require((calendar["events"] as? [[String: Any]])?.first)
        #expect(event["uid"] as? String == "r00000000000000a1@example.org")
        #expect(event["sequence"] as? Int == 1)
        #expect(event["status"] as? String == "CANCELLED")
    }

    @Test("iCalendar folding: at most 75 octets a line, never inside a UTF-8 character, CRLF")
    func folding() {
        let line = "DESCRIPTION:" + String(repeating: "é☎a", count: 60)
        let folded = CalendarInvitation.fold(line)
        let lines = folded.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 75 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") })
        #expect(
            lines.enumerated().map { $0.offset == 0 ? $0.element : String($0.element.dropFirst()) }.joined() == line
        )
        #expect(CalendarInvitation.text("a;b,c\\d\ne") == "a\\;b\\,c\\\\d\\ne")
        #expect(invitation(.request, sequence: 0).rendered().hasSuffix("END:VCALENDAR\r\n"))
    }

    @Test(
        "SMS segments: GSM-7 160/153, extension characters count twice, UCS-2 70/67",
        arguments: [
            (String(repeating: "a", count: 160), 1), (String(repeating: "a", count: 161), 2),
            (String(repeating: "a", count: 306), 2), (String(repeating: "a", count: 307), 3),
            (String(repeating: "€", count: 80), 1), (String(repeating: "€", count: 81), 2),
            (String(repeating: "ж", count: 70), 1), (String(repeating: "ж", count: 71), 2),
            ("😀" + String(repeating: "a", count: 68), 1), ("😀" + String(repeating: "a", count: 69), 2),
        ]
    )
    func segments(_ text: String, _ expected: Int) {
        #expect(SMSText.segments(text) == expected)
    }

    @Test("a long SMS is shortened to fit, the link kept whole")
    func fitKeepsLinks() {
        let link = "https://zoom.example/j/123456789?pwd=AbCdEfGhIjKlMnOp"
        let title = String(repeating: "Payments API returning 5xx in every region ", count: 12)
        let text = "Situation room for \(title)(critical): \(link) passcode s3cr3t"
        let fitted = SMSText.fit(text, maxSegments: 2)
        #expect(SMSText.segments(fitted) <= 2)
        #expect(fitted.contains(" \(link) "))
        #expect(fitted.hasPrefix("Situation room for Payments"))
        #expect(fitted.contains("..."))
        #expect(SMSText.encoding(of: fitted) == .gsm7)

        let unicode = "Salle de crise ☎ " + String(repeating: "très long titre ", count: 10) + link
        let short = SMSText.fit(unicode, maxSegments: 1)
        #expect(SMSText.segments(short) == 1)
        #expect(short.hasSuffix(" " + link))

        #expect(SMSText.fit("short \(link)", maxSegments: 1) == "short \(link)")
    }
}
