import SitroomCore

// Over 500 lines on purpose: one type's transitions, meant to be read together (the `handle` switch and the helpers
// it calls); split across files, a reader would lose which input leads where.

/// One run of work on one room, as a value: it holds the room and answers each input (a run starting, a write
/// committed, a lease, a provider's answer, a timer) with the effects to carry out and the one request to carry out
/// next (``RoomStep``). `RoomProvisioner` only carries them out; every decision about a room's way from
/// `provisioning` to `ready`, `waiting`, `failed` or `ended` is here, testable without I/O.
///
/// The rules it keeps (docs/rooms.md):
/// - nothing is acted on before the write that allows it: a create is asked for only after the write that marks it
///   in flight; a room is `ready` (and its people told) by one write;
/// - a create whose outcome is unknown (lost answer, crash) is settled by the room's marker among its host's
///   meetings before another is made, so a room never gets two meetings;
/// - provider answers are acted on by their ``ProviderDecision``: a new token once, another host, another
///   integration, a wait (capped exponential backoff or the provider's word), or the room fails;
/// - an end asked for is carried out whatever happened before it (a create settled first); a reopen that comes
///   meanwhile keeps the room (and its meeting).
///
/// A run lasts until the room needs nothing more now (`ready`, `waiting`, `failed`, `ended`). What it learns that
/// is not in the room (integrations refused in this run, a token already renewed) lasts only for the run: a new run
/// (a restart, news) starts from the room as stored.
public struct RoomMachine: Sendable {
    /// The room as this run knows it (as last written, with news absorbed).
    public private(set) var room: Room
    public let policy: RoomPolicy
    /// Integrations the provider refused in this run (the room fails over past them).
    public private(set) var excluded: Set<String> = []
    /// Integrations whose access token was renewed once in this run after a refusal.
    private var renewed: Set<String> = []
    private var awaiting: Awaiting = .start
    /// Whether the pool holds the room's host for it: not for a room reopened with its meeting until it has taken
    /// its host back (its host was freed when it ended).
    private var holdsHost: Bool

    /// What the machine waits for.
    enum Awaiting: Sendable, Hashable {
        case start
        case write(RoomWrite, then: AfterWrite, effects: [RoomEffect])
        case lease
        case reclaim
        case create
        case marker(forEnd: Bool)
        case check
        case end(deleteNow: Bool, delete: Bool)
        case sweep(then: AfterSweep)
        case wait
        case finished
    }

    /// What follows a committed write.
    enum AfterWrite: Sendable, Hashable {
        case decide
        case create
        case ready(sweepKeeping: Int64?, then: Then)
        case failed(hadHost: PoolHost?)
        case endedWithoutZoom
        case ended
        case replaced(reason: String)
        case waiting(announce: String?)
        case continueEnd
        case wait(seconds: Double, coolDown: PoolHost?)
    }

    enum Then: Sendable, Hashable { case decide, continueEnd }
    enum AfterSweep: Sendable, Hashable { case decide, finalizeEnd, finish }

    /// A run of work on `room` as stored.
    public init(room: Room, policy: RoomPolicy) {
        self.room = room
        self.policy = policy
        self.holdsHost = room.hostID != nil && !RoomRules.isRevivalPending(room)
    }

    /// The room's host, when the pool holds it for the room.
    private var heldHost: PoolHost? {
        guard holdsHost, let integration = room.integration, let host = room.hostID else { return nil }
        return PoolHost(integration: integration, host: host)
    }

    /// Whether the run is over.
    public var isFinished: Bool { awaiting == .finished }

    /// Takes in what changed in the store while the machine waited (an event, a command): the end request as
    /// stored, and the whole room when it became `unavailable`.
    public mutating func absorb(_ stored: Room) {
        if stored.state == .unavailable {
            room = stored
        } else {
            room.endRequested = stored.endRequested
            room.closedByOperator = stored.closedByOperator
        }
    }

