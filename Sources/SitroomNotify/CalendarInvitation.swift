import SitroomCore

/// An RFC 5545 iCalendar object with one event: the invitation to a situation room (`METHOD:REQUEST`) or its
/// cancellation (`METHOD:CANCEL`), per iTIP (RFC 5546 §3.2.2, §3.2.5) and iMIP (RFC 6047).
///
/// The `UID` is stable per room, so a calendar client files the cancellation against the invitation; the
/// cancellation carries a higher `SEQUENCE`. Text is escaped (RFC 5545 §3.3.11), lines are folded at 75 octets
/// without splitting a UTF-8 character (§3.1), and lines end in CRLF.
public struct CalendarInvitation: Sendable, Hashable {
    /// The iTIP method.
    public enum Method: String, Sendable {
        /// Invites the attendees (RFC 5546 §3.2.2).
        case request = "REQUEST"
        /// Withdraws the event (RFC 5546 §3.2.5).
        case cancel = "CANCEL"
    }

    /// `METHOD`: `REQUEST` or `CANCEL`.
    public var method: Method
    /// `<room id>@<domain of notify.email.from>`.
    public var uid: String
    /// 0 for the invitation, 1 for its cancellation.
    public var sequence: Int
    /// `DTSTAMP`: when this object was made, seconds since 1970.
    public var stamp: Double
    /// `DTSTART`: when the room opened, seconds since 1970.
    public var start: Double
    /// `DURATION` in seconds (the meeting's planned length).
    public var duration: Int
    /// `SUMMARY`.
    public var summary: String
    /// `DESCRIPTION` (plain text; an invitation gets the join link appended if it does not contain it, a
    /// cancellation is left as it is).
    public var description: String
    /// The join link: `LOCATION` and `URL`.
    public var joinURL: String
    /// `ORGANIZER`: the `notify.email.from` mailbox.
    public var organizer: Mailbox
    /// `ATTENDEE`s: the participants with an email address.
    public var attendees: [Mailbox]

    /// Creates the calendar object (the properties above, in the same order; `duration` in seconds).
    public init(
        method: Method,
        uid: String,
        sequence: Int,
        stamp: Double,
        start: Double,
        duration: Int = 3600,
        summary: String,
        description: String,
        joinURL: String,
        organizer: Mailbox,
        attendees: [Mailbox]
    ) {
        self.method = method
        self.uid = uid
        self.sequence = sequence
        self.stamp = stamp
        self.start = start
        self.duration = duration
        self.summary = summary
        self.description = description
        self.joinURL = joinURL
        self.organizer = organizer
        self.attendees = attendees
    }

    /// The `UID` of a room's event: `<room id>@<domain>`.
    public static func uid(roomID: String, domain: String) -> String {
        "\(roomID)@\(domain.isEmpty ? "localhost" : domain)"
    }

    /// The iCalendar text: folded content lines ending in CRLF.
    public func rendered() -> String {
        var description = self.description.trimmingCharacters(in: .whitespacesAndNewlines)
        if method == .request && !joinURL.isEmpty && !description.contains(joinURL) {
            description += (description.isEmpty ? "" : "\n\n") + "Join: \(joinURL)"
        }
        var lines = [
            "BEGIN:VCALENDAR",
            "PRODID:-//sitroom//sitroom notifier//EN",
            "VERSION:2.0",
            "CALSCALE:GREGORIAN",
            "METHOD:\(method.rawValue)",
            "BEGIN:VEVENT",
            "UID:\(Self.text(uid))",
            "SEQUENCE:\(sequence)",
            "DTSTAMP:\(Self.dateTime(stamp))",
            "DTSTART:\(Self.dateTime(start))",
            "DURATION:PT\(max(60, duration) / 60)M",
            "SUMMARY:\(Self.text(summary))",
            "DESCRIPTION:\(Self.text(description))",
        ]
        if !joinURL.isEmpty {
            lines.append("LOCATION:\(Self.text(joinURL))")
            lines.append("URL:\(joinURL)")
        }
        lines.append("ORGANIZER\(Self.commonName(organizer.name)):mailto:\(organizer.address)")
        for attendee in attendees {
            let partstat = method == .cancel ? "" : ";PARTSTAT=NEEDS-ACTION;RSVP=TRUE"
            lines.append(
                "ATTENDEE\(Self.commonName(attendee.name));CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT\(partstat)"
                    + ":mailto:\(attendee.address)"
            )
        }
        lines.append("STATUS:\(method == .cancel ? "CANCELLED" : "CONFIRMED")")
        lines.append("TRANSP:OPAQUE")
        lines.append("END:VEVENT")
        lines.append("END:VCALENDAR")
        return lines.map(Self.fold).joined(separator: "\r\n") + "\r\n"
    }

    /// `;CN=...` for a display name (a quoted parameter value without `"`, RFC 5545 §3.2), or nothing.
    static func commonName(_ name: String?) -> String {
        guard let name, !name.isEmpty else { return "" }
        let clean = name.filter { $0 != "\"" && !$0.isNewline && $0 != "\u{0}" }
        return ";CN=\"\(clean)\""
    }

    /// RFC 5545 §3.3.11 TEXT: backslash, semicolon and comma escaped, line breaks as `\n`.
    static func text(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case ";": out += "\\;"
            case ",": out += "\\,"
            case "\r\n", "\n", "\r": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// RFC 5545 §3.3.5 DATE-TIME in UTC: `20261129T120000Z`.
    static func dateTime(_ seconds: Double) -> String {
        rfc3339UTC(seconds).filter { $0 != "-" && $0 != ":" }
    }

    /// RFC 5545 §3.1 folding: lines longer than 75 octets are split, each continuation starting with a space;
    /// a UTF-8 character is never split.
    static func fold(_ line: String) -> String {
        var pieces: [String] = []
        var current = ""
        var octets = 0
        var limit = 75
        for character in line {
            let size = String(character).utf8.count
            if octets + size > limit {
                pieces.append(current)
                current = ""
                octets = 0
                limit = 74  // the leading space of a continuation line counts
            }
            current.append(character)
            octets += size
        }
        pieces.append(current)
        return pieces.joined(separator: "\r\n ")
    }
}
