import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomStore

/// Delivers the outbox: every queued notice at least once, retried with capped exponential backoff, parked
/// as `dead` after `notify.retry.give_up_after` or a permanent failure (SPEC §6). The outbox lives in LMDB,
/// so a restart loses nothing: notices not yet `sent` are delivered again (transports are idempotent per id).
public actor Notifier {
    private let executor = ThreadExecutor(name: "sitroom-notify")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let store: Store
    private let clock: any WallClock
    private let logger: Logger
    private var transports: [NoticeChannel: any NoticeTransport] = [:]
    private var retry = RetrySettings()
    /// Notices not yet sent or dead: id → when the next attempt is due (seconds since 1970).
    private var due: [String: Double] = [:]
    private var delivering = false
    private var again = false
    private var timer: Task<Void, Never>?
    private var stopped = false

    public init(store: Store, clock: any WallClock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.logger = logger
    }

    /// Applies a configuration generation: transports and retry policy.
    /// - Parameter varDirectory: the daemon's `var/` (maildir in `mail/`, SMS files in `sms/`).
    public func configure(_ configuration: Configuration, varDirectory: String) {
        retry = configuration.daemon.notify.retry
        switch configuration.daemon.notify.email {
        case .maildir(let from), .smtp(let from, _, _, _):
            // SMTP delivery lands with the notifier issue; until then SMTP configs write the maildir too.
            transports[.email] = MaildirTransport(directory: "\(varDirectory)/mail", from: from)
        }
        switch configuration.daemon.notify.sms {
        case .file, .http:
            transports[.sms] = SMSFileTransport(directory: "\(varDirectory)/sms")
        }
    }

    /// Loads the notices still to deliver from the store (start-up) and delivers those due.
    /// - Complexity: O(outbox).
    public func restore() throws {
        let store = self.store
        let pending: [Notice] = try store.read { txn in
            try store.all(Notice.self, store.tables.outbox, txn).filter { $0.state != .sent && $0.state != .dead }
        }
        for notice in pending { due[notice.id] = notice.nextAttemptAt }
        poke()
    }

    /// Tells the notifier that notices were committed to the outbox.
    public func enqueued(_ notices: [Notice]) {
        for notice in notices { due[notice.id] = notice.nextAttemptAt }
        poke()
    }

    /// Stops timers; in-flight deliveries finish. Called on graceful shutdown.
    public func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
    }

    /// Number of notices not yet sent or dead.
    public var depth: Int { due.count }

    private func poke() {
        guard !stopped else { return }
        if delivering {
            again = true
            return
        }
        delivering = true
        Task { await self.deliverLoop() }
    }

    private func deliverLoop() async {
        repeat {
            again = false
            await deliverDue()
        } while again && !stopped
        delivering = false
        scheduleTimer()
    }

    private func scheduleTimer() {
        timer?.cancel()
        guard !stopped, let next = due.values.min() else { return }
        let wait = max(0, next - clock.now())
        let clock = self.clock
        timer = Task {
            do { try await clock.sleep(seconds: wait) } catch { return }
            self.poke()
        }
    }

    private func deliverDue() async {
        let now = clock.now()
        let ids = due.filter { $0.value <= now }.sorted { $0.value < $1.value }.map(\.key)
        for id in ids where !stopped {
            await deliver(id)
        }
    }

    private func deliver(_ id: String) async {
        let store = self.store
        guard var notice = try? store.read({ txn in try store.get(Notice.self, store.tables.outbox, id, txn) }) else {
            due[id] = nil
            return
        }
        guard notice.state != .sent, notice.state != .dead else {
            due[id] = nil
            return
        }
        let metadata: Logger.Metadata = [
            "incident.id": "\(notice.incidentID)", "room.id": "\(notice.roomID)", "notice": "\(notice.id)",
            "channel": "\(notice.channel.rawValue)", "kind": "\(notice.kind.rawValue)",
        ]
        guard let transport = transports[notice.channel] else {
            notice.state = .dead
            notice.detail = "no transport configured for \(notice.channel.rawValue)"
            persist(notice)
            return
        }
        notice.attempts += 1
        do {
            let detail = try await transport.deliver(notice)
            notice.state = .sent
            notice.detail = detail
            logger.info("notice sent", metadata: metadata.merging(["to": "\(detail)"]) { $1 })
        } catch {
            let permanent = (error as? DeliveryError)?.permanent ?? false
            let now = clock.now()
            let backoff = min(retry.max, retry.first * Double(1 << min(notice.attempts - 1, 30)))
            if permanent || now + backoff - notice.createdAt > retry.giveUpAfter {
                notice.state = .dead
            } else {
                notice.state = .retrying
                notice.nextAttemptAt = now + backoff
            }
            notice.detail = "\(error)"
            logger.warning(
                "notice delivery failed",
                metadata: metadata.merging(["error": "\(error)", "state": "\(notice.state.rawValue)"]) { $1 })
        }
        persist(notice)
    }

    private func persist(_ notice: Notice) {
        let store = self.store
        do {
            try store.write { txn in try store.putNotice(notice, txn) }
            if notice.state == .sent || notice.state == .dead { due[notice.id] = nil } else { due[notice.id] = notice.nextAttemptAt }
        } catch {
            logger.error("cannot record a notice's state", metadata: ["notice": "\(notice.id)", "error": "\(error)"])
            due[notice.id] = clock.now() + retry.first
        }
    }
}