    /// The next step after `input`.
    /// - Parameter now: seconds since 1970.
    public mutating func handle(_ input: RoomInput, now: Double) -> RoomStep {
        let current = awaiting
        switch (input, current) {
        case (.start, _), (.woke, .wait):
            return decide(now)
        case (.intentCommitted, .start):
            guard room.state == .provisioning, room.createPhase == .inFlight, room.meetingID == nil, holdsHost else {
                return decide(now)
            }
            if room.endRequested {
                // Resolved before the create went out: nothing is at the provider.
                room.createPhase = .notSent
                return write(.save, then: .decide)
            }
            return ask(.create(room), .create)
        case (.written(let outcome), .write(_, let then, let effects)):
            return written(outcome, then: then, effects: effects, now: now)
        case (.leased(let host, let user, let creates), .lease):
            holdsHost = true
            // The host, its create count and the create's intent in one write (one sync): the create is sent only
            // once it is durable, and a crash after it is settled by the marker like any create in flight.
            room = RoomRules.leased(room, host: host, user: user, now: now)
            guard policy.integrations[host.integration] != nil else {
                room.createPhase = .notSent
                return write(.lease(creates), then: .decide)
            }
            return write(.lease(creates), then: .create)
        case (.queued, .lease):
            room.state = .waiting
            room.waitingSince = room.waitingSince ?? now
            // No count: a count taken now would go stale as the queue moves.
            room.reason = room.reason ?? "queued behind older waiting rooms: hosts go to the oldest first"
            room.updatedAt = now
            return write(.save, then: .waiting(announce: nil), effects: [.retryWaiting])
        case (.noHost(let reasons, let servable), .lease):
            return noHost(reasons, servable: servable, now: now)
        case (.reclaimed(let taken), .reclaim):
            holdsHost = taken
            guard taken, let integration = room.integration, let host = room.hostID else {
                return replace(
                    reason: "host \(room.hostID ?? "-") of \(room.integration ?? "-") cannot take it back now",
                    now: now
                )
            }
            _ = (integration, host)
            return ask(.checkMeeting(room), .check)
        case (.checked(let meeting), .check):
            room.deleteAfter = nil
            room.endedAt = nil
            return ready(
                meeting,
                sweepKeeping: nil,
                then: .decide,
                now: now,
                log: RoomLog(.info, "room reopened with its meeting", ["meeting": "\(meeting.id)"])
            )
        case (.created(let meeting), .create):
            return ready(meeting, sweepKeeping: room.sweepMarker ? meeting.id : nil, then: .decide, now: now)
        case (.found(let meeting), .marker(let forEnd)):
            if let meeting {
                return ready(
                    meeting,
                    sweepKeeping: nil,
                    then: forEnd ? .continueEnd : .decide,
                    now: now,
                    log: RoomLog(.info, "meeting adopted after an unknown create outcome")
                )
            }
            room.createPhase = .notSent
            return write(.save, then: forEnd ? .continueEnd : .decide)
        case (.done, .end(let deleteNow, let delete)):
            if deleteNow { room.meetingDeletedAt = now }
            room.deleteAfter =
                delete && !deleteNow && room.meetingDeletedAt == nil ? now + policy.reopenHoldDown : nil
            return afterMeetingEnded(now)
        case (.done, .sweep(let then)):
            if room.endRequested { room.sweepMarker = false }
            if then == .finish {
                // A failed room's sweep is done: written, so neither a restart nor a later resolve sweeps again.
                room.attempts = 0
                room.updatedAt = now
                return write(.save, then: .decide)
            }
            return afterSweep(then, now: now)
        case (.failed(let decision, _, _), .sweep(.finish)) where room.state == .failed && room.endRequested:
            // A failed room's sweep for a meeting its create may have left: nothing else will look for that meeting,
            // so a transient failure is retried with backoff (the room run waits; a restart resumes it); after the
            // last attempt the room's note tells an admin which meeting to end.
            room.attempts += 1
            room.updatedAt = now
            if decision.next == .retryLater || decision.next == .nextHost, room.attempts <= policy.maxSweepAttempts {
                let seconds = min(policy.maxBackoff, policy.firstBackoff * Double(1 << min(room.attempts - 1, 20)))
                var step = write(.save, then: .wait(seconds: seconds, coolDown: nil))
                step.effects.insert(
                    .log(
                        RoomLog(
                            .warning,
                            "cannot sweep a failed room's host for its meeting, retrying",
                            ["error": decision.reason, "retry_in": "\(seconds)"]
                        )
                    ),
                    at: 0
                )
                return step
            }
            room.sweepMarker = false
            room.note =
                "a meeting its create may have made could not be ended (\(decision.reason)): end and delete the meeting "
                + "whose agenda holds \(room.marker) on \(room.hostUser ?? room.hostID ?? "its host") in "
                + "\(provider(room.integration))"
            var step = write(.save, then: .decide)
            step.effects.insert(
                .log(
                    RoomLog(
                        .error,
                        "gave up sweeping a failed room's host",
                        ["error": decision.reason, "note": room.note ?? ""]
                    )
                ),
                at: 0
            )
            return step
        case (.failed(let decision, _, _), .sweep(let then)):
            // Best effort: the stray meeting stays for a later sweep (or an admin); the room goes on.
            var step = afterSweep(then, now: now)
            step.effects.insert(
                .log(RoomLog(.warning, "cannot sweep a room's meetings", ["error": decision.reason])),
                at: 0
            )
            return step
        case (.failed(let decision, let token, let sent), _):
            return failed(decision, token: token, sent: sent, during: current, now: now)
        default:
            preconditionFailure("room machine: \(input) while awaiting \(current)")
        }
    }

