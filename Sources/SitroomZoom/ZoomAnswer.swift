import SitroomCore

/// A Zoom operation sitroom calls; the same code means different things on different endpoints (4711 on the token
/// endpoint is a refresh token Zoom will not take, on an API call a scope the app lacks).
public enum ZoomOperation: String, Sendable, Hashable, CaseIterable {
    /// `POST {oauth_url}/token`.
    case token
    /// "Create a meeting", `POST /users/{userId}/meetings`.
    case createMeeting = "create_meeting"
    /// "Get a meeting", `GET /meetings/{meetingId}`.
    case getMeeting = "get_meeting"
    /// "List meetings", `GET /users/{userId}/meetings`.
    case listMeetings = "list_meetings"
    /// "Update meeting status" (`end`), `PUT /meetings/{meetingId}/status`.
    case endMeeting = "end_meeting"
    /// "Delete a meeting", `DELETE /meetings/{meetingId}`.
    case deleteMeeting = "delete_meeting"
    /// "Get a user", `GET /users/{userId}`.
    case getUser = "get_user"
}

/// Every answer Zoom gives sitroom, as one table: which row an answer is (``classify(_:)``), and for each row what
/// it means for the request, the host, the integration and the room, and what the operator should do (``rule``).
///
/// The facts come from Zoom's pages, which win over older notes where they disagree:
/// - errors: developers.zoom.us/docs/api/rest/error-definitions/ and each operation's page
///   (developers.zoom.us/docs/api/meetings/): `{"code", "message"}`, validation errors (code 300, "Validation
///   Failed.") add `errors: [{field, message}]`; code 300 is also the daily create/update limit, but only with the
///   message "A maximum of {n} meetings can be created/updated for a single user in one day";
/// - the token endpoint: developers.zoom.us/docs/integrations/oauth-error-messages/ (4700, 4702/4704 client, 4705
///   grant type not supported, 4709 redirect URI, 4711 refresh token invalid, 4717 app disabled), and answers with
///   no code at all, `{"reason": "Invalid Token!", "error": "invalid_grant"}`;
/// - API-side 4711 "Invalid access token, does not contain scopes:[...]": the app lacks a scope (Zoom's developer
///   forum on granular scopes);
/// - rate limits: developers.zoom.us/docs/api/rate-limits/ (429; the daily create/update limit of 100 per host,
///   reset 00:00 UTC, with `X-RateLimit-Type: Daily-limit` and a `Retry-After` that may be a time);
/// - "Delete a meeting": 3001 gone, 3002 in progress, 3007 "cannot delete this meeting since it has ended".
///
/// docs/zoom.md prints this table for operators; a test keeps the two in step.
public enum ZoomAnswer: String, Sendable, Hashable, CaseIterable {
    /// Code 300 other than the daily limit: a field sitroom sent was refused (`errors[]` says which).
    case validationFailed = "validation_failed"
    /// The alternative hosts were refused (a validation error on `settings.alternative_hosts`, or a message about
    /// alternative hosts): they must be licensed users of the host's account.
    case alternativeHostsRefused = "alternative_hosts_refused"
    /// The host's daily create/update limit: code 300 with "A maximum of {n} meetings can be created/updated for a
    /// single user in one day", or 429 whose message says daily or whose `X-RateLimit-Type` is `Daily-limit`.
    case dailyLimit = "daily_limit"
    /// 429 per-second (per account, shared by all its apps).
    case rateLimited = "rate_limited"
    /// API-side 4711 "Invalid access token, does not contain scopes:[...]": the app lacks a scope.
    case missingScope = "missing_scope"
    /// 401, code 124 "Invalid access token.": the token expired or was revoked.
    case accessTokenRejected = "access_token_rejected"
    /// The token endpoint refused the app's credentials (4700, 4702, 4704, `invalid_client`, a refused
    /// `account_credentials` grant, 401/403).
    case credentialsRefused = "credentials_refused"
    /// The token endpoint's 4717: the app was disabled (or deactivated) in the Zoom App Marketplace.
    case appDisabled = "app_disabled"
    /// The token endpoint's 4711, or `invalid_grant` on a refresh: the host's refresh token is no longer valid.
    case refreshTokenInvalid = "refresh_token_invalid"
    /// `invalid_grant` on `authorization_code`: the code expired (5 minutes), was used, or its PKCE verifier is wrong.
    case authorizationCodeInvalid = "authorization_code_invalid"
    /// 4705 (`unsupported_grant_type`): the app type does not support the grant; configuration, not re-authorization.
    case grantTypeUnsupported = "grant_type_unsupported"
    /// 4709: `redirect_uri` differs from the app's redirect URL.
    case redirectURIMismatch = "redirect_uri_mismatch"
    /// 1001 user does not exist (or not in this account), 3161 hosting not allowed for this user.
    case hostUnusable = "host_unusable"
    /// 3001: the meeting does not exist (any more).
    case meetingGone = "meeting_gone"
    /// 3007 on delete: "you cannot delete this meeting since it has ended".
    case meetingEnded = "meeting_ended"
    /// 3002 on delete: the meeting is in progress (end it first).
    case meetingInProgress = "meeting_in_progress"
    /// 5xx: Zoom failed; a create may have happened.
    case serverError = "server_error"
    /// No answer (refused connection, timeout, reset); a create may have happened if it was sent.
    case noAnswer = "no_answer"
    /// A 2xx answer without what sitroom needs (`id`, `join_url`, `access_token`).
    case unusableAnswer = "unusable_answer"
    /// Any other refusal (4xx with another code).
    case refused

