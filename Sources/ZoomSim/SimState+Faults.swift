import Crypto
import Foundation

// Faults a test injects, the request log and the test surface's views.
extension SimState {
    // MARK: Faults

    /// Latency to add before answering a request to `path`, in seconds.
    func latency(for path: String) -> Double? {
        guard let latency, path.hasPrefix(latency.pathPrefix) else { return nil }
        return latency.seconds
    }

    /// A status fault matching this request, consumed.
    func takeStatusFault(method: String, path: String) -> ZoomAPIError? {
        guard
            let index = statusFaults.firstIndex(where: {
                path.hasPrefix($0.pathPrefix) && ($0.method == nil || $0.method == method)
            })
        else { return nil }
        let fault = statusFaults[index]
        if fault.remaining <= 1 { statusFaults.remove(at: index) } else { statusFaults[index].remaining -= 1 }
        var error = ZoomAPIError.api(
            fault.status,
            code: fault.status,
            fault.status == 429
                ? "You have reached the maximum per-second rate limit for this API. Try again later."
                : "Internal Server Error (simulated)"
        )
        if let retry = fault.retryAfter { error.headers["Retry-After"] = retry }
        return error
    }

    /// Applies one `POST /_sim/faults` document; see ``ZoomSimulator`` for the kinds.
    /// - Returns: the active faults afterwards.
    /// - Throws: 400 code 300 for an unknown kind or a missing field.
    public func applyFault(_ fault: JSON) throws -> JSON {
        let count = Int(fault["count"]?.intValue ?? 1)
        switch fault["kind"]?.stringValue {
        case "latency":
            guard let seconds = fault["seconds"]?.doubleValue, seconds >= 0 else {
                throw ZoomAPIError.validation(field: "seconds", "latency needs seconds >= 0")
            }
            latency = seconds == 0 ? nil : (seconds, fault["path_prefix"]?.stringValue ?? "/")
        case "status":
            guard let status = fault["status"]?.intValue, (400...599).contains(status) else {
                throw ZoomAPIError.validation(field: "status", "status fault needs a 4xx/5xx status")
            }
            statusFaults.append(
                StatusFault(
                    pathPrefix: fault["path_prefix"]?.stringValue ?? "/",
                    method: fault["method"]?.stringValue,
                    status: Int(status),
                    remaining: count,
                    retryAfter: fault["retry_after"]?.stringValue ?? fault["retry_after"]?.intValue.map { String($0) }
                )
            )
        case "hold_create_reply":
            createReplyFaults += Array(repeating: .hold, count: count)
        case "drop_create_reply":
            createReplyFaults += Array(repeating: .drop, count: count)
        case "error_create_reply":
            let status = Int(fault["status"]?.intValue ?? 502)
            createReplyFaults += Array(repeating: .error(status), count: count)
        case "join_url_create_reply":
            guard let url = fault["join_url"]?.stringValue else {
                throw ZoomAPIError.validation(field: "join_url", "join_url_create_reply needs join_url")
            }
            createReplyFaults += Array(repeating: .joinURL(url), count: count)
        case "release":
            releaseHeld()
        case "revoke_app", "disable_app":
            guard let client = fault["client_id"]?.stringValue else {
                throw ZoomAPIError.validation(field: "client_id", "revoke_app needs client_id")
            }
            disabledApps.insert(client)
            accessTokens = accessTokens.filter { $0.value.clientID != client }
            refreshTokens = refreshTokens.filter { $0.value.clientID != client }
        case "enable_app":
            if let client = fault["client_id"]?.stringValue { disabledApps.remove(client) }
        case "deauthorize":
            guard let client = fault["client_id"]?.stringValue, let userKey = fault["user"]?.stringValue,
                let user = findUser(userKey)
            else { throw ZoomAPIError.validation(field: "user", "deauthorize needs client_id and a known user") }
            accessTokens = accessTokens.filter { !($0.value.clientID == client && $0.value.userID == user.id) }
            refreshTokens = refreshTokens.filter { !($0.value.clientID == client && $0.value.userID == user.id) }
        case "expire_tokens":
            let client = fault["client_id"]?.stringValue
            let past = Date().addingTimeInterval(-1)
            for (key, token) in accessTokens where client == nil || token.clientID == client {
                accessTokens[key]?.expiresAt = past
            }
            if fault["refresh_tokens"]?.boolValue == true {
                for (key, token) in refreshTokens where client == nil || token.clientID == client {
                    refreshTokens[key]?.expiresAt = past
                }
            }
        case "daily_limit":
            guard let userKey = fault["user"]?.stringValue, let user = findUser(userKey) else {
                throw ZoomAPIError.validation(field: "user", "daily_limit needs a known user")
            }
            let answer = fault["answer"]?.stringValue ?? fault["answer"]?.intValue.map { String($0) }
            guard answer == nil || ["429", "429_bare", "300"].contains(answer!) else {
                throw ZoomAPIError.validation(field: "answer", "daily_limit answer must be 429, 429_bare or 300")
            }
            var entry = usageForToday(user.id)
            entry.limitedDay = entry.day
            entry.limitedAnswer = answer
            usage[user.id] = entry
        case "scopes":
            // The app's Scopes tab changed: tokens issued from now on carry these (`null` or no `scopes`: all).
            guard let client = fault["client_id"]?.stringValue,
                configuration.apps.contains(where: { $0.clientID == client })
            else { throw ZoomAPIError.validation(field: "client_id", "scopes needs a known client_id") }
            appScopes[client] = .some(fault["scopes"]?.arrayValue?.compactMap(\.stringValue))
        case "passcode_policy":
            passcodePolicy = SimConfiguration.PasscodePolicy(
                minLength: Int(fault["min_length"]?.intValue ?? 0),
                requireLetter: fault["require_letter"]?.boolValue ?? false,
                requireDigit: fault["require_digit"]?.boolValue ?? false,
                requireSpecial: fault["require_special"]?.boolValue ?? false
            )
        case "refuse_delete_ended":
            refuseDeleteEnded = fault["enabled"]?.boolValue ?? true
        case "rate_limit":
            if let medium = fault["medium_per_second"]?.intValue { mediumPerSecond = Int(medium) }
            if let light = fault["light_per_second"]?.intValue { lightPerSecond = Int(light) }
        case "clear":
            clearFaults()
        default:
            throw ZoomAPIError.validation(field: "kind", "unknown fault kind")
        }
        return faultsJSON()
    }