    // MARK: Deciding what the room needs next

    /// The head of the run: what the room, as it is, needs next.
    private mutating func decide(_ now: Double) -> RoomStep {
        if !room.state.isOpen {
            // A failed room whose create had an unknown outcome: once it is resolved, sweep the host for its marker.
            if room.state == .failed, room.endRequested, room.sweepMarker, let integration = room.integration,
                !excluded.contains(integration)
            {
                return ask(.sweep(room, keeping: nil), .sweep(then: .finish))
            }
            return finish()
        }
        if room.endRequested {
            if RoomRules.isRevivalPending(room) {
                // Reopened and resolved again before the run took the meeting back (the resolve came while an earlier
                // run was finishing, or the check is backing off): the meeting is as the room's last end left it, so
                // the room ends as it was (the end commit makes it `ended`; a host taken back is freed). Ending the
                // meeting again would call the provider for nothing, and the room's "reopened" reason, left on it,
                // would make the next reopen within the hold-down a new meeting.
                room.reason = nil
                room.deleteAfter = RoomRules.deletionTime(room, endedAt: now, policy: policy)
                room.updatedAt = now
                return write(.ended, then: .ended)
            }
            if let integration = room.integration, excluded.contains(integration) {
                // The provider refuses the integration: the meeting cannot be ended from here. End the room, say so,
                // and free the host rather than asking again and again.
                return endWithoutProvider(reason: "\(provider(integration)) refused \(integration)", now: now)
            }
            if room.createPhase == .inFlight { return settle(forEnd: true) }
            return continueEnd(now)
        }
        if room.state == .ready { return finish() }
        if RoomRules.isRevivalPending(room) { return revive(now) }
        if room.createPhase == .inFlight, let integration = room.integration, excluded.contains(integration) {
            let name = provider(integration)
            return fail(
                reason: "a create request's outcome cannot be checked: \(integration) was refused by \(name); "
                    + "ask your admin to re-integrate \(name)",
                advice: nil,
                now: now
            )
        }
        if room.createPhase == .inFlight { return settle(forEnd: false) }
        if room.hostID == nil { return ask(.lease(excluding: excluded), .lease) }
        return create(now)
    }

    private func provider(_ integration: String?) -> String {
        integration.flatMap { policy.integrations[$0]?.provider } ?? "Zoom"
    }