    // MARK: The columns

    /// What the answer means for the request itself.
    public enum RequestEffect: String, Sendable, Hashable {
        /// Zoom refused it; nothing changed at Zoom.
        case refused
        /// It may have been carried out (a create may have made a meeting): look before doing it again.
        case mayHaveHappened = "may_have_happened"
        /// What it asked for is so (the meeting is gone or ended): count it as done.
        case done
    }

    /// What the answer means for the host the request was made for.
    public enum HostEffect: String, Sendable, Hashable {
        case none
        /// Skipped by new rooms for a while (circuit breaker).
        case coolDown = "cool_down"
        /// Out of its daily create/update quota until 00:00 UTC.
        case outOfQuota = "out_of_quota"
        /// Cannot host until its configuration changes.
        case unusable
        /// zoom-oauth: the host's user must authorize the app again.
        case needsReauthorization = "needs_reauthorization"
    }

    /// What the answer means for the integration (the Zoom app).
    public enum IntegrationEffect: String, Sendable, Hashable {
        case none
        /// `needs_reauthorization`: no token can be had until an admin acts (zoom-oauth: for that host only when
        /// the host column says so).
        case needsReauthorization = "needs_reauthorization"
        /// `missing_scope`: every call needing the scope fails the same way until it is added to the app.
        case missingScope = "missing_scope"
    }

    /// What the room does next.
    public enum RoomEffect: String, Sendable, Hashable {
        /// Get a new access token and try once more.
        case retryWithNewToken = "retry_with_new_token"
        /// Wait (`Retry-After`, else capped exponential backoff) and try again on the same host; fail after a few.
        case retryLater = "retry_later"
        /// Give up the host and lease another (or wait for one).
        case nextHost = "next_host"
        /// Give up the integration and fail over to the next that serves the incident.
        case nextIntegration = "next_integration"
        /// Create again without alternative hosts, and say so in the room.
        case createWithoutAlternativeHosts = "create_without_alternative_hosts"
        /// Fail the room with Zoom's words and the advice; admins are told.
        case fail
        /// Carry on as if the request succeeded.
        case carryOn = "carry_on"
    }

    /// One row of the table.
    public struct Rule: Sendable, Hashable {
        public var request: RequestEffect
        public var host: HostEffect
        public var integration: IntegrationEffect
        public var room: RoomEffect
        /// The operator's next step; `NAME`, `HOST` and `INCIDENT` stand for the integration, the pool's host id
        /// and the incident (``ZoomDecision`` fills them in), `SCOPES` for the scopes Zoom named.
        public var advice: String
    }