    /// Clears every fault: latency, status faults, pending create-reply faults, disabled apps, daily-limit
    /// marks, per-second overrides, scope and passcode-policy overrides and `refuse_delete_ended`; held replies are
    /// released.
    public func clearFaults() {
        latency = nil
        statusFaults = []
        createReplyFaults = []
        disabledApps = []
        appScopes = [:]
        passcodePolicy = configuration.passcodePolicy
        refuseDeleteEnded = false
        for key in usage.keys { usage[key]?.limitedDay = nil }
        mediumPerSecond = configuration.limits.mediumPerSecond
        lightPerSecond = configuration.limits.lightPerSecond
        releaseHeld()
    }

    /// The active faults, for `GET /_sim/faults`.
    public func faultsJSON() -> JSON {
        var list: [JSON] = []
        if let latency {
            list.append([
                "kind": "latency", "seconds": .double(latency.seconds), "path_prefix": .string(latency.pathPrefix),
            ])
        }
        for fault in statusFaults {
            list.append([
                "kind": "status", "path_prefix": .string(fault.pathPrefix), "method": .optional(fault.method),
                "status": .number(fault.status), "count": .number(fault.remaining),
            ])
        }
        for fault in createReplyFaults {
            switch fault {
            case .hold: list.append(["kind": "hold_create_reply"])
            case .drop: list.append(["kind": "drop_create_reply"])
            case .error(let status): list.append(["kind": "error_create_reply", "status": .number(status)])
            case .joinURL(let url): list.append(["kind": "join_url_create_reply", "join_url": .string(url)])
            }
        }
        for app in disabledApps.sorted() { list.append(["kind": "revoke_app", "client_id": .string(app)]) }
        for (client, scopes) in appScopes.sorted(by: { $0.key < $1.key }) {
            list.append([
                "kind": "scopes", "client_id": .string(client),
                "scopes": scopes.map { .array($0.map { .string($0) }) } ?? .null,
            ])
        }
        if passcodePolicy != configuration.passcodePolicy {
            list.append([
                "kind": "passcode_policy", "min_length": .number(passcodePolicy.minLength),
                "require_letter": .bool(passcodePolicy.requireLetter),
                "require_digit": .bool(passcodePolicy.requireDigit),
                "require_special": .bool(passcodePolicy.requireSpecial),
            ])
        }
        if refuseDeleteEnded { list.append(["kind": "refuse_delete_ended"]) }
        let today = utcDay(now())
        for (user, entry) in usage.sorted(by: { $0.key < $1.key }) where entry.limitedDay == today {
            list.append(["kind": "daily_limit", "user": .string(user)])
        }
        return [
            "faults": .array(list), "held_replies": .number(held.count),
            "medium_per_second": .number(mediumPerSecond), "light_per_second": .number(lightPerSecond),
        ]
    }

