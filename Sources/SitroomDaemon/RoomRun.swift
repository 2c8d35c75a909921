import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomRooms
import SitroomStore

/// Carrying out a room's run: the ``RoomMachine`` decides, this does what it asks (writes through the group
/// commit, leases from the pool, calls the provider, waits) and tells it what came of it.
extension RoomProvisioner {
    /// What the room machine needs of the live configuration.
    var policy: RoomPolicy {
        RoomPolicy(
            integrations: configuration.integrations.mapValues { settings in
                RoomPolicy.Integration(
                    deletesOnResolve: settings.meeting.onResolve == .endAndDelete,
                    perHostAuthorization: settings.kind == .zoomOAuth
                )
            },
            reopenHoldDown: configuration.daemon.reopenHoldDown,
            maxTransientAttempts: maxTransientAttempts,
            firstBackoff: firstBackoff,
            maxBackoff: maxBackoff,
            coolDown: Self.coolDown
        )
    }

    /// One run of work on a room, until its machine needs nothing more now.
    /// - Parameter first: the run's first input (``RoomInput/intentCommitted`` for a room made with its host).
    func work(_ id: String, first: RoomInput = .start) async {
        defer { finished(id) }
        guard var machine = await startRun(id) else { return }
        var input = first
        while !stopped && !Task.isCancelled {
            if news.remove(id) != nil {
                // What changed meanwhile (a resolve, a command) must not be lost to a failed read: read until it works.
                guard let stored = await loadRetrying(id) else { return }
                machine.absorb(stored)
            }
            let step = machine.handle(input, now: clock.now())
            for effect in step.effects { await carry(effect, room: machine.room) }
            guard let request = step.request else { return }
            do {
                guard let answer = try await perform(request, room: machine.room, queued: false) else { return }
                input = answer
            } catch is CancellationError {
                return
            } catch {
                logger.error("room work failed", metadata: ["room.id": "\(id)", "error": "\(error)"])
                if case .write(let room, .lease) = request, let integration = room.integration, let host = room.hostID {
                    await pool.release(HostKey(integration: integration, host: host), room: id)
                }
                await pause(id, seconds: maxBackoff)
                // Start over from the room as stored.
                guard let restarted = await startRun(id) else { return }
                machine = restarted
                input = .start
            }
        }
    }

    /// A machine for a new run of the room as stored; `nil` when it is gone (or unreadable until the daemon stops).
    private func startRun(_ id: String) async -> RoomMachine? {
        news.remove(id)
        guard let room = await loadRetrying(id) else { return nil }
        return RoomMachine(room: room, policy: policy)
    }

    /// Leases a host for a waiting room (``retryWaiting()``): its machine runs until it holds a host (then it is
    /// driven, and creates) or waits on.
    /// - Returns: whether the room now has a host.
    func leaseWaiting(_ id: String) async -> Bool {
        guard let room = readRoom(id) else { return false }
        var machine = RoomMachine(room: room, policy: policy)
        var input = RoomInput.start
        while !stopped {
            let step = machine.handle(input, now: clock.now())
            for effect in step.effects { await carry(effect, room: machine.room) }
            guard let request = step.request else { return false }
            switch request {
            case .lease, .write:
                do {
                    guard let answer = try await perform(request, room: machine.room, queued: true) else {
                        return false
                    }
                    input = answer
                } catch {
                    logger.error(
                        "cannot lease a host for a waiting room",
                        metadata: ["room.id": "\(id)", "error": "\(error)"]
                    )
                    if case .write(let room, .lease) = request, let integration = room.integration,
                        let host = room.hostID
                    {
                        await pool.release(HostKey(integration: integration, host: host), room: id)
                    }
                    return false
                }
            default:
                return true  // beyond the lease: its run does the rest
            }
        }
        return false
    }

    // MARK: Requests

