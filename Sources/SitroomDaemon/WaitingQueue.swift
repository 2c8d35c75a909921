import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore

// The queue of `waiting` rooms, served oldest first, and the periodic tick that retries it.
extension RoomProvisioner {
    /// Gives waiting rooms another try, oldest first (a host was freed, a cool-down or the UTC day ended):
    /// each in turn leases a host and starts its work; the first that finds none leaves the rest waiting.
    /// - Complexity: O(w log w) in the waiting rooms.
    public func retryWaiting() async {
        if retrying {
            retryAgain = true
            return
        }
        retrying = true
        defer { retrying = false }
        repeat {
            retryAgain = false
            // Integrations an older room of this pass found no host in (or whose own run is leasing now): a younger
            // room that could only use them is not served before it, even when a host frees up during the pass.
            var taken: Set<String> = []
            for id in waiting.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }).map(\.key) {
                guard !stopped, let room = readRoom(id), room.state == .waiting else { continue }
                let wanted = Set((try? readIncident(room.incidentID)).flatMap { $0 }.map { candidates(for: $0) } ?? [])
                if running[id] != nil {
                    if !room.endRequested { taken.formUnion(wanted) }
                    continue
                }
                if room.endRequested {
                    drive(id)
                } else if !wanted.isEmpty, wanted.isSubset(of: taken) {
                    continue
                } else if await leaseWaiting(id) {
                    drive(id)
                } else if readRoom(id)?.state == .waiting {
                    taken.formUnion(wanted)
                }
            }
        } while retryAgain && !stopped
    }

    /// Periodic duties (every few seconds): serve waiting rooms whose hosts came back (cool-down over, a new
    /// UTC day), and tell the admins once about rooms waiting longer than `conference.waiting_alert_after`.
    public func tick() async {
        let now = clock.now()
        let limit = configuration.daemon.conference.waitingAlertAfter
        for id in waiting.keys.sorted() {
            guard let room = readRoom(id), room.state == .waiting, let since = room.waitingSince, now - since >= limit
            else {
                continue
            }
            queueAdminNotices(
                kind: .adminWaiting,
                room: room,
                integration: room.integration,
                reason: room.reason ?? "waiting"
            )
        }
        await retryWaiting()
        if !idleRefreshRunning, let shortest = await registry.shortestIdleRefresh(),
            now - idleRefreshCheckedAt >= min(3600, shortest / 4)
        {
            idleRefreshRunning = true
            idleRefreshCheckedAt = now
            Task { await self.refreshIdleHosts() }
        }
    }

    /// Refreshes idle zoom-oauth hosts whose pair is older than `refresh_idle_after`
    /// (``IntegrationRegistry/refreshIdleHosts()``), and tells the admins once about each host Zoom refused.
    func refreshIdleHosts() async {
        defer { idleRefreshRunning = false }
        let (_, refused) = await registry.refreshIdleHosts()
        for failure in refused {
            let decision = failure.error.decision(
                now: clock.now(),
                integration: failure.integration,
                host: failure.host
            )
            queueAdminNotices(
                kind: .adminReauthorize,
                room: nil,
                integration: failure.integration,
                reason: "host \(failure.host): \(decision.reason)",
                advice: decision.advice
            )
        }
    }
}