    /// Suspends until ``releaseHeld()`` (returns `true`) or ``shutdown()`` (returns `false`).
    public func waitForRelease() async -> Bool {
        if shuttingDown { return false }
        let key = nextHold
        nextHold += 1
        return await withCheckedContinuation { continuation in
            held[key] = continuation
        }
    }

    /// The number of replies currently held.
    public var heldCount: Int { held.count }

    /// Lets every held reply go out.
    public func releaseHeld() {
        let waiting = held
        held = [:]
        for continuation in waiting.values { continuation.resume(returning: true) }
    }

    /// Drops every held reply (their connections close unanswered) and refuses new holds.
    public func shutdown() {
        shuttingDown = true
        let waiting = held
        held = [:]
        for continuation in waiting.values { continuation.resume(returning: false) }
    }

    // MARK: Request log

    /// Records the start of a request; never pass secrets (the caller redacts the query).
    /// - Parameter connectionKey: identifies the TCP connection; mapped to a small integer.
    /// - Returns: the record's sequence number.
    func beginRequest(method: String, path: String, query: String, connectionKey: String?) -> Int {
        let seq = nextSeq
        nextSeq += 1
        var connection: Int?
        if let connectionKey {
            if let known = connectionIDs[connectionKey] {
                connection = known
            } else {
                connection = connectionIDs.count + 1
                connectionIDs[connectionKey] = connection
            }
        }
        requests.append(
            RequestRecord(
                seq: seq,
                method: method,
                path: path,
                query: query,
                time: Date().timeIntervalSince1970,
                connection: connection,
                grantType: nil,
                status: nil,
                outcome: "pending",
                durationMS: nil
            )
        )
        return seq
    }

    func recordIndex(_ seq: Int) -> Int? {
        // Records are appended in seq order; search from the end, where active requests are.
        requests.lastIndex { $0.seq == seq }
    }

    /// Notes the grant type of a token request.
    func annotate(seq: Int, grantType: String) {
        if let index = recordIndex(seq) { requests[index].grantType = grantType }
    }

    /// Notes how a request ended: `status` for an answer, `nil` with outcome `dropped` when unanswered.
    func finishRequest(seq: Int, status: Int?, outcome: String) {
        guard let index = recordIndex(seq) else { return }
        requests[index].status = status
        requests[index].outcome = outcome
        requests[index].durationMS = (Date().timeIntervalSince1970 - requests[index].time) * 1000
    }

    /// Marks a request as held (its reply withheld).
    func markHeld(seq: Int) {
        if let index = recordIndex(seq) { requests[index].outcome = "held" }
    }

    /// The request log, for `GET /_sim/requests`, records with `seq > since`.
    public func requestsJSON(since: Int = 0) -> JSON {
        .array(
            requests.filter { $0.seq > since }.map { r in
                var members: [(String, JSON)] = [
                    ("seq", .number(r.seq)), ("method", .string(r.method)), ("path", .string(r.path)),
                    ("query", .string(r.query)), ("status", .optional(r.status)), ("outcome", .string(r.outcome)),
                    ("time", .double(r.time)),
                ]
                if let connection = r.connection { members.append(("connection", .number(connection))) }
                if let grant = r.grantType { members.append(("grant_type", .string(grant))) }
                if let duration = r.durationMS { members.append(("duration_ms", .double(duration))) }
                return .object(members)
            }
        )
    }

