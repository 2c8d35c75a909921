import Foundation
import Mustache
import SitroomCore
import Synchronization

/// The notice templates of one configuration generation, compiled (SPEC §6).
///
/// Files are `etc/templates/<kind>.<channel>.mustache`; an email template starts with a `Subject: ...` line,
/// then a blank line, then the body. Templates are plain text: nothing is HTML-escaped. A kind/channel
/// without a file is not sent on that channel (the bundled `etc/templates/` has one for every notice sent).
public struct NoticeTemplates: Sendable {
    private let compiled: [String: Compiled]

    /// One template: swift-mustache's, and the same rendered directly where it can be (``DirectTemplate``).
    private final class Compiled: Sendable {
        let subject: MustacheTemplate?
        let body: MustacheTemplate
        let personal: Bool
        /// Made at the first render, not with the generation: reading the tokens costs as much as compiling them,
        /// and a reload compiles every template while a generation may render few of them.
        let direct = Mutex<(subject: DirectTemplate?, body: DirectTemplate?)?>(nil)

        init(subject: MustacheTemplate?, body: MustacheTemplate, personal: Bool) {
            self.subject = subject
            self.body = body
            self.personal = personal
        }

        private var directTemplates: (subject: DirectTemplate?, body: DirectTemplate?) {
            direct.withLock { made in
                if let made { return made }
                let fresh = (subject: subject.flatMap(DirectTemplate.init), body: DirectTemplate(body))
                made = fresh
                return fresh
            }
        }

        func renderSubject(_ scope: TemplateScope) -> String? {
            guard let subject else { return nil }
            return directTemplates.subject?.render(scope) ?? subject.render(scope)
        }

        func renderBody(_ scope: TemplateScope) -> String {
            directTemplates.body?.render(scope) ?? body.render(scope)
        }
    }

    /// Compiles `templates` (file base name without `.mustache` → text).
    /// - Throws: `MustacheTemplate.Error` for a template that does not compile (config validation catches it first).
    public init(_ templates: [String: String] = [:]) throws {
        var compiled: [String: Compiled] = [:]
        for (name, text) in templates {
            let isEmail = name.hasSuffix(".email")
            var subject: MustacheTemplate? = nil
            var body = text
            if isEmail, text.hasPrefix("Subject:") {
                let parts = text.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: \.isLineEnd)
                subject = try MustacheTemplate(
                    string: Self.textPragma + parts[0].dropFirst("Subject:".count).trimmingCharacters(in: .whitespaces)
                )
                body = parts.count > 1 ? String(parts[1].drop(while: \.isLineEnd)) : ""
            }
            // A template whose text never says `person` or `admin` cannot name its recipient: it renders alike for
            // everyone told of one room (``RenderMemo``).
            let personal = text.contains("person") || text.contains("admin")
            compiled[name] = Compiled(
                subject: subject,
                body: try MustacheTemplate(string: Self.textPragma + body),
                personal: personal
            )
        }
        self.compiled = compiled
    }

    /// Renders the notice of `kind` for `channel`, or `nil` when no template exists for that pair.
    /// - Returns: the subject (empty for SMS and chat) and the body.
    /// - Parameter memo: renders already made for other recipients of the same room, incident and moment: a
    ///   template that names no recipient is rendered once for all of them.
    public func render(
        _ kind: NoticeKind,
        _ channel: NoticeChannel,
        _ context: NoticeContext,
        memo: RenderMemo? = nil
    ) -> (subject: String, body: String)? {
        let key = "\(kind.rawValue).\(channel.rawValue)"
        guard let entry = compiled[key] else { return nil }
        if !entry.personal, let done = memo?.rendered[key] { return done }
        let values = context.values
        let subject = entry.renderSubject(values).map(trimmingWhitespaceAndNewlines) ?? ""
        let body = entry.renderBody(values)
        // SMS and chat texts are one paragraph: the file's final newline is not part of the message.
        let rendered = (subject: subject, body: channel == .email ? body : trimmingWhitespaceAndNewlines(body))
        if !entry.personal { memo?.rendered[key] = rendered }
        return rendered
    }

    /// The renders of the notices planned together for one room (its participants, or its admins): what a
    /// template that names no recipient renders is kept and given to the next recipient. Use one memo per room and
    /// moment only (the incident, stage and room must be the same for every render through it).
    public final class RenderMemo {
        fileprivate var rendered: [String: (subject: String, body: String)] = [:]

        public init() {}
    }

    /// Makes every template plain text: nothing is HTML-escaped.
    static let textPragma = "{{% CONTENT_TYPE: TEXT}}"
}