    private mutating func settle(forEnd: Bool) -> RoomStep {
        guard room.integration != nil, room.hostUser != nil else {
            room.createPhase = .notSent
            return write(.save, then: forEnd ? .continueEnd : .decide)
        }
        return ask(.findMarker(room), .marker(forEnd: forEnd))
    }

    private mutating func create(_ now: Double) -> RoomStep {
        guard let integration = room.integration, policy.integrations[integration] != nil, room.hostUser != nil else {
            if let integration = room.integration, policy.integrations[integration] == nil, let host = room.hostID,
                room.meetingID == nil, room.createPhase != .inFlight
            {
                // The integration was removed after the room leased a host there and before any create was sent:
                // nothing exists at the provider, so the room leases again elsewhere.
                room.integration = nil
                room.hostID = nil
                room.hostUser = nil
                room.updatedAt = now
                holdsHost = false
                return write(.save, then: .decide, effects: [.release(PoolHost(integration: integration, host: host))])
            }
            return fail(reason: "integration removed", advice: nil, now: now)
        }
        room.createPhase = .inFlight
        room.updatedAt = now
        return write(.save, then: .create)
    }

    private mutating func noHost(_ reasons: [String], servable: Bool, now: Double) -> RoomStep {
        guard servable else {
            let reason =
                (reasons.isEmpty ? "no integration serves this incident" : reasons.joined(separator: "; "))
                + "; ask your admin to re-integrate Zoom or fix the pool"
            return fail(reason: reason, advice: nil, now: now)
        }
        let reason = reasons.joined(separator: "; ")
        guard room.state != .waiting || room.reason != reason else { return finish() }
        room.state = .waiting
        room.waitingSince = room.waitingSince ?? now
        room.reason = reason
        room.updatedAt = now
        return write(.save, then: .waiting(announce: reason))
    }

    /// The room is `ready` with `meeting`: written with its notices, then what `then` says.
    private mutating func ready(
        _ meeting: MeetingInfo,
        sweepKeeping: Int64?,
        then: Then,
        now: Double,
        log: RoomLog? = nil
    ) -> RoomStep {
        room.state = .ready
        room.createPhase = .done
        if room.meetingID != meeting.id { room.readyAt = now }  // its link goes out now (not again on a reopen)
        room.meetingID = meeting.id
        room.joinURL = meeting.joinURL
        room.passcode = meeting.passcode
        room.reason = nil
        room.advice = nil
        room.attempts = 0
        room.updatedAt = now
        var step = write(.ready, then: .ready(sweepKeeping: sweepKeeping, then: then))
        if let log { step.effects.append(.log(log)) }
        return step
    }

    // MARK: Reopening with the meeting

    private mutating func revive(_ now: Double) -> RoomStep {
        guard let integration = room.integration, let host = room.hostID, room.meetingID != nil,
            policy.integrations[integration] != nil
        else { return replace(reason: "its integration or host is no longer configured", now: now) }
        return ask(.reclaim(PoolHost(integration: integration, host: host)), .reclaim)
    }

    private mutating func replace(reason: String, now: Double) -> RoomStep {
        write(.replaced(reason: reason), then: .replaced(reason: reason))
    }

    // MARK: Ending

    private mutating func continueEnd(_ now: Double) -> RoomStep {
        if let meetingID = room.meetingID, let integration = room.integration,
            let settings = policy.integrations[integration]
        {
            _ = meetingID
            let delete = settings.deletesOnResolve
            let deleteNow = delete && policy.reopenHoldDown <= 0 && room.meetingDeletedAt == nil
            return ask(.endMeeting(room, delete: deleteNow), .end(deleteNow: deleteNow, delete: delete))
        }
        return afterMeetingEnded(now)
    }

    private mutating func afterMeetingEnded(_ now: Double) -> RoomStep {
        if room.meetingID == nil {
            // Ended before it had a meeting (still waiting for a host, say): why it waited no longer applies.
            room.reason = nil
            room.waitingSince = nil
        }
        if room.sweepMarker { return ask(.sweep(room, keeping: nil), .sweep(then: .finalizeEnd)) }
        return write(.ended, then: .ended)
    }

