import Foundation
import Mustache
import SitroomCore

/// The notice templates of one configuration generation, compiled (SPEC §6).
///
/// Files are `etc/templates/<kind>.<channel>.mustache`; an email template starts with a `Subject: ...` line,
/// then a blank line, then the body. Templates are plain text: nothing is HTML-escaped. A kind/channel
/// without a file is not sent on that channel (the bundled `etc/templates/` has one for every notice sent).
public struct NoticeTemplates: Sendable {
    private let compiled: [String: (subject: MustacheTemplate?, body: MustacheTemplate)]

    /// Compiles `templates` (file base name without `.mustache` → text).
    /// - Throws: `MustacheTemplate.Error` for a template that does not compile (config validation catches it first).
    public init(_ templates: [String: String] = [:]) throws {
        var compiled: [String: (subject: MustacheTemplate?, body: MustacheTemplate)] = [:]
        for (name, text) in templates {
            let isEmail = name.hasSuffix(".email")
            var subject: MustacheTemplate? = nil
            var body = text
            if isEmail, text.hasPrefix("Subject:") {
                let parts = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
                subject = try MustacheTemplate(string: Self.textPragma + parts[0].dropFirst("Subject:".count).trimmingCharacters(in: .whitespaces))
                body = parts.count > 1 ? String(parts[1].drop(while: { $0 == "\n" })) : ""
            }
            compiled[name] = (subject, try MustacheTemplate(string: Self.textPragma + body))
        }
        self.compiled = compiled
    }

    /// Renders the notice of `kind` for `channel`, or `nil` when no template exists for that pair.
    /// - Returns: the subject (empty for SMS and chat) and the body.
    public func render(_ kind: NoticeKind, _ channel: NoticeChannel, _ context: NoticeContext) -> (subject: String, body: String)? {
        guard let entry = compiled["\(kind.rawValue).\(channel.rawValue)"] else { return nil }
        let values = context.values
        let subject = entry.subject?.render(values).trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let body = entry.body.render(values)
        // SMS and chat texts are one paragraph: the file's final newline is not part of the message.
        return (subject, channel == .email ? body : body.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static let textPragma = "{{% CONTENT_TYPE: TEXT}}"
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
        incident: IncidentInfo, stage: IncidentStage, room: Room, person: Participant?, admin: (name: String, email: String)? = nil
    ) {
        self.incident = incident
        self.stage = stage
        self.room = room
        self.person = person
        self.admin = admin
    }

    /// The dictionary handed to Mustache.
    var values: [String: Any] {
        // Absent values are left out (not `nil`), so `{{#x}}` sections skip them and `{{x}}` renders nothing.
        func object(_ fields: [String: String?]) -> [String: String] { fields.compactMapValues { $0 } }
        return [
            "incident": object([
                "id": incident.id, "title": incident.title, "severity": incident.severity, "team": incident.team,
                "stage": stage.rawValue,
            ]),
            "room": object([
                "id": room.id, "state": room.state.rawValue, "reason": room.reason, "advice": room.advice,
                "note": room.note, "join_url": room.joinURL,
                "meeting_id": room.meetingID.map { String($0) }, "passcode": room.passcode, "host": room.hostUser,
                "integration": room.integration, "closed_by_operator": room.closedByOperator ? "yes" : nil,
            ]),
            "person": object([
                "name": person?.name, "email": person?.email, "phone": person?.phone, "role": person?.role?.rawValue,
            ]),
            "integration": object(["name": room.integration]),
            "admin": object(["name": admin?.name, "email": admin?.email]),
        ]
    }

}
