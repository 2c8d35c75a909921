import SitroomCore
import SitroomRooms

/// A small world for the room machine, kept in memory: a store of rooms and incidents, a pool of hosts, a video
/// provider whose answers are scripted, and a clock. It carries out the machine's requests as `RoomProvisioner`
/// does (the writes through ``RoomRules``), and records every breach of the rules the machine must keep.
final class World {
    /// What the provider does with the next call of a kind.
    enum Answer: Equatable, CustomStringConvertible {
        /// Does what was asked.
        case ok
        /// Creates the meeting, but the answer is lost (no reply: it may have happened).
        case lost
        /// 5xx: it may have happened (nothing was made here).
        case serverError
        /// Refused before it was sent (connection refused).
        case notSent
        /// The daily create limit of the host.
        case dailyLimit
        /// A validation error: the room fails.
        case validation
        /// The access token was refused (a new one is tried once).
        case tokenRejected
        /// The app lacks a scope: the integration is out.
        case missingScope
        /// The credentials were refused: the integration needs re-authorization.
        case credentialsRefused

        var description: String {
            switch self {
            case .ok: "ok"
            case .lost: "lost"
            case .serverError: "5xx"
            case .notSent: "not-sent"
            case .dailyLimit: "daily-limit"
            case .validation: "validation"
            case .tokenRejected: "token-rejected"
            case .missingScope: "missing-scope"
            case .credentialsRefused: "credentials-refused"
            }
        }
    }

    struct Meeting {
        var id: Int64
        var roomID: String
        var host: PoolHost
        var live = true
        var deleted = false
    }

    var rooms: [String: Room] = [:]
    /// Incident id → its current room.
    var incidents: [String: String] = [:]
    var meetings: [Int64: Meeting] = [:]
    /// Room → the host the pool has leased it (the pool's memory).
    var leases: [String: PoolHost] = [:]
    /// Hosts out of quota or unusable.
    var hostsOut: Set<PoolHost> = []
    /// Integrations marked refused (needs re-authorization, missing scope).
    var integrationsOut: Set<String> = []
    let hosts: [PoolHost]
    let policy: RoomPolicy
    var now = 1_795_950_000.0
    /// The provider's next answers, taken in order by every call; `ok` when none is left.
    var script: [Answer] = []
    /// Notices planned: (room, kind), each once (the outbox keys notices by room, person, kind and channel, so a
    /// second plan of the same one is nothing).
    var notices: [(room: String, kind: String)] = []

    private func plan(_ room: String, _ kind: String) {
        // `room-ended` goes to those told about the room (NoticePlanner.roomEnded).
        if kind == "ended", !notices.contains(where: { $0.room == room && $0.kind == "ready" }) { return }
        if !notices.contains(where: { $0.room == room && $0.kind == kind }) { notices.append((room, kind)) }
    }
    var deletions: [String: Double] = [:]
    var driven: [String] = []
    var violations: [String] = []
    var log: [String] = []
    private var nextMeetingID: Int64 = 1_000
    private var nextRoom = 0

    init(integrations: [String] = ["zoom-a", "zoom-b"], hostsPerIntegration: Int = 2, holdDown: Double = 900) {
        hosts = integrations.flatMap { integration in
            (1...hostsPerIntegration).map { PoolHost(integration: integration, host: "\(integration)-h\($0)") }
        }
        policy = RoomPolicy(
            integrations: Dictionary(
                uniqueKeysWithValues: integrations.map {
                    ($0, RoomPolicy.Integration(deletesOnResolve: true, perHostAuthorization: false))
                }
            ),
            reopenHoldDown: holdDown,
            maxTransientAttempts: 3
        )
    }

    // MARK: Incidents

    /// A new incident with a new room, as an applied `situation_room` event makes it.
    @discardableResult
    func open(_ incident: String) -> String {
        if let previous = incidents[incident], let old = rooms[previous],
            let swept = RoomRules.sweepBeforeReplacing(old)
        {
            rooms[previous] = swept
            driven.append(previous)
        }
        nextRoom += 1
        let room = Room(id: "r\(nextRoom)", incidentID: incident, createdAt: now)
        rooms[room.id] = room
        incidents[incident] = room.id
        return room.id
    }

    /// A new incident whose room gets a free host at the event's commit (as `RoomProvisioner.preLease` does), or,
    /// with none free, a room as ``open(_:)`` makes it. - Returns: the room id, and whether it has its host.
    func openWithHost(_ incident: String) -> (id: String, leased: Bool) {
        let id = open(incident)
        guard
            let host = hosts.first(where: { host in
                !leases.values.contains(host) && !hostsOut.contains(host) && !integrationsOut.contains(host.integration)
            })
        else { return (id, false) }
        leases[id] = host
        rooms[id] = RoomRules.leased(rooms[id]!, host: host, user: "\(host.host)@example.com", now: now)
        return (id, true)
    }