    private mutating func afterSweep(_ then: AfterSweep, now: Double) -> RoomStep {
        switch then {
        case .decide: return decide(now)
        case .finalizeEnd: return write(.ended, then: .ended)
        case .finish: return finish()
        }
    }

    private mutating func endWithoutProvider(reason: String, now: Double) -> RoomStep {
        room.state = .ended
        room.endedAt = now
        room.updatedAt = now
        let name = provider(room.integration)
        if let meetingID = room.meetingID {
            room.reason =
                "meeting \(meetingID) could not be ended (\(reason)); end it in \(name), and ask your admin to "
                + "re-integrate \(name)"
        } else if room.createPhase == .inFlight {
            // A create whose outcome is unknown may have made a meeting, which cannot be looked for now.
            room.reason =
                "a meeting its create may have made could not be ended (\(reason)); end the meeting whose agenda "
                + "holds \(room.marker) in \(name), and ask your admin to re-integrate \(name)"
            room.createPhase = .notSent
        }
        return write(.endedWithoutZoom, then: .endedWithoutZoom)
    }

    // MARK: Failing

    private mutating func fail(reason: String, advice: String?, now: Double) -> RoomStep {
        guard room.state.isOpen else { return finish() }
        let hadHost = heldHost
        room.state = .failed
        room.reason = reason
        room.advice = advice
        room.updatedAt = now
        if room.createPhase == .inFlight {
            // The meeting may exist at the provider: sweep for the marker when the incident is resolved.
            room.sweepMarker = true
            room.createPhase = .notSent
        }
        return write(.failed, then: .failed(hadHost: hadHost))
    }

    /// What a provider's refusal means for this room: the next step, with the room changed as the decision says
    /// (attempts counted, create phase settled, host dropped). Not yet written.
    enum Recourse: Equatable {
        case renewToken
        case refused(reason: String, advice: String)
        case missingScope
        case dropHost(PoolHost, quota: Bool)
        case again
        case backoff(seconds: Double)
        case fail(reason: String, advice: String)
    }

    private mutating func recourse(
        _ decision: ProviderDecision,
        sent: Bool,
        during: Awaiting,
        now: Double
    ) -> (Recourse, changed: Bool) {
        var changed = false
        var isCreate = false
        if case .create = during { isCreate = true }
        if isCreate, room.createPhase == .inFlight, !sent || decision.request == .refused {
            room.createPhase = .notSent  // the create itself was refused (or never went out): nothing was made
            changed = true
        }
        // Otherwise a create still in flight stays so: only its own answer, or the marker, settles it. (A failed
        // marker lookup says nothing of the create; taking it for "not sent" would make a second meeting.)
        let unsettled = room.createPhase == .inFlight
        if decision.refusesAuthorization {
            return (.refused(reason: decision.reason, advice: decision.advice), changed)
        }
        let key = room.integration.flatMap { integration in
            room.hostID.map { PoolHost(integration: integration, host: $0) }
        }
        switch decision.next {
        case .retryWithNewToken:
            return (.renewToken, changed)
        case .nextIntegration where decision.integration == .missingScope:
            return (.missingScope, changed)
        case .nextHost where key != nil && !unsettled:
            room.hostID = nil
            room.hostUser = nil
            room.createPhase = .notSent
            return (.dropHost(key!, quota: decision.host == .outOfQuota), true)
        case .createWithoutAlternativeHosts where !room.withoutAlternativeHosts:
            room.withoutAlternativeHosts = true
            room.note =
                "made without its alternative hosts: \(provider(room.integration)) refused them (\(decision.reason)); \(decision.advice)"
            return (.again, true)
        case .retryLater:
            room.attempts += 1
            if unsettled && isCreate {
                if decision.outcomeUnknown {
                    // It may yet complete at the provider after a later create: sweep for the marker (after the
                    // next create, and when the room ends).
                    room.sweepMarker = true
                } else {
                    room.createPhase = .notSent
                }
            }
            if room.attempts > policy.maxTransientAttempts {
                return (
                    .fail(reason: "\(decision.reason) (after \(room.attempts) attempts)", advice: decision.advice), true
                )
            }
            // The provider's Retry-After is its word, but capped: a room must not hold its host for hours on one answer.
            let backoff = min(
                2 * policy.maxBackoff,
                decision.retryIn
                    ?? min(policy.maxBackoff, policy.firstBackoff * Double(1 << min(room.attempts - 1, 20)))
            )
            return (.backoff(seconds: backoff), true)
        case .nextHost where unsettled:
            // The host cannot take rooms, but a create may have made this room's meeting there: the room keeps it
            // until the marker is looked for (or fails, and sweeps for it when resolved).
            room.attempts += 1
            if room.attempts > policy.maxTransientAttempts {
                return (
                    .fail(reason: "\(decision.reason) (after \(room.attempts) attempts)", advice: decision.advice), true
                )
            }
            return (
                .backoff(
                    seconds: min(policy.maxBackoff, policy.firstBackoff * Double(1 << min(room.attempts - 1, 20)))
                ), true
            )
        default:
            // A create in flight stays so: ``fail(reason:advice:now:)`` marks the room to sweep for its marker.
            return (.fail(reason: decision.reason, advice: decision.advice), changed)
        }
    }

