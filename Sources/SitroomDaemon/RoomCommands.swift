import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore

// The admin commands on rooms (`room retry`, `room end`) and the listings (`room list`, `room show`, `status`).
extension RoomProvisioner {
    /// `room retry INCIDENT`: a `failed` or `unavailable` room is tried again from the start (a new lease; its
    /// integration may have been re-authorized meanwhile); a `waiting` room is given a host if one is free.
    /// - Returns: a line for the admin.
    /// - Throws: ``SitroomError`` `.notFound` (no such incident or room) or `.badCommand` (the room is fine).
    public func retry(incident: String) async throws -> String {
        guard let (_, found) = try show(incident: incident), let room = found else {
            throw SitroomError(.notFound, "no room for incident \(incident)")
        }
        if room.state == .waiting {
            await retryWaiting()
            return "room \(room.id) of \(incident) is waiting: \(readRoom(room.id)?.reason ?? "")"
        }
        if room.state == .failed, room.sweepMarker, !room.endRequested, running[room.id] == nil {
            // A create of this room may have left a meeting on its host: the room keeps its host and marker and is
            // swept for it (``RoomRules/sweepBeforeReplacing(_:)``), and the incident gets a new room, which may
            // lease another host (a retry of the same room would forget the host the stray meeting is on).
            let store = self.store
            let now = clock.now()
            var batch = BatchEffects()
            let fresh: Room? = try store.write { txn in
                guard var record = try txn.incidents.get(incident), record.roomID == room.id else { return nil }
                let fresh = try newRoom(for: &record, now: now, txn, &batch)
                try txn.incidents.put(record)
                return fresh
            }
            if let fresh {
                track(fresh)
                for id in batch.drives { drive(id) }
                return
                    "room \(room.id) of \(incident) is swept for a meeting its create may have left; new room \(fresh.id) is being provisioned"
            }
        }
        let retried: Room
        switch RoomRules.retry(room, now: clock.now()) {
        case .success(let value): retried = value
        case .failure(let refusal): throw SitroomError(.badCommand, refusal.message)
        }
        // Written at once, not through the machine's merge: that refuses to bring back an `unavailable` room (work
        // still in flight for it must not), which is exactly what this command asks. The stored end request stays.
        let store = self.store
        try store.write { txn in
            var current = retried
            if let stored = try txn.rooms.get(current.id) {
                current.endRequested = stored.endRequested
                current.closedByOperator = stored.closedByOperator
            }
            try txn.rooms.put(current)
        }
        track(retried)
        drive(retried.id)
        return "room \(retried.id) of \(incident) is being provisioned again"
    }

    /// `room end INCIDENT`: an operator closes the room now: the meeting is ended (and deleted per
    /// `on_resolve`) as a `resolved` event would, but the incident stays as it is, and the `room-ended` notices
    /// say that an operator closed the room (``Room/closedByOperator``).
    /// - Throws: ``SitroomError`` `.notFound` (no such incident or room) or `.badCommand` (not open).
    public func end(incident: String) throws -> String {
        guard let (_, found) = try show(incident: incident), let room = found else {
            throw SitroomError(.notFound, "no room for incident \(incident)")
        }
        var ending: Room
        switch RoomRules.requestEnd(room, now: clock.now()) {
        case .success(let value): ending = value
        case .failure(let refusal): throw SitroomError(.badCommand, refusal.message)
        }
        ending.closedByOperator = true
        let store = self.store
        try store.write { [ending] txn in
            var written = ending
            written.live = try txn.rooms.get(ending.id)?.live ?? ending.live
            try txn.rooms.put(written)
        }
        drive(room.id)
        return "room \(room.id) of \(incident) is being closed; its participants are told an operator closed it"
    }

    /// The incidents sitroom keeps, with their current room if they have one (an `opened` incident has none),
    /// most recent event first.
    /// - Parameter openOnly: leave out incidents that are `resolved` or `closed`.
    /// - Complexity: O(incidents) decodes, plus a room read per incident that has one.
    public func incidents(openOnly: Bool) throws -> [(IncidentRecord, Room?)] {
        let store = self.store
        let listed: [(IncidentRecord, Room?)] = try store.read { txn in
            var listed: [(IncidentRecord, Room?)] = []
            for record in try txn.incidents.all()
            where !openOnly || (record.stage != .resolved && record.stage != .closed) {
                listed.append((record, try record.roomID.flatMap { try txn.rooms.get($0) }))
            }
            return listed
        }
        return listed.sorted { ($0.0.lastOccurredAt, $0.0.info.id) > ($1.0.lastOccurredAt, $1.0.info.id) }
    }

    /// A room and its incident, for `room show`.
    public func show(incident id: String) throws -> (IncidentRecord, Room?)? {
        let store = self.store
        return try store.read { txn in
            guard let record = try txn.incidents.get(id) else { return nil }
            return (record, try record.roomID.flatMap { try txn.rooms.get($0) })
        }
    }

    /// How many rooms are in each state that has any, for `status`: read from the room index, no room decoded
    /// (README, "Performance").
    /// - Complexity: O(rooms) index entries.
    public func roomCounts() throws -> [RoomState: Int] {
        let store = self.store
        return try store.read { txn in try txn.rooms.counts().byState }.filter { $0.value > 0 }
    }

    /// The rooms, oldest first: all of them, or only the open ones (found in the room index, so only they are
    /// decoded).
    /// - Parameter openOnly: list only rooms in an open state (`provisioning`, `waiting`, `ready`).
    /// - Complexity: O(r log r) in the rooms listed, plus O(rooms) index entries when `openOnly`.
    public func rooms(openOnly: Bool = false) throws -> [Room] {
        let store = self.store
        let rooms = try store.read { txn in
            openOnly
                ? try txn.rooms.matching({ $0.state.isOpen }) : try txn.rooms.all()
        }
        return rooms.sorted { $0.createdAt < $1.createdAt }
    }

    /// The participants of each of `incidents` (those sitroom keeps), in one read.
    public func participants(of incidents: [String]) throws -> [String: [Participant]] {
        let store = self.store
        return try store.read { txn in
            var found: [String: [Participant]] = [:]
            for id in Set(incidents) { if let record = try txn.incidents.get(id) { found[id] = record.participants } }
            return found
        }
    }
}
