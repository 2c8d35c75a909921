import SitroomCore

/// The decisions about one room that are taken inside a store transaction (against the room as stored) or for an
/// admin's command: pure functions, so the provisioner only reads, calls, and writes.
public enum RoomRules {
    /// A room the machine wants written, against the room as stored: the stored end request wins (only events and
    /// `room end` set or withdraw it), and a room that became `unavailable` meanwhile (its integration removed while
    /// work was in flight) is not brought back.
    /// - Returns: the room to write, or `nil` when the write must be refused.
    public static func merge(_ wanted: Room, into stored: Room?) -> Room? {
        guard let stored else { return wanted }
        if stored.state == .unavailable && wanted.state != .unavailable { return nil }
        var room = wanted
        room.endRequested = stored.endRequested
        room.closedByOperator = stored.closedByOperator
        room.live = stored.live  // only Zoom's events change it, in their own writes
        return room
    }

    /// What the commit that ends a room writes.
    public enum EndCommit: Sendable, Hashable {
        /// The room `ended` (its `room-ended` notices are planned with it).
        case end(Room)
        /// Reopened while its meeting was being ended, and the meeting is alive: the room stays `ready` with it.
        case keep(Room)
        /// Reopened before anything was made or taken back: the room is written as is and its work resumes.
        case resume(Room)
        /// Reopened after its meeting was deleted: the room `ended`, and the incident gets a new room.
        case endAndReplace(Room)
    }

    /// The end commit of `ending` (whose meeting was ended, or could not be), against the room as stored.
    /// - Parameter now: seconds since 1970.
    public static func endCommit(_ ending: Room, stored: Room?, now: Double) -> EndCommit {
        var room = ending
        if let stored { room.live = stored.live }
        func ended() -> Room {
            var done = room
            done.state = .ended
            done.endedAt = now
            done.updatedAt = now
            return done
        }
        guard let stored, !stored.endRequested else { return .end(ended()) }
        room.endRequested = false
        room.closedByOperator = false
        if room.meetingID != nil && room.meetingDeletedAt == nil && room.state == .ready {
            room.deleteAfter = nil
            room.updatedAt = now
            return .keep(room)
        }
        if room.meetingID == nil || room.meetingDeletedAt == nil { return .resume(room) }
        return .endAndReplace(ended())
    }

    /// A room that could not be reopened with its meeting (`reason` says why) ends for good; `wanted` tells whether
    /// the incident still wants a room (it was not resolved again meanwhile).
    public static func replace(_ stored: Room, reason: String, now: Double) -> (ended: Room, wanted: Bool) {
        var old = stored
        let wanted = !old.endRequested
        old.state = .ended
        old.endRequested = false
        old.reason = "not reopened: \(reason)"
        old.endedAt = old.endedAt ?? now
        old.updatedAt = now
        return (old, wanted)
    }

    /// The incident's previous room when a new room replaces it: a failed room whose create's outcome was unknown
    /// may have a meeting at the provider, so its end is requested too (its run sweeps the host for its marker
    /// and ends what it finds). `nil` when there is nothing to do.
    public static func sweepBeforeReplacing(_ previous: Room) -> Room? {
        guard previous.state == .failed, previous.sweepMarker, !previous.endRequested else { return nil }
        var room = previous
        room.endRequested = true
        room.attempts = 0  // the sweep's own attempts
        return room
    }

    /// Whether an ended room can be reopened with its meeting: ended less than `reopen_hold_down` ago, its meeting
    /// not deleted, its integration still configured, and its end gone well (no reason recorded: a meeting the
    /// provider would not let sitroom end, or a room that could not be reopened before, is not taken back).
    public static func isReusable(_ room: Room, now: Double, policy: RoomPolicy) -> Bool {
        guard room.state == .ended, room.reason == nil, room.meetingID != nil, room.meetingDeletedAt == nil,
            let endedAt = room.endedAt,
            let integration = room.integration, policy.integrations[integration] != nil
        else { return false }
        return now - endedAt <= policy.reopenHoldDown
    }

    /// The room with a leased host and its create's intent (in flight): what the run's lease write commits, and what
    /// the event's commit holds for a new room given its host before that commit (its first run then starts with
    /// ``RoomInput/intentCommitted`` and sends the create).
    /// - Parameter now: seconds since 1970.
    public static func leased(_ fresh: Room, host: PoolHost, user: String, now: Double) -> Room {
        var room = fresh
        room.integration = host.integration
        room.hostID = host.host
        room.hostUser = user
        room.state = .provisioning
        room.reason = nil
        room.waitingSince = nil
        room.createPhase = .inFlight
        room.updatedAt = now
        return room
    }

    /// A room reopened by an event whose meeting has not been checked with the provider yet.
    public static func isRevivalPending(_ room: Room) -> Bool {
        room.state == .provisioning && room.createPhase == .done && room.meetingID != nil
    }