    private mutating func failed(
        _ decision: ProviderDecision,
        token: String?,
        sent: Bool,
        during: Awaiting,
        now: Double
    ) -> RoomStep {
        if case .check = during, decision.request == .done, let integration = room.integration, let host = room.hostID {
            // The reopened room's meeting is gone: the room ends for good, and the incident gets a new one.
            var step = replace(reason: "meeting \(room.meetingID.map(String.init) ?? "-") no longer exists", now: now)
            step.effects.insert(.release(PoolHost(integration: integration, host: host)), at: 0)
            holdsHost = false
            return step
        }
        let (recourse, changed) = recourse(decision, sent: sent, during: during, now: now)
        let integration = room.integration ?? ""
        switch recourse {
        case .renewToken:
            if renewed.insert(integration).inserted {
                return proceed(
                    changed: changed,
                    effects: [.invalidateToken(integration: integration, host: room.hostID, token: token)],
                    now: now
                )
            }
            return refused(integration, reason: decision.reason, advice: nil, now: now)
        case .refused(let reason, let advice):
            return refused(integration, reason: reason, advice: advice, now: now)
        case .missingScope:
            let effect = RoomEffect.missingScope(
                integration: integration,
                scopes: decision.missingScopes,
                reason: decision.reason,
                advice: decision.advice
            )
            excluded.insert(integration)
            var step = freeHostForFailover(integration, now: now) ?? proceed(changed: changed, effects: [], now: now)
            step.effects.insert(effect, at: 0)
            return step
        case .dropHost(let key, let quota):
            holdsHost = false
            return write(
                .save,
                then: .decide,
                effects: [
                    .log(
                        RoomLog(
                            .warning,
                            "host refused by \(provider(key.integration))",
                            ["host": key.host, "error": decision.reason]
                        )
                    ),
                    quota ? .exhaustQuota(key) : .markUnusable(key, reason: decision.reason), .release(key),
                ]
            )
        case .again:
            return write(
                .save,
                then: .decide,
                effects: [
                    .log(
                        RoomLog(
                            .warning,
                            "the alternative hosts were refused; creating the meeting without them",
                            ["error": decision.reason]
                        )
                    )
                ]
            )
        case .backoff(let seconds):
            let key = room.integration.flatMap { integration in
                room.hostID.map { PoolHost(integration: integration, host: $0) }
            }
            var step = write(.save, then: .wait(seconds: seconds, coolDown: key))
            step.effects.append(
                .log(
                    RoomLog(
                        .warning,
                        "\(provider(room.integration)) call failed, retrying",
                        ["error": decision.reason, "retry_in": "\(seconds)"]
                    )
                )
            )
            return step
        case .fail(let reason, let advice):
            if case .end = during, let meetingID = room.meetingID {
                // Nothing more can be done with this meeting: record why, and end the room anyway.
                room.reason = "meeting \(meetingID) could not be ended: \(reason)"
                room.advice = "end it in \(provider(room.integration)) if it still runs; " + advice
                return afterMeetingEnded(now)
            }
            return fail(reason: reason, advice: advice, now: now)
        }
    }

