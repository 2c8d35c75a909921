import SitroomCore

/// Identifies a host of a pool: integration name and the pool's host id.
public struct HostKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var integration: String
    public var host: String
    public init(integration: String, host: String) {
        self.integration = integration
        self.host = host
    }
    public static func < (lhs: HostKey, rhs: HostKey) -> Bool {
        (lhs.integration, lhs.host) < (rhs.integration, rhs.host)
    }
    public var description: String { "\(integration)/\(host)" }
}

/// A host's limits (SPEC §3 `hosts[]`).
public struct HostLimits: Hashable, Sendable {
    public var user: String
    public var concurrentMeetings: Int
    public var dailyCreateLimit: Int
    public init(user: String, concurrentMeetings: Int, dailyCreateLimit: Int) {
        self.user = user
        self.concurrentMeetings = concurrentMeetings
        self.dailyCreateLimit = dailyCreateLimit
    }
}

/// The pool's decision logic as a value: which host takes a room, with no I/O (tested with a manual clock).
///
/// Invariants: a host never has more open rooms than `concurrentMeetings`, nor more creates on a UTC day
/// than `dailyCreateLimit`. Choice spreads load: fewest open rooms, then most remaining quota, then id.
public struct PoolState: Sendable {
    public struct Usage: Sendable, Hashable {
        /// Room ids holding this host.
        public var openRooms: Set<String> = []
        /// UTC day (`yyyy-MM-dd`) that `creates` counts.
        public var day: String = ""
        public var creates: Int = 0
        /// Seconds since 1970 until which the host is skipped after a failure (circuit breaker).
        public var coolingUntil: Double = 0
        /// Quota exhausted on this day (Zoom said so even if our count is lower).
        public var outOfQuotaDay: String? = nil
        public var drained: Bool = false
        public var unusableReason: String? = nil
    }

    /// Hosts per integration, in configuration order.
    public private(set) var hosts: [String: [(id: String, limits: HostLimits)]] = [:]
    public private(set) var usage: [HostKey: Usage] = [:]
    /// Hosts removed from the configuration while they held open rooms, with their last limits: never leased
    /// again, shown until their last room is released.
    public private(set) var retired: [HostKey: HostLimits] = [:]

    public init() {}

    /// Replaces the pools' configuration; usage of hosts that remain is kept, and a removed host keeps its
    /// open rooms counted until they are released.
    public mutating func configure(_ pools: [String: [(id: String, limits: HostLimits)]]) {
        for (integration, entries) in hosts {
            for (id, limits) in entries where !(pools[integration] ?? []).contains(where: { $0.id == id }) {
                let key = HostKey(integration: integration, host: id)
                if usage[key]?.openRooms.isEmpty == false { retired[key] = limits }
            }
        }
        for (integration, entries) in pools {
            for (id, _) in entries { retired[HostKey(integration: integration, host: id)] = nil }
        }
        hosts = pools
    }

    /// Limits of a host, if configured.
    public func limits(_ key: HostKey) -> HostLimits? {
        hosts[key.integration]?.first(where: { $0.id == key.host })?.limits
    }

    /// Records a room as holding a host (at start-up from the store, or after a lease).
    public mutating func hold(_ key: HostKey, room: String) {
        usage[key, default: Usage()].openRooms.insert(room)
    }

    /// Sets the creates counted for a host on a day (from the store at start-up).
    public mutating func setCreates(_ key: HostKey, day: String, count: Int) {
        usage[key, default: Usage()].day = day
        usage[key, default: Usage()].creates = count
    }

    /// Why a host cannot take a room now, or `nil` when it can.
    public func ineligibility(_ key: HostKey, limits: HostLimits, now: Double) -> String? {
        let use = usage[key] ?? Usage()
        let today = utcDay(now)
        if use.drained { return "drained" }
        if let reason = use.unusableReason { return reason }
        if use.coolingUntil > now { return "cooling down" }
        if use.outOfQuotaDay == today || (use.day == today && use.creates >= limits.dailyCreateLimit) {
            return "out of quota"
        }
        if use.openRooms.count >= limits.concurrentMeetings { return "busy" }
        return nil
    }

