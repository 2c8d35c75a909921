import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRuntime
import SitroomStore

// Over 500 lines on purpose: one actor owns the outbox's delivery (control commands, scheduling with retries,
// delivery through the transports); its three parts are marked below and share the in-flight and due sets.

/// Delivers the outbox: every queued notice at least once, retried with capped exponential backoff, parked
/// as `dead` after `notify.retry.give_up_after` or a permanent failure (SPEC §6). The outbox lives in LMDB,
/// so a restart loses nothing: notices not yet `sent` are delivered again (transports are idempotent per id).
///
/// A notice goes `pending` → `sending` (committed before the transport is called) → `sent`, or `retrying`
/// (with its next attempt time) → ... → `dead`. One found `sending` at start-up was interrupted (crash, kill)
/// and is sent again with the same `Message-ID`.
///
/// Each channel (email, sms, chat) has its own workers, so a slow or dead transport never holds up another
/// channel, and nothing here holds up rooms: the provisioner only commits notices and tells the notifier.
public actor Notifier {
    private let executor = ThreadExecutor(name: "sitroom-notify")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Workers per channel: at most this many batches of a channel's notices are with their transport at once.
    static let workersPerChannel: [NoticeChannel: Int] = [.email: 2, .sms: 4, .chat: 1]

    /// The most notices a worker commits `sending` in one transaction (group commit of the outbox's states) and
    /// hands to its transport as one batch (the file transports fsync their directory once per batch).
    static let batchSize = 64

    /// Seconds before notices are read again after the outbox could not be read (an LMDB error).
    static let readRetryPause: Double = 1

    private let store: Store
    private let clock: any WallClock
    private let logger: Logger
    private let connections = NoticeConnections(
        smtpConnections: Notifier.workersPerChannel[.email] ?? 2,
        httpConnectionsPerOrigin: 4
    )
    private var transports: [NoticeChannel: any NoticeTransport] = [:]
    private var retry = RetrySettings()

    /// A notice not yet sent or dead.
    private struct Due {
        /// Seconds since 1970 when the next attempt is due.
        var at: Double
        var channel: NoticeChannel
        /// Tie-breakers among notices due at the same time: queued earlier first, then invitations before
        /// their follow-ups.
        var createdAt: Double
        var rank: Int
    }
    private var due: [String: Due] = [:]
    private var inFlight: Set<String> = []
    /// Notices committed `sending` (their attempt counted) by the commit that queued them, in this process
    /// (``claimedAtCommit(_:now:)``): their first delivery needs no commit of its own.
    private var claimed: Set<String> = []
    private var workers: [NoticeChannel: Int] = [:]
    private var timer: Task<Void, Never>?
    private var timerAt: Double?
    private var stopped = false

    /// Creates the notifier; it delivers nothing until ``configure(_:varDirectory:)`` and ``restore()``.
    /// - Parameters:
    ///   - store: The LMDB store holding the outbox.
    ///   - clock: Time for backoff and the `Date:` of messages.
    ///   - logger: Where deliveries are logged (never a secret or a webhook URL).
    public init(store: Store, clock: any WallClock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.logger = logger
    }

    /// Whether an integration's meeting events are complete now (``MeetingEventsReadiness``); a nudge waits while not.
    private var eventsComplete: @Sendable (String) -> Bool = { _ in true }

    /// Seconds a nudge waits when its room's meeting events may be incomplete.
    static let nudgeHold: Double = 15

    /// Sets how the notifier asks whether an integration's meeting events are complete.
    public func setEventsReadiness(_ complete: @escaping @Sendable (String) -> Bool) { eventsComplete = complete }

    /// What to do with a due `nudge`, decided against the room and incident as stored: send it, withdraw it (the
    /// person joined, or the room is over), or hold it (the room's meeting events may be incomplete: a subscription
    /// reconnecting or reconciling, so someone may have joined unheard).
    enum NudgeVerdict {
        case send
        case withdraw(String)
        case hold
    }

    nonisolated static func nudgeVerdict(
        _ notice: Notice,
        room: Room?,
        record: IncidentRecord?,
        eventsComplete: (String) -> Bool
    ) -> NudgeVerdict {
        guard let room, room.state.isOpen, !room.endRequested else { return .withdraw("not sent: the room is over") }
        if let person = record?.participants.first(where: { $0.personID == notice.personID }),
            let live = room.live, live.standing(of: person) != .notYet
        {
            return .withdraw("not sent: they joined the meeting")
        }
        if let integration = room.integration, !eventsComplete(integration) { return .hold }
        return .send
    }

    /// Applies a configuration generation: transports (SPEC §3 `notify.email`, `notify.sms`, `notify.chat`)
    /// and retry policy. A password file that cannot be read leaves its channel failing (and retrying) with
    /// the reason until a later generation fixes it.
    /// - Parameters:
    ///   - configuration: The generation.
    ///   - varDirectory: The daemon's `var/` (maildir in `mail/`, SMS files in `sms/`).
    public func configure(_ configuration: Configuration, varDirectory: String) {
        let notify = configuration.daemon.notify
        retry = notify.retry
        switch notify.email {
        case .maildir(let from):
            transports[.email] = MaildirTransport(directory: "\(varDirectory)/mail", from: from)
        case .smtp(let settings):
            transports[.email] = smtpTransport(settings)
        }
        switch notify.sms {
        case .file:
            transports[.sms] = SMSFileTransport(directory: "\(varDirectory)/sms")
        case .http(let url, let from, let username, let passwordFile):
            do {
                let password = try IntegrationRegistry.readSecret(passwordFile, key: "notify.sms.password_file")
                transports[.sms] = connections.smsTransport(
                    url: url,
                    from: from,
                    username: username,
                    password: password
                )
            } catch {
                logger.error("the SMS gateway cannot be used", metadata: ["error": "\(error)"])
                transports[.sms] = UnavailableTransport(reason: "\(error)")
            }
        }
        if let url = notify.chatWebhookURL {
            transports[.chat] = connections.chatTransport(url: url)
        } else {
            transports[.chat] = nil
        }
        poke()
    }

    private func smtpTransport(_ settings: SMTPSettings) -> any NoticeTransport {
        var credentials: (user: String, password: String)? = nil
        if let username = settings.username {
            var password = ""
            if let file = settings.passwordFile {
                do {
                    password = try IntegrationRegistry.readSecret(file, key: "notify.email.password_file")
                } catch {
                    logger.error("the SMTP server cannot be used", metadata: ["error": "\(error)"])
                    return UnavailableTransport(reason: "\(error)")
                }
            }
            credentials = (username, password)
        }
        return connections.smtpTransport(settings, credentials: credentials)
    }

    /// Replaces the transport of a channel (tests).
    func setTransport(_ transport: (any NoticeTransport)?, for channel: NoticeChannel) {
        transports[channel] = transport
        poke()
    }

    /// Sets the retry policy (tests).
    func setRetry(_ settings: RetrySettings) {
        retry = settings
    }

    /// Loads the notices still to deliver from the store (start-up) and delivers those due. A notice left
    /// `sending` by the last run is due at once. Only notices not yet `sent` or `dead` are decoded (found in the
    /// outbox index).
    /// - Complexity: O(outbox) index entries, plus a decode per notice still to deliver.
    public func restore() throws {
        let store = self.store
        let pending: [Notice] = try store.read { txn in try txn.outbox.matching({ !$0.isSettled }) }
        for notice in pending { track(notice) }
        poke()
    }

    /// Tells the notifier that notices were committed to the outbox.
    public func enqueued(_ notices: [Notice]) {
        for notice in notices {
            if notice.state == .sending { claimed.insert(notice.id) }
            track(notice)
        }
        // In a burst many rooms' notices arrive one message after another: one look at the queue (an O(outbox)
        // scan) for all that came before it runs.
        guard !pokeScheduled else { return }
        pokeScheduled = true
        Task {
            self.pokeScheduled = false
            self.poke()
        }
    }

    /// Looks at the queue again (every few seconds, from the daemon's timer): a notice whose time came is started
    /// even if the wake-up planned for it was lost.
    public func tick() { poke() }

    /// Stops starting deliveries and timers. A delivery already with its transport finishes (or times out); one
    /// interrupted by the process exiting stays `sending` and is sent again at the next start.
    public func stop() {
        flushOutcomes()
        stopped = true
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    /// `notices`, just planned, with those due now marked `sending` and their first attempt counted, for the commit
    /// that queues them: their first delivery then needs no commit of its own (docs/performance.md). Given to
    /// ``enqueued(_:)`` after that commit. A crash before they are delivered leaves them `sending`, and the next start
    /// sends them, as any interrupted delivery.
    /// - Parameter now: seconds since 1970.
    public nonisolated static func claimedAtCommit(_ notices: [Notice], now: Double) -> [Notice] {
        notices.map { notice in
            guard notice.state == .pending, notice.nextAttemptAt <= now else { return notice }
            var claimed = notice
            claimed.state = .sending
            claimed.attempts += 1
            return claimed
        }
    }

    /// Number of notices not yet sent or dead.
    public var depth: Int { due.count }

    // MARK: Control (`outbox`, `notify resend`)

    /// The outbox, oldest first, for `outbox [pending|dead]` (SPEC §7).
    /// - Parameter states: The states to list; `[.pending, .sending, .retrying]` is "pending" (not yet sent),
    ///   `[.dead]` the dead letters, `Set(NoticeState.allCases)` everything.
    /// - Returns: The notices in those states, by ``Notice/createdAt`` then id.
    /// - Throws: Store errors.
    /// - Complexity: O(outbox) index entries, plus a decode per notice listed and O(n log n) to sort them; only
    ///   the notices in `states` are decoded (found in the outbox index).
    public func outbox(states: Set<NoticeState>) throws -> [Notice] {
        let store = self.store
        return try store.read { txn in try txn.outbox.matching({ states.contains($0.state) }) }
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Queues an incident's notices again, for `notify resend INCIDENT [PERSON]` (SPEC §7): without `person`,
    /// every `dead` notice of the incident; with `person`, that person's `dead` and `sent` notices of the
    /// incident (they say they got nothing). A resent notice is the same notice: same id, same bytes, same
    /// `Message-ID`; its attempts start again at 0 and `give_up_after` counts from now.
    /// - Parameters:
    ///   - incident: The incident id.
    ///   - person: A person id (`email:ada@example.com`, `phone:+15005550101`), a bare email or E.164 number,
    ///     or `nil` for everyone.
    /// - Returns: The notices queued again (empty when there was nothing to resend).
    /// - Throws: Store errors.
    /// - Complexity: O(outbox).
    public func resend(incident: String, person: String? = nil) throws -> [Notice] {
        let now = clock.now()
        let wanted = person.map(Self.personID)
        let store = self.store
        let requeued: [Notice] = try store.write { txn in
            var requeued: [Notice] = []
            for var notice in try txn.outbox.all() where notice.incidentID == incident {
                if let wanted {
                    guard notice.personID == wanted, notice.state == .dead || notice.state == .sent else { continue }
                } else {
                    guard notice.state == .dead else { continue }
                }
                notice.state = .pending
                notice.attempts = 0
                notice.nextAttemptAt = now
                notice.lifetimeStart = now
                notice.detail = "resend requested"
                try txn.outbox.put(notice)
                requeued.append(notice)
            }
            return requeued
        }
        for notice in requeued { track(notice) }
        if !requeued.isEmpty {
            logger.info("notices queued again", metadata: ["incident.id": "\(incident)", "count": "\(requeued.count)"])
        }
        poke()
        return requeued
    }

    /// The person id a `notify resend` argument names.
    static func personID(_ text: String) -> String {
        if text.hasPrefix("email:") || text.hasPrefix("phone:") || text.hasPrefix("admin:") || text == "chat" {
            return text
        }
        return text.hasPrefix("+") ? "phone:\(text)" : "email:\(text.lowercased())"
    }

    // MARK: Scheduling

    private func track(_ notice: Notice) {
        guard !notice.state.isSettled else {
            due[notice.id] = nil
            claimed.remove(notice.id)
            return
        }
        let at = notice.state == .sending ? min(notice.nextAttemptAt, clock.now()) : notice.nextAttemptAt
        due[notice.id] = Due(at: at, channel: notice.channel, createdAt: notice.createdAt, rank: Self.rank(notice.kind))
    }

    private static func rank(_ kind: NoticeKind) -> Int {
        switch kind {
        case .invitation: 0
        case .roomReady: 1
        case .followUp, .nudge: 2
        case .roomFailed: 3
        case .roomEnded: 4
        case .adminRoomFailed, .adminReauthorize, .adminWaiting, .adminUnreachable: 5
        }
    }

    /// The notices of `channel` due now and not with a transport, most overdue first: this worker's share (the
    /// due notices spread over the channel's workers, so a few notices still go out in parallel), at most `limit`.
    private func nextDue(_ channel: NoticeChannel, now: Double, limit: Int) -> [String] {
        let candidates = due.filter { $0.value.channel == channel && $0.value.at <= now && !inFlight.contains($0.key) }
        let workers = max(1, Self.workersPerChannel[channel] ?? 1)
        let share = max(1, min(limit, (candidates.count + workers - 1) / workers))
        let ordered = candidates.sorted {
            ($0.value.at, $0.value.createdAt, $0.value.rank, $0.key)
                < ($1.value.at, $1.value.createdAt, $1.value.rank, $1.key)
        }
        return ordered.prefix(share).map(\.key)
    }

    /// A ``poke()`` is queued on this actor (``enqueued(_:)``).
    private var pokeScheduled = false

    /// Starts workers on every channel with notices due, then arms the timer for the next one due later.
    private func poke() {
        guard !stopped else { return }
        let now = clock.now()
        for channel in NoticeChannel.allCases {
            let ready = due.filter { $0.value.channel == channel && $0.value.at <= now && !inFlight.contains($0.key) }
                .count
            let busy = inFlight.filter { due[$0]?.channel == channel }.count
            let limit = Self.workersPerChannel[channel] ?? 1
            // Idle workers pick up what is due; start more (up to the limit) while they are too few.
            while workers[channel, default: 0] - busy < ready, workers[channel, default: 0] < limit {
                workers[channel, default: 0] += 1
                Task { await self.work(channel) }
            }
        }
        scheduleTimer(now: now)
    }

    /// A worker of `channel`: takes up to ``batchSize`` notices due now, commits them `sending` in one
    /// transaction (with the outcomes of the previous batch), hands them to the transport as one batch, and
    /// loops; the last outcomes are committed when nothing is due. A notice stays in `inFlight` until its outcome is committed,
    /// so no other worker takes it meanwhile. A delivered notice whose `sent` is not yet committed when the
    /// process dies is delivered again at the next start, as one left `sending` always was (transports are
    /// idempotent per id).
    private func work(_ channel: NoticeChannel) async {
        var outcomes: [Notice] = []
        while !stopped {
            let ids = nextDue(channel, now: clock.now(), limit: Self.batchSize)
            if ids.isEmpty { break }
            for id in ids { inFlight.insert(id) }
            // The outcomes other channels' workers left for the next commit go in this one too.
            let waiting = pendingOutcomes
            pendingOutcomes = []
            let started = begin(ids, committing: outcomes + waiting)
            for notice in outcomes + waiting { inFlight.remove(notice.id) }
            deliveries += 1
            outcomes = await deliver(started)
            deliveries -= 1
        }
        workers[channel, default: 1] -= 1
        if !outcomes.isEmpty || !pendingOutcomes.isEmpty { commitOutcomes(outcomes) }
        scheduleTimer(now: clock.now())
    }

    /// Outcomes of finished workers not yet committed: they wait for the deliveries still under way on other
    /// channels, so that one commit records them all (a room's email and SMS outcomes in one), at most
    /// ``outcomeWait`` seconds (a transport that hangs does not hold the others' outcomes longer).
    private var pendingOutcomes: [Notice] = []
    /// Workers handing notices to their transport now.
    private var deliveries = 0
    private var outcomeDeadline: Task<Void, Never>?
    /// Seconds finished outcomes wait at most for deliveries still under way.
    static let outcomeWait = 0.2

    /// Commits `outcomes` now when no other delivery is under way (with the outcomes waiting), else leaves them to
    /// the next commit (a worker's next batch, the last delivery's end, or the deadline).
    private func commitOutcomes(_ outcomes: [Notice]) {
        pendingOutcomes += outcomes
        if deliveries == 0 {
            flushOutcomes()
            return
        }
        guard outcomeDeadline == nil else { return }
        let clock = self.clock
        outcomeDeadline = Task {
            do { try await clock.sleep(seconds: Self.outcomeWait) } catch { return }
            self.outcomeDeadline = nil
            self.flushOutcomes()
        }
    }

    /// Commits the waiting outcomes in one transaction.
    private func flushOutcomes() {
        outcomeDeadline?.cancel()
        outcomeDeadline = nil
        let outcomes = pendingOutcomes
        pendingOutcomes = []
        guard !outcomes.isEmpty else { return }
        persist(outcomes)
        for notice in outcomes { inFlight.remove(notice.id) }
    }

    private func scheduleTimer(now: Double) {
        guard !stopped else { return }
        guard let next = due.filter({ $0.value.at > now && !inFlight.contains($0.key) }).map(\.value.at).min() else {
            return
        }
        if let timerAt, timerAt <= next, timer != nil { return }
        timer?.cancel()
        timerAt = next
        let clock = self.clock
        timer = Task {
            do { try await clock.sleep(seconds: max(0, next - clock.now())) } catch { return }
            self.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerAt = nil
        poke()
    }

    // MARK: Delivery

    /// Loads `ids`, marks them `sending` (attempts + 1), and commits them together with `outcomes` (the states
    /// of the previous batch) in one transaction. A notice already sent or dead is dropped; one without a
    /// transport is parked `dead`.
    /// - Returns: The notices to deliver now. When the commit fails, none (they are tried again after
    ///   `retry.first`) and `outcomes` stay tracked as they were.
    private func begin(_ ids: [String], committing outcomes: [Notice]) -> [Notice] {
        let store = self.store
        var starting: [Notice] = []
        var delivering: [Notice] = []
        var parked: [Notice] = []
        // A failed read is never taken for "no such notice" (that would drop them until a restart): it is logged,
        // and the notices are tried again shortly; the outcomes of the previous batch are committed all the same.
        let stored: [String: Notice]
        let verdicts: [String: NudgeVerdict]
        var unreadable: Set<String> = []
        do {
            let complete = eventsComplete
            (stored, verdicts) = try store.read { txn in
                var found: [String: Notice] = [:]
                var verdicts: [String: NudgeVerdict] = [:]
                for id in ids {
                    do {
                        found[id] = try txn.outbox.get(id)
                        if let notice = found[id], notice.kind == .nudge, !notice.state.isSettled {
                            verdicts[id] = Self.nudgeVerdict(
                                notice,
                                room: try txn.rooms.get(notice.roomID),
                                record: try txn.incidents.get(notice.incidentID),
                                eventsComplete: complete
                            )
                        }
                    } catch let error where Store.isStorageFailure(error) {
                        throw error
                    } catch {
                        // The stored bytes do not decode: this notice alone cannot go; the others can.
                        logger.error("cannot decode a notice", metadata: ["notice": "\(id)", "error": "\(error)"])
                        unreadable.insert(id)
                    }
                }
                return (found, verdicts)
            }
        } catch {
            logger.error(
                "cannot read notices from the outbox; trying again",
                metadata: ["notices": "\(ids.count)", "error": "\(error)"]
            )
            for id in ids {
                inFlight.remove(id)
                due[id]?.at = clock.now() + Self.readRetryPause
            }
            _ = persist(outcomes)
            return []
        }
        for id in ids where unreadable.contains(id) {
            inFlight.remove(id)
            due[id]?.at = clock.now() + retry.first
        }
        for id in ids where !unreadable.contains(id) {
            guard var notice = stored[id], !notice.state.isSettled
            else {
                due[id] = nil
                inFlight.remove(id)
                claimed.remove(id)
                continue
            }
            switch verdicts[id] {
            case .withdraw(let why)?:
                notice.state = .withdrawn
                notice.detail = why
                logger.info("nudge withdrawn", metadata: Self.metadata(notice).merging(["reason": "\(why)"]) { $1 })
                parked.append(notice)
                continue
            case .hold?:
                // Not tried yet: its room's events may be incomplete. It waits (in memory; a restart decides anew).
                inFlight.remove(id)
                due[id]?.at = clock.now() + Self.nudgeHold
                continue
            case .send?, nil:
                break
            }
            if transports[notice.channel] == nil {
                notice.state = .dead
                notice.detail = "no transport configured for \(notice.channel.rawValue)"
                let reason: Logger.Metadata = ["reason": "\(notice.detail!)"]
                logger.error("notice dead", metadata: Self.metadata(notice).merging(reason) { $1 })
                parked.append(notice)
                continue
            }
            if claimed.remove(id) != nil, notice.state == .sending {
                // Committed `sending`, its attempt counted, by the commit that queued it: nothing to commit now.
                delivering.append(notice)
                continue
            }
            notice.attempts += 1
            notice.state = .sending
            starting.append(notice)
        }
        let committed = persist(outcomes + parked + starting)
        starting += delivering
        for notice in parked { inFlight.remove(notice.id) }
        if !committed {
            for notice in starting { inFlight.remove(notice.id) }
            return []
        }
        return starting
    }

    private static func metadata(_ notice: Notice) -> Logger.Metadata {
        [
            "incident.id": "\(notice.incidentID)", "room.id": "\(notice.roomID)", "notice": "\(notice.id)",
            "channel": "\(notice.channel.rawValue)", "kind": "\(notice.kind.rawValue)",
        ]
    }

    /// Hands `notices` (committed `sending`, all of one channel) to their transport as one batch (the file
    /// transports fsync their directory once for it) and sets each one's outcome: `sent`, `retrying` with the
    /// next attempt's time, or `dead`. The caller commits them.
    private func deliver(_ notices: [Notice]) async -> [Notice] {
        guard let channel = notices.first?.channel else { return [] }
        guard let transport = transports[channel] else {
            return notices.map { notice in
                var notice = notice
                notice.state = .retrying
                notice.nextAttemptAt = clock.now() + retry.first
                notice.detail = "no transport configured for \(notice.channel.rawValue)"
                return notice
            }
        }
        var results = await transport.deliver(batch: notices)
        if results.count < notices.count {
            // A transport that answered for fewer notices than it was given: the rest are retried, never lost.
            results += Array(
                repeating: .failure(DeliveryError("the transport gave no outcome", permanent: false)),
                count: notices.count - results.count
            )
        }
        return zip(notices, results).map { notice, result in
            var notice = notice
            settle(&notice, result)
            return notice
        }
    }

    /// Sets a delivered notice's outcome from its transport's answer.
    private func settle(_ notice: inout Notice, _ result: Result<String, any Error>) {
        let metadata = Self.metadata(notice)
        switch result {
        case .success(let detail):
            notice.state = .sent
            notice.sentAt = clock.now()
            notice.detail = detail
            logger.info(
                "notice sent",
                metadata: metadata.merging(["to": "\(detail)", "attempt": "\(notice.attempts)"]) { $1 }
            )
        case .failure(let error):
            let permanent = (error as? DeliveryError)?.permanent ?? false
            let now = clock.now()
            let backoff = min(retry.max, retry.first * Double(1 << min(notice.attempts - 1, 30)))
            let lifetime = now + backoff - (notice.lifetimeStart ?? notice.createdAt)
            if permanent || lifetime > retry.giveUpAfter {
                notice.state = .dead
                notice.detail = permanent ? "\(error)" : "gave up after \(notice.attempts) attempts: \(error)"
                logger.error("notice dead", metadata: metadata.merging(["reason": "\(notice.detail!)"]) { $1 })
            } else {
                notice.state = .retrying
                notice.nextAttemptAt = now + backoff
                notice.detail = "\(error)"
                logger.warning(
                    "notice delivery failed, will retry",
                    metadata: metadata.merging(["error": "\(error)", "retry_in": "\(backoff)"]) { $1 }
                )
            }
        }
    }

    /// Commits the notices' states in one (synced) transaction and tracks them. - Returns: false when the store
    /// refused (the notices are then tried again after `retry.first`).
    @discardableResult
    private func persist(_ notices: [Notice]) -> Bool {
        guard !notices.isEmpty else { return true }
        let store = self.store
        do {
            try store.write { txn in
                for notice in notices { try txn.outbox.put(notice) }
            }
            for notice in notices { track(notice) }
            return true
        } catch {
            logger.error(
                "cannot record notices' states",
                metadata: ["notices": "\(notices.map(\.id))", "error": "\(error)"]
            )
            for notice in notices { due[notice.id]?.at = clock.now() + retry.first }
            return false
        }
    }
}
