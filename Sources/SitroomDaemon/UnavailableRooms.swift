import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore

// Rooms an integration (or one of its hosts) can no longer serve: deauthorized or removed.
extension RoomProvisioner {
    /// Rooms of open incidents on an integration (or one of its hosts) lose their Zoom functionality: they
    /// become `unavailable` with the reason, their work stops and their hosts are freed (SPEC §5: deauthorized
    /// or removed). Only rooms bound to it count (ready, a host leased, a meeting made or a create sent); a
    /// room merely waiting stays waiting for another integration. The meeting itself is left alone in Zoom.
    /// - Returns: the ids of the rooms changed.
    /// - Complexity: O(rooms) index entries, plus a decode per open room.
    @discardableResult
    public func markUnavailable(integration: String, host: String? = nil, reason: String) async throws -> [String] {
        let store = self.store
        let now = clock.now()
        let changed: [Room] = try store.write { txn in
            var changed: [Room] = []
            for room in try txn.rooms.matching({ $0.state.isOpen }) {
                guard
                    let unavailable = RoomRules.unavailable(
                        room,
                        integration: integration,
                        host: host,
                        reason: reason,
                        now: now
                    )
                else { continue }
                try txn.rooms.put(unavailable)
                changed.append(unavailable)
            }
            return changed
        }
        for room in changed {
            running[room.id]?.cancel()
            track(room)
            if let hostID = room.hostID {
                await pool.release(HostKey(integration: integration, host: hostID), room: room.id)
            }
            logger.warning(
                "room unavailable",
                metadata: ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "reason": "\(reason)"]
            )
        }
        return changed.map(\.id)
    }

    /// Tells the admins that an integration needs them (re-authorization), once per integration and cause.
    public func notifyAdminsReauthorize(integration: String, reason: String, advice: String? = nil) {
        queueAdminNotices(kind: .adminReauthorize, room: nil, integration: integration, reason: reason, advice: advice)
    }

    // MARK: Removed integrations

    /// Applies the removal of integrations (their files were deleted; SPEC §5): every open room one of them
    /// serves (a host leased, a create sent, or a meeting made) becomes `unavailable` with the reason, its host
    /// is freed and its work stopped. The meeting itself is left alone in Zoom: people may be in it, and the
    /// integration's tokens are gone. No new room goes through them, as they are no longer configured.
    /// - Parameter names: the removed integrations (``IntegrationRegistry/configure(_:)`` returns them).
    /// - Complexity: O(rooms).
    public func integrationsRemoved(_ names: [String]) async {
        for integration in names {
            do {
                try await markUnavailable(
                    integration: integration,
                    reason: "integration \(integration) was removed (etc/integrations/\(integration).yaml is gone); "
                        + "sitroom can no longer manage this room's meeting"
                )
            } catch {
                logger.error(
                    "cannot mark the rooms of a removed integration unavailable",
                    metadata: ["integration": "\(integration)", "error": "\(error)"]
                )
            }
        }
    }
}