    /// Empties the request log.
    public func clearRequests() { requests = [] }

    // MARK: Test surface views

    /// Every meeting ever created, oldest first, for `GET /_sim/meetings` (no `start_url`: it holds the host key).
    public func meetingsJSON() -> JSON {
        .array(
            meetingOrder.compactMap { meetings[$0] }.map { m in
                [
                    "id": .int(m.id), "uuid": .string(m.uuid), "host_id": .string(m.hostID),
                    "host_email": .string(m.hostEmail), "account_id": .string(m.accountID), "topic": .string(m.topic),
                    "agenda": .string(m.agenda), "type": .number(m.type), "status": .string(m.status.rawValue),
                    "start_time": .string(Self.format(m.startTime)), "duration": .number(m.duration),
                    "join_url": .string(joinURL(m)), "password": .string(m.password),
                    "created_at": .string(Self.format(m.createdAt)), "ended_at": .optional(m.endedAt.map(Self.format)),
                    "deleted_at": .optional(m.deletedAt.map(Self.format)), "over_capacity": .bool(m.overCapacity),
                    "client_id": .string(m.createdBy), "settings": m.settings,
                    "participants": .array(
                        m.participants.map {
                            [
                                "participant_uuid": .string($0.participantUUID), "user_id": .string($0.userID),
                                "user_name": .string($0.name), "email": .string($0.email),
                            ]
                        }
                    ),
                ]
            }
        )
    }

    /// All meetings as values (for tests in-process).
    public func allMeetings() -> [SimMeeting] { meetingOrder.compactMap { meetings[$0] } }

    /// Per-user usage for `GET /_sim/users`: live meetings now, the most ever live at once, creates.
    public func usersJSON() -> JSON {
        .array(
            configuration.users.map { user in
                let entry = usageForToday(user.id)
                let live = meetings.values.filter { $0.hostID == user.id && $0.isLive }.count
                let started = meetings.values.filter { $0.hostID == user.id && $0.status == .started }.count
                return [
                    "id": .string(user.id), "email": .string(user.email), "type": .number(user.type),
                    "concurrent_meetings": .number(user.concurrentMeetings), "live": .number(live),
                    "started": .number(started), "max_live_seen": .number(entry.maxLiveSeen),
                    "over_capacity_creates": .number(entry.overCapacityCreates),
                    "oversubscribed": .bool(entry.maxLiveSeen > user.concurrentMeetings),
                    "creates_today": .number(entry.createsToday), "creates_total": .number(entry.createsTotal),
                    "daily_create_limit": .number(configuration.limits.dailyCreateLimit),
                    "daily_limited": .bool(entry.limitedDay == entry.day),
                ]
            }
        )
    }

    /// Token statistics for `GET /_sim/tokens` (counts only, never token values).
    public func tokensJSON() -> JSON {
        let real = Date()
        let liveAccess = accessTokens.values.filter { $0.expiresAt > real }
        let liveRefresh = refreshTokens.values.filter { $0.expiresAt > real }
        var byClient: [(String, JSON)] = []
        for app in configuration.apps {
            byClient.append(
                (
                    app.clientID,
                    [
                        "live_access_tokens": .number(liveAccess.filter { $0.clientID == app.clientID }.count),
                        "live_refresh_tokens": .number(liveRefresh.filter { $0.clientID == app.clientID }.count),
                        "disabled": .bool(disabledApps.contains(app.clientID)),
                    ]
                )
            )
        }
        return [
            "requests": .object(tokenRequests.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }),
            "failures": .object(tokenFailures.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }),
            "live_access_tokens": .number(liveAccess.count), "live_refresh_tokens": .number(liveRefresh.count),
            "by_client": .object(byClient),
        ]
    }

    /// The simulated clock for `GET|POST /_sim/clock`.
    public func clockJSON() -> JSON {
        ["now": .string(Self.format(now())), "offset_seconds": .double(clockOffset)]
    }
}
