import Curl
import Foundation
import SitroomCore

/// An OAuth access token from Zoom's token endpoint.
public struct AccessToken: Sendable, Hashable {
    /// The bearer token (a secret: never logged).
    public var value: String
    /// Lifetime in seconds from when it was issued (`expires_in`, 3600 for Zoom).
    public var expiresIn: Double
    /// zoom-oauth only: the rotated refresh token.
    public var refreshToken: String?
}

/// A meeting as Zoom describes it; only the fields sitroom uses (`start_url` is deliberately not kept).
public struct Meeting: Sendable, Hashable {
    public var id: Int64
    public var joinURL: String
    public var password: String?
    public var agenda: String?
    public var hostID: String?
    /// `status` as "Get a meeting" answers it: `waiting` (not started, or ended) or `started`; `nil` when absent.
    public var status: String? = nil
}

/// Zoom's REST API and OAuth token endpoint over libcurl.
///
/// Facts from Zoom's pages (docs/zoom.md cites them): the token endpoint is `POST {oauth_url}/token` with Basic
/// auth `client_id:client_secret`; API calls carry `Authorization: Bearer`; errors are `{"code","message"}`, read by
/// ``error(from:operation:grant:)`` and decided by the table of Zoom answers, ``ZoomAnswer``.
public struct ZoomClient: Sendable {
    public let http: HTTPClient
    /// e.g. `https://api.zoom.us/v2` (no trailing slash).
    public let apiURL: String
    /// e.g. `https://zoom.us/oauth` (no trailing slash).
    public let oauthURL: String
    /// Seconds for a whole request.
    public var timeout: Double
    /// Told the outcome of every request (metrics); `nil` tells nobody. Never handed tokens or bodies.
    public var observer: (@Sendable (ZoomCall) -> Void)?

    public init(http: HTTPClient, apiURL: String, oauthURL: String, timeout: Double = 30) {
        self.http = http
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.oauthURL = oauthURL.hasSuffix("/") ? String(oauthURL.dropLast()) : oauthURL
        self.timeout = timeout
    }

    // MARK: OAuth

    /// Server-to-Server OAuth: `POST {oauth_url}/token?grant_type=account_credentials&account_id=ID`.
    /// - Throws: ``ZoomError`` (`.oauth` when refused).
    public func requestAccountToken(
        accountID: String,
        clientID: String,
        clientSecret: String
    ) async throws(ZoomError)
        -> AccessToken
    {
        let url = "\(oauthURL)/token?grant_type=account_credentials&account_id=\(Self.queryEscape(accountID))"
        let request = HTTPRequest(
            method: .post,
            url: url,
            headers: [(name: "Accept", value: "application/json")],
            basicAuth: (user: clientID, password: clientSecret),
            timeout: timeout
        )
        let response = try await send(request, .token, grant: "account_credentials")
        return try Self.token(from: response.body)
    }

    /// Reads a token answer: `access_token`, `expires_in` (seconds, default 3600), `refresh_token`.
    static func token(from body: [UInt8]) throws(ZoomError) -> AccessToken {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let token = object["access_token"] as? String, !token.isEmpty
        else { throw ZoomError(.invalidResponse(message: "token answer without access_token"), operation: .token) }
        let expiresIn = (object["expires_in"] as? NSNumber)?.doubleValue ?? 3600
        return AccessToken(value: token, expiresIn: expiresIn, refreshToken: object["refresh_token"] as? String)
    }

    // MARK: Meetings