    /// The row's columns.
    public var rule: Rule {
        switch self {
        case .validationFailed:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .fail,
                advice: "Zoom refused a field of the request (the reason names it): fix what it names (the meeting "
                    + "settings in etc/integrations/NAME.yaml, such as meeting.passcode_length against the account's "
                    + "passcode rules), then `sitroomctl room retry INCIDENT`"
            )
        case .alternativeHostsRefused:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .createWithoutAlternativeHosts,
                advice:
                    "alternative hosts must be licensed users of the host's Zoom account; the room was made without "
                    + "them (license the commanders in that account, or set meeting.commander_as_alternative_host: false "
                    + "in etc/integrations/NAME.yaml)"
            )
        case .dailyLimit:
            return Rule(
                request: .refused,
                host: .outOfQuota,
                integration: .none,
                room: .nextHost,
                advice:
                    "host HOST of NAME may create meetings again at 00:00 UTC; other hosts take the rooms meanwhile "
                    + "(add hosts to the pool if they run out)"
            )
        case .rateLimited:
            return Rule(
                request: .refused,
                host: .coolDown,
                integration: .none,
                room: .retryLater,
                advice: "sitroom waits and retries; if it keeps happening, lower rate_limit.medium_per_second in "
                    + "etc/integrations/NAME.yaml to the account's plan (Pro 20, Business+ 60; all apps of the account "
                    + "share it)"
            )
        case .missingScope:
            return Rule(
                request: .refused,
                host: .none,
                integration: .missingScope,
                room: .nextIntegration,
                advice: "add the scope SCOPES to the Zoom app of NAME (Zoom App Marketplace, Manage, the app, its "
                    + "Scopes tab), then run `sitroomctl integration reauthorize NAME` (tokens issued before lack it; "
                    + "re-authorizing alone does not help)"
            )
        case .accessTokenRejected:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .retryWithNewToken,
                advice:
                    "none: sitroom gets a new token; if Zoom refuses that too, the integration needs re-authorization"
            )
        case .credentialsRefused:
            return Rule(
                request: .refused,
                host: .none,
                integration: .needsReauthorization,
                room: .nextIntegration,
                advice:
                    "check client_id, client_secret_file (and account_id) in etc/integrations/NAME.yaml against the "
                    + "app's credentials page, then run `sitroomctl integration reauthorize NAME`"
            )
        case .appDisabled:
            return Rule(
                request: .refused,
                host: .none,
                integration: .needsReauthorization,
                room: .nextIntegration,
                advice:
                    "the Zoom app of NAME was disabled or deactivated: activate it in the Zoom App Marketplace, then "
                    + "run `sitroomctl integration reauthorize NAME`"
            )
        case .refreshTokenInvalid:
            return Rule(
                request: .refused,
                host: .needsReauthorization,
                integration: .none,
                room: .nextHost,
                advice: "the host's user must approve the app again: `sitroomctl integration authorize NAME HOST`"
            )
        case .authorizationCodeInvalid:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .fail,
                advice:
                    "the code is valid 5 minutes and once: run `sitroomctl integration authorize NAME HOST` again and "
                    + "pass the new code at once"
            )
        case .grantTypeUnsupported:
            return Rule(
                request: .refused,
                host: .none,
                integration: .needsReauthorization,
                room: .nextIntegration,
                advice: "configuration, not re-authorization: the Zoom app does not support this grant; kind: zoom-s2s "
                    + "needs a Server-to-Server OAuth app and kind: zoom-oauth a General (user-managed) app; fix kind or "
                    + "the app in etc/integrations/NAME.yaml, then run `sitroomctl integration reauthorize NAME`"
            )
        case .redirectURIMismatch:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .fail,
                advice: "redirect_uri in etc/integrations/NAME.yaml must be exactly the app's redirect URL; fix it, "
                    + "reload, then authorize again"
            )
        case .hostUnusable:
            return Rule(
                request: .refused,
                host: .unusable,
                integration: .none,
                room: .nextHost,
                advice:
                    "fix hosts[].user of HOST in etc/integrations/NAME.yaml (1001: no such user in the app's account; "
                    + "3161: the user may not host meetings: license it), then reload"
            )
        case .meetingGone:
            return Rule(request: .done, host: .none, integration: .none, room: .carryOn, advice: "none")
        case .meetingEnded:
            return Rule(request: .done, host: .none, integration: .none, room: .carryOn, advice: "none")
        case .meetingInProgress:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .retryLater,
                advice: "none: sitroom ends the meeting, then deletes it"
            )
        case .serverError:
            return Rule(
                request: .mayHaveHappened,
                host: .coolDown,
                integration: .none,
                room: .retryLater,
                advice:
                    "Zoom is failing (status.zoom.us); sitroom retries and fails the room after a few attempts; then "
                    + "`sitroomctl room retry INCIDENT`"
            )
        case .noAnswer:
            return Rule(
                request: .mayHaveHappened,
                host: .coolDown,
                integration: .none,
                room: .retryLater,
                advice:
                    "check the network path to api_url and oauth_url of NAME; sitroom retries and fails the room after "
                    + "a few attempts; then `sitroomctl room retry INCIDENT`"
            )
        case .unusableAnswer:
            // A create answered 2xx made a meeting even when the answer is unusable: sitroom deletes it at once, and
            // when that fails too the create counts as perhaps carried out (its marker is swept).
            return Rule(
                request: .mayHaveHappened,
                host: .none,
                integration: .none,
                room: .fail,
                advice:
                    "Zoom answered without what sitroom needs (the reason says what); `sitroomctl room retry INCIDENT`"
            )
        case .refused:
            return Rule(
                request: .refused,
                host: .none,
                integration: .none,
                room: .fail,
                advice:
                    "Zoom refused the request (its code and message are in the reason; docs/zoom.md lists the known "
                    + "ones); fix what it names, then `sitroomctl room retry INCIDENT`"
            )
        }
    }

    /// Whether the answer refuses the integration's (or a zoom-oauth host's) authorization: only an admin can make it
    /// work again.
    public var refusesAuthorization: Bool {
        rule.integration == .needsReauthorization || rule.host == .needsReauthorization
    }

    // MARK: Classifying

    /// The message Zoom gives code 300 when it means the daily limit, not a validation error.
    static let dailyLimitMessage = "meetings can be created/updated for a single user in one day"

    /// The row an answer belongs to.
    public static func classify(_ error: ZoomError) -> ZoomAnswer {
        switch error.kind {
        case .transport:
            return .noAnswer
        case .invalidResponse:
            return .unusableAnswer
        case .oauth(let status, let code, let message):
            return classifyToken(error, status: status, code: code, message: message)
        case .api(let status, let code, let message):
            let lowered = message.lowercased()
            if status == 429 || code == 429 {
                let daily =
                    lowered.contains("daily") || lowered.contains(dailyLimitMessage)
                    || error.rateLimitType?.lowercased() == "daily-limit"
                return daily ? .dailyLimit : .rateLimited
            }
            if code == 300 && lowered.contains(dailyLimitMessage) { return .dailyLimit }
            if (400..<500).contains(status), refusesAlternativeHosts(error) { return .alternativeHostsRefused }
            switch code {
            case 300: return .validationFailed
            case 4711: return .missingScope
            case 124: return .accessTokenRejected
            case 1001, 3161: return .hostUnusable
            case 3001: return .meetingGone
            case 3007: return .meetingEnded
            case 3002: return .meetingInProgress
            default: break
            }
            if status == 401 { return .accessTokenRejected }
            if status >= 500 { return .serverError }
            return .refused
        }
    }

    private static func classifyToken(_ error: ZoomError, status: Int, code: Int?, message: String) -> ZoomAnswer {
        let oauthError = error.oauthError?.lowercased()
        if status >= 500 { return .serverError }
        if status == 429 { return .rateLimited }
        if code == 4705 || oauthError == "unsupported_grant_type" { return .grantTypeUnsupported }
        if code == 4709 || message.lowercased().contains("redirect") { return .redirectURIMismatch }
        if code == 4717 { return .appDisabled }
        if oauthError == "invalid_client" || code == 4702 || code == 4704 { return .credentialsRefused }
        switch error.grant {
        case "refresh_token":
            // 4711 "Refresh token invalid", or the bare `{"reason": "Invalid Token!", "error": "invalid_grant"}`.
            if code == 4711 || oauthError == "invalid_grant" || message.lowercased().contains("invalid token") {
                return .refreshTokenInvalid
            }
        case "authorization_code":
            if oauthError == "invalid_grant" || code == 4700 { return .authorizationCodeInvalid }
        default:
            if code == 4711 { return .refreshTokenInvalid }
        }
        return .credentialsRefused
    }

    /// Whether a refusal is about the alternative hosts: a validation error on `settings.alternative_hosts`, or a
    /// message naming alternative hosts.
    static func refusesAlternativeHosts(_ error: ZoomError) -> Bool {
        if error.fieldErrors.contains(where: { $0.field.lowercased().contains("alternative_host") }) { return true }
        let text = ([error.message] + error.fieldErrors.map(\.message)).joined(separator: " ").lowercased()
        return text.contains("alternative host") || text.contains("alternative_host")
    }

    /// The scopes named by an API-side 4711 ("Invalid access token, does not contain scopes:[a, b].").
    static func scopes(in message: String) -> [String] {
        guard let open = message.range(of: "scopes:["), let close = message[open.upperBound...].firstIndex(of: "]")
        else {
            return []
        }
        return message[open.upperBound..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}

/// One Zoom answer decided: its row of ``ZoomAnswer``, with what this answer adds (Zoom's words and detail, when to
/// retry, the scopes it lacks) and the advice filled in. A value: the caller carries it out.
public struct ZoomDecision: Sendable, Hashable {
    public var answer: ZoomAnswer
    /// Seconds to wait before trying again, from `Retry-After` (seconds or a time); `nil` when Zoom gave none.
    public var retryIn: Double?
    /// For ``ZoomAnswer/missingScope``: the scopes Zoom named.
    public var missingScopes: [String]
    /// Zoom's words: code, status, message and `errors[]` detail, for the room's or integration's reason.
    public var reason: String
    /// The operator's next step.
    public var advice: String

    /// The row's columns.
    public var rule: ZoomAnswer.Rule { answer.rule }
}

extension ZoomError {
    /// Decides this answer by the table (``ZoomAnswer``).
    /// - Parameters:
    ///   - now: seconds since 1970, to turn a `Retry-After` time into seconds.
    ///   - integration, host, incident: fill in the advice; left as `NAME`, `HOST`, `INCIDENT` when `nil`.
    public func decision(
        now: Double,
        integration: String? = nil,
        host: String? = nil,
        incident: String? = nil
    )
        -> ZoomDecision
    {
        let answer = self.answer
        let scopes = answer == .missingScope ? ZoomAnswer.scopes(in: message) : []
        var advice = answer.rule.advice
        let scopeText = scopes.isEmpty ? "Zoom names in the reason" : scopes.joined(separator: " or ")
        for (placeholder, value) in [
            ("SCOPES", scopeText), ("NAME", integration), ("HOST", host), ("INCIDENT", incident),
        ] {
            if let value { advice = advice.replacingOccurrences(of: placeholder, with: value) }
        }
        return ZoomDecision(
            answer: answer,
            retryIn: retryAfter?.seconds(from: now),
            missingScopes: scopes,
            reason: description,
            advice: advice
        )
    }
}

extension ZoomError {
    /// This answer as the room machine reads any provider's (``ProviderDecision``): the table's row
    /// (``decision(now:integration:host:incident:)``), with the request's effect narrowed by what is known of this
    /// one: a request that never reached Zoom (refused before sending) was refused, not perhaps carried out.
    public func providerDecision(
        now: Double,
        integration: String? = nil,
        host: String? = nil,
        incident: String? = nil
    )
        -> ProviderDecision
    {
        let decision = self.decision(now: now, integration: integration, host: host, incident: incident)
        let rule = decision.rule
        let request: ProviderDecision.Request
        switch rule.request {
        case .refused: request = .refused
        case .done: request = .done
        case .mayHaveHappened: request = outcomeUnknown ? .mayHaveHappened : .refused
        }
        return ProviderDecision(
            request: request,
            host: ProviderDecision.Host(rawValue: rule.host.rawValue)!,
            integration: ProviderDecision.Integration(rawValue: rule.integration.rawValue)!,
            next: ProviderDecision.Next(rawValue: rule.room.rawValue)!,
            reason: decision.reason,
            advice: decision.advice,
            retryIn: decision.retryIn,
            missingScopes: decision.missingScopes
        )
    }
}
