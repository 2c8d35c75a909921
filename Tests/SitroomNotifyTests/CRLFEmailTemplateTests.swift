import Foundation
import Testing

@testable import SitroomNotify

@Suite("email templates with CRLF line ends")
struct CRLFEmailTemplateTests {
    /// Found by a breaker session: `Subject:` was split off at a `\n` Character, and "\r\n" is one Character in
    /// Swift, so a template saved with CRLF line ends became one subject holding the whole text, with an empty body.
    @Test("a CRLF email template splits into subject and body as its LF twin does")
    func crlfSubject() throws {
        let lf = "Subject: Room for {{incident.id}}\n\nJoin {{room.join_url}}\n"
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        let context = DirectTemplateTests.contexts[0]
        let a = try #require(try NoticeTemplates(["room-ready.email": lf]).render(.roomReady, .email, context))
        let b = try #require(try NoticeTemplates(["room-ready.email": crlf]).render(.roomReady, .email, context))
        #expect(b.subject == a.subject)
        #expect(b.body.replacingOccurrences(of: "\r\n", with: "\n") == a.body)
    }
}