    /// Leases a host of `integration` for `room`, counting one create on today's quota.
    /// - Returns: the host, or `nil` with nothing changed when no host is eligible.
    /// - Parameter skipping: host ids that cannot take rooms for a reason outside the pool (not authorized).
    public mutating func lease(
        integration: String,
        room: String,
        now: Double,
        skipping: Set<String> = []
    ) -> (key: HostKey, limits: HostLimits)? {
        let today = utcDay(now)
        var best: (key: HostKey, limits: HostLimits, open: Int, left: Int)? = nil
        for (id, limits) in hosts[integration] ?? [] where !skipping.contains(id) {
            let key = HostKey(integration: integration, host: id)
            guard ineligibility(key, limits: limits, now: now) == nil else { continue }
            let use = usage[key] ?? Usage()
            let creates = use.day == today ? use.creates : 0
            let candidate = (key, limits, use.openRooms.count, limits.dailyCreateLimit - creates)
            if let current = best {
                if (candidate.2, -candidate.3) < (current.open, -current.left) { best = candidate }
            } else {
                best = candidate
            }
        }
        guard let chosen = best else { return nil }
        var use = usage[chosen.key] ?? Usage()
        if use.day != today {
            use.day = today
            use.creates = 0
        }
        use.creates += 1
        use.openRooms.insert(room)
        usage[chosen.key] = use
        return (chosen.key, chosen.limits)
    }

    /// Takes `key` again for `room` (a reopened room whose meeting lives on that host), within its concurrency
    /// limit; no create is counted. - Returns: whether the room now holds the host (true if it already did).
    public mutating func reclaim(_ key: HostKey, room: String) -> Bool {
        guard let limits = limits(key) else { return false }
        let use = usage[key] ?? Usage()
        if use.openRooms.contains(room) { return true }
        guard !use.drained, use.unusableReason == nil, use.openRooms.count < limits.concurrentMeetings else {
            return false
        }
        usage[key, default: Usage()].openRooms.insert(room)
        return true
    }

    /// Frees the host a room held.
    public mutating func release(_ key: HostKey, room: String) {
        usage[key]?.openRooms.remove(room)
        if usage[key]?.openRooms.isEmpty != false { retired[key] = nil }
    }

    /// Skips a host until `until` (seconds since 1970) after it failed.
    public mutating func coolDown(_ key: HostKey, until: Double) {
        usage[key, default: Usage()].coolingUntil = until
    }

    /// Marks a host's daily quota used up for the UTC day of `now` (Zoom answered the daily limit).
    public mutating func exhaustQuota(_ key: HostKey, now: Double) {
        usage[key, default: Usage()].outOfQuotaDay = utcDay(now)
    }

    /// Marks a host unusable (1001 unknown user, 3161 no hosting rights) until the configuration changes.
    public mutating func markUnusable(_ key: HostKey, reason: String) {
        usage[key, default: Usage()].unusableReason = reason
    }

    public mutating func setDrained(_ key: HostKey, _ drained: Bool) {
        usage[key, default: Usage()].drained = drained
    }

    /// Whether no host of `integration` can ever take a room without a configuration change (all unusable).
    public func allUnusable(integration: String) -> Bool {
        let pool = hosts[integration] ?? []
        return pool.allSatisfy { usage[HostKey(integration: integration, host: $0.id)]?.unusableReason != nil }
    }

    /// A reason with counts for why no host of `integration` can take a room, e.g.
    /// "all 2 hosts of zoom-main busy: 2/2 meetings open".
    public func unavailableReason(integration: String, now: Double) -> String {
        let pool = hosts[integration] ?? []
        if pool.isEmpty { return "\(integration) has no hosts" }
        var busy = 0
        var open = 0
        var capacity = 0
        var outOfQuota: [String] = []
        var other: [String] = []
        for (id, limits) in pool {
            let key = HostKey(integration: integration, host: id)
            open += usage[key]?.openRooms.count ?? 0
            capacity += limits.concurrentMeetings
            switch ineligibility(key, limits: limits, now: now) {
            case "busy": busy += 1
            case "out of quota": outOfQuota.append(id)
            case let reason?: other.append("\(id) \(reason)")
            case nil: break
            }
        }
        if busy == pool.count {
            return "all \(pool.count) hosts of \(integration) busy: \(open)/\(capacity) meetings open"
        }
        if outOfQuota.count == pool.count {
            let names =
                outOfQuota.count == 1
                ? outOfQuota[0] : outOfQuota.dropLast().joined(separator: ", ") + " and " + outOfQuota.last!
            return "daily create quota of \(names) used up until 00:00 UTC"
        }
        var parts: [String] = []
        if busy > 0 { parts.append("\(busy) busy (\(open)/\(capacity) meetings open)") }
        if !outOfQuota.isEmpty {
            parts.append("\(outOfQuota.joined(separator: ", ")) out of daily quota until 00:00 UTC")
        }
        parts.append(contentsOf: other)
        return "no host of \(integration) available: " + parts.joined(separator: "; ")
    }
}
