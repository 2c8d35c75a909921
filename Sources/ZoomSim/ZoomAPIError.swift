/// An error answer in Zoom's shape: HTTP status plus a JSON body.
///
/// REST errors are `{"code": integer, "message": string}` (developers.zoom.us/docs/api/rest/error-definitions/);
/// OAuth errors additionally carry `reason` and `error` as zoom.us/oauth answers them.
public struct ZoomAPIError: Error, Sendable, Equatable {
    /// HTTP status code.
    public var status: Int
    /// The JSON body.
    public var body: JSON
    /// Extra response headers (for example `Retry-After`).
    public var headers: [String: String]

    public init(status: Int, body: JSON, headers: [String: String] = [:]) {
        self.status = status
        self.body = body
        self.headers = headers
    }

    /// A REST API error: `{"code": code, "message": message}`.
    public static func api(_ status: Int, code: Int, _ message: String) -> ZoomAPIError {
        ZoomAPIError(status: status, body: ["code": .number(code), "message": .string(message)])
    }

    /// An OAuth error: `{"code", "message", "reason", "error"}`.
    public static func oauth(_ status: Int, code: Int, reason: String, error: String) -> ZoomAPIError {
        ZoomAPIError(
            status: status,
            body: [
                "code": .number(code), "message": .string(reason), "reason": .string(reason), "error": .string(error),
            ]
        )
    }

    /// What Zoom's token endpoint answers for a refresh token it will not take (rotated away, revoked, expired):
    /// `400 {"reason": "Invalid Token!", "error": "invalid_grant"}`, with no `code` at all (devsupport.zoom.us,
    /// "Extending the expiration for an OAuth access token": a prior refresh token gets "Invalid Token!"). The OAuth
    /// error messages page lists 4711 "Refresh token invalid" too; sitroom reads both alike.
    public static let invalidRefreshToken = ZoomAPIError(
        status: 400,
        body: ["reason": "Invalid Token!", "error": "invalid_grant"]
    )

    /// 401 code 124 "Invalid access token." (developers.zoom.us/docs/api/rest/error-definitions/).
    public static let invalidAccessToken = api(401, code: 124, "Invalid access token.")

    /// 404 code 1001 "User does not exist: ID." (meetingCreate 404, meetingDelete 404).
    public static func userNotFound(_ user: String) -> ZoomAPIError {
        api(404, code: 1001, "User does not exist: \(user).")
    }

    /// 404 code 3001 "Meeting does not exist: ID." (meetingDelete 404: "Meeting ... is not found or has expired").
    public static func meetingNotFound(_ id: String) -> ZoomAPIError {
        api(404, code: 3001, "Meeting does not exist: \(id).")
    }

    /// 400 code 300 "Validation Failed." with `errors: [{field, message}]`
    /// (developers.zoom.us/docs/api/rest/error-definitions/).
    public static func validation(field: String, _ message: String) -> ZoomAPIError {
        ZoomAPIError(
            status: 400,
            body: [
                "code": 300, "message": "Validation Failed.",
                "errors": [["field": .string(field), "message": .string(message)]],
            ]
        )
    }

    /// 401 code 4702 invalid client (developers.zoom.us/docs/integrations/oauth-error-messages/: 4702/4704).
    public static let invalidClient = oauth(
        401,
        code: 4702,
        reason: "Invalid client_id or client_secret",
        error: "invalid_client"
    )
}