/// The values a template sees: `incident`, `room`, `person`, `integration`, `admin` (README lists every field).
public struct NoticeContext: Sendable {
    public var incident: IncidentInfo
    public var stage: IncidentStage
    public var room: Room
    /// The recipient when a participant.
    public var person: Participant?
    /// The recipient when an admin: name and email.
    public var admin: (name: String, email: String)?

    public init(
        incident: IncidentInfo,
        stage: IncidentStage,
        room: Room,
        person: Participant?,
        admin: (name: String, email: String)? = nil
    ) {
        self.incident = incident
        self.stage = stage
        self.room = room
        self.person = person
        self.admin = admin
    }

    /// What Mustache is handed: the five objects, each looked up field by field as a template names them
    /// (``TemplateScope``), so rendering builds no dictionaries of every field.
    var values: TemplateScope { TemplateScope(self) }

}

/// The names a template sees (README lists every field): `incident` {id, title, severity, team, stage}, `room` {id,
/// state, reason, advice, note, join_url, meeting_id, passcode, host, integration, closed_by_operator}, `person`
/// {name, email, phone, role}, `integration` {name}, `admin` {name, email}. An absent value is absent (not empty), so
/// `{{#x}}` sections skip it and `{{x}}` renders nothing. Mustache asks for each name through ``MustacheParent``.
final class TemplateScope: MustacheParent {
    private let context: NoticeContext

    init(_ context: NoticeContext) { self.context = context }

    func child(named name: String) -> Any? { object(named: name) }

    /// The object `name` names (``child(named:)``, typed for ``DirectTemplate``).
    func object(named name: String) -> Fields? {
        switch name {
        case "incident", "room", "integration": return Fields(context, object: name)
        // Absent for notices not to a person (admin notices) or not to an admin: `{{#person}}` skips then.
        case "person": return context.person == nil ? nil : Fields(context, object: name)
        case "admin": return context.admin == nil ? nil : Fields(context, object: name)
        default: return nil
        }
    }

    /// One of the five objects.
    final class Fields: MustacheParent {
        private let context: NoticeContext
        private let object: String

        init(_ context: NoticeContext, object: String) {
            self.context = context
            self.object = object
        }

        func child(named name: String) -> Any? { text(named: name) }

        /// The field `name` names (``child(named:)``, typed for ``DirectTemplate``).
        func text(named name: String) -> String? {
            let text: String?
            switch (object, name) {
            case ("incident", "id"): text = context.incident.id
            case ("incident", "title"): text = context.incident.title
            case ("incident", "severity"): text = context.incident.severity
            case ("incident", "team"): text = context.incident.team
            case ("incident", "stage"): text = context.stage.rawValue
            case ("room", "id"): text = context.room.id
            case ("room", "state"): text = context.room.state.rawValue
            case ("room", "reason"): text = context.room.reason
            case ("room", "advice"): text = context.room.advice
            case ("room", "note"): text = context.room.note
            case ("room", "join_url"): text = context.room.joinURL
            case ("room", "meeting_id"): text = context.room.meetingID.map { String($0) }
            case ("room", "passcode"): text = context.room.passcode
            case ("room", "host"): text = context.room.hostUser
            case ("room", "integration"), ("integration", "name"): text = context.room.integration
            case ("room", "closed_by_operator"): text = context.room.closedByOperator ? "yes" : nil
            case ("person", "name"): text = context.person?.name
            case ("person", "email"): text = context.person?.email
            case ("person", "phone"): text = context.person?.phone
            case ("person", "role"): text = context.person?.role?.rawValue
            case ("admin", "name"): text = context.admin?.name
            case ("admin", "email"): text = context.admin?.email
            default: text = nil
            }
            return text
        }
    }
}

/// `text.trimmingCharacters(in: .whitespacesAndNewlines)`, with the usual case (ASCII at both ends) trimmed over
/// the bytes: Foundation's trimming cost more than a whole SMS's rendering. Where the text would start or end
/// with a character beyond ASCII after the ASCII blanks, Foundation trims the rest as before.
func trimmingWhitespaceAndNewlines(_ text: String) -> String {
    func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
    let utf8 = text.utf8
    var start = utf8.startIndex
    var end = utf8.endIndex
    while start < end, isBlank(utf8[start]) { start = utf8.index(after: start) }
    while end > start, isBlank(utf8[utf8.index(before: end)]) { end = utf8.index(before: end) }
    if start == end { return "" }
    let trimmed = String(text[start..<end])
    if utf8[start] >= 0x80 || utf8[utf8.index(before: end)] >= 0x80 {
        return trimmed.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return trimmed
}
