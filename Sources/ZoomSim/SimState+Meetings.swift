import Crypto
import Foundation

// Meetings: create, get, update status, delete (Zoom Meeting API).
extension SimState {
    // MARK: Meetings

    func usageForToday(_ userID: String) -> UserUsage {
        var entry = usage[userID] ?? UserUsage()
        let today = utcDay(now())
        if entry.day != today {
            entry.day = today
            entry.createsToday = 0
        }
        return entry
    }

    /// Counts one create/update against the host's daily limit.
    /// - Throws: when the host has used up its daily create/update requests (100 per host per UTC day,
    ///   developers.zoom.us/docs/api/rate-limits/): HTTP 429 code 429 "You have exceeded the daily rate limit ..."
    ///   with `X-RateLimit-Type: Daily-limit`, `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0` and `Retry-After` the
    ///   next 00:00 UTC as RFC 3339 (the rate-limits page's example); or, per `limits.daily_limit_code` or the fault,
    ///   the same without those headers (as users report it, devforum.zoom.us) or HTTP 400 code 300 "A maximum of
    ///   {n} meetings can be created/updated for a single user in one day." ("Create a meeting", responses: 300).
    func chargeDailyLimit(_ user: SimConfiguration.User) throws {
        var entry = usageForToday(user.id)
        let limit = configuration.limits.dailyCreateLimit
        let limited = entry.limitedDay == entry.day
        if entry.createsToday >= limit || limited {
            let answer =
                limited
                ? entry.limitedAnswer ?? "\(configuration.limits.dailyLimitCode)"
                : "\(configuration.limits.dailyLimitCode)"
            if answer == "300" {
                throw ZoomAPIError.api(
                    400,
                    code: 300,
                    "A maximum of \(limit) meetings can be created/updated for a single user in one day."
                )
            }
            var error = ZoomAPIError.api(
                429,
                code: 429,
                "You have exceeded the daily rate limit (\(limit)) of Meeting Create/Update API requests permitted "
                    + "for this particular user. You may resume these requests at GMT 00:00:00."
            )
            if answer != "429_bare" {
                let midnight = Date(timeIntervalSince1970: Double(utcDay(now()) + 1) * 86_400)
                error.headers = [
                    "X-RateLimit-Category": "Medium", "X-RateLimit-Type": "Daily-limit",
                    "X-RateLimit-Limit": "\(limit)", "X-RateLimit-Remaining": "0", "Retry-After": Self.format(midnight),
                ]
            }
            throw error
        }
        entry.createsToday += 1
        usage[user.id] = entry
    }