    /// A `resolved` event: the open room's end is requested (a failed one with a sweep pending too).
    /// - Parameter whileRunning: whether a run of the room is going on (or finishing) as the event applies: then a
    ///   reopened room not yet taken back has its end requested, as the event rules do, and its next run ends it.
    func resolve(_ incident: String, whileRunning: Bool = false) {
        guard let id = incidents[incident], var room = rooms[id] else { return }
        if RoomRules.isRevivalPending(room), !whileRunning {
            // Reopened and resolved again before any call: ended as it was (as the event rules do).
            rooms[id] = RoomRules.endedAsItWas(room, now: now, policy: policy)
            return
        }
        if room.state.isOpen || (room.state == .failed && room.sweepMarker) {
            room.endRequested = true
            rooms[id] = room
        }
    }

    /// A `reopened` event: an end not yet carried out is withdrawn; an ended room within the hold-down comes back
    /// with its meeting; otherwise a new room.
    func reopen(_ incident: String) {
        guard let id = incidents[incident], var room = rooms[id] else { return }
        if room.state.isOpen {
            room.endRequested = false
            rooms[id] = room
        } else if RoomRules.isReusable(room, now: now, policy: policy) {
            rooms[id] = RoomRules.reopened(room, now: now)
        } else {
            open(incident)
        }
    }

    /// A restart: what was in memory is gone; the pool holds again what open rooms hold (as it restores itself).
    func restart() {
        leases = [:]
        for room in rooms.values where room.state.isOpen && !RoomRules.isRevivalPending(room) {
            if let integration = room.integration, let host = room.hostID {
                leases[room.id] = PoolHost(integration: integration, host: host)
            }
        }
    }

    // MARK: Running

    /// One run of a room's machine, until it is over (or `limit` steps: a runaway is a breach).
    /// - Parameter crashAfter: stop after this many requests, as a crash would (nothing of the run's memory stays).
    /// - Parameter first: the run's first input (``RoomInput/intentCommitted`` for a room made with its host).
    func run(_ id: String, first: RoomInput = .start, crashAfter: Int? = nil, limit: Int = 300) {
        guard let stored = rooms[id] else { return }
        var machine = RoomMachine(room: stored, policy: policy)
        var input = first
        var requests = 0
        while true {
            let step = machine.handle(input, now: now)
            for effect in step.effects { carry(effect, room: machine.room) }
            guard let request = step.request else { return }
            requests += 1
            if let crashAfter, requests > crashAfter { return }
            if requests > limit {
                violations.append("room \(id): runaway run (\(limit) requests)")
                return
            }
            input = perform(request, room: machine.room)
            check()
            if let fresh = rooms[id], fresh.endRequested != machine.room.endRequested || fresh.state == .unavailable {
                machine.absorb(fresh)
            }
        }
    }

    /// Runs the room and every room it drives until nothing is left to do.
    func settle(_ id: String) {
        var queue = [id]
        var runs = 0
        while let next = queue.first {
            queue.removeFirst()
            driven = []
            run(next)
            queue += driven
            runs += 1
            if runs > 50 {
                violations.append("rooms keep driving each other")
                return
            }
        }
    }

    private func take() -> Answer {
        script.isEmpty ? .ok : script.removeFirst()
    }

    private func decision(_ answer: Answer) -> ProviderDecision {
        switch answer {
        case .ok:
            preconditionFailure("not a failure")
        case .lost:
            return ProviderDecision(
                request: .mayHaveHappened,
                host: .coolDown,
                integration: .none,
                next: .retryLater,
                reason: "no answer",
                advice: "wait"
            )
        case .serverError:
            return ProviderDecision(
                request: .mayHaveHappened,
                host: .coolDown,
                integration: .none,
                next: .retryLater,
                reason: "HTTP 500",
                advice: "wait"
            )
        case .notSent:
            return ProviderDecision(
                request: .refused,
                host: .coolDown,
                integration: .none,
                next: .retryLater,
                reason: "connection refused",
                advice: "wait"
            )
        case .dailyLimit:
            return ProviderDecision(
                request: .refused,
                host: .outOfQuota,
                integration: .none,
                next: .nextHost,
                reason: "daily limit",
                advice: "tomorrow"
            )
        case .validation:
            return ProviderDecision(
                request: .refused,
                host: .none,
                integration: .none,
                next: .fail,
                reason: "validation failed",
                advice: "fix the field"
            )
        case .tokenRejected:
            return ProviderDecision(
                request: .refused,
                host: .none,
                integration: .none,
                next: .retryWithNewToken,
                reason: "124",
                advice: "none"
            )
        case .missingScope:
            return ProviderDecision(
                request: .refused,
                host: .none,
                integration: .missingScope,
                next: .nextIntegration,
                reason: "4711",
                advice: "add the scope",
                missingScopes: ["meeting:write:meeting:admin"]
            )
        case .credentialsRefused:
            return ProviderDecision(
                request: .refused,
                host: .none,
                integration: .needsReauthorization,
                next: .nextIntegration,
                reason: "invalid client",
                advice: "re-integrate"
            )
        }
    }

