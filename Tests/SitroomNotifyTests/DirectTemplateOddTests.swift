import Mustache
import Testing

@testable import SitroomNotify

/// Odd templates (breaker session): whatever the direct renderer renders must equal swift-mustache's render.
@Suite("odd notice templates render as swift-mustache renders them")
struct DirectTemplateOddTests {
    @Test(
        "odd templates",
        arguments: [
            "{{#incident.missing}}x{{/incident.missing}}{{^incident.missing}}y{{/incident.missing}}",
            "{{#incident.team}}[{{.}}]{{/incident.team}}{{^incident.team}}none{{/incident.team}}",
            "{{.incident.id}}|{{.room.id}}|{{#incident}}{{.id}}{{.room.id}}{{room.id}}{{/incident}}",
            "{{#incident}}{{#room}}{{id}}/{{.id}}/{{incident.id}}{{/room}}{{id}}{{/incident}}",
            "{{#room}}{{#room}}{{id}}{{/room}}{{/room}}",
            "{{#person}}\r\n{{name}}\r\n{{/person}}\r\n{{^person}}\r\nnobody\r\n{{/person}}\r\nend\r\n",
            "  {{! comment }}  \r\n{{{room.join_url}}} {{& room.join_url }} {{  incident.title  }}\r\n",
            "☎ {{incident.title}} — {{#person}}{{name}}✓{{/person}}",
            "{{=<% %>=}}<% incident.title %> <%#room%><%id%><%/room%><%={{ }}=%>{{room.id}}",
            "{{#incident.title}}{{count}}{{isEmpty}}{{.}}{{/incident.title}}",
            "{{#room.meeting_id}}{{.}}{{/room.meeting_id}}{{^room.meeting_id}}no id{{/room.meeting_id}}",
            "{{#person.name}}{{#admin}}{{name}}{{/admin}}{{name}}{{/person.name}}",
            "{{^.}}x{{/.}}{{#.}}{{incident.id}}{{/.}}",
            "{{..}}{{incident..title}}{{#incident}}{{..id}}{{/incident}}",
            "{{#incident.severity}}{{#incident.team}}t{{/incident.team}}{{/incident.severity}}",
            "{{#room.closed_by_operator}}closed{{/room.closed_by_operator}}{{^room.closed_by_operator}}open{{/room.closed_by_operator}}",
            "{{#integration}}{{name}}{{room.integration}}{{/integration}}",
            "{{#person}}{{#role}}{{role}}:{{.}}{{/role}}{{/person}}",
            "\t{{#room.reason}}\r\n\t{{room.reason}}\r\n\t{{/room.reason}}\r\n",
            "{{#incident.title}}{{#incident.title}}{{.}}{{/incident.title}}{{/incident.title}}",
            "{{#incident.id}}{{id}}|{{title}}|{{incident.title}}{{/incident.id}}",
            "a\n{{#person}}\n{{#email}}\n  {{email}}\n{{/email}}\n{{/person}}\nb",
        ]
    )
    func odd(_ text: String) throws {
        for context in DirectTemplateTests.contexts {
            let (reference, direct) = try DirectTemplateTests.both(text, context)
            if let direct { #expect(direct == reference, "\(text.debugDescription)") }
        }
        // And through NoticeTemplates (subject and body of an email), as sitroomd renders a notice.
        let templates = try NoticeTemplates(["room-ready.sms": text])
        for context in DirectTemplateTests.contexts {
            let rendered = templates.render(.roomReady, .sms, context)
            let reference = try DirectTemplateTests.both(text, context).reference
            #expect(rendered?.body == trimmingWhitespaceAndNewlines(reference), "\(text.debugDescription)")
        }
    }
}