    static let passwordCharacters = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    static func isValidPassword(_ password: String) -> Bool {
        password.count <= 10
            && password.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || "@-_*".contains($0) }
    }

    static func parseTime(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601) { return date }
        if let date = try? Date(text + "Z", strategy: .iso8601) { return date }
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        return try? fractional.parse(text)
    }

    /// Formats `date` as Zoom does: `yyyy-MM-ddTHH:mm:ssZ` in UTC.
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }

    static let defaultSettings: JSON = [
        "host_video": false, "participant_video": false, "cn_meeting": false, "in_meeting": false,
        "join_before_host": false, "jbh_time": 0, "mute_upon_entry": false, "watermark": false, "use_pmi": false,
        "approval_type": 2, "audio": "voip", "auto_recording": "none", "enforce_login": false,
        "enforce_login_domains": "", "alternative_hosts": "", "alternative_host_update_polls": false,
        "close_registration": false, "show_share_button": false, "allow_multiple_devices": false,
        "registrants_confirmation_email": true, "waiting_room": false,
        "request_permission_to_unmute_participants": false,
        "registrants_email_notification": true, "meeting_authentication": false,
        "encryption_type": "enhanced_encryption", "approved_or_denied_countries_or_regions": ["enable": false],
        "breakout_room": ["enable": false], "alternative_hosts_email_notification": true, "device_testing": false,
        "focus_mode": false, "private_meeting": false, "email_notification": true, "host_save_video_order": false,
    ]

    /// The field rules of "Create a meeting" (developers.zoom.us/docs/api/meetings/#tag/meetings/POST/users/{userId}/meetings):
    /// `topic` at most 200 characters, `agenda` at most 2,000, `type` 1, 2, 3 or 8, `password` at most 10 characters
    /// of letters, digits and `@ - _ *` and within the account's passcode rules; a refusal is 400 code 300
    /// "Validation Failed." with `errors[]` naming the field (developers.zoom.us/docs/api/rest/error-definitions/).
    /// Nothing refused counts against the daily limit.
    func validateFields(_ body: JSON) throws {
        if let topic = body["topic"]?.stringValue, topic.count > 200 {
            throw ZoomAPIError.validation(field: "topic", "Topic must be at most 200 characters.")
        }
        if let agenda = body["agenda"]?.stringValue, agenda.count > 2000 {
            throw ZoomAPIError.validation(field: "agenda", "Agenda must be at most 2000 characters.")
        }
        if let type = body["type"], ![1, 2, 3, 8].contains(type.intValue ?? -1) {
            throw ZoomAPIError.validation(field: "type", "Invalid meeting type.")
        }
        if let start = body["start_time"]?.stringValue, !start.isEmpty, Self.parseTime(start) == nil {
            throw ZoomAPIError.validation(field: "start_time", "Invalid start_time.")
        }
        if let password = body["password"]?.stringValue, !Self.isValidPassword(password) {
            throw ZoomAPIError.validation(
                field: "password",
                "Password can only have a maximum of 10 characters and only contain alphanumeric characters and @-_*."
            )
        }
        // "If the account owner or administrator has configured minimum passcode requirement settings, the password
        // must meet those requirements" ("Create a meeting", `password`).
        if let password = body["password"]?.stringValue, !password.isEmpty,
            let problem = passcodePolicy.violation(password)
        {
            throw ZoomAPIError.validation(field: "password", problem)
        }
        if let settings = body["settings"], settings.objectValue == nil {
            throw ZoomAPIError.validation(field: "settings", "Invalid field.")
        }
    }

    /// `settings.alternative_hosts`: "A semicolon-separated list of the meeting's alternative hosts' email
    /// addresses or IDs" ("Create a meeting"); each must be a licensed user (`type` 2) of the host's account
    /// (support.zoom.us, "Alternative host"). Zoom's reference documents the rule, not its wording: the message is
    /// ours, the shape (300 "Validation Failed." with `errors[]` on the field) is Zoom's.
    /// - Throws: 300 with `errors: [{"field": "settings.alternative_hosts", ...}]`.
    func validateAlternativeHosts(_ body: JSON, host: SimConfiguration.User, accountID: String) throws {
        guard let list = body["settings"]?["alternative_hosts"]?.stringValue else { return }
        for entry in list.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            guard let user = findUser(entry), user.id != host.id, user.type == 2,
                (user.accountID ?? accountID) == (host.accountID ?? accountID)
            else {
                throw ZoomAPIError.validation(
                    field: "settings.alternative_hosts",
                    "Alternative host \(entry) must be a licensed user of the host's account."
                )
            }
        }
    }

    func randomPassword() -> String {
        String((0..<6).map { _ in Self.passwordCharacters.randomElement()! })
    }

    func applyPassword(_ password: String, to meeting: inout SimMeeting) {
        meeting.password = password
        if password.isEmpty {
            meeting.encryptedPassword = ""
            meeting.h323Password = ""
            meeting.settings = meeting.settings.merging(["waiting_room": true])
        } else {
            meeting.encryptedPassword = Self.base64url((0..<24).map { _ in UInt8.random(in: 0...255) }) + ".1"
            meeting.h323Password = String((0..<6).map { _ in "0123456789".randomElement()! })
        }
    }

    /// `POST /users/{userId}/meetings` (operation `meetingCreate`): creates a meeting and says what to do
    /// with the reply.
    ///
    /// Passcode: a non-empty `password` is used; `"password": ""` means none (Zoom then forces the
    /// waiting room on); otherwise one is generated (Zoom's default "require a passcode" account setting).
    /// `type: 2` without `start_time` becomes an instant meeting (`type: 1`) starting now ("Create a meeting",
    /// `start_time`: "only used for scheduled and/or recurring meetings with a fixed time").
    /// - Throws: 1001 unknown user, 3161 no hosting rights, daily limit, 300 validation errors.
    public func createMeeting(userKey: String, body: JSON, caller: Caller) throws -> (SimMeeting, CreateReplyFault?) {
        let user = try resolveUser(userKey, caller: caller)
        guard user.hostingAllowed else {
            throw ZoomAPIError.api(
                400,
                code: 3161,
                "Meeting hosting and scheduling capabilities are not allowed for your user account."
            )
        }
        guard body.objectValue != nil else {
            throw ZoomAPIError.api(400, code: 300, "Request Body should be a valid JSON object.")
        }
        try validateFields(body)
        try validateAlternativeHosts(body, host: user, accountID: caller.accountID)
        try chargeDailyLimit(user)

        var id: Int64
        repeat { id = Int64.random(in: 10_000_000_000...99_999_999_999) } while meetings[id] != nil
        let now = now()
        var type = Int(body["type"]?.intValue ?? 2)
        let startText = body["start_time"]?.stringValue ?? ""
        if type == 2 && startText.isEmpty { type = 1 }
        var meeting = SimMeeting(
            id: id,
            uuid: Self.newMeetingUUID(),
            hostID: user.id,
            hostEmail: user.email,
            accountID: user.accountID ?? caller.accountID,
            topic: body["topic"]?.stringValue ?? "\(user.firstName) \(user.lastName)'s Zoom Meeting",
            type: type,
            status: .waiting,
            startTime: Self.parseTime(startText) ?? now,
            duration: Int(body["duration"]?.intValue ?? 60),
            timezone: body["timezone"]?.stringValue ?? "UTC",
            agenda: body["agenda"]?.stringValue ?? "",
            createdAt: now,
            password: "",
            encryptedPassword: "",
            h323Password: "",
            zak: randomToken("", bytes: 30),
            settings: Self.defaultSettings.merging(body["settings"] ?? [:]),
            endedAt: nil,
            deletedAt: nil,
            overCapacity: false,
            createdBy: caller.clientID
        )
        if let password = body["password"]?.stringValue {
            applyPassword(password, to: &meeting)
        } else {
            applyPassword(randomPassword(), to: &meeting)
        }
        let liveBefore = meetings.values.filter { $0.hostID == user.id && $0.isLive }.count
        meeting.overCapacity = liveBefore >= user.concurrentMeetings
        meetings[id] = meeting
        meetingOrder.append(id)
        var entry = usageForToday(user.id)
        entry.createsTotal += 1
        entry.maxLiveSeen = max(entry.maxLiveSeen, liveBefore + 1)
        if meeting.overCapacity { entry.overCapacityCreates += 1 }
        usage[user.id] = entry

        let fault = createReplyFaults.isEmpty ? nil : createReplyFaults.removeFirst()
        return (meeting, fault)
    }

    func accessibleMeeting(_ idText: String, caller: Caller) throws -> SimMeeting {
        guard let id = Int64(idText), let meeting = meetings[id], meeting.status != .deleted,
            meeting.accountID == caller.accountID, caller.userID == nil || caller.userID == meeting.hostID
        else {
            throw ZoomAPIError.meetingNotFound(idText)
        }
        return meeting
    }

    func joinURL(_ m: SimMeeting) -> String {
        m.encryptedPassword.isEmpty ? "\(baseURL)/j/\(m.id)" : "\(baseURL)/j/\(m.id)?pwd=\(m.encryptedPassword)"
    }

    /// The body of a create (201) or get (200) answer, fields as operations `meetingCreate` / `meeting`.
    public func meetingJSON(_ m: SimMeeting, includeStatus: Bool) -> JSON {
        var members: [(String, JSON)] = [
            ("uuid", .string(m.uuid)), ("id", .int(m.id)), ("host_id", .string(m.hostID)),
            ("host_email", .string(m.hostEmail)), ("assistant_id", ""), ("topic", .string(m.topic)),
            ("type", .number(m.type)),
        ]
        if includeStatus {
            members.append(("status", .string(m.status == .started ? "started" : "waiting")))
        } else {
            members.append(("status", "waiting"))
        }
        members += [
            ("start_time", .string(Self.format(m.startTime))), ("duration", .number(m.duration)),
            ("timezone", .string(m.timezone)), ("agenda", .string(m.agenda)),
            ("created_at", .string(Self.format(m.createdAt))),
            ("start_url", .string("\(baseURL)/s/\(m.id)?zak=\(m.zak)")), ("join_url", .string(joinURL(m))),
            ("password", .string(m.password)), ("h323_password", .string(m.h323Password)),
            ("pstn_password", .string(m.h323Password)), ("encrypted_password", .string(m.encryptedPassword)),
            ("pre_schedule", false), ("settings", m.settings),
        ]
        return .object(members)
    }

    /// `GET /meetings/{meetingId}` (operation `meeting`).
    /// - Throws: 404 code 3001 when the meeting does not exist (or was deleted).
    public func getMeeting(_ idText: String, caller: Caller) throws -> JSON {
        meetingJSON(try accessibleMeeting(idText, caller: caller), includeStatus: true)
    }

    /// `GET /metrics/meetings/{meetingId}/participants?type=live` (Dashboards, "List meeting participants"; Zoom
    /// documents it for Business plans and up with the dashboard scopes, which the simulator does not check): who
    /// is in the started meeting now, `{page_count, page_size, total_records, next_page_token, participants: [{id,
    /// user_id, user_name, email, join_time}]}` (no `leave_time`: nobody listed has left); empty for a meeting not
    /// started.
    public func liveParticipants(_ idText: String, caller: Caller) throws -> JSON {
        let meeting = try accessibleMeeting(idText, caller: caller)
        let people = meeting.status == .started ? meeting.participants : []
        return [
            "page_count": 1, "page_size": 300, "total_records": .number(people.count), "next_page_token": "",
            "participants": .array(
                people.map {
                    [
                        "id": .string($0.userID), "user_id": .string($0.userID), "user_name": .string($0.name),
                        "email": .string($0.email), "join_time": .string(Self.format($0.joinedAt)),
                    ]
                }
            ),
        ]
    }

    /// `GET /users/{userId}/meetings` (operation `meetings`): `type` scheduled (default: not deleted),
    /// live (started), upcoming / upcoming_meetings (waiting, not yet over), previous_meetings (ended);
    /// oldest first; `page_size` 30 by default, at most 300.
    /// - Complexity: O(meetings).
    public func listMeetings(
        userKey: String,
        caller: Caller,
        type: String?,
        pageSize: Int?,
        nextPageToken: String?
    ) throws -> JSON {
        let user = try resolveUser(userKey, caller: caller)
        let now = now()
        let filter: (SimMeeting) -> Bool
        switch type ?? "scheduled" {
        case "scheduled": filter = { $0.status != .deleted }
        case "live": filter = { $0.status == .started }
        case "upcoming", "upcoming_meetings":
            filter = { $0.status == .waiting && $0.startTime.addingTimeInterval(TimeInterval($0.duration * 60)) > now }
        case "previous_meetings": filter = { $0.status == .ended }
        default: throw ZoomAPIError.validation(field: "type", "Invalid field.")
        }
        let all = meetingOrder.compactMap { meetings[$0] }.filter { $0.hostID == user.id && filter($0) }
        let (size, offset) = try page(pageSize: pageSize, token: nextPageToken, kind: "meetings:\(user.id)")
        let slice = Array(all.dropFirst(offset).prefix(size))
        let next =
            offset + slice.count < all.count ? pageToken(kind: "meetings:\(user.id)", offset: offset + slice.count) : ""
        let items: [JSON] = slice.map { m in
            [
                "uuid": .string(m.uuid), "id": .int(m.id), "host_id": .string(m.hostID), "topic": .string(m.topic),
                "type": .number(m.type), "start_time": .string(Self.format(m.startTime)),
                "duration": .number(m.duration), "timezone": .string(m.timezone), "agenda": .string(m.agenda),
                "created_at": .string(Self.format(m.createdAt)), "join_url": .string(joinURL(m)),
            ]
        }
        return [
            "page_size": .number(size), "total_records": .number(all.count), "next_page_token": .string(next),
            "meetings": .array(items),
        ]
    }

    /// `PATCH /meetings/{meetingId}` (operation `meetingUpdate`); counts against the host's daily
    /// create/update limit.
    /// - Throws: 3001 when gone, the daily limit, validation errors.
    public func updateMeeting(_ idText: String, body: JSON, caller: Caller) throws {
        var meeting = try accessibleMeeting(idText, caller: caller)
        guard body.objectValue != nil else {
            throw ZoomAPIError.api(400, code: 300, "Request Body should be a valid JSON object.")
        }
        try validateFields(body)
        guard let host = configuration.users.first(where: { $0.id == meeting.hostID }) else {
            throw ZoomAPIError.meetingNotFound(idText)
        }
        try chargeDailyLimit(host)
        if let topic = body["topic"]?.stringValue { meeting.topic = topic }
        if let agenda = body["agenda"]?.stringValue { meeting.agenda = agenda }
        if let type = body["type"]?.intValue { meeting.type = Int(type) }
        if let start = body["start_time"]?.stringValue, let date = Self.parseTime(start) { meeting.startTime = date }
        if let duration = body["duration"]?.intValue { meeting.duration = Int(duration) }
        if let timezone = body["timezone"]?.stringValue { meeting.timezone = timezone }
        if let settings = body["settings"] { meeting.settings = meeting.settings.merging(settings) }
        if let password = body["password"]?.stringValue { applyPassword(password, to: &meeting) }
        meetings[meeting.id] = meeting
    }

    /// `DELETE /meetings/{meetingId}` (operation `meetingDelete`).
    /// - Throws: 400 code 3002 while the meeting is in progress; 404 code 3001 when it is gone; with the fault
    ///   `refuse_delete_ended`, 400 code 3007 "Sorry, you cannot delete this meeting since it has ended." for an
    ///   ended meeting (Zoom answers so for some ended meetings; "Delete a meeting", error 3007).
    public func deleteMeeting(_ idText: String, caller: Caller) throws {
        var meeting = try accessibleMeeting(idText, caller: caller)
        if meeting.status == .started {
            throw ZoomAPIError.api(400, code: 3002, "Sorry, you cannot delete this meeting since it is in progress.")
        }
        if meeting.status == .ended && refuseDeleteEnded {
            throw ZoomAPIError.api(400, code: 3007, "Sorry, you cannot delete this meeting since it has ended.")
        }
        meeting.status = .deleted
        meeting.deletedAt = now()
        meetings[meeting.id] = meeting
    }

    /// `PUT /meetings/{meetingId}/status` (operation `meetingStatus`): `end` ends a waiting or started
    /// meeting; `recover` restores a deleted one.
    /// - Throws: 3001 when gone, 300 for another action.
    public func setMeetingStatus(_ idText: String, action: String?, caller: Caller) throws {
        switch action {
        case "end":
            var meeting = try accessibleMeeting(idText, caller: caller)
            let wasStarted = meeting.status == .started
            if meeting.isLive {
                meeting.status = .ended
                meeting.endedAt = now()
                meeting.participants = []
            }
            meetings[meeting.id] = meeting
            if wasStarted { emitEnded(meeting) }
        case "recover":
            guard let id = Int64(idText), var meeting = meetings[id], meeting.accountID == caller.accountID,
                caller.userID == nil || caller.userID == meeting.hostID
            else { throw ZoomAPIError.meetingNotFound(idText) }
            if meeting.status == .deleted {
                meeting.status = .waiting
                meeting.deletedAt = nil
            }
            meetings[id] = meeting
        default:
            throw ZoomAPIError.validation(field: "action", "Invalid field.")
        }
    }

    /// Starts a meeting as if its host opened `start_url` (test surface and `GET /s/{id}?zak=`).
    /// - Returns: `false` when there is no such live meeting or the host key is wrong.
    public func startMeeting(id: Int64, zak: String?) -> Bool {
        guard var meeting = meetings[id],
            meeting.status == .waiting || meeting.status == .started || meeting.status == .ended
        else { return false }
        if let zak, zak != meeting.zak { return false }
        begin(&meeting)
        return true
    }

    /// Ends a meeting as if its host left (test surface).
    public func endMeetingFromClient(id: Int64) -> Bool {
        guard var meeting = meetings[id], meeting.status == .started || meeting.status == .waiting else { return false }
        let wasStarted = meeting.status == .started
        meeting.status = .ended
        meeting.endedAt = now()
        meeting.participants = []
        meetings[id] = meeting
        if wasStarted { emitEnded(meeting) }
        return true
    }
}