    /// The provider refused an integration's credentials (or, for per-host authorization, a host's): mark it and
    /// tell the admins once, and free the room's host there so the room fails over.
    private mutating func refused(_ integration: String, reason: String, advice: String?, now: Double) -> RoomStep {
        let perHost = policy.integrations[integration]?.perHostAuthorization ?? false
        let roomHost = room.integration == integration ? room.hostID : nil
        let mark = RoomEffect.needsReauthorization(
            integration: integration,
            host: perHost ? roomHost : nil,
            reason: reason,
            advice: advice
        )
        var step: RoomStep
        if room.integration == integration, let host = room.hostID, room.meetingID == nil, room.state != .ready {
            if room.createPhase == .inFlight {
                if perHost {
                    let name = provider(integration)
                    step = fail(
                        reason: "a create request's outcome cannot be checked: host \(host) of \(integration) was "
                            + "refused by \(name) (\(reason)); ask your admin to re-integrate \(name)",
                        advice: advice,
                        now: now
                    )
                } else {
                    excluded.insert(integration)  // the run fails it: the meeting may exist but cannot be looked for
                    step = decide(now)
                }
            } else {
                if !perHost { excluded.insert(integration) }
                room.hostID = nil
                room.hostUser = nil
                holdsHost = false
                step = write(.save, then: .decide, effects: [.release(PoolHost(integration: integration, host: host))])
            }
        } else {
            if !perHost { excluded.insert(integration) }
            step = decide(now)
        }
        step.effects.insert(mark, at: 0)
        return step
    }

    /// Frees the host the room holds at `integration` so it can fail over (`nil`: nothing to free, or a create's
    /// outcome is unknown there and the host is kept).
    private mutating func freeHostForFailover(_ integration: String, now: Double) -> RoomStep? {
        guard room.integration == integration, let host = room.hostID, room.meetingID == nil, room.state != .ready,
            room.createPhase != .inFlight
        else { return nil }
        room.hostID = nil
        room.hostUser = nil
        holdsHost = false
        return write(.save, then: .decide, effects: [.release(PoolHost(integration: integration, host: host))])
    }

    private mutating func proceed(changed: Bool, effects: [RoomEffect], now: Double) -> RoomStep {
        guard changed else {
            var step = decide(now)
            step.effects.insert(contentsOf: effects, at: 0)
            return step
        }
        var step = write(.save, then: .decide)
        step.effects.insert(contentsOf: effects, at: 0)
        return step
    }

    // MARK: Writes and their outcomes

    private mutating func write(_ kind: RoomWrite, then: AfterWrite, effects: [RoomEffect] = []) -> RoomStep {
        awaiting = .write(kind, then: then, effects: effects)
        return RoomStep(request: .write(room, kind))
    }

    private mutating func ask(_ request: RoomRequest, _ next: Awaiting) -> RoomStep {
        awaiting = next
        return RoomStep(request: request)
    }

    private mutating func finish(_ effects: [RoomEffect] = []) -> RoomStep {
        awaiting = .finished
        return RoomStep(effects: effects, request: nil)
    }