    /// Carries out one request of the machine.
    /// - Returns: its answer, or `nil` when the run must stop without one (its incident is gone).
    /// - Throws: store errors (the run starts over after a pause), `CancellationError`.
    private func perform(_ request: RoomRequest, room: Room, queued: Bool) async throws -> RoomInput? {
        switch request {
        case .write(let room, let kind):
            let outcome = try await commitWrite(room, kind)
            switch outcome {
            case .saved(let written), .withdrawn(let written), .ended(let written, _): track(written)
            case .refused: break
            }
            return .written(outcome)
        case .lease(let excluding):
            return try await lease(room, excluding: excluding, queued: queued)
        case .reclaim(let host):
            return .reclaimed(
                await pool.reclaim(HostKey(integration: host.integration, host: host.host), room: room.id)
            )
        case .wait(let seconds):
            await pause(room.id, seconds: seconds)
            return .woke
        case .create, .findMarker, .checkMeeting, .endMeeting, .sweep:
            return try await call(request, room: room)
        }
    }

    /// A provider call for the room: the provider with a token (``provider(for:)``), a request slot within the
    /// integration's rate, the call; a failure comes back as the provider's decision.
    private func call(_ request: RoomRequest, room: Room) async throws -> RoomInput {
        guard room.integration != nil else {
            return .failed(
                ProviderDecision(
                    request: .refused,
                    host: .none,
                    integration: .none,
                    next: .fail,
                    reason: "the room has no integration",
                    advice: "`sitroomctl room retry INCIDENT`"
                ),
                token: nil,
                sent: false
            )
        }
        do {
            let provider = try await self.provider(for: room)
            switch request {
            case .create(let room):
                guard let integration = room.integration, let settings = configuration.integrations[integration],
                    let record = try readIncident(room.incidentID)
                else { throw SitroomError(.notFound, "incident \(room.incidentID) of room \(room.id) is not recorded") }
                logger.debug(
                    "creating meeting",
                    metadata: [
                        "room.id": "\(room.id)", "incident.id": "\(room.incidentID)", "integration": "\(integration)",
                        "host": "\(room.hostID ?? "")",
                    ]
                )
                return .created(try await provider.create(meetingPlan(settings.meeting, record: record, room: room)))
            case .findMarker(let room):
                guard room.hostUser != nil, let found = try await provider.meetings(markedWith: room.marker).first
                else {
                    return .found(nil)
                }
                return .found(try await provider.meeting(found))
            case .checkMeeting(let room):
                guard let meetingID = room.meetingID else { return .found(nil) }
                return .checked(try await provider.meeting(meetingID))
            case .endMeeting(let room, let delete):
                guard let meetingID = room.meetingID else { return .done }
                try await provider.end(meetingID, delete: delete)
                return .done
            case .sweep(let room, let keeping):
                try await sweep(room, provider: provider, keeping: keeping)
                return .done
            default:
                preconditionFailure("not a provider call: \(request)")
            }
        } catch let failure as ProviderFailure {
            return .failed(failure.decision, token: failure.credential, sent: failure.sent)
        }
    }

    /// Ends and deletes every meeting of the room's host that carries the room's marker, but `keeping` and the
    /// room's own: what is left of creates whose outcome was unknown and that completed at the provider after all.
    private func sweep(_ room: Room, provider: any MeetingProvider, keeping: Int64?) async throws {
        guard let integration = room.integration, room.hostUser != nil else { return }
        let stray = try await provider.meetings(markedWith: room.marker).filter {
            $0 != keeping && $0 != room.meetingID
        }
        for id in stray {
            try await pace(integration)
            try await provider.end(id, delete: true)
            logger.warning(
                "stray meeting of a room ended and deleted",
                metadata: ["room.id": "\(room.id)", "integration": "\(integration)", "meeting": "\(id)"]
            )
        }
    }

    /// Leases a host from the first integration that has one for the room's incident (``candidates(for:)``).
    /// - Parameter queued: true for the oldest waiting rooms (``retryWaiting()``); a room not yet queued waits behind
    ///   older waiting rooms rather than jumping the queue.
    private func lease(_ room: Room, excluding excluded: Set<String>, queued: Bool) async throws -> RoomInput? {
        guard let record = try readIncident(room.incidentID) else { return nil }
        return try await lease(
            roomID: room.id,
            createdAt: room.createdAt,
            record: record,
            excluding: excluded,
            queued: queued
        )
    }