    private func makeMeeting(for room: Room) -> MeetingInfo {
        nextMeetingID += 1
        let host = PoolHost(integration: room.integration!, host: room.hostID!)
        meetings[nextMeetingID] = Meeting(id: nextMeetingID, roomID: room.id, host: host)
        return MeetingInfo(id: nextMeetingID, joinURL: "https://zoom.us/j/\(nextMeetingID)", passcode: "p")
    }

    /// Provider calls made (create, marker, check, end, sweep), in order: "room: kind".
    var calls: [String] = []

    private func perform(_ request: RoomRequest, room: Room) -> RoomInput {
        switch request {
        case .create: calls.append("\(room.id): create")
        case .findMarker: calls.append("\(room.id): find marker")
        case .checkMeeting: calls.append("\(room.id): check meeting")
        case .endMeeting: calls.append("\(room.id): end meeting")
        case .sweep: calls.append("\(room.id): sweep")
        default: break
        }
        switch request {
        case .write(let wanted, let kind):
            return .written(write(wanted, kind))
        case .lease(let excluding):
            if leases[room.id] != nil { violations.append("room \(room.id): leased again while it holds a host") }
            var reasons: [String] = []
            for host in hosts where !excluding.contains(host.integration) {
                if integrationsOut.contains(host.integration) || hostsOut.contains(host) {
                    reasons.append("\(host) is out")
                    continue
                }
                if leases.values.contains(host) {
                    reasons.append("\(host) is busy")
                    continue
                }
                leases[room.id] = host
                return .leased(
                    host,
                    user: "\(host.host)@example.com",
                    creates: CreateCount(host: host, count: 1, day: "d")
                )
            }
            let servable = hosts.contains { !integrationsOut.contains($0.integration) && !hostsOut.contains($0) }
            return .noHost(reasons: reasons, servable: servable)
        case .reclaim(let host):
            guard !leases.values.contains(host), !hostsOut.contains(host) else { return .reclaimed(false) }
            leases[room.id] = host
            return .reclaimed(true)
        case .wait(let seconds):
            now += seconds
            return .woke
        case .create(let room):
            if room.createPhase != .inFlight {
                violations.append("room \(room.id): create sent before it was marked in flight")
            }
            if let stored = rooms[room.id], stored.createPhase != .inFlight {
                violations.append("room \(room.id): create sent before the write marking it in flight was committed")
            }
            switch take() {
            case .ok: return .created(makeMeeting(for: room))
            case .lost:
                _ = makeMeeting(for: room)
                return .failed(decision(.lost), token: "t", sent: true)
            case .notSent: return .failed(decision(.notSent), token: "t", sent: false)
            case let other: return .failed(decision(other), token: "t", sent: true)
            }
        case .findMarker(let room):
            switch take() {
            case .ok, .lost, .dailyLimit, .validation:
                let found = meetings.values.filter { $0.roomID == room.id && !$0.deleted }.min { $0.id < $1.id }
                return .found(
                    found.map { MeetingInfo(id: $0.id, joinURL: "https://zoom.us/j/\($0.id)", passcode: "p") }
                )
            case let other: return .failed(decision(other), token: "t", sent: true)
            }
        case .checkMeeting(let room):
            guard let id = room.meetingID, let meeting = meetings[id], !meeting.deleted else {
                return .failed(
                    ProviderDecision(
                        request: .done,
                        host: .none,
                        integration: .none,
                        next: .carryOn,
                        reason: "3001",
                        advice: "none"
                    ),
                    token: "t",
                    sent: true
                )
            }
            return .checked(MeetingInfo(id: meeting.id, joinURL: "https://zoom.us/j/\(meeting.id)", passcode: "p"))
        case .endMeeting(let room, let delete):
            switch take() {
            case .ok, .lost, .dailyLimit, .validation:
                if let id = room.meetingID, meetings[id] != nil {
                    meetings[id]!.live = false
                    if delete { meetings[id]!.deleted = true }
                }
                return .done
            case let other: return .failed(decision(other), token: "t", sent: true)
            }
        case .sweep(let room, let keeping):
            for (id, meeting) in meetings where meeting.roomID == room.id && id != keeping && id != room.meetingID {
                meetings[id]!.live = false
                meetings[id]!.deleted = true
            }
            return .done
        }
    }