    private mutating func written(
        _ outcome: WriteOutcome,
        then: AfterWrite,
        effects: [RoomEffect],
        now: Double
    ) -> RoomStep {
        switch outcome {
        case .refused:
            // The room became unavailable meanwhile (its integration removed): work in flight must not bring it back.
            var notes: [RoomEffect] = []
            if case .ready = then, let meetingID = room.meetingID {
                notes.append(
                    .log(
                        RoomLog(
                            .warning,
                            "meeting made after its integration was removed; it is left in \(provider(room.integration))",
                            ["meeting": "\(meetingID)"]
                        )
                    )
                )
            }
            if case .write(.lease, _, _) = awaiting, let host = heldHost {
                notes.append(.release(host))
                holdsHost = false
            }
            return finish(notes)
        case .withdrawn(let stored):
            room = stored
            let message =
                room.state == .ready
                ? "incident reopened while its room was ending; the room keeps its meeting"
                : "incident reopened while its room was ending; the room stays open"
            // The withdrawal drives the room again.
            return finish(effects + [.log(RoomLog(.info, message))])
        case .ended(let stored, let replacement):
            let host = heldHost
            room = stored
            holdsHost = false
            var after = effects
            switch then {
            case .replaced(let reason):
                after.append(.log(RoomLog(.info, "room not reopened", ["reason": reason])))
                if let time = room.deleteAfter { after.append(.scheduleDeletion(at: time)) }
                if let replacement { after.append(.drive(roomID: replacement)) }
                return finish(after)
            default:
                if let host { after.append(.release(host)) }
                after.append(.log(RoomLog(.info, "room ended")))
                if let time = room.deleteAfter { after.append(.scheduleDeletion(at: time)) }
                if let replacement {
                    after.append(
                        .log(
                            RoomLog(
                                .info,
                                "incident reopened after its meeting was deleted; a new room is made",
                                ["new_room.id": replacement]
                            )
                        )
                    )
                    after.append(.drive(roomID: replacement))
                }
                after.append(.retryWaiting)
                return finish(after)
            }
        case .saved(let stored):
            room = stored
            var step: RoomStep
            switch then {
            case .decide:
                step = decide(now)
            case .create:
                if room.endRequested {
                    // Resolved while the write waited: the create was never sent, so nothing is at the provider.
                    room.createPhase = .notSent
                    step = write(.save, then: .decide)
                } else {
                    step = ask(.create(room), .create)
                }
            case .continueEnd:
                step = continueEnd(now)
            case .ready(let sweepKeeping, let next):
                var readyEffects: [RoomEffect] = [
                    .becameReady,
                    .log(
                        RoomLog(
                            .info,
                            "room ready",
                            [
                                "integration": room.integration ?? "", "host": room.hostID ?? "",
                                "meeting": room.meetingID.map(String.init) ?? "",
                            ]
                        )
                    ),
                ]
                if let keeping = sweepKeeping {
                    // An earlier create's outcome was unknown and its marker was not found: if it completed after all,
                    // its meeting goes, so the room keeps one.
                    step = ask(
                        .sweep(room, keeping: keeping),
                        .sweep(then: next == .continueEnd ? .finalizeEnd : .decide)
                    )
                } else {
                    step = next == .continueEnd ? continueEnd(now) : decide(now)
                }
                step.effects.insert(contentsOf: readyEffects, at: 0)
                readyEffects = []
            case .failed(let hadHost):
                var after: [RoomEffect] = []
                if let hadHost { after += [.release(hadHost), .retryWaiting] }
                after.append(.log(RoomLog(.error, "room failed", ["reason": room.reason ?? ""])))
                step = finish(after)
            case .endedWithoutZoom:
                var after: [RoomEffect] = []
                if let host = heldHost { after.append(.release(host)) }
                holdsHost = false
                after.append(
                    .log(
                        RoomLog(
                            .warning,
                            "room ended without \(provider(room.integration))",
                            ["reason": room.reason ?? ""]
                        )
                    )
                )
                after.append(.retryWaiting)
                step = finish(after)
            case .ended, .replaced:
                // A plain save never answers these writes.
                step = decide(now)
            case .waiting(let announce):
                step = finish(announce.map { [.log(RoomLog(.info, "room waiting", ["reason": $0]))] } ?? [])
            case .wait(let seconds, let coolDown):
                step = ask(.wait(seconds: seconds), .wait)
                if let coolDown { step.effects.append(.coolDown(coolDown, seconds: policy.coolDown)) }
            }
            step.effects.insert(contentsOf: effects, at: 0)
            return step
        }
    }
}
