import Logging
import SitroomConfig
import SitroomCore
import SitroomRooms
import SitroomRuntime
import SitroomStore

/// The pools of Zoom hosts of all integrations: which host takes a room, and each host's usage (SPEC §5).
///
/// The decisions are ``PoolState``'s; a lease hands the daily create count it raised to the caller, which
/// commits it (``Store/recordCreates(atLeast:day:integration:host:_:)``) in the same transaction as the room
/// bound to the host, before the create request is sent, so a crash can only over-count. This actor restores
/// open rooms and today's counts from the store.
public actor AccountPool {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let store: Store
    private let clock: any WallClock
    private let logger: Logger
    private var state = PoolState()

    /// The outcome of ``lease(room:integration:unauthorized:)``.
    public enum Lease: Sendable {
        /// The host, its limits, and the creates counted against it on `day` (`yyyy-MM-dd`, UTC) with this
        /// one, for the caller to commit with the room.
        case leased(HostKey, HostLimits, creates: Int, day: String)
        /// No host of the integration can take it; the reason gives counts. `permanent` when no host ever
        /// can without a configuration change (every host unusable, or none configured).
        case unavailable(String, permanent: Bool)
    }

    /// - Parameter executor: the thread the pool runs on; `nil` for a thread of its own. sitroomd gives the pool, the
    ///   registry and the provisioner one (``DaemonCore``).
    public init(store: Store, clock: any WallClock, logger: Logger, executor: ThreadExecutor? = nil) {
        self.executor = executor ?? ThreadExecutor(name: "sitroom-pool")
        self.store = store
        self.clock = clock
        self.logger = logger
    }

    /// Applies a configuration generation's pools. Open rooms of removed hosts stay counted until released.
    public func configure(_ configuration: Configuration) {
        var pools: [String: [(id: String, limits: HostLimits)]] = [:]
        for (name, integration) in configuration.integrations {
            pools[name] = integration.hosts.map {
                (
                    $0.id,
                    HostLimits(
                        user: $0.user,
                        concurrentMeetings: $0.concurrentMeetings,
                        dailyCreateLimit: $0.dailyCreateLimit
                    )
                )
            }
        }
        state.configure(pools)
    }

    /// Rebuilds usage from the store at start-up: open rooms hold their hosts; today's creates are read back.
    /// Only the open rooms are decoded (found in the room index).
    /// - Complexity: O(rooms) index entries, plus a decode per open room, plus O(hosts).
    public func restore() throws {
        let today = utcDay(clock.now())
        let store = self.store
        let (rooms, creates): ([Room], [(HostKey, Int)]) = try store.read { txn in
            let rooms = try txn.rooms.matching({ $0.state.isOpen })
            let creates = try txn.usage.creates(on: today).map {
                (HostKey(integration: $0.integration, host: $0.host), $0.count)
            }
            return (rooms, creates)
        }
        // A room reopened with its meeting holds its host only once it has taken it back (``reclaim(_:room:)``).
        for room in rooms where room.state.isOpen && !RoomRules.isRevivalPending(room) {
            if let integration = room.integration, let host = room.hostID {
                state.hold(HostKey(integration: integration, host: host), room: room.id)
            }
        }
        for (key, count) in creates { state.setCreates(key, day: today, count: count) }
        let drained: [HostKey] = try store.read { txn in
            try txn.integrations.drained().map { HostKey(integration: $0.integration, host: $0.host) }
        }
        for key in drained { state.setDrained(key, true) }
    }

    /// Drains a host (it takes no new rooms, keeps its open ones) or resumes it; kept across restarts.
    /// - Returns: false when the host already was in that state (nothing is written).
    /// - Throws: ``SitroomError`` `.notFound` for a host not in the pool; store errors.
    @discardableResult
    public func setDrained(_ key: HostKey, _ drained: Bool) throws -> Bool {
        guard state.limits(key) != nil else {
            throw SitroomError(.notFound, "no host \(key.host) in the pool of \(key.integration)")
        }
        guard state.usage[key]?.drained ?? false != drained else { return false }
        let store = self.store
        try store.write { txn in try txn.integrations.setDrained(drained, key.integration, host: key.host) }
        state.setDrained(key, drained)
        logger.info(
            drained ? "host drained" : "host resumed",
            metadata: ["integration": "\(key.integration)", "host": "\(key.host)"]
        )
        return true
    }

    /// Leases a host of `integration` for `room` and counts the create it will cost against today's quota (in
    /// memory: the caller commits the count with the room, see ``Lease/leased(_:_:creates:day:)``, and releases
    /// the host when that commit fails).
    /// - Parameter unauthorized: hosts of a zoom-oauth integration that are not authorized (skipped).
    public func lease(room: String, integration: String, unauthorized: Set<String> = []) -> Lease {
        let now = clock.now()
        let pool = state.hosts[integration] ?? []
        if !pool.isEmpty, pool.allSatisfy({ unauthorized.contains($0.id) }) {
            return .unavailable(
                "no host of \(integration) is authorized (sitroomctl integration authorize \(integration) HOST)",
                permanent: true
            )
        }
        guard let (key, limits) = state.lease(integration: integration, room: room, now: now, skipping: unauthorized)
        else {
            return .unavailable(
                state.unavailableReason(integration: integration, now: now),
                permanent: state.allUnusable(integration: integration)
            )
        }
        logger.debug(
            "host leased",
            metadata: ["room.id": "\(room)", "integration": "\(key.integration)", "host": "\(key.host)"]
        )
        return .leased(key, limits, creates: state.usage[key]?.creates ?? 1, day: utcDay(now))
    }

    /// Takes a specific host again for a reopened room whose meeting lives on it (no create is counted: the
    /// meeting exists). - Returns: false when the host is not configured, drained, unusable or busy.
    public func reclaim(_ key: HostKey, room: String) -> Bool {
        state.reclaim(key, room: room)
    }

    /// Frees the host a room held.
    public func release(_ key: HostKey, room: String) {
        state.release(key, room: room)
    }

    /// Skips a host for `seconds` after it failed.
    public func coolDown(_ key: HostKey, seconds: Double) {
        state.coolDown(key, until: clock.now() + seconds)
    }

    /// Zoom answered the daily create/update limit: the host is out of quota until 00:00 UTC.
    public func exhaustQuota(_ key: HostKey) {
        state.exhaustQuota(key, now: clock.now())
    }

    /// Zoom says the host cannot host (1001, 3161): skip it until the configuration changes.
    public func markUnusable(_ key: HostKey, reason: String) {
        state.markUnusable(key, reason: reason)
    }

    /// Per-host usage for `status` and `pool NAME`, by integration then configuration order.
    /// - Parameter integration: only this integration's hosts, or all when `nil`.
    public func snapshot(integration only: String? = nil) -> [PoolHostSnapshot] {
        let now = clock.now()
        let today = utcDay(now)
        var rows: [PoolHostSnapshot] = []
        for (integration, hosts) in state.hosts.sorted(by: { $0.key < $1.key }) where only == nil || only == integration
        {
            for (id, limits) in hosts {
                let key = HostKey(integration: integration, host: id)
                let use = state.usage[key] ?? PoolState.Usage()
                var hostState = state.ineligibility(key, limits: limits, now: now) ?? "healthy"
                var detail = ""
                switch hostState {
                case "cooling down": detail = "after a failure, until \(rfc3339UTC(use.coolingUntil))"
                case "out of quota": detail = "daily create limit reached, until 00:00 UTC"
                case "busy": detail = "\(use.openRooms.count)/\(limits.concurrentMeetings) meetings open"
                case "drained": detail = "by an admin (pool resume \(integration) \(id))"
                case "healthy": break
                default:
                    detail = hostState
                    hostState = "unusable"
                }
                rows.append(
                    PoolHostSnapshot(
                        integration: integration,
                        host: id,
                        user: limits.user,
                        openRooms: use.openRooms.count,
                        concurrentMeetings: limits.concurrentMeetings,
                        createsToday: use.day == today ? use.creates : 0,
                        dailyCreateLimit: limits.dailyCreateLimit,
                        state: hostState,
                        detail: detail
                    )
                )
            }
        }
        for (key, limits) in state.retired.sorted(by: { $0.key < $1.key }) {
            let use = state.usage[key] ?? PoolState.Usage()
            rows.append(
                PoolHostSnapshot(
                    integration: key.integration,
                    host: key.host,
                    user: limits.user,
                    openRooms: use.openRooms.count,
                    concurrentMeetings: limits.concurrentMeetings,
                    createsToday: use.day == today ? use.creates : 0,
                    dailyCreateLimit: limits.dailyCreateLimit,
                    state: "removed (keeps its open rooms until they end)",
                    detail: "no longer in the configuration"
                )
            )
        }
        return rows
    }

    /// Whether an integration has a pool.
    public func hasPool(_ integration: String) -> Bool { state.hosts[integration] != nil }
}

/// One host's usage, as `status` shows it.
public struct PoolHostSnapshot: Sendable, Codable, Hashable {
    public var integration: String
    public var host: String
    public var user: String
    public var openRooms: Int
    public var concurrentMeetings: Int
    public var createsToday: Int
    public var dailyCreateLimit: Int
    /// `healthy`, `busy`, `cooling down`, `drained`, `out of quota`, `unusable`, or
    /// `removed (keeps its open rooms until they end)` for a host no longer configured.
    public var state: String
    /// Why, for people: counts, until when, Zoom's words.
    public var detail: String

    enum CodingKeys: String, CodingKey {
        case integration, host, user, state, detail
        case openRooms = "open_rooms"
        case concurrentMeetings = "concurrent_meetings"
        case createsToday = "creates_today"
        case dailyCreateLimit = "daily_create_limit"
    }
}
