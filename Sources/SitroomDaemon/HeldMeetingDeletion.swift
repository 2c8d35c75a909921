import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore

// Ended rooms' meetings deleted after the reopen hold-down.
extension RoomProvisioner {
    // MARK: Deleting meetings after the hold-down

    /// Deletes an ended room's meeting at `time` (seconds since 1970), unless the room is reopened first.
    func scheduleDeletion(_ id: String, at time: Double) {
        guard !stopped else { return }
        deletions[id]?.cancel()
        let clock = self.clock
        deletions[id] = Task {
            let wait = time - clock.now()
            if wait > 0 {
                do { try await clock.sleep(seconds: wait) } catch { return }
            }
            await self.deleteHeldMeeting(id)
        }
    }

    /// Deletes the meeting of an ended room whose hold-down has passed. The decision is committed first (the
    /// room can no longer be reopened with it), then `DELETE /meetings/{id}` is sent (3001 counts as done),
    /// retried with backoff on transient failures.
    func deleteHeldMeeting(_ id: String) async {
        deletions[id] = nil
        let store = self.store
        var attempt = 0
        while !stopped && !Task.isCancelled {
            let now = clock.now()
            let decided: Room?
            do {
                decided = try store.write { txn -> Room? in
                    guard let stored = try txn.rooms.get(id), let due = RoomRules.deletionDue(stored, now: now) else {
                        return nil
                    }
                    if due != stored { try txn.rooms.put(due) }
                    return due
                }
            } catch {
                // Never dropped: tried again after a pause (a full reader table, a full disk).
                logger.error(
                    "cannot record a meeting deletion; trying again",
                    metadata: ["room.id": "\(id)", "error": "\(error)"]
                )
                scheduleDeletion(id, at: now + maxBackoff)
                return
            }
            guard let room = decided, let meetingID = room.meetingID, room.integration != nil else {
                if let room = readRoom(id), room.state == .ended, let after = room.deleteAfter, after > now {
                    scheduleDeletion(id, at: after)  // ended again later: a new hold-down
                }
                return
            }
            var reason: String? = nil
            do {
                // 3001 gone, 3007 ended and not deletable count as done (the provider's table of answers).
                try await provider(for: room).delete(meetingID)
            } catch let failure as ProviderFailure
                where failure.decision.next == .retryLater && attempt < maxTransientAttempts
            {
                attempt += 1
                let backoff =
                    failure.decision.retryIn ?? min(maxBackoff, firstBackoff * Double(1 << min(attempt - 1, 20)))
                do { try await clock.sleep(seconds: backoff) } catch { return }
                continue
            } catch {
                reason = "meeting \(meetingID) could not be deleted: \(error)"
            }
            do {
                try store.write { txn in
                    guard let stored = try txn.rooms.get(id) else { return }
                    try txn.rooms.put(RoomRules.deletionDone(stored, problem: reason))
                }
            } catch {
                logger.error(
                    "cannot record a meeting deletion's end",
                    metadata: ["room.id": "\(id)", "error": "\(error)"]
                )
            }
            if let reason {
                logger.error("meeting not deleted", metadata: ["room.id": "\(id)", "reason": "\(reason)"])
            } else {
                logger.info(
                    "meeting deleted after the reopen hold-down",
                    metadata: ["room.id": "\(id)", "meeting": "\(meetingID)"]
                )
            }
            return
        }
    }
}