    /// An ended room taken back by a `situation_room`/`reopened` event (``isReusable(_:now:policy:)`` said it may be):
    /// `provisioning` with its meeting, which its run checks with the provider and whose host it takes again. The
    /// reason says so until the room is ready again (or ends as it was, ``endedAsItWas(_:now:policy:)``).
    /// - Parameter now: seconds since 1970.
    public static func reopened(_ ended: Room, now: Double) -> Room {
        var room = ended
        room.state = .provisioning
        room.live = nil  // what Zoom's events said of its last run; the reopened room learns anew
        room.reason = "reopened: taking back meeting \(room.meetingID.map(String.init) ?? "")"
        room.endRequested = false
        room.closedByOperator = false
        room.attempts = 0
        room.updatedAt = now
        return room
    }

    /// A reopened room (``isRevivalPending(_:)``) resolved again before its run took its host and meeting back: it
    /// ends as it was (its meeting is as its last end left it, its host was never taken), with nothing recorded
    /// against it, so the next reopen within the hold-down takes the same meeting back. The deletion is due after
    /// the hold-down from `now`.
    /// - Parameter now: seconds since 1970.
    public static func endedAsItWas(_ reopened: Room, now: Double, policy: RoomPolicy) -> Room {
        var room = reopened
        room.state = .ended
        room.reason = nil
        room.endRequested = false
        room.closedByOperator = false
        room.endedAt = now
        room.updatedAt = now
        room.deleteAfter = deletionTime(room, endedAt: now, policy: policy)
        return room
    }

    /// When an ended room's meeting is deleted: after the hold-down, for integrations that delete on resolve
    /// (`nil` when it is kept, or already deleted).
    public static func deletionTime(_ room: Room, endedAt: Double, policy: RoomPolicy) -> Double? {
        guard room.meetingID != nil, room.meetingDeletedAt == nil, let integration = room.integration,
            policy.integrations[integration]?.deletesOnResolve == true
        else { return nil }
        return endedAt + policy.reopenHoldDown
    }

    /// The room as the hold-down's deletion records it, before the provider is asked: the decision is durable
    /// first, so the room can no longer be reopened with that meeting. `nil` when nothing is to be deleted (yet).
    public static func deletionDue(_ stored: Room, now: Double) -> Room? {
        guard stored.state == .ended, let after = stored.deleteAfter, stored.meetingID != nil, now >= after else {
            return nil
        }
        var room = stored
        if room.meetingDeletedAt == nil { room.meetingDeletedAt = now }
        return room
    }

    /// The room once its meeting's deletion is over: done, or given up with `problem` as its reason.
    public static func deletionDone(_ stored: Room, problem: String?) -> Room {
        var room = stored
        room.deleteAfter = nil
        if let problem { room.reason = problem }
        return room
    }

    /// A room of an open incident bound to `integration` (or to one of its hosts) loses its provider functionality
    /// (the integration was removed or deauthorized): `unavailable` with the reason. Only rooms bound to it count
    /// (ready, a host leased, a meeting made or a create sent); a room merely waiting stays waiting.
    /// - Returns: the room to write, or `nil` when it is not affected.
    public static func unavailable(
        _ room: Room,
        integration: String,
        host: String?,
        reason: String,
        now: Double
    ) -> Room? {
        guard room.state.isOpen, room.integration == integration, host == nil || room.hostID == host,
            room.state == .ready || room.hostID != nil || room.meetingID != nil || room.createPhase == .inFlight
        else { return nil }
        var changed = room
        changed.state = .unavailable
        changed.reason = reason
        changed.updatedAt = now
        if changed.createPhase == .inFlight { changed.createPhase = .notSent }
        return changed
    }

    /// `room retry`: a `failed` or `unavailable` room is provisioned again from the start (a new lease; its
    /// integration may have been re-authorized meanwhile).
    /// - Returns: the room to write, or why the command is refused.
    public static func retry(_ room: Room, now: Double) -> Result<Room, RoomCommandRefusal> {
        switch room.state {
        case .failed, .unavailable:
            if room.createPhase == .inFlight {
                return .failure(
                    RoomCommandRefusal(
                        "room \(room.id) may have a meeting whose creation could not be checked; end it first"
                    )
                )
            }
            var retried = room
            retried.state = .provisioning
            retried.reason = nil
            retried.advice = nil
            retried.attempts = 0
            retried.hostID = nil
            retried.hostUser = nil
            retried.integration = nil
            retried.createPhase = .notSent
            // Its next meeting is a new one: who was in the last one (Zoom's events of it) is not who is in that.
            retried.live = nil
            retried.updatedAt = now
            return .success(retried)
        case .provisioning, .waiting, .ready, .ended:
            return .failure(
                RoomCommandRefusal("room \(room.id) of \(room.incidentID) is \(room.state.rawValue): nothing to retry")
            )
        }
    }

    /// `room end`: the room's end is requested, as a `resolved` event would.
    public static func requestEnd(_ room: Room, now: Double) -> Result<Room, RoomCommandRefusal> {
        guard room.state.isOpen else {
            return .failure(
                RoomCommandRefusal("room \(room.id) of \(room.incidentID) is \(room.state.rawValue), not open")
            )
        }
        var ending = room
        ending.endRequested = true
        ending.updatedAt = now
        return .success(ending)
    }
}

/// Why an admin's command about a room is refused.
public struct RoomCommandRefusal: Error, Sendable, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
