import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomStore

/// Decides who gets which notice when a room becomes ready, ends or fails (SPEC §6), and queues them in the
/// caller's LMDB write transaction, so a notice is durable exactly when the room change that causes it is.
///
/// Every notice is keyed by (room, person, kind, channel) and queued with `noOverwrite`: planning again (a later
/// `updated` event, a restart) queues only what is missing, so nobody gets the same notice twice, and people
/// added later get what they missed. Everything a notice sends (text, subject, calendar object) is rendered
/// here, once, so every retry sends the same bytes.
struct NoticePlanner {
    let configuration: Configuration
    let templates: NoticeTemplates
    let store: Store

    /// The most segments an SMS may take; longer texts are shortened, never cutting a link.
    static let maxSMSSegments = 3
    /// The person id of the chat channel's one "recipient" per room.
    static let chatPerson = "chat"

    private var notify: NotifySettings { configuration.daemon.notify }
    private var isMeeting: Bool { configuration.daemon.conference.component == .meeting }

    /// Notices for a room that became (or is) `ready`: with the `video` component a `room-ready` email/SMS per
    /// participant and channel; with `meeting` an `invitation` email (`METHOD:REQUEST`) to each participant
    /// with an email, then the `follow-up` on each `follow_up` channel, due `conference.follow_up_delay` after
    /// the invitation (at once for someone who got no invitation); and `room-ready` on the chat webhook.
    /// - Returns: The notices newly queued.
    func roomReady(
        room: Room,
        record: IncidentRecord,
        now: Double,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        var queued: [Notice] = []
        let memo = NoticeTemplates.RenderMemo()
        for person in record.participants {
            let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: person)
            if isMeeting {
                if notify.channels.contains(.email), let email = person.email,
                    try !queuedBefore(.invitation, .email, person, room, txn),
                    let rendered = templates.render(.invitation, .email, context, memo: memo)
                {
                    let calendar = invitation(
                        .request,
                        room: room,
                        record: record,
                        summary: rendered.subject,
                        description: rendered.body,
                        now: now
                    )
                    let notice = make(
                        room: room,
                        record: record,
                        person: person,
                        kind: .invitation,
                        channel: .email,
                        recipient: email,
                        rendered: rendered,
                        now: now,
                        calendar: calendar
                    )
                    if try txn.outbox.enqueue(notice) { queued.append(notice) }
                }
                let invitation = Notice.id(
                    roomID: room.id,
                    personID: person.personID,
                    kind: .invitation,
                    channel: .email
                )
                let invited = try exists(invitation, txn)
                for channel in configuration.daemon.conference.followUp
                where try !queuedBefore(.followUp, channel, person, room, txn) {
                    guard
                        var notice = participantNotice(.followUp, channel, person, room, record, context, now, memo)
                    else {
                        continue
                    }
                    if invited {
                        // The invitation carries the link already: the follow-up reaches those who did not open it.
                        let due = now + configuration.daemon.conference.followUpDelay
                        notice.nextAttemptAt = due
                        notice.lifetimeStart = due
                        if notice.channel == .email { notice.threadNoticeID = invitation }
                    }
                    if try txn.outbox.enqueue(notice) { queued.append(notice) }
                }
            } else {
                for channel in notify.channels where try !queuedBefore(.roomReady, channel, person, room, txn) {
                    if let notice = participantNotice(.roomReady, channel, person, room, record, context, now, memo),
                        try txn.outbox.enqueue(notice)
                    {
                        queued.append(notice)
                    }
                }
            }
        }
        if let notice = chatNotice(.roomReady, room, record, now), try txn.outbox.enqueue(notice) {
            queued.append(notice)
        }
        queued += try planNudges(room: room, record: record, now: now, txn)
        if !record.unreachable.isEmpty {
            // The admins hear once per room (the notices' ids are the room's) who could not be told, and why.
            var listing = room
            listing.reason = Self.unreachableList(record.unreachable)
            queued += try admins(.adminUnreachable, room: listing, record: record, now: now, txn)
        }
        return queued
    }

    /// The `nudge` of each participant with an email who has not joined, on each notify channel, due
    /// `notify.nudge.after` from now: only when that is not `0s` and the room's integration receives Zoom's meeting
    /// events (without them nobody can be known to have joined). Keyed like every notice, so planning again queues
    /// a nudge only for someone new; one who joined meanwhile gets none. Email nudges thread with the first mail.
    /// - Returns: The notices newly queued.
    private func planNudges(
        room: Room,
        record: IncidentRecord,
        now: Double,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        guard notify.nudgeAfter > 0, let integration = room.integration,
            configuration.integrations[integration]?.events.any == true
        else { return [] }
        var queued: [Notice] = []
        let due = now + notify.nudgeAfter
        let memo = NoticeTemplates.RenderMemo()
        for person in record.participants where person.email != nil {
            if let live = room.live, live.standing(of: person) != .notYet { continue }
            let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: person)
            var thread: String? = nil
            for kind in [NoticeKind.invitation, .roomReady] where thread == nil {
                let id = Notice.id(roomID: room.id, personID: person.personID, kind: kind, channel: .email)
                if try exists(id, txn) { thread = id }
            }
            for channel in notify.channels where try !queuedBefore(.nudge, channel, person, room, txn) {
                guard var notice = participantNotice(.nudge, channel, person, room, record, context, now, memo) else {
                    continue
                }
                notice.nextAttemptAt = due
                notice.lifetimeStart = due
                if notice.channel == .email { notice.threadNoticeID = thread }
                if try txn.outbox.enqueue(notice) { queued.append(notice) }
            }
        }
        return queued
    }

    /// Withdraws `person`'s nudges that were never tried: they joined the meeting.
    /// - Returns: The notices withdrawn (state `withdrawn`), for the notifier to forget.
    func joined(room: Room, person: Participant, now: Double, _ txn: borrowing StoreTransaction) throws -> [Notice] {
        try withdraw([.nudge], room: room, people: [person], now: now, detail: "not sent: they joined the meeting", txn)
    }

    /// Withdraws `kinds` of notices of `people` in `room` still waiting for their time (never tried).
    private func withdraw(
        _ kinds: [NoticeKind],
        room: Room,
        people: [Participant],
        now: Double,
        detail: String,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        var withdrawn: [Notice] = []
        for person in people {
            for kind in kinds {
                for channel in NoticeChannel.allCases where channel != .chat {
                    let id = Notice.id(roomID: room.id, personID: person.personID, kind: kind, channel: channel)
                    guard var notice = try txn.outbox.get(id), notice.state == .pending,
                        notice.attempts == 0
                    else { continue }
                    notice.state = .withdrawn
                    notice.detail = detail
                    try txn.outbox.put(notice)
                    withdrawn.append(notice)
                }
            }
        }
        return withdrawn
    }

    /// `Name: reason` per person, one per line (for `admin-unreachable`'s `room.reason`).
    static func unreachableList(_ people: [UnreachablePerson]) -> String {
        people.map { "\($0.name): \($0.reason)" }.joined(separator: "\n")
    }

    /// Notices for a room that ended: `room-ended` on each channel to each participant who was told about the
    /// room on it (a `room-ready`, `invitation` or `follow-up` notice exists), the email carrying
    /// `METHOD:CANCEL` for the invitation's `UID` (with a higher `SEQUENCE`) when one was sent; and
    /// `room-ended` on the chat webhook when `room-ready` went there.
    /// - Returns: The notices newly queued.
    func roomEnded(
        room: Room,
        record: IncidentRecord,
        now: Double,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        var queued: [Notice] = try withdrawFollowUps(room: room, record: record, now: now, txn)
        queued += try withdraw(
            [.nudge],
            room: room,
            people: record.participants,
            now: now,
            detail: "not sent: the room ended before it was due",
            txn
        )
        let memo = NoticeTemplates.RenderMemo()
        for person in record.participants {
            let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: person)
            for channel in NoticeChannel.allCases where channel != .chat {
                // The first notice that told this person about the room on this channel begins the thread.
                var first: String? = nil
                for kind in [NoticeKind.roomReady, .invitation, .followUp] where first == nil {
                    let id = Notice.id(roomID: room.id, personID: person.personID, kind: kind, channel: channel)
                    if try exists(id, txn) { first = id }
                }
                guard let first, let recipient = contact(person, channel),
                    let rendered = templates.render(.roomEnded, channel, context, memo: memo)
                else { continue }
                var calendar: String? = nil
                if channel == .email,
                    try exists(room: room.id, person: person.personID, kind: .invitation, channel: .email, txn)
                {
                    calendar = invitation(
                        .cancel,
                        room: room,
                        record: record,
                        summary: rendered.subject,
                        description: rendered.body,
                        now: now
                    )
                }
                var notice = make(
                    room: room,
                    record: record,
                    person: person,
                    kind: .roomEnded,
                    channel: channel,
                    recipient: recipient,
                    rendered: rendered,
                    now: now,
                    calendar: calendar
                )
                if channel == .email { notice.threadNoticeID = first }
                if try txn.outbox.enqueue(notice) { queued.append(notice) }
            }
        }
        if try exists(room: room.id, person: Self.chatPerson, kind: .roomReady, channel: .chat, txn),
            let notice = chatNotice(.roomEnded, room, record, now), try txn.outbox.enqueue(notice)
        {
            queued.append(notice)
        }
        return queued
    }

    /// Withdraws the room's follow-ups still waiting for `conference.follow_up_delay` (never tried): the room
    /// ended before they were due, and a "join now" after it ended would mislead.
    /// - Returns: The notices withdrawn (state `withdrawn`), for the notifier to forget.
    private func withdrawFollowUps(
        room: Room,
        record: IncidentRecord,
        now: Double,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        var withdrawn: [Notice] = []
        for person in record.participants {
            for channel in NoticeChannel.allCases where channel != .chat {
                let id = Notice.id(roomID: room.id, personID: person.personID, kind: .followUp, channel: channel)
                guard var notice = try txn.outbox.get(id), notice.state == .pending,
                    notice.attempts == 0, notice.nextAttemptAt > now
                else { continue }
                notice.state = .withdrawn
                notice.detail = "not sent: the room ended before it was due"
                try txn.outbox.put(notice)
                withdrawn.append(notice)
            }
        }
        return withdrawn
    }

    /// Notices for a room that failed: `room-failed` on the chat webhook, and to participants on each
    /// configured channel that has a `room-failed` template (none is bundled: admins are told instead).
    /// - Returns: The notices newly queued.
    func roomFailed(
        room: Room,
        record: IncidentRecord,
        now: Double,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        var queued: [Notice] = []
        let memo = NoticeTemplates.RenderMemo()
        for person in record.participants {
            let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: person)
            for channel in notify.channels {
                if let notice = participantNotice(.roomFailed, channel, person, room, record, context, now, memo),
                    try txn.outbox.enqueue(notice)
                {
                    queued.append(notice)
                }
            }
        }
        if let notice = chatNotice(.roomFailed, room, record, now), try txn.outbox.enqueue(notice) {
            queued.append(notice)
        }
        return queued
    }

    /// Admin notices (`admin-room-failed`, `admin-reauthorize`, `admin-waiting`, `admin-unreachable`): to each admin of
    /// `notify.admins` by email and by SMS, for each contact they have and each template that exists.
    /// - Parameters:
    ///   - kind: The admin notice kind.
    ///   - room: The room concerned (for an integration, a stand-in room whose id names it), with its reason.
    ///   - record: The room's incident, if any.
    /// - Returns: The notices newly queued.
    func admins(
        _ kind: NoticeKind,
        room: Room,
        record: IncidentRecord?,
        now: Double,
        _ txn: borrowing StoreTransaction
    ) throws -> [Notice] {
        var queued: [Notice] = []
        let incident = record?.info ?? IncidentInfo(id: room.incidentID, title: "-")
        let memo = NoticeTemplates.RenderMemo()
        for admin in notify.admins {
            guard let id = admin.email ?? admin.phone else { continue }
            let context = NoticeContext(
                incident: incident,
                stage: record?.stage ?? .opened,
                room: room,
                person: nil,
                admin: (admin.name, admin.email ?? "")
            )
            for (channel, recipient) in [(NoticeChannel.email, admin.email), (.sms, admin.phone)] {
                guard let recipient, let rendered = templates.render(kind, channel, context, memo: memo) else {
                    continue
                }
                let body =
                    channel == .sms ? SMSText.fit(rendered.body, maxSegments: Self.maxSMSSegments) : rendered.body
                let notice = Notice(
                    roomID: room.id,
                    incidentID: room.incidentID,
                    personID: "admin:\(id)",
                    kind: kind,
                    channel: channel,
                    recipient: recipient,
                    recipientName: admin.name,
                    subject: rendered.subject,
                    body: body,
                    createdAt: now
                )
                if try txn.outbox.enqueue(notice) { queued.append(notice) }
            }
        }
        return queued
    }

    // MARK: Building notices

    private func contact(_ person: Participant, _ channel: NoticeChannel) -> String? {
        switch channel {
        case .email: return person.email
        case .sms: return person.phone
        case .chat: return nil
        }
    }

    private func participantNotice(
        _ kind: NoticeKind,
        _ channel: NotifyChannel,
        _ person: Participant,
        _ room: Room,
        _ record: IncidentRecord,
        _ context: NoticeContext,
        _ now: Double,
        _ memo: NoticeTemplates.RenderMemo? = nil
    ) -> Notice? {
        guard let noticeChannel = NoticeChannel(rawValue: channel.rawValue),
            let recipient = contact(person, noticeChannel),
            let rendered = templates.render(kind, noticeChannel, context, memo: memo)
        else { return nil }
        return make(
            room: room,
            record: record,
            person: person,
            kind: kind,
            channel: noticeChannel,
            recipient: recipient,
            rendered: rendered,
            now: now
        )
    }

    private func chatNotice(_ kind: NoticeKind, _ room: Room, _ record: IncidentRecord, _ now: Double) -> Notice? {
        guard notify.chatWebhookURL != nil else { return nil }
        let context = NoticeContext(incident: record.info, stage: record.stage, room: room, person: nil)
        guard let rendered = templates.render(kind, .chat, context) else { return nil }
        return Notice(
            roomID: room.id,
            incidentID: record.info.id,
            personID: Self.chatPerson,
            kind: kind,
            channel: .chat,
            recipient: "chat webhook",
            recipientName: "chat",
            subject: "",
            body: rendered.body,
            createdAt: now
        )
    }

    private func make(
        room: Room,
        record: IncidentRecord,
        person: Participant,
        kind: NoticeKind,
        channel: NoticeChannel,
        recipient: String,
        rendered: (subject: String, body: String),
        now: Double,
        calendar: String? = nil
    ) -> Notice {
        let body = channel == .sms ? SMSText.fit(rendered.body, maxSegments: Self.maxSMSSegments) : rendered.body
        return Notice(
            roomID: room.id,
            incidentID: record.info.id,
            personID: person.personID,
            kind: kind,
            channel: channel,
            recipient: recipient,
            recipientName: person.name,
            subject: rendered.subject,
            body: body,
            createdAt: now,
            calendar: calendar
        )
    }

    /// The room's calendar object: `UID` `<room id>@<from domain>`, `DTSTART` when the room was opened, the
    /// participants with an email as attendees; `SEQUENCE` 0 for the request, 1 for the cancellation.
    private func invitation(
        _ method: CalendarInvitation.Method,
        room: Room,
        record: IncidentRecord,
        summary: String,
        description: String,
        now: Double
    ) -> String {
        let organizer = Mailbox(parsing: notify.email.from)
        let attendees = record.participants.compactMap { person in
            person.email.map { Mailbox(name: person.name, address: $0) }
        }
        return CalendarInvitation(
            method: method,
            uid: CalendarInvitation.uid(roomID: room.id, domain: organizer.domain),
            sequence: method == .request ? 0 : 1,
            stamp: now,
            start: room.createdAt,
            duration: Int(configuration.daemon.conference.invitationDuration),
            summary: summary,
            description: description,
            joinURL: room.joinURL ?? "",
            organizer: organizer,
            attendees: attendees
        ).rendered()
    }

    private func exists(
        room: String,
        person: String,
        kind: NoticeKind,
        channel: NoticeChannel,
        _ txn: borrowing StoreTransaction
    ) throws -> Bool {
        try exists(Notice.id(roomID: room, personID: person, kind: kind, channel: channel), txn)
    }

    /// Whether the notice `id` was queued and not withdrawn (a withdrawn one told nobody anything); read from
    /// the outbox index, no notice decoded.
    /// Whether the notice (room, person, kind, channel) was queued before, in any state (``Store/enqueue(_:_:)``
    /// would refuse it): it is not rendered again (an event on a ready room plans its notices again, for people it
    /// adds).
    private func queuedBefore(
        _ kind: NoticeKind,
        _ channel: NotifyChannel,
        _ person: Participant,
        _ room: Room,
        _ txn: borrowing StoreTransaction
    ) throws -> Bool {
        guard let noticeChannel = NoticeChannel(rawValue: channel.rawValue) else { return false }
        let id = Notice.id(roomID: room.id, personID: person.personID, kind: kind, channel: noticeChannel)
        return try txn.outbox.contains(id)
    }

    private func exists(_ id: String, _ txn: borrowing StoreTransaction) throws -> Bool {
        try txn.outbox.isQueuedAndNotWithdrawn(id)
    }
}