    /// A host for room `roomID` of the incident `record`, from the candidates in order (``candidates(for:)``).
    /// - Parameter queued: the room is served from the waiting queue (else it queues behind older waiting rooms).
    func lease(
        roomID: String,
        createdAt: Double,
        record: IncidentRecord,
        excluding excluded: Set<String>,
        queued: Bool
    ) async throws -> RoomInput {
        if !queued, waiting.contains(where: { $0.key != roomID && ($0.value, $0.key) < (createdAt, roomID) }) {
            return .queued
        }
        var reasons: [String] = []
        var anyServable = false
        for name in candidates(for: record) {
            guard configuration.integrations[name] != nil, let state = await registry.state(name) else {
                reasons.append("integration \(name) is not configured")
                continue
            }
            if state.state == .needsReauthorization {
                reasons.append("\(name) needs re-authorization: \(state.reason ?? "refused by Zoom")")
                continue
            }
            if state.state == .missingScope {
                let scopes = (state.missingScopes ?? []).joined(separator: ", ")
                reasons.append(
                    "\(name) lacks the Zoom scope \(scopes.isEmpty ? "an API call needs" : scopes) (add it in the app's "
                        + "Scopes tab, then `sitroomctl integration reauthorize \(name)`)"
                )
                continue
            }
            if excluded.contains(name) {
                reasons.append("\(name) refused this room")
                continue
            }
            var unauthorized: Set<String> = []
            if let authorized = try await registry.authorizedHosts(name),
                let hosts = configuration.integrations[name]?.hosts
            {
                unauthorized = Set(hosts.map(\.id)).subtracting(authorized)
            }
            switch await pool.lease(room: roomID, integration: name, unauthorized: unauthorized) {
            case .leased(let key, let limits, let creates, let day):
                let host = PoolHost(integration: key.integration, host: key.host)
                return .leased(host, user: limits.user, creates: CreateCount(host: host, count: creates, day: day))
            case .unavailable(let reason, let permanent):
                reasons.append(reason)
                if !permanent { anyServable = true }
            }
        }
        return .noHost(reasons: reasons, servable: anyServable)
    }

    // MARK: Writes

    /// Commits one write of the machine in the next group commit, deciding against the room as stored
    /// (``RoomRules``), with the notices it plans; the notices go to the notifier once it is durable.
    private func commitWrite(_ room: Room, _ kind: RoomWrite) async throws -> WriteOutcome {
        let planner = self.planner
        let now = clock.now()
        let (outcome, queued): (WriteOutcome, [Notice]) = try await commit { txn in
            let stored = try txn.rooms.get(room.id)
            switch kind {
            case .save, .lease, .ready, .failed:
                guard let merged = RoomRules.merge(room, into: stored) else { return (.refused, []) }
                try txn.rooms.put(merged)
                var notices: [Notice] = []
                switch kind {
                case .lease(let creates):
                    try txn.usage.recordCreates(
                        atLeast: creates.count,
                        day: creates.day,
                        integration: creates.host.integration,
                        host: creates.host.host
                    )
                case .ready:
                    if !merged.endRequested, let record = try txn.incidents.get(merged.incidentID) {
                        // Those due now are committed `sending` here: the room ready, its notices queued and their
                        // first attempts in one commit.
                        notices = Notifier.claimedAtCommit(
                            try planner.roomReady(room: merged, record: record, now: now, txn),
                            now: now
                        )
                        for notice in notices where notice.state == .sending { try txn.outbox.put(notice) }
                    }
                case .failed:
                    let record = try txn.incidents.get(merged.incidentID)
                    if let record { notices = try planner.roomFailed(room: merged, record: record, now: now, txn) }
                    notices += try planner.admins(.adminRoomFailed, room: merged, record: record, now: now, txn)
                default:
                    break
                }
                return (.saved(merged), notices)
            case .endedWithoutZoom:
                if let stored, !stored.endRequested { return (.withdrawn(stored), []) }
                guard let merged = RoomRules.merge(room, into: stored) else { return (.refused, []) }
                try txn.rooms.put(merged)
                let record = try txn.incidents.get(merged.incidentID)
                let notices = try record.map { try planner.roomEnded(room: merged, record: $0, now: now, txn) } ?? []
                return (.saved(merged), notices)
            case .ended:
                switch RoomRules.endCommit(room, stored: stored, now: now) {
                case .keep(let kept), .resume(let kept):
                    try txn.rooms.put(kept)
                    return (.withdrawn(kept), [])
                case .end(let ended):
                    try txn.rooms.put(ended)
                    let record = try txn.incidents.get(ended.incidentID)
                    let notices = try record.map { try planner.roomEnded(room: ended, record: $0, now: now, txn) } ?? []
                    return (.ended(ended, replacement: nil), notices)
                case .endAndReplace(let ended):
                    try txn.rooms.put(ended)
                    guard var record = try txn.incidents.get(ended.incidentID) else {
                        return (.ended(ended, replacement: nil), [])
                    }
                    let notices = try planner.roomEnded(room: ended, record: record, now: now, txn)
                    guard record.roomID == ended.id else { return (.ended(ended, replacement: nil), notices) }
                    let fresh = Room(id: Self.newRoomID(), incidentID: ended.incidentID, createdAt: now)
                    record.roomID = fresh.id
                    try txn.rooms.put(fresh)
                    try txn.incidents.put(record)
                    return (.ended(ended, replacement: fresh.id), notices)
                }
            case .replaced(let reason):
                guard let stored else { return (.refused, []) }
                let (ended, wanted) = RoomRules.replace(stored, reason: reason, now: now)
                try txn.rooms.put(ended)
                guard wanted, var record = try txn.incidents.get(ended.incidentID), record.roomID == ended.id else {
                    return (.ended(ended, replacement: nil), [])
                }
                let fresh = Room(id: Self.newRoomID(), incidentID: ended.incidentID, createdAt: now)
                record.roomID = fresh.id
                try txn.rooms.put(fresh)
                try txn.incidents.put(record)
                return (.ended(ended, replacement: fresh.id), [])
            }
        }
        if !queued.isEmpty { Task { await notifier.enqueued(queued) } }
        return outcome
    }

