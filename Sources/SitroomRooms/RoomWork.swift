import SitroomCore

/// What the room machine needs to know of the live configuration, for one run of a room.
public struct RoomPolicy: Sendable {
    /// What the machine needs of one configured integration.
    public struct Integration: Sendable, Hashable {
        /// `on_resolve: end_and_delete`: the meeting is deleted once the reopen hold-down has passed.
        public var deletesOnResolve: Bool
        /// Each host authorizes the app itself (zoom-oauth): a refused authorization is that host's, not the
        /// integration's.
        public var perHostAuthorization: Bool
        /// The provider's name for people (`Zoom`), in reasons and advice.
        public var provider: String

        public init(deletesOnResolve: Bool, perHostAuthorization: Bool, provider: String = "Zoom") {
            self.deletesOnResolve = deletesOnResolve
            self.perHostAuthorization = perHostAuthorization
            self.provider = provider
        }
    }

    /// The configured integrations by name.
    public var integrations: [String: Integration]
    /// `reopen_hold_down`, seconds.
    public var reopenHoldDown: Double
    /// Transient failures (5xx, timeouts, refused connections, 429) tried this many times before the room fails.
    public var maxTransientAttempts: Int
    /// Seconds of the first backoff step; doubles per attempt, capped at ``maxBackoff`` (a provider's
    /// `Retry-After` at twice that).
    public var firstBackoff: Double
    public var maxBackoff: Double
    /// Seconds a host that failed is skipped by other rooms' leases.
    public var coolDown: Double
    /// Tries of a failed room's sweep for a meeting its create may have left (nothing else looks for that meeting,
    /// so it outlasts a Zoom outage of several minutes: 20 tries with backoff up to ``maxBackoff`` span about 8).
    public var maxSweepAttempts: Int = 20

    public init(
        integrations: [String: Integration],
        reopenHoldDown: Double,
        maxTransientAttempts: Int = 4,
        firstBackoff: Double = 0.5,
        maxBackoff: Double = 30,
        coolDown: Double = 30
    ) {
        self.integrations = integrations
        self.reopenHoldDown = reopenHoldDown
        self.maxTransientAttempts = maxTransientAttempts
        self.firstBackoff = firstBackoff
        self.maxBackoff = maxBackoff
        self.coolDown = coolDown
    }
}

/// A host of an integration's pool.
public struct PoolHost: Sendable, Hashable, CustomStringConvertible {
    public var integration: String
    public var host: String

    public init(integration: String, host: String) {
        self.integration = integration
        self.host = host
    }

    public var description: String { "\(integration)/\(host)" }
}

/// A lease's daily create count, committed with the room that leased (never lowering a stored count).
public struct CreateCount: Sendable, Hashable {
    public var host: PoolHost
    public var count: Int
    /// The UTC day it counts against, `yyyy-MM-dd`.
    public var day: String

    public init(host: PoolHost, count: Int, day: String) {
        self.host = host
        self.count = count
        self.day = day
    }
}

// MARK: - Requests: what the machine asks the provisioner to do, and awaits

/// A write of the room, committed (synced) before the machine goes on. Every write keeps the end request as stored
/// (only events and `room end` set or withdraw it) and is refused when the stored room became `unavailable`
/// (its integration was removed while work was in flight): ``RoomRules/merge(_:into:)``.
public enum RoomWrite: Sendable, Hashable {
    /// The room as it is.
    case save
    /// The room with the host it leased, and the lease's create count in the same transaction.
    case lease(CreateCount)
    /// The room `ready`, with its participants' notices planned in the same transaction (none when its end was
    /// requested meanwhile).
    case ready
    /// The room `failed`, with its notices (participants, chat, admins) planned in the same transaction.
    case failed
    /// The room `ended` because its integration refuses the meeting's end, with its `room-ended` notices; not when
    /// the end was withdrawn meanwhile.
    case endedWithoutZoom
    /// The room `ended` after its meeting was ended, with its `room-ended` notices, unless the incident was
    /// reopened meanwhile (``RoomRules/endCommit(_:stored:)``).
    case ended
    /// The room ends for good because it could not be reopened (`reason`), and the incident gets a new room
    /// unless it was resolved meanwhile (``RoomRules/replace(_:reason:now:)``).
    case replaced(reason: String)
}

/// What a write came to.
public enum WriteOutcome: Sendable, Hashable {
    /// Committed; the room as committed (with the stored end request).
    case saved(Room)
    /// Refused: the stored room is `unavailable` (its integration was removed meanwhile).
    case refused
    /// Not written as asked: the end was withdrawn meanwhile (the incident reopened). `.endedWithoutZoom`: the room
    /// stays as stored. `.ended`: `room` is what was committed instead (kept with its meeting, or to resume work).
    case withdrawn(Room)
    /// `.ended` or `.replaced`: committed, and `replacement` is the new room made for the reopened incident.
    case ended(Room, replacement: String?)
}

