import Foundation
import Mustache
import SitroomCore
import SitroomTestFixtures
import Testing

@testable import SitroomNotify

/// `DirectTemplate` renders what swift-mustache renders: swift-mustache is the reference for every template here.
@Suite("notice templates rendered without swift-mustache's lookups")
struct DirectTemplateTests {
    /// The contexts the comparisons render: every field set, fields missing or empty, a person, an admin, neither.
    static let contexts: [NoticeContext] = {
        var room = Room(id: "r00000000000000a1", incidentID: "INC-7", createdAt: 1_795_958_400)
        room.state = .ready
        room.integration = "zoom-main"
        room.hostUser = "bridge-1@example.com"
        room.meetingID = 81_234_567_890
        room.joinURL = "https://zoom.example/j/81234567890?pwd=AbC&x=<y>"
        room.passcode = "s3cr3t"
        var bare = Room(id: "r00000000000000b2", incidentID: "INC-8", createdAt: 1_795_958_400)
        bare.state = .failed
        bare.reason = "Zoom refused: 'quota' & \"limits\""
        bare.advice = "add a host\nor wait"
        bare.passcode = ""
        let full = IncidentInfo(id: "INC-7", title: "Payments down <EU>", severity: "critical", team: "payments-sre")
        let plain = IncidentInfo(id: "INC-8", title: "Ünïcode ☎ title", severity: nil, team: "")
        let ada = Participant(name: "Ada Lovelace", email: "ada@example.com", phone: "+15005550101", role: .commander)
        let bob = Participant(name: "Bob", email: nil, phone: nil, role: nil)
        return [
            NoticeContext(incident: full, stage: .situationRoom, room: room, person: ada),
            NoticeContext(incident: plain, stage: .resolved, room: bare, person: bob),
            NoticeContext(incident: full, stage: .updated, room: bare, person: nil, admin: ("Ops", "ops@example.com")),
            NoticeContext(incident: plain, stage: .opened, room: room, person: nil),
        ]
    }()

    /// swift-mustache's render and the direct one (`nil` when the template or the render is left to the library).
    static func both(_ text: String, _ context: NoticeContext) throws -> (reference: String, direct: String?) {
        let template = try MustacheTemplate(string: NoticeTemplates.textPragma + text)
        let scope = TemplateScope(context)
        return (template.render(scope), DirectTemplate(template)?.render(scope))
    }