    /// Zoom API "Create a meeting": `POST /users/{userId}/meetings` → 201.
    /// - Throws: ``ZoomError``; `.invalidResponse` when the 2xx answer lacks `id` or `join_url`.
    public func createMeeting(
        token: String,
        userID: String,
        _ meeting: MeetingRequest
    ) async throws(ZoomError) -> Meeting {
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(meeting)) } catch {
            throw ZoomError(.invalidResponse(message: "cannot encode the meeting: \(error)"), operation: .createMeeting)
        }
        let response = try await send(
            HTTPRequest(
                method: .post,
                url: "\(apiURL)/users/\(Self.pathEscape(userID))/meetings",
                headers: Self.headers(token: token, json: true),
                body: body,
                timeout: timeout
            ),
            .createMeeting
        )
        do {
            return try Self.meeting(from: response.body, apiURL: apiURL)
        } catch {
            // Zoom made a meeting but its answer is unusable (no link sitroom can send): never leave it live and
            // unmanaged. Delete it now; if that fails too, the error carries its id and counts as "may have happened".
            guard case .invalidResponse(let message) = error.kind, let id = Self.meetingID(in: response.body) else {
                throw error
            }
            var deleteError: ZoomError? = nil
            for attempt in 1...Self.strayDeleteAttempts {
                do throws(ZoomError) {
                    try await deleteMeeting(token: token, meetingID: id)
                    deleteError = nil
                    break
                } catch {
                    deleteError = error
                    // Only a transient failure (5xx, 429, no answer) is worth another try, after 1 s, then 2 s.
                    let transient =
                        (error.status.map { $0 >= 500 || $0 == 429 } ?? false)
                        || {
                            if case .transport = error.kind { return true } else { return false }
                        }()
                    guard transient, attempt < Self.strayDeleteAttempts else { break }
                    try? await Task.sleep(for: .seconds(Double(1 << (attempt - 1))))
                }
            }
            guard let deleteError else {
                throw ZoomError(
                    .invalidResponse(message: "\(message); sitroom deleted meeting \(id), which this create made"),
                    operation: .createMeeting
                )
            }
            var stray = ZoomError(
                .invalidResponse(
                    message: "\(message); deleting meeting \(id), which this create made, failed: \(deleteError)"
                ),
                operation: .createMeeting
            )
            stray.strayMeetingID = id
            throw stray
        }
    }

    /// How many times the meeting of an unusable create answer is deleted before the create counts as perhaps made
    /// (the room's run then sweeps the host for its marker).
    public static let strayDeleteAttempts = 3

    /// The numeric `id` of a meeting answer, if it has one.
    static func meetingID(in body: [UInt8]) -> Int64? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let id = (object["id"] as? NSNumber)?.int64Value, id > 0
        else { return nil }
        return id
    }

    /// Whether `url` is a link people can join meeting `id` with: an `https` URL (or, for a simulator on loopback,
    /// the API's own scheme) on the API's domain (`api.zoom.us` → `zoom.us` and its subdomains such as
    /// `us02web.zoom.us`; a loopback simulator: its host) with the meeting's id in its path (`/j/85746065432`).
    /// Zoom documents `join_url` as "URL for participants to join the meeting" (Meetings API, Create a meeting).
    public static func isUsableJoinURL(_ url: String, meetingID id: Int64, apiURL: String) -> Bool {
        guard let link = URLComponents(string: url), let host = link.host?.lowercased(), !host.isEmpty,
            let api = URLComponents(string: apiURL), let apiHost = api.host?.lowercased()
        else { return false }
        let loopback = apiHost == "127.0.0.1" || apiHost == "localhost" || apiHost == "::1" || apiHost == "[::1]"
        let scheme = link.scheme?.lowercased()
        guard scheme == "https" || (loopback && scheme == api.scheme?.lowercased()) else { return false }
        let domain = apiHost.hasPrefix("api.") ? String(apiHost.dropFirst(4)) : apiHost
        guard host == domain || host.hasSuffix("." + domain) else { return false }
        return link.path.split(separator: "/").contains { $0 == String(id) }
    }

    /// Zoom API "Get a meeting": `GET /meetings/{meetingId}`.
    public func getMeeting(token: String, meetingID: Int64) async throws(ZoomError) -> Meeting {
        let response = try await send(
            HTTPRequest(
                method: .get,
                url: "\(apiURL)/meetings/\(meetingID)",
                headers: Self.headers(token: token),
                timeout: timeout
            ),
            .getMeeting
        )
        return try Self.meeting(from: response.body, apiURL: apiURL)
    }

    /// Someone in a live meeting, as Zoom's Dashboards list them.
    public struct LiveParticipant: Sendable, Hashable {
        public var name: String
        /// Lower-cased; `nil` for guests and phone users.
        public var email: String?
        /// Seconds since 1970.
        public var joinedAt: Double
        /// Seconds since 1970 when this stay ended; `nil` while in the meeting.
        public var leftAt: Double?
    }

    /// Zoom API (Dashboards) "List meeting participants": `GET /metrics/meetings/{meetingId}/participants?type=live`,
    /// all pages. Zoom offers it to Business plans and up, with the scope `dashboard_meetings:read:admin`
    /// (granular: `dashboard:read:list_meeting_participants:admin`); other accounts get an error, which the caller
    /// takes as "not available".
    public func liveParticipants(token: String, meetingID: Int64) async throws(ZoomError) -> [LiveParticipant] {
        var found: [LiveParticipant] = []
        var pageToken = ""
        repeat {
            var url = "\(apiURL)/metrics/meetings/\(meetingID)/participants?type=live&page_size=300"
            if !pageToken.isEmpty { url += "&next_page_token=\(Self.queryEscape(pageToken))" }
            let response = try await send(
                HTTPRequest(method: .get, url: url, headers: Self.headers(token: token), timeout: timeout),
                .getMeeting
            )
            guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
                throw ZoomError(.invalidResponse(message: "meeting participants answer is not a JSON object"))
            }
            for item in object["participants"] as? [[String: Any]] ?? [] {
                guard let joined = MeetingEventReader.time(item["join_time"]) else { continue }
                let email = (item["email"] as? String)?.trimmingCharacters(in: .whitespaces).lowercased()
                found.append(
                    LiveParticipant(
                        name: OneLine.clean(item["user_name"] as? String ?? "", limit: 200),
                        email: email?.isEmpty == false ? email : nil,
                        joinedAt: joined,
                        leftAt: MeetingEventReader.time(item["leave_time"])
                    )
                )
            }
            pageToken = object["next_page_token"] as? String ?? ""
        } while !pageToken.isEmpty
        return found
    }

    /// Zoom API "List meetings": `GET /users/{userId}/meetings`, all pages (`next_page_token`).
    /// - Complexity: one request per 300 meetings.
    public func listMeetings(
        token: String,
        userID: String,
        type: String = "scheduled"
    ) async throws(ZoomError) -> [Meeting] {
        var meetings: [Meeting] = []
        var pageToken = ""
        repeat {
            var url = "\(apiURL)/users/\(Self.pathEscape(userID))/meetings?type=\(type)&page_size=300"
            if !pageToken.isEmpty { url += "&next_page_token=\(Self.queryEscape(pageToken))" }
            let response = try await send(
                HTTPRequest(method: .get, url: url, headers: Self.headers(token: token), timeout: timeout),
                .listMeetings
            )
            guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
                throw ZoomError(.invalidResponse(message: "list meetings answer is not a JSON object"))
            }
            for item in object["meetings"] as? [[String: Any]] ?? [] {
                guard let id = (item["id"] as? NSNumber)?.int64Value else { continue }
                meetings.append(
                    Meeting(
                        id: id,
                        joinURL: item["join_url"] as? String ?? "",
                        password: item["password"] as? String,
                        agenda: item["agenda"] as? String,
                        hostID: item["host_id"] as? String
                    )
                )
            }
            pageToken = object["next_page_token"] as? String ?? ""
        } while !pageToken.isEmpty
        return meetings
    }

    /// The body of "Update meeting status" that ends a meeting.
    static let endMeetingBody = Array(#"{"action":"end"}"#.utf8)

    /// Zoom API "Update meeting status": `PUT /meetings/{meetingId}/status` with `{"action":"end"}` → 204.
    public func endMeeting(token: String, meetingID: Int64) async throws(ZoomError) {
        _ = try await send(
            HTTPRequest(
                method: .put,
                url: "\(apiURL)/meetings/\(meetingID)/status",
                headers: Self.headers(token: token, json: true),
                body: Self.endMeetingBody,
                timeout: timeout
            ),
            .endMeeting
        )
    }

    /// Zoom API "Delete a meeting": `DELETE /meetings/{meetingId}` → 204 (3002 while in progress, 3001 when gone,
    /// 3007 when it has ended and cannot be deleted).
    public func deleteMeeting(token: String, meetingID: Int64) async throws(ZoomError) {
        _ = try await send(
            HTTPRequest(
                method: .delete,
                url: "\(apiURL)/meetings/\(meetingID)",
                headers: Self.headers(token: token),
                timeout: timeout
            ),
            .deleteMeeting
        )
    }

    // MARK: Plumbing

    /// Sends one request and tells ``observer`` its outcome.
    /// - Parameters:
    ///   - operation: what is asked (its raw value names the endpoint in metrics).
    ///   - grant: the OAuth grant type of a token request.
    func send(
        _ request: HTTPRequest,
        _ operation: ZoomOperation,
        grant: String? = nil
    ) async throws(ZoomError)
        -> HTTPResponse
    {
        let endpoint = operation.rawValue
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch let error as CurlError {
            observer?(ZoomCall(endpoint: endpoint, grant: grant, status: nil))
            throw ZoomError(
                .transport(message: error.description, maySent: error.requestMayHaveBeenSent),
                operation: operation,
                grant: grant
            )
        } catch {
            observer?(ZoomCall(endpoint: endpoint, grant: grant, status: nil))
            throw ZoomError(.transport(message: "\(error)", maySent: true), operation: operation, grant: grant)
        }
        observer?(ZoomCall(endpoint: endpoint, grant: grant, status: response.status))
        guard (200..<300).contains(response.status) else {
            throw Self.error(from: response, operation: operation, grant: grant)
        }
        return response
    }

    /// Reads an error answer: `{"code": N, "message": "...", "errors": [{"field", "message"}]}`, or the token
    /// endpoint's `{"reason", "error"}` (with or without `code`), and the headers `Retry-After` (seconds or a time)
    /// and `X-RateLimit-Type`.
    static func error(from response: HTTPResponse, operation: ZoomOperation, grant: String? = nil) -> ZoomError {
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        let code = (object["code"] as? NSNumber)?.intValue
        // Zoom's words end up in a room's reason, the log and admins' mail: one line, bounded.
        let message = OneLine.clean(
            object["message"] as? String ?? object["reason"] as? String ?? object["error"] as? String
                ?? "HTTP \(response.status) without an error body",
            limit: 500
        )
        let fieldErrors = (object["errors"] as? [[String: Any]] ?? []).map {
            ZoomError.FieldError(
                field: OneLine.clean($0["field"] as? String ?? "", limit: 100),
                message: OneLine.clean($0["message"] as? String ?? "", limit: 300)
            )
        }
        let kind: ZoomError.Kind =
            operation == .token
            ? .oauth(status: response.status, code: code, message: message)
            : .api(status: response.status, code: code, message: message)
        return ZoomError(
            kind,
            operation: operation,
            grant: grant,
            fieldErrors: fieldErrors,
            oauthError: object["error"] as? String,
            rateLimitType: response.headers["x-ratelimit-type"],
            retryAfter: response.headers["retry-after"].flatMap(ZoomError.RetryAfter.init(header:))
        )
    }

    static func meeting(from body: [UInt8], apiURL: String) throws(ZoomError) -> Meeting {
        // Decoded by Foundation's JSONDecoder into the few fields read (JSONSerialization's tree of every field cost
        // a tenth of an incident's CPU).
        guard let object = try? JSONDecoder().decode(MeetingObject.self, from: Data(body)) else {
            throw ZoomError(.invalidResponse(message: "meeting answer is not a JSON object"))
        }
        guard let id = object.id, id > 0 else {
            throw ZoomError(.invalidResponse(message: "meeting answer without a numeric id"))
        }
        guard let joinURL = object.joinURL else {
            throw ZoomError(.invalidResponse(message: "meeting \(id) answer without join_url"))
        }
        guard isUsableJoinURL(joinURL, meetingID: id, apiURL: apiURL) else {
            throw ZoomError(
                .invalidResponse(
                    message:
                        "meeting \(id) answer with an unusable join_url '\(OneLine.clean(joinURL, limit: 200))' (not an https link "
                        + "on the API's domain naming the meeting)"
                )
            )
        }
        return Meeting(
            id: id,
            joinURL: joinURL,
            password: object.password.flatMap { $0.isEmpty ? nil : $0 },
            agenda: object.agenda,
            hostID: object.hostID,
            status: object.status
        )
    }

    /// The fields of a meeting object sitroom reads (the answer to Zoom's "Create a meeting" and "Get a meeting",
    /// developers.zoom.us/docs/api/meetings/): each taken when it has its JSON type (`id` an integer, the others
    /// strings) and absent otherwise, so a field of another type is reported as missing, as before.
    private struct MeetingObject: Decodable {
        var id: Int64?
        var joinURL: String?
        var password: String?
        var agenda: String?
        var hostID: String?
        var status: String?

        enum CodingKeys: String, CodingKey {
            case id
            case joinURL = "join_url"
            case password, agenda
            case hostID = "host_id"
            case status
        }

        init(from decoder: any Decoder) throws {
            let fields = try decoder.container(keyedBy: CodingKeys.self)
            id = try? fields.decodeIfPresent(Int64.self, forKey: .id)
            joinURL = try? fields.decodeIfPresent(String.self, forKey: .joinURL)
            password = try? fields.decodeIfPresent(String.self, forKey: .password)
            agenda = try? fields.decodeIfPresent(String.self, forKey: .agenda)
            hostID = try? fields.decodeIfPresent(String.self, forKey: .hostID)
            status = try? fields.decodeIfPresent(String.self, forKey: .status)
        }
    }

    static func headers(token: String, json: Bool = false) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            (name: "Authorization", value: "Bearer \(token)"), (name: "Accept", value: "application/json"),
        ]
        if json { headers.append((name: "Content-Type", value: "application/json")) }
        return headers
    }

    static func pathEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~@+")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func queryEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// One request to Zoom as metrics count it: which operation, and how it came out. Holds no token, URL or body.
public struct ZoomCall: Sendable, Hashable {
    /// `create_meeting`, `get_meeting`, `list_meetings`, `end_meeting`, `delete_meeting`, `get_user`, `token`.
    public var endpoint: String
    /// For `token`: `account_credentials`, `authorization_code` or `refresh_token`.
    public var grant: String?
    /// The HTTP status, or `nil` when no answer came (connection refused, timeout).
    public var status: Int?

    public init(endpoint: String, grant: String?, status: Int?) {
        self.endpoint = endpoint
        self.grant = grant
        self.status = status
    }

    /// `ok` (2xx), `unauthorized` (401), `rate_limited` (429), `client_error` (other 4xx), `server_error` (5xx),
    /// `transport_error` (no answer), `unexpected` (1xx, 3xx).
    public var outcome: String {
        guard let status else { return "transport_error" }
        switch status {
        case 200..<300: return "ok"
        case 401: return "unauthorized"
        case 429: return "rate_limited"
        case 400..<500: return "client_error"
        case 500..<600: return "server_error"
        default: return "unexpected"
        }
    }
}