/// What the machine asks for and waits for; the answer comes back as a ``RoomInput``.
public enum RoomRequest: Sendable, Hashable {
    /// Commit the room (``RoomWrite``); answered by ``RoomInput/written(_:)``.
    case write(Room, RoomWrite)
    /// Lease a host from the first integration that can serve the incident, skipping `excluding`; answered by
    /// ``RoomInput/leased(_:user:creates:)``, ``RoomInput/noHost(reasons:servable:)`` or ``RoomInput/queued``.
    case lease(excluding: Set<String>)
    /// Take the room's host again for its reopened meeting; answered by ``RoomInput/reclaimed(_:)``.
    case reclaim(PoolHost)
    /// Create the room's meeting on its host (the marker `sitroom:room=<id>` in it); answered by
    /// ``RoomInput/created(_:)`` or ``RoomInput/failed(_:token:)``.
    case create(Room)
    /// Look for the room's marker among its host's meetings (a create whose outcome is unknown); answered by
    /// ``RoomInput/found(_:)`` or ``RoomInput/failed(_:token:)``.
    case findMarker(Room)
    /// Check that the room's meeting still exists (a reopen); answered by ``RoomInput/checked(_:)`` or
    /// ``RoomInput/failed(_:token:)``.
    case checkMeeting(Room)
    /// End the room's meeting, and delete it when asked; answered by ``RoomInput/done`` or
    /// ``RoomInput/failed(_:token:)``.
    case endMeeting(Room, delete: Bool)
    /// End and delete every meeting of the host carrying the room's marker but `keeping` and the room's own;
    /// answered by ``RoomInput/done`` or ``RoomInput/failed(_:token:)``.
    case sweep(Room, keeping: Int64?)
    /// Wait `seconds` (or until the room has news, or the daemon stops); answered by ``RoomInput/woke``.
    case wait(seconds: Double)
}

/// What the provisioner does on the machine's word without answering (in order, before the request).
public enum RoomEffect: Sendable, Hashable {
    /// The host goes back to its pool.
    case release(PoolHost)
    /// Other rooms' leases skip the host for `seconds` (circuit breaker).
    case coolDown(PoolHost, seconds: Double)
    /// The host is out of its daily create quota until 00:00 UTC.
    case exhaustQuota(PoolHost)
    /// The host cannot host until its configuration changes.
    case markUnusable(PoolHost, reason: String)
    /// The integration (or, `host` set, only that host's authorization) is `needs_reauthorization`; the admins are
    /// told once.
    case needsReauthorization(integration: String, host: String?, reason: String, advice: String?)
    /// The integration lacks provider scopes: `missing_scope`; the admins are told once.
    case missingScope(integration: String, scopes: [String], reason: String, advice: String)
    /// Drop the integration's (or host's) access token if it is still `token` (a newer one stays).
    case invalidateToken(integration: String, host: String?, token: String?)
    /// Delete the room's meeting at `time` (seconds since 1970) unless it is reopened first.
    case scheduleDeletion(at: Double)
    /// Start work on another room (one made to replace this one).
    case drive(roomID: String)
    /// A host may have been freed: give the waiting rooms another try.
    case retryWaiting
    /// The room became `ready` (the provisioning time is measured from its creation).
    case becameReady
    /// A log line about the room.
    case log(RoomLog)
}

/// A log line of the room machine; the provisioner adds the room's and incident's ids.
public struct RoomLog: Sendable, Hashable {
    public enum Level: String, Sendable, Hashable { case debug, info, warning, error }
    public var level: Level
    public var message: String
    public var metadata: [String: String]

    public init(_ level: Level, _ message: String, _ metadata: [String: String] = [:]) {
        self.level = level
        self.message = message
        self.metadata = metadata
    }
}

/// What the provisioner tells the machine: the answer to its last request, or news.
public enum RoomInput: Sendable, Hashable {
    /// A run begins (the room as stored).
    case start
    /// A run begins on a new room whose host, create count and create intent were committed with the event that
    /// made it (``RoomRules/leased(_:host:user:now:)``), and whose create has not been sent: it sends it. A
    /// later run (a restart) starts with ``start`` and settles the create by the room's marker, as for any create
    /// in flight.
    case intentCommitted
    /// The write asked for came to this.
    case written(WriteOutcome)
    /// A host was leased (and its create counted, in memory until the room's write commits it).
    case leased(PoolHost, user: String, creates: CreateCount)
    /// No integration has a host now: `servable` when one may have later (busy, quota, cooling down), else
    /// nothing can ever serve the incident as configured.
    case noHost(reasons: [String], servable: Bool)
    /// Older waiting rooms come first.
    case queued
    /// Whether the room's host was taken again for its reopened meeting.
    case reclaimed(Bool)
    /// The meeting was created.
    case created(MeetingInfo)
    /// The marker lookup's result: the meeting made by an earlier create, or nothing.
    case found(MeetingInfo?)
    /// The reopened room's meeting exists.
    case checked(MeetingInfo)
    /// An end, delete or sweep is done.
    case done
    /// The provider refused, failed or did not answer (`sent`: the request itself went out; a refused token
    /// means it never did). `token`: the access token it was made with.
    case failed(ProviderDecision, token: String?, sent: Bool)
    /// The wait is over (time, or news).
    case woke
}

/// The machine's answer to an input: effects to carry out, then the one request to carry out and answer, or
/// `nil` when this run of the room is over.
public struct RoomStep: Sendable, Hashable {
    public var effects: [RoomEffect]
    public var request: RoomRequest?

    public init(effects: [RoomEffect] = [], request: RoomRequest?) {
        self.effects = effects
        self.request = request
    }
}