    /// A write as the provisioner commits it (``RoomRules``), with the notices it plans.
    private func write(_ wanted: Room, _ kind: RoomWrite) -> WriteOutcome {
        let stored = rooms[wanted.id]
        switch kind {
        case .save, .lease, .ready, .failed:
            guard let merged = RoomRules.merge(wanted, into: stored) else { return .refused }
            rooms[merged.id] = merged
            if case .ready = kind, !merged.endRequested {
                if merged.meetingID.flatMap({ meetings[$0] }).map({ $0.deleted }) ?? true {
                    violations.append("room \(merged.id): ready with a meeting that does not exist")
                }
                plan(merged.id, "ready")
            }
            if case .failed = kind { plan(merged.id, "failed") }
            return .saved(merged)
        case .endedWithoutZoom:
            if let stored, !stored.endRequested { return .withdrawn(stored) }
            guard let merged = RoomRules.merge(wanted, into: stored) else { return .refused }
            rooms[merged.id] = merged
            plan(merged.id, "ended")
            return .saved(merged)
        case .ended:
            switch RoomRules.endCommit(wanted, stored: stored, now: now) {
            case .keep(let kept), .resume(let kept):
                rooms[kept.id] = kept
                return .withdrawn(kept)
            case .end(let ended):
                rooms[ended.id] = ended
                plan(ended.id, "ended")
                return .ended(ended, replacement: nil)
            case .endAndReplace(let ended):
                rooms[ended.id] = ended
                plan(ended.id, "ended")
                guard incidents[ended.incidentID] == ended.id else { return .ended(ended, replacement: nil) }
                return .ended(ended, replacement: open(ended.incidentID))
            }
        case .replaced(let reason):
            guard let stored else { return .refused }
            let (ended, wanted) = RoomRules.replace(stored, reason: reason, now: now)
            rooms[ended.id] = ended
            guard wanted, incidents[ended.incidentID] == ended.id else { return .ended(ended, replacement: nil) }
            return .ended(ended, replacement: open(ended.incidentID))
        }
    }

    private func carry(_ effect: RoomEffect, room: Room) {
        switch effect {
        case .release(let host):
            if leases[room.id] != host {
                violations.append(
                    "room \(room.id): released \(host), which it does not hold (holds \(leases[room.id].map(String.init(describing:)) ?? "none"))"
                )
            }
            leases[room.id] = nil
        case .exhaustQuota(let host), .markUnusable(let host, _):
            hostsOut.insert(host)
        case .needsReauthorization(let integration, _, _, _), .missingScope(let integration, _, _, _):
            integrationsOut.insert(integration)
        case .scheduleDeletion(let time):
            deletions[room.id] = time
        case .drive(let other):
            driven.append(other)
        case .log(let line):
            log.append("\(room.id): \(line.message)")
        case .coolDown, .invalidateToken, .retryWaiting, .becameReady:
            break
        }
    }

    /// The rules that must hold after every request.
    func check() {
        var live: [String: [Int64]] = [:]
        for meeting in meetings.values where meeting.live && !meeting.deleted {
            guard let room = rooms[meeting.roomID] else { continue }
            // A failed room marked to sweep for its marker knows its create may have made a meeting, and ends it once
            // the provider lets it (the final check of the property test holds it to that).
            if room.state == .failed && room.sweepMarker { continue }
            // One the provider would not let sitroom end: its room says so (and admins are told); a reopen takes it
            // back when the provider answers again, else the incident gets a new room meanwhile.
            if room.reason?.contains("could not be ended") == true { continue }
            let incident = room.incidentID
            live[incident, default: []].append(meeting.id)
        }
        for (incident, ids) in live where ids.count > 1 {
            let message = "incident \(incident): \(ids.count) live meetings"
            if !violations.contains(message) { violations.append(message) }
        }
        var holders: [PoolHost: String] = [:]
        for (room, host) in leases {
            if let other = holders[host] { violations.append("\(host) leased to \(room) and \(other)") }
            holders[host] = room
        }
    }

    /// Live meetings of an incident's rooms.
    func liveMeetings(of incident: String) -> [Int64] {
        meetings.values.filter { $0.live && !$0.deleted && rooms[$0.roomID]?.incidentID == incident }.map(\.id)
    }
}
