import SitroomCore
import SitroomNotify
import Testing

@testable import SitroomDaemon
@testable import SitroomService

@Suite("control lines")
struct ControlCommandTests {
    @Test("reply path, json and words")
    func parses() throws {
        let command = try ControlCommand.parse("reply=/tmp/x/reply json room show INC-1")
        #expect(command.replyPath == "/tmp/x/reply")
        #expect(command.json)
        #expect(command.words == ["room", "show", "INC-1"])
        #expect(try ControlCommand.parse("room show INC-1 --json").json)
        #expect(try ControlCommand.parse("reload").replyPath == nil)
    }

    @Test(
        "relative reply paths and empty lines are refused",
        arguments: ["reply=tmp/x status", "", "   ", "reply=/tmp/x"]
    )
    func refuses(_ line: String) {
        #expect(throws: SitroomError.self) { try ControlCommand.parse(line) }
    }

    @Test("the reply's wire form starts with ok or error")
    func wire() {
        #expect(ControlReply.ok("fine").wire == "ok\nfine\n")
        #expect(ControlReply.error("no incident X").wire == "error\nno incident X\n")
    }
}

@Suite("notices")
struct NoticeTests {
    func room() -> Room {
        var room = Room(id: "r1", incidentID: "INC-1", createdAt: 1_795_958_400)
        room.state = .ready
        room.joinURL = "https://zoom.example/j/123?pwd=a&b=<c>"
        room.meetingID = 123
        room.passcode = "s3cr3t"
        room.integration = "zoom-main"
        return room
    }

    @Test("templates render plain text: no HTML escaping, optional sections skipped")
    func templates() throws {
        let templates = try NoticeTemplates([
            "room-ready.email":
                "Subject: Room for {{incident.title}}\n\nJoin {{room.join_url}}{{#room.passcode}} pw {{room.passcode}}{{/room.passcode}}\n",
            "room-ready.sms": "{{incident.title}} {{room.join_url}}\n",
        ])
        let person = Participant(name: "Ada", email: "ada@example.com")
        let context = NoticeContext(
            incident: IncidentInfo(id: "INC-1", title: "A & B <down>"),
            stage: .situationRoom,
            room: room(),
            person: person
        )
        let email = try #require(templates.render(.roomReady, .email, context))
        #expect(email.subject == "Room for A & B <down>")
        #expect(email.body == "Join https://zoom.example/j/123?pwd=a&b=<c> pw s3cr3t\n")
        var noPasscode = room()
        noPasscode.passcode = nil
        let plain = try #require(
            templates.render(
                .roomReady,
                .email,
                NoticeContext(incident: context.incident, stage: .situationRoom, room: noPasscode, person: person)
            )
        )
        #expect(plain.body == "Join https://zoom.example/j/123?pwd=a&b=<c>\n")
        #expect(
            templates.render(.roomReady, .sms, context)?.body == "A & B <down> https://zoom.example/j/123?pwd=a&b=<c>"
        )
        #expect(templates.render(.roomEnded, .sms, context) == nil)

        // Absent objects are absent: an admin notice has no person, a participant's no admin.
        let both = try NoticeTemplates([
            "admin-room-failed.sms": "{{#person}}P {{/person}}{{#admin}}A {{admin.name}}{{/admin}}"
        ])
        let toAdmin = NoticeContext(
            incident: context.incident,
            stage: .situationRoom,
            room: room(),
            person: nil,
            admin: (name: "Ops", email: "ops@example.org")
        )
        #expect(both.render(.adminRoomFailed, .sms, toAdmin)?.body == "A Ops")
        #expect(both.render(.adminRoomFailed, .sms, context)?.body == "P")
    }

    @Test("a template that names no recipient is rendered once per room; one that does, once per person")
    func rendersOncePerRoom() throws {
        let templates = try NoticeTemplates([
            "room-ready.sms": "{{incident.title}} {{room.join_url}}\n",
            "room-ready.email": "Subject: Room\n\nHi {{person.name}}\n",
        ])
        let ada = NoticeContext(
            incident: IncidentInfo(id: "INC-1", title: "First"),
            stage: .situationRoom,
            room: room(),
            person: Participant(name: "Ada", email: "ada@example.com")
        )
        // Grace's context differs in the title as well, which a memo must only see for one room and moment: the
        // impersonal SMS then shows that it was not rendered again.
        let grace = NoticeContext(
            incident: IncidentInfo(id: "INC-1", title: "Second"),
            stage: .situationRoom,
            room: room(),
            person: Participant(name: "Grace", email: "grace@example.com")
        )
        let memo = NoticeTemplates.RenderMemo()
        #expect(templates.render(.roomReady, .sms, ada, memo: memo)?.body.hasPrefix("First ") == true)
        #expect(templates.render(.roomReady, .sms, grace, memo: memo)?.body.hasPrefix("First ") == true)
        #expect(templates.render(.roomReady, .sms, grace)?.body.hasPrefix("Second ") == true)
        #expect(templates.render(.roomReady, .email, ada, memo: memo)?.body == "Hi Ada\n")
        #expect(templates.render(.roomReady, .email, grace, memo: memo)?.body == "Hi Grace\n")
    }

    @Test("an email is RFC 5322 with a stable Message-ID and RFC 2047 words for non-ASCII")
    func email() {
        let notice = Notice(
            roomID: "r1",
            incidentID: "INC-1",
            personID: "email:zoe@example.com",
            kind: .roomReady,
            channel: .email,
            recipient: "zoe@example.com",
            recipientName: "Zoë Ünal",
            subject: "Salle de crise ☎",
            body: "Join\nnow",
            createdAt: 1_795_958_400
        )
        let text = EmailMessage(notice: notice, from: "sitroom <sitroom@example.org>").rendered()
        #expect(text.contains("From: sitroom <sitroom@example.org>\r\n"))
        #expect(text.contains("To: =?utf-8?B?Wm/DqyDDnG5hbA==?= <zoe@example.com>\r\n"))
        #expect(text.contains("Subject: =?utf-8?B?"))
        #expect(text.contains("Message-ID: <\(notice.id).r1@example.org>\r\n"))
        #expect(text.contains("Date: Sun, 29 Nov 2026 13:20:00 +0000\r\n"))
        #expect(
            text.contains(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nJoin\r\nnow\r\n--"
            )
        )
        #expect(
            Notice.id(roomID: "r1", personID: "email:zoe@example.com", kind: .roomReady, channel: .email) == notice.id
        )
        #expect(
            Notice.id(roomID: "r1", personID: "email:zoe@example.com", kind: .roomReady, channel: .sms) != notice.id
        )
    }

    @Test("logfmt quotes values that need it")
    func logfmt() {
        #expect(StderrLogHandler.logfmtValue("plain") == "plain")
        #expect(StderrLogHandler.logfmtValue("two words") == "\"two words\"")
        #expect(StderrLogHandler.logfmtValue("a\"b\nc") == "\"a\\\"b\\nc\"")
        #expect(StderrLogHandler.logfmtValue("") == "\"\"")
    }
}