    // MARK: Effects

    private func carry(_ effect: RoomEffect, room: Room) async {
        switch effect {
        case .release(let host):
            await pool.release(HostKey(integration: host.integration, host: host.host), room: room.id)
        case .coolDown(let host, let seconds):
            await pool.coolDown(HostKey(integration: host.integration, host: host.host), seconds: seconds)
        case .exhaustQuota(let host):
            await pool.exhaustQuota(HostKey(integration: host.integration, host: host.host))
        case .markUnusable(let host, let reason):
            await pool.markUnusable(HostKey(integration: host.integration, host: host.host), reason: reason)
        case .needsReauthorization(let integration, let host, let reason, let advice):
            let changed =
                (try? await registry.markNeedsReauthorization(integration, host: host, reason: reason, advice: advice))
                ?? false
            if changed {
                queueAdminNotices(
                    kind: .adminReauthorize,
                    room: nil,
                    integration: integration,
                    reason: reason,
                    advice: advice
                )
            }
        case .missingScope(let integration, let scopes, let reason, let advice):
            let changed =
                (try? await registry.markMissingScope(integration, scopes: scopes, reason: reason, advice: advice))
                ?? false
            if changed {
                queueAdminNotices(
                    kind: .adminReauthorize,
                    room: nil,
                    integration: integration,
                    reason: reason,
                    advice: advice
                )
            }
        case .invalidateToken(let integration, let host, let token):
            try? await registry.invalidateToken(integration, host: host, ifValue: token)
        case .scheduleDeletion(let time):
            scheduleDeletion(room.id, at: time)
        case .drive(let other):
            drive(other)
        case .retryWaiting:
            Task { await self.retryWaiting() }
        case .becameReady:
            metrics.roomReady(after: clock.now() - room.createdAt)
        case .log(let line):
            var metadata: Logger.Metadata = ["room.id": "\(room.id)", "incident.id": "\(room.incidentID)"]
            for (key, value) in line.metadata { metadata[key] = "\(value)" }
            switch line.level {
            case .debug: logger.debug("\(line.message)", metadata: metadata)
            case .info: logger.info("\(line.message)", metadata: metadata)
            case .warning: logger.warning("\(line.message)", metadata: metadata)
            case .error: logger.error("\(line.message)", metadata: metadata)
            }
        }
    }
}
