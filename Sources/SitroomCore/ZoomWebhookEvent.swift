/// A Zoom webhook (`app_deauthorized`, or a meeting event) as a feed saved it into the spool (SPEC §4): the HTTP header lines, a
/// blank line, then the raw body byte for byte. Only parsed here; verifying its signature with the
/// integration's `webhook_secret_file` and applying it belong to the Zoom integration.
///
/// Zoom documents the signature as `x-zm-signature: v0=` + hex HMAC-SHA256 of
/// `v0:{x-zm-request-timestamp}:{body}`, and the payload fields `account_id`, `user_id`, `client_id`,
/// `deauthorization_time`, `signature`, `user_data_retention` (developers.zoom.us/docs/api/webhooks/).
public struct ZoomWebhookEvent: Sendable, Hashable {
    /// One header line, as written (names compared case-insensitively, per RFC 9110 §5.1).
    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The Zoom events sitroom applies, the ones a spool file may hold: sitroom-intake spools these and answers
    /// 200 without spooling for any other event of a subscription, and the spool's parser accepts only these.
    /// An event sitroom learns to use is added here (and to the parser).
    public static let usedEvents: Set<String> = Set(
        ["app_deauthorized"] + ZoomMeetingEvent.Kind.allCases.map(\.rawValue)
    )

    /// The header lines in file order.
    public var headers: [Header]
    /// The raw body, byte for byte (what the signature covers).
    public var body: [UInt8]
    /// `x-zm-signature`, e.g. `v0=` and 64 hex digits.
    public var signature: String
    /// `x-zm-request-timestamp`: seconds since 1970 as Zoom sent them.
    public var requestTimestamp: Int64
    /// The body's `event`: one of ``usedEvents``.
    public var event: String
    /// The body's `event_ts` (milliseconds since 1970), when given.
    public var eventTimestampMilliseconds: Int64?
    /// `payload.account_id`: the Zoom account that removed the app.
    public var accountID: String
    /// `payload.client_id`: the OAuth app that was removed, which names the integration.
    public var clientID: String?
    /// `payload.user_id`: the Zoom user who removed it.
    public var userID: String?
    /// `payload.deauthorization_time` as Zoom wrote it (RFC 3339).
    public var deauthorizationTime: String?
    /// For a meeting event (`meeting.started`, `meeting.participant_joined`, ...): the event as sitroom applies it.
    public var meeting: ZoomMeetingEvent?

    public init(
        headers: [Header],
        body: [UInt8],
        signature: String,
        requestTimestamp: Int64,
        event: String,
        eventTimestampMilliseconds: Int64?,
        accountID: String,
        clientID: String?,
        userID: String?,
        deauthorizationTime: String?,
        meeting: ZoomMeetingEvent? = nil
    ) {
        self.headers = headers
        self.body = body
        self.signature = signature
        self.requestTimestamp = requestTimestamp
        self.event = event
        self.eventTimestampMilliseconds = eventTimestampMilliseconds
        self.accountID = accountID
        self.clientID = clientID
        self.userID = userID
        self.deauthorizationTime = deauthorizationTime
        self.meeting = meeting
    }

    /// The value of the first header named `name` (case-insensitive), or `nil`.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}