    @Test("every bundled template (subject and body) is rendered directly, as swift-mustache renders it")
    func bundled() throws {
        var directory = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { directory.deleteLastPathComponent() }
        directory.appendPathComponent("etc/templates")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
            $0.hasSuffix(".mustache")
        }
        #expect(names.count >= 20)
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            var parts = [text]
            if text.hasPrefix("Subject:") {
                let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
                parts = [String(lines[0].dropFirst("Subject:".count)), lines.count > 1 ? String(lines[1]) : ""]
            }
            for part in parts {
                #expect(
                    DirectTemplate(try MustacheTemplate(string: NoticeTemplates.textPragma + part)) != nil,
                    "\(name)"
                )
                for context in Self.contexts {
                    let (reference, direct) = try Self.both(part, context)
                    #expect(direct == reference, "\(name)")
                }
            }
        }
    }

    @Test(
        "Mustache's corners render alike: standalone lines, nested and inverted sections, the context stack, dots",
        arguments: [
            "{{#incident.severity}}\n[{{incident.severity}}]\n{{/incident.severity}}\nnext",
            "  {{#room.passcode}}  \r\n  code {{.}}\r\n  {{/room.passcode}}  \r\nend",
            "{{^person}}no one{{/person}}{{#person}}Hello {{name}} ({{role}}){{/person}}",
            "{{#person}}{{#email}}{{email}} of {{incident.title}}{{/email}}{{^phone}} no phone{{/phone}}{{/person}}",
            "{{ incident.title }}|{{{room.join_url}}}|{{& room.reason}}|{{room.nothing}}|{{nothing.at.all}}",
            "{{! a comment }}\n{{!\n  on lines\n}}\nafter {{#room}}{{.id}} {{id}}{{/room}}",
            "{{#room.advice}}{{.}}{{/room.advice}}{{#incident.team}}[{{.}}]{{/incident.team}}",
            "{{#admin}}Dear {{admin.name}} <{{email}}>{{/admin}}{{^admin}}-{{/admin}}",
            "{{.incident.id}}{{#incident}}{{.id}}{{.title.x}}{{/incident}}{{incident.id.more}}",
            "{{#room.state}}{{#room.passcode}}{{room.state}}/{{.}}{{/room.passcode}}{{/room.state}}",
            "\t{{#incident.stage}}\n\t{{incident.stage}}\n\t{{/incident.stage}}\n\t{{^room.meeting_id}}\nnone\n{{/room.meeting_id}}",
            "line one\n\n{{#person.phone}}\n  \n{{/person.phone}}\n{{#integration}}{{name}}{{/integration}}",
        ]
    )
    func corners(_ text: String) throws {
        #expect(DirectTemplate(try MustacheTemplate(string: NoticeTemplates.textPragma + text)) != nil)
        for context in Self.contexts {
            let (reference, direct) = try Self.both(text, context)
            #expect(direct == reference)
        }
    }

    @Test(
        "what is rendered only by swift-mustache is left to it: partials, transforms, a content type changed midway",
        arguments: [
            "{{> other}}", "{{uppercased(incident.title)}}",
            "{{#reversed(incident.title)}}x{{/reversed(incident.title)}}",
            "a {{% CONTENT_TYPE: HTML}}{{incident.title}}", "{{$block}}x{{/block}}",
        ]
    )
    func leftToTheLibrary(_ text: String) throws {
        #expect(DirectTemplate(try MustacheTemplate(string: NoticeTemplates.textPragma + text)) == nil)
    }

    @Test("a name that is an object, not text, is rendered by swift-mustache (as it always was)")
    func objectsGoToTheLibrary() throws {
        for text in ["{{incident}}", "{{#person}}{{.}}{{/person}}", "{{.}}"] {
            let template = try MustacheTemplate(string: NoticeTemplates.textPragma + text)
            let direct = try #require(DirectTemplate(template))
            #expect(direct.render(TemplateScope(Self.contexts[0])) == nil)
        }
        // Through NoticeTemplates the render is swift-mustache's.
        let templates = try NoticeTemplates(["room-ready.sms": "{{#person}}{{.}}{{/person}}|{{incident}}"])
        let rendered = try #require(templates.render(.roomReady, .sms, Self.contexts[0]))
        #expect(
            rendered.body == (try Self.both("{{#person}}{{.}}{{/person}}|{{incident}}", Self.contexts[0]).reference)
        )
    }

    @Test("a seeded corpus of generated templates renders alike, nearly all of it directly")
    func generated() throws {
        var random = SeededGenerator(seed: 0x5EED_7E4A)
        let names = [
            "incident.id", "incident.title", "incident.severity", "incident.team", "incident.stage", "room.id",
            "room.state", "room.reason", "room.advice", "room.join_url", "room.meeting_id", "room.passcode",
            "room.host",
            "room.closed_by_operator", "integration.name", "person.name", "person.email", "person.phone",
            "person.role", "admin.name", "admin.email", "incident", "room", "person", "admin", "integration", "name",
            "email", "id", "title", "missing", "room.missing", ".", ".incident.id", "incident.title.x",
        ]
        let texts = ["", " ", "  ", "\t", "\n", "\r\n", " \n", "text", "a b", "é☎", "{", "}", "x\n  ", "\n\n"]
        var direct = 0
        var total = 0
        for _ in 0..<1_500 {
            var text = ""
            var open: [String] = []
            for _ in 0..<Int.random(in: 1...14, using: &random) {
                switch Int.random(in: 0..<10, using: &random) {
                case 0...3:
                    text += texts.randomElement(using: &random)!
                case 4...5:
                    let name = names.randomElement(using: &random)!
                    let pad = Bool.random(using: &random) ? " " : ""
                    text += ["{{\(pad)\(name)\(pad)}}", "{{{\(name)}}}", "{{&\(name)}}"].randomElement(using: &random)!
                case 6:
                    let name = names.randomElement(using: &random)!
                    text += "{{\(Bool.random(using: &random) ? "#" : "^")\(name)}}"
                    open.append(name)
                case 7:
                    if let name = open.popLast() { text += "{{/\(name)}}" }
                case 8:
                    text += "{{! note }}"
                default:
                    text += "\n" + String(repeating: " ", count: Int.random(in: 0...2, using: &random))
                }
            }
            while let name = open.popLast() { text += "{{/\(name)}}" }
            // A `{` or `}` next to a tag can make text that does not compile: config validation refuses such files.
            guard let template = try? MustacheTemplate(string: NoticeTemplates.textPragma + text) else { continue }
            let compiled = DirectTemplate(template)
            #expect(compiled != nil, "\(text.debugDescription)")
            for context in Self.contexts {
                total += 1
                let scope = TemplateScope(context)
                guard let rendered = compiled?.render(scope) else { continue }
                direct += 1
                #expect(rendered == template.render(scope), "\(text.debugDescription)")
            }
        }
        // Renders naming an object (`{{incident}}`, `{{.}}` outside a section) go to the library; the rest is direct.
        #expect(direct * 10 > total * 6, "\(direct) of \(total) rendered directly")
    }
}
