/// The kind of a notice: which template renders it (SPEC §6).
public enum NoticeKind: String, Sendable, Codable, CaseIterable {
    case roomReady = "room-ready"
    case roomEnded = "room-ended"
    case roomFailed = "room-failed"
    case invitation
    case followUp = "follow-up"
    case adminRoomFailed = "admin-room-failed"
    case adminReauthorize = "admin-reauthorize"
    case adminWaiting = "admin-waiting"
    /// To the admins, once per room: participants the incident's events named who cannot be told (no email or
    /// phone, or a malformed one).
    case adminUnreachable = "admin-unreachable"
    /// To a participant who has not joined the meeting `notify.nudge.after` after the room was ready (known from
    /// Zoom's meeting events): one reminder with the link; withdrawn when they join or the room ends.
    case nudge
}

/// How a notice travels.
public enum NoticeChannel: String, Sendable, Codable, CaseIterable {
    case email, sms, chat
}

/// Where a notice stands in the outbox (SPEC §6).
public enum NoticeState: String, Sendable, Codable, CaseIterable {
    /// Queued, never tried.
    case pending
    /// Handed to its transport; a notice found `sending` at start-up was interrupted (crash) and is sent again,
    /// with the same `Message-ID`.
    case sending
    /// The transport accepted it (``Notice/detail`` says where it went).
    case sent
    /// The last attempt failed; tried again at ``Notice/nextAttemptAt``.
    case retrying
    /// Given up (permanent failure, or `notify.retry.give_up_after` passed); ``Notice/detail`` says why.
    /// `notify resend` queues it again.
    case dead
    /// Never sent, and never will be: its room ended before it was due (a follow-up waiting for
    /// `conference.follow_up_delay`); ``Notice/detail`` says so.
    case withdrawn

    /// Whether nothing more is tried without `notify resend`: `sent`, `dead` or `withdrawn`.
    public var isSettled: Bool { self == .sent || self == .dead || self == .withdrawn }
}

/// One message in the outbox, rendered when it was queued so every retry sends the same bytes.
///
/// A notice is keyed by (room, person, kind, channel): nobody gets the same notice twice (SPEC §6).
public struct Notice: Sendable, Codable, Hashable {
    /// Stable id derived from the key; also the local part of the email `Message-ID`.
    public var id: String
    public var roomID: String
    public var incidentID: String
    /// ``Participant/personID`` or `admin:<email>`.
    public var personID: String
    public var kind: NoticeKind
    public var channel: NoticeChannel
    /// Email address (email), E.164 number (sms), or `chat webhook` (chat: the URL itself is a secret kept in
    /// the configuration).
    public var recipient: String
    /// Display name of the recipient.
    public var recipientName: String
    /// Email subject; empty for SMS.
    public var subject: String
    /// Plain-text body.
    public var body: String
    public var state: NoticeState
    public var attempts: Int
    /// Seconds since 1970.
    public var createdAt: Double
    /// Seconds since 1970 when the next delivery attempt is due.
    public var nextAttemptAt: Double
    /// Why the last attempt failed, or where it went once sent (a file path, a gateway id).
    public var detail: String?
    /// The RFC 5545 iCalendar object sent as the `text/calendar` part (invitations and their cancellations),
    /// rendered when the notice was queued; `nil` for other notices.
    public var calendar: String?
    /// Seconds since 1970 from which `give_up_after` counts: ``createdAt``, or when `notify resend` queued it
    /// again; `nil` means ``createdAt``.
    public var lifetimeStart: Double?
    /// Seconds since 1970 when the transport accepted it.
    public var sentAt: Double?
    /// Email: the id of the notice that began this person's thread about the room (the `room-ready` or
    /// `invitation` email), so this one is sent as a reply to it (`In-Reply-To`, `References`); `nil` for the
    /// first message and for other channels.
    public var threadNoticeID: String?

    public init(
        roomID: String,
        incidentID: String,
        personID: String,
        kind: NoticeKind,
        channel: NoticeChannel,
        recipient: String,
        recipientName: String,
        subject: String,
        body: String,
        createdAt: Double,
        calendar: String? = nil
    ) {
        self.id = Notice.id(roomID: roomID, personID: personID, kind: kind, channel: channel)
        self.roomID = roomID
        self.incidentID = incidentID
        self.personID = personID
        self.kind = kind
        self.channel = channel
        self.recipient = recipient
        self.recipientName = recipientName
        self.subject = subject
        self.body = body
        self.state = .pending
        self.attempts = 0
        self.createdAt = createdAt
        self.nextAttemptAt = createdAt
        self.calendar = calendar
    }

    /// The stable id of the notice with this key: 16 hex digits of FNV-1a (64-bit) over the key fields.
    public static func id(roomID: String, personID: String, kind: NoticeKind, channel: NoticeChannel) -> String {
        let key = "\(roomID)\u{0}\(personID)\u{0}\(kind.rawValue)\u{0}\(channel.rawValue)"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
