import SitroomCore
import SitroomTestFixtures
import Testing

@testable import SitroomDaemon

@Suite("PoolState: the pool's decisions")
struct PoolStateTests {
    static let day = 1_795_910_400.0  // 2026-11-29T00:00:00Z

    func pool() -> PoolState {
        var state = PoolState()
        state.configure([
            "zoom-main": [
                ("bridge-1", HostLimits(user: "b1@example.com", concurrentMeetings: 1, dailyCreateLimit: 3)),
                ("bridge-2", HostLimits(user: "b2@example.com", concurrentMeetings: 2, dailyCreateLimit: 2)),
                ("bridge-3", HostLimits(user: "b3@example.com", concurrentMeetings: 1, dailyCreateLimit: 5)),
            ]
        ])
        return state
    }

    @Test(
        "random lease/release/failure/day-change sequences never exceed a host's limits, and grant every lease that fits",
        arguments: 0..<40
    )
    func limitsHold(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        var state = pool()
        var now = Self.day
        var open: [String: HostKey] = [:]
        var createsByDay: [String: [HostKey: Int]] = [:]
        var roomNumber = 0
        for _ in 0..<300 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<5:
                roomNumber += 1
                let room = "r\(roomNumber)"
                let couldFit = state.hosts["zoom-main"]!.contains { host in
                    state.ineligibility(HostKey(integration: "zoom-main", host: host.id), limits: host.limits, now: now)
                        == nil
                }
                if let lease = state.lease(integration: "zoom-main", room: room, now: now) {
                    open[room] = lease.key
                    createsByDay[utcDay(now), default: [:]][lease.key, default: 0] += 1
                } else {
                    #expect(!couldFit, "seed \(seed): a lease that fits was refused")
                }
            case 5..<8:
                if let room = open.keys.randomElement(using: &random) {
                    state.release(open.removeValue(forKey: room)!, room: room)
                }
            case 8:
                if let host = state.hosts["zoom-main"]!.randomElement(using: &random) {
                    state.coolDown(HostKey(integration: "zoom-main", host: host.id), until: now + 60)
                }
                now += 30
            default:
                now += 6 * 3600  // crosses UTC midnight every few steps
            }
            for (id, limits) in state.hosts["zoom-main"]! {
                let key = HostKey(integration: "zoom-main", host: id)
                #expect(
                    open.values.filter { $0 == key }.count <= limits.concurrentMeetings,
                    "seed \(seed): \(id) oversubscribed"
                )
                #expect(
                    (createsByDay[utcDay(now)]?[key] ?? 0) <= limits.dailyCreateLimit,
                    "seed \(seed): \(id) over quota"
                )
            }
        }
    }

    @Test("load spreads: fewest open rooms, then most quota left")
    func spreadsLoad() {
        var state = pool()
        let first = state.lease(integration: "zoom-main", room: "a", now: Self.day)
        let second = state.lease(integration: "zoom-main", room: "b", now: Self.day)
        let third = state.lease(integration: "zoom-main", room: "c", now: Self.day)
        #expect(Set([first?.key.host, second?.key.host, third?.key.host]) == ["bridge-1", "bridge-2", "bridge-3"])
        #expect(first?.key.host == "bridge-3")  // 5 creates left beats 3 and 2
    }

    @Test("the waiting reason gives the counts")
    func reasonCounts() {
        var state = PoolState()
        state.configure([
            "zoom-main": [
                ("bridge-1", HostLimits(user: "b1", concurrentMeetings: 1, dailyCreateLimit: 100)),
                ("bridge-2", HostLimits(user: "b2", concurrentMeetings: 1, dailyCreateLimit: 100)),
            ]
        ])
        #expect(state.lease(integration: "zoom-main", room: "a", now: Self.day) != nil)
        #expect(state.lease(integration: "zoom-main", room: "b", now: Self.day) != nil)
        #expect(state.lease(integration: "zoom-main", room: "c", now: Self.day) == nil)
        #expect(
            state.unavailableReason(integration: "zoom-main", now: Self.day)
                == "all 2 hosts of zoom-main busy: 2/2 meetings open"
        )
        state.release(HostKey(integration: "zoom-main", host: "bridge-1"), room: "a")
        state.exhaustQuota(HostKey(integration: "zoom-main", host: "bridge-1"), now: Self.day)
        state.release(HostKey(integration: "zoom-main", host: "bridge-2"), room: "b")
        state.exhaustQuota(HostKey(integration: "zoom-main", host: "bridge-2"), now: Self.day)
        #expect(
            state.unavailableReason(integration: "zoom-main", now: Self.day)
                == "daily create quota of bridge-1 and bridge-2 used up until 00:00 UTC"
        )
        // The quota comes back at 00:00 UTC.
        #expect(state.lease(integration: "zoom-main", room: "d", now: Self.day + 86_400) != nil)
    }

    @Test("unusable hosts make the pool permanently unavailable until reconfigured")
    func unusable() {
        var state = pool()
        for id in ["bridge-1", "bridge-2", "bridge-3"] {
            state.markUnusable(HostKey(integration: "zoom-main", host: id), reason: "1001 user does not exist")
        }
        #expect(state.allUnusable(integration: "zoom-main"))
        #expect(state.lease(integration: "zoom-main", room: "x", now: Self.day) == nil)
    }

    @Test("a reopened room takes its own host back within the host's concurrency, without counting a create")
    func reclaim() {
        var state = pool()
        let key = HostKey(integration: "zoom-main", host: "bridge-1")
        var taken = state.reclaim(key, room: "r1")
        #expect(taken)
        taken = state.reclaim(key, room: "r1")  // already held: still true, counted once
        #expect(taken)
        #expect(state.usage[key]?.openRooms == ["r1"])
        #expect(state.usage[key]?.creates == 0)
        taken = state.reclaim(key, room: "r2")  // bridge-1 runs one meeting at a time
        #expect(!taken)
        state.release(key, room: "r1")
        state.markUnusable(key, reason: "1001")
        taken = state.reclaim(key, room: "r2")
        #expect(!taken)
        taken = state.reclaim(HostKey(integration: "zoom-main", host: "gone"), room: "r3")
        #expect(!taken)
    }
}
