import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore
import SitroomZoom

// Start-up recovery: the rooms the last run left unfinished.
extension RoomProvisioner {
    /// Starts work on every room left unfinished by the last run (start-up recovery) and on waiting rooms, and
    /// schedules the pending deletions of ended rooms' meetings. Only the rooms the room index marks
    /// (``RoomSummary/needsRecovery``: open, or ended with a deletion pending) are decoded.
    /// - Complexity: O(rooms) index entries, plus a decode per open room and per ended room awaiting deletion.
    public func recover() throws {
        let store = self.store
        let rooms = try store.read { txn in try txn.rooms.matching({ $0.needsRecovery }) }
        for room in rooms.sorted(by: { $0.createdAt < $1.createdAt }) {
            if room.state == .waiting && !room.endRequested {
                waiting[room.id] = room.createdAt
            } else if room.state.isOpen, room.state != .ready || room.endRequested {
                drive(room.id)
            } else if room.state == .failed, room.endRequested, room.sweepMarker {
                drive(room.id)  // its sweep for a meeting a create may have left was not done yet
            }
            if room.state == .ended, let after = room.deleteAfter {
                scheduleDeletion(room.id, at: room.meetingDeletedAt == nil ? after : 0)
            }
        }
        if !waiting.isEmpty { Task { await self.retryWaiting() } }
    }
}
