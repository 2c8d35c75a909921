import SitroomCore

/// One immutable, fully validated generation of everything under `etc/` (SPEC §3).
public struct Configuration: Sendable {
    /// The `etc/` directory it was read from (absolute path).
    public var etcDirectory: String
    /// `etc/sitroom.yaml`.
    public var daemon: DaemonSettings
    /// `etc/integrations/*.yaml`, keyed by integration name (the file name without `.yaml`).
    public var integrations: [String: IntegrationConfig]
    /// `etc/roster.yaml` (empty when the file does not exist).
    public var roster: Roster
    /// `etc/templates/*.mustache`, keyed by file name without `.mustache` (e.g. `room-ready.email`).
    public var templates: [String: String]
    /// What is valid but probably not meant (``ConfigLoader/warnings(_:sites:daemonFile:)``); never blocks the
    /// generation.
    public var warnings: [ConfigWarning] = []

    public init(
        etcDirectory: String,
        daemon: DaemonSettings,
        integrations: [String: IntegrationConfig],
        roster: Roster,
        templates: [String: String]
    ) {
        self.etcDirectory = etcDirectory
        self.daemon = daemon
        self.integrations = integrations
        self.roster = roster
        self.templates = templates
    }
}

/// The kind of a video integration (SPEC §3 `kind`).
public enum IntegrationKind: String, Sendable, CaseIterable {
    /// Zoom Server-to-Server OAuth app (`grant_type=account_credentials`).
    case zoomS2S = "zoom-s2s"
    /// Zoom user-authorized OAuth app (`authorization_code`, `refresh_token`).
    case zoomOAuth = "zoom-oauth"
}

/// `etc/integrations/NAME.yaml`.
public struct IntegrationConfig: Sendable, Hashable {
    public var name: String
    /// The file it came from (absolute path).
    public var file: String
    public var kind: IntegrationKind
    /// Zoom API base URL without a trailing slash, e.g. `https://api.zoom.us/v2`.
    public var apiURL: String
    /// Zoom OAuth base URL without a trailing slash, e.g. `https://zoom.us/oauth`.
    public var oauthURL: String
    /// zoom-s2s: the Zoom account id the app belongs to.
    public var accountID: String?
    public var clientID: String
    /// Absolute path of the client secret file (mode 0600 or stricter, checked at load).
    public var clientSecretFile: String
    /// Absolute path of the webhook secret file, if configured.
    public var webhookSecretFile: String?
    /// zoom-oauth only.
    public var redirectURI: String?
    /// Medium-category requests per second allowed (SPEC §3 `rate_limit.medium_per_second`, default 20).
    public var mediumPerSecond: Int
    /// The pool, in file order.
    public var hosts: [HostConfig]
    public var meeting: MeetingSettings
    /// Lower is tried first (default 10).
    public var priority: Int
    /// Seconds a Zoom request may take in all (`request_timeout`, default 30s); after that its outcome is unknown.
    public var requestTimeout: Double
    /// zoom-oauth: a host whose token pair is older than this many seconds is refreshed even when idle
    /// (`refresh_idle_after`, default 30d, at most 60d), so its refresh token never expires unused (Zoom does not
    /// document the lifetime reliably; sitroom assumes it may be as short as 90 days).
    public var refreshIdleAfter: Double
    /// `events`: how Zoom's meeting events reach sitroomd for this integration's meetings (the live room).
    public var events: MeetingEventSources = MeetingEventSources()

    /// `refresh_idle_after` when not given: 30 days.
    public static let defaultRefreshIdleAfter: Double = 30 * 86_400

    public init(
        name: String,
        file: String,
        kind: IntegrationKind,
        apiURL: String,
        oauthURL: String,
        accountID: String?,
        clientID: String,
        clientSecretFile: String,
        webhookSecretFile: String?,
        redirectURI: String?,
        mediumPerSecond: Int,
        hosts: [HostConfig],
        meeting: MeetingSettings,
        priority: Int,
        requestTimeout: Double = 30,
        refreshIdleAfter: Double = IntegrationConfig.defaultRefreshIdleAfter
    ) {
        self.requestTimeout = requestTimeout
        self.refreshIdleAfter = refreshIdleAfter
        self.name = name
        self.file = file
        self.kind = kind
        self.apiURL = apiURL
        self.oauthURL = oauthURL
        self.accountID = accountID
        self.clientID = clientID
        self.clientSecretFile = clientSecretFile
        self.webhookSecretFile = webhookSecretFile
        self.redirectURI = redirectURI
        self.mediumPerSecond = mediumPerSecond
        self.hosts = hosts
        self.meeting = meeting
        self.priority = priority
    }
}

/// An integration's `events`: where Zoom's meeting events (`meeting.started`, `meeting.ended`,
/// `meeting.participant_joined`, `meeting.participant_left`) come from.
public struct MeetingEventSources: Sendable, Hashable {
    /// `events.websocket`: a WebSocket event subscription sitroomd opens itself (outbound; no listener).
    public struct WebSocket: Sendable, Hashable {
        /// `subscription_id`: the subscription's id from the app's Event Subscriptions (Zoom App Marketplace).
        public var subscriptionID: String
        /// `url`: Zoom's WebSocket endpoint, `wss://ws.zoom.us/ws` unless given (tests point it at zoom-sim).
        public var url: String

        public init(subscriptionID: String, url: String = MeetingEventSources.defaultWebSocketURL) {
            self.subscriptionID = subscriptionID
            self.url = url
        }
    }

    /// Zoom's WebSocket endpoint (developers.zoom.us/docs/api/websockets/).
    public static let defaultWebSocketURL = "wss://ws.zoom.us/ws"

    public var websocket: WebSocket?
    /// `events.webhook: true`: the app's webhook subscription sends the meeting events to sitroom-intake's Zoom route
    /// (verified with `webhook_secret_file`).
    public var webhook: Bool

    public init(websocket: WebSocket? = nil, webhook: Bool = false) {
        self.websocket = websocket
        self.webhook = webhook
    }

    /// Whether meeting events reach sitroomd at all (so who has not joined can be known, and nudged).
    public var any: Bool { websocket != nil || webhook }
}

/// One pool entry (SPEC §3 `hosts[]`).
public struct HostConfig: Sendable, Hashable {
    /// The pool's id for the host, unique within its integration.
    public var id: String
    /// Zoom `userId` or email.
    public var user: String
    /// Open meetings at once (default 1: a Pro host).
    public var concurrentMeetings: Int
    /// Meeting create/update requests per UTC day (default 100, Zoom's limit).
    public var dailyCreateLimit: Int

    public init(id: String, user: String, concurrentMeetings: Int = 1, dailyCreateLimit: Int = 100) {
        self.id = id
        self.user = user
        self.concurrentMeetings = concurrentMeetings
        self.dailyCreateLimit = dailyCreateLimit
    }
}

/// SPEC §3 `meeting:` of an integration.
public struct MeetingSettings: Sendable, Hashable {
    public enum Passcode: String, Sendable, CaseIterable { case random, none }
    public enum AutoRecording: String, Sendable, CaseIterable { case none, local, cloud }
    public enum OnResolve: String, Sendable, CaseIterable {
        case endAndDelete = "end_and_delete"
        case end
    }
    /// Mustache template for the Zoom `topic` (default `Situation Room: {{incident.title}}`).
    public var topic: String
    public var waitingRoom: Bool
    public var joinBeforeHost: Bool
    public var passcode: Passcode
    /// Characters of a `random` passcode (`passcode_length`, 6 to 10, default 10: Zoom's maximum); each holds a
    /// letter, a digit and one of `@ - _ *`, so it meets the passcode rules a Zoom account admin can set.
    public var passcodeLength: Int
    public var autoRecording: AutoRecording
    public var commanderAsAlternativeHost: Bool
    public var onResolve: OnResolve

    public init(
        topic: String = "Situation Room: {{incident.title}}",
        waitingRoom: Bool = false,
        joinBeforeHost: Bool = true,
        passcode: Passcode = .random,
        autoRecording: AutoRecording = .none,
        commanderAsAlternativeHost: Bool = true,
        onResolve: OnResolve = .endAndDelete,
        passcodeLength: Int = 10
    ) {
        self.passcodeLength = passcodeLength
        self.topic = topic
        self.waitingRoom = waitingRoom
        self.joinBeforeHost = joinBeforeHost
        self.passcode = passcode
        self.autoRecording = autoRecording
        self.commanderAsAlternativeHost = commanderAsAlternativeHost
        self.onResolve = onResolve
    }
}

/// `etc/sitroom.yaml`.
public struct DaemonSettings: Sendable, Hashable {
    public var conference: ConferenceSettings
    /// Seconds (SPEC §3 `reopen_hold_down`, default 15m).
    public var reopenHoldDown: Double
    public var notify: NotifySettings
    public var feeds: FeedSettings
    public var spool: SpoolSettings
    /// LMDB map size in bytes (SPEC §3 `store.map_size`, default 1 GiB).
    public var storeMapSize: Int
    /// `control.group`: the group allowed read-only commands, or `nil`.
    public var controlGroup: String?
    /// `store.keep_ended_rooms`, `store.keep_audit`: how long ended rooms and audit entries are kept.
    public var retention: RetentionSettings

    public init(
        conference: ConferenceSettings = .init(),
        reopenHoldDown: Double = 900,
        notify: NotifySettings = .init(),
        feeds: FeedSettings = .init(),
        spool: SpoolSettings = .init(),
        storeMapSize: Int = 1 << 30,
        controlGroup: String? = nil,
        retention: RetentionSettings = .init()
    ) {
        self.conference = conference
        self.reopenHoldDown = reopenHoldDown
        self.notify = notify
        self.feeds = feeds
        self.spool = spool
        self.storeMapSize = storeMapSize
        self.controlGroup = controlGroup
        self.retention = retention
    }
}

/// SPEC §8 purges (`store.keep_ended_rooms`, `store.keep_audit`; ages in seconds).
public struct RetentionSettings: Sendable, Hashable {
    /// A room that ended (or failed, or became unavailable) this long ago is deleted with its notices, and its
    /// incident with the participants' contacts once the incident is resolved or closed (default 30 days).
    public var keepEndedRooms: Double
    /// Audit entries older than this are deleted (default 365 days).
    public var keepAudit: Double

    public init(keepEndedRooms: Double = 30 * 86_400, keepAudit: Double = 365 * 86_400) {
        self.keepEndedRooms = keepEndedRooms
        self.keepAudit = keepAudit
    }
}

/// SPEC §3 `conference:`.
public struct ConferenceSettings: Sendable, Hashable {
    public enum Component: String, Sendable, CaseIterable { case video, meeting }
    public var component: Component
    /// `follow_up`, meeting component only (default `[email, sms]`).
    public var followUp: [NotifyChannel]
    /// Default integration order (names of files under `etc/integrations/`); empty means all, by priority.
    public var integrations: [String]
    /// First match wins.
    public var rules: [ConferenceRule]
    /// Seconds a room may wait for a host before admins are told (`waiting_alert_after`, default 10m).
    public var waitingAlertAfter: Double
    /// `meeting` component: seconds between the invitation and its follow-up (`follow_up_delay`, default 2m).
    /// The invitation already carries the link; the follow-up reaches those who have not opened it yet, so it
    /// comes a little later instead of in the same second.
    public var followUpDelay: Double
    /// `meeting` component: the invitation's `DURATION` in seconds (`invitation_duration`, default 60m; whole
    /// minutes).
    public var invitationDuration: Double

    public init(
        component: Component = .video,
        followUp: [NotifyChannel] = [.email, .sms],
        integrations: [String] = [],
        rules: [ConferenceRule] = [],
        waitingAlertAfter: Double = 600,
        followUpDelay: Double = 120,
        invitationDuration: Double = 3600
    ) {
        self.component = component
        self.followUp = followUp
        self.integrations = integrations
        self.rules = rules
        self.waitingAlertAfter = waitingAlertAfter
        self.followUpDelay = followUpDelay
        self.invitationDuration = invitationDuration
    }
}

/// One `conference.rules[]` entry: incidents whose fields all equal `match` use `integrations`.
public struct ConferenceRule: Sendable, Hashable {
    /// `team`, `severity` → value.
    public var match: [String: String]
    public var integrations: [String]

    public init(match: [String: String], integrations: [String]) {
        self.match = match
        self.integrations = integrations
    }
}

/// A notification channel (SPEC §3 `notify.channels`).
public enum NotifyChannel: String, Sendable, CaseIterable, Codable {
    case email, sms
}

/// SPEC §3 `notify:`.
public struct NotifySettings: Sendable, Hashable {
    public var channels: [NotifyChannel]
    public var admins: [Admin]
    public var email: EmailTransport
    public var sms: SMSTransport
    public var retry: RetrySettings
    /// `notify.chat.webhook_url`: a Slack-compatible incoming webhook that gets room ready/ended/failed
    /// (SPEC §6), or `nil` when no chat is configured.
    public var chatWebhookURL: String?
    /// `notify.nudge.after`: seconds after a room is ready (its link sent) when a participant who has not joined
    /// gets one `nudge` (default 10 minutes; `0s` turns nudges off). Only for rooms whose integration receives
    /// Zoom's meeting events (``MeetingEventSources/any``), and only for participants with an email (the events
    /// name people by email).
    public var nudgeAfter: Double = NotifySettings.defaultNudgeAfter

    /// `notify.nudge.after` when not given: 10 minutes. Long enough for someone paged to get to a computer and
    /// join, short enough that the reminder still matters while the incident is young.
    public static let defaultNudgeAfter: Double = 600

    public init(
        channels: [NotifyChannel] = [.email, .sms],
        admins: [Admin] = [],
        email: EmailTransport = .maildir(from: "sitroom <sitroom@localhost>"),
        sms: SMSTransport = .file,
        retry: RetrySettings = .init(),
        chatWebhookURL: String? = nil
    ) {
        self.channels = channels
        self.admins = admins
        self.email = email
        self.sms = sms
        self.retry = retry
        self.chatWebhookURL = chatWebhookURL
    }
}

/// An admin who gets admin notices.
public struct Admin: Sendable, Hashable {
    public var name: String
    public var email: String?
    public var phone: String?
    public init(name: String, email: String? = nil, phone: String? = nil) {
        self.name = name
        self.email = email
        self.phone = phone
    }
}

/// SPEC §3 `notify.email`.
public enum EmailTransport: Sendable, Hashable {
    /// RFC 5322 messages written into `var/mail/` (maildir). `from` is an RFC 5322 mailbox.
    case maildir(from: String)
    /// SMTP through libcurl.
    case smtp(SMTPSettings)

    public var from: String {
        switch self {
        case .maildir(let from): return from
        case .smtp(let settings): return settings.from
        }
    }
}

/// `notify.email` with `transport: smtp`.
public struct SMTPSettings: Sendable, Hashable {
    /// `starttls`: how a `smtp://` connection is secured (RFC 3207); `smtps://` is TLS from the start.
    public enum StartTLS: String, Sendable, CaseIterable {
        /// Upgrade or fail (default).
        case required
        /// Upgrade when offered.
        case optional
        /// Never upgrade (a relay on the loopback interface). `disabled`, the word of earlier releases, is
        /// still accepted in `etc/sitroom.yaml`.
        case never
    }

    /// RFC 5322 mailbox for `From:`; its address is the envelope sender.
    public var from: String
    /// `smtp://host[:port]` or `smtps://host[:port]`.
    public var url: String
    /// AUTH user, or `nil` for no AUTH.
    public var username: String?
    /// Absolute path of the AUTH password file (mode 0600 or stricter), or `nil`.
    public var passwordFile: String?
    public var startTLS: StartTLS
    /// Absolute path of a PEM CA bundle to trust instead of the system's (`ca_file`), or `nil`.
    public var caFile: String?
    /// Seconds one SMTP transaction may take (`timeout`, default 60s).
    public var timeout: Double

    public init(
        from: String,
        url: String,
        username: String? = nil,
        passwordFile: String? = nil,
        startTLS: StartTLS = .required,
        caFile: String? = nil,
        timeout: Double = 60
    ) {
        self.from = from
        self.url = url
        self.username = username
        self.passwordFile = passwordFile
        self.startTLS = startTLS
        self.caFile = caFile
        self.timeout = timeout
    }
}

/// SPEC §3 `notify.sms`.
public enum SMSTransport: Sendable, Hashable {
    /// One file per SMS under `var/sms/`.
    case file
    /// Twilio-compatible HTTP gateway. `passwordFile` is an absolute path.
    case http(url: String, from: String, username: String, passwordFile: String)
}

/// SPEC §3 `notify.retry` (all in seconds).
public struct RetrySettings: Sendable, Hashable {
    public var first: Double
    public var max: Double
    public var giveUpAfter: Double
    public init(first: Double = 30, max: Double = 3600, giveUpAfter: Double = 172_800) {
        self.first = first
        self.max = max
        self.giveUpAfter = giveUpAfter
    }
}

/// SPEC §3 `feeds:` — label/field equalities that make an event open a situation room.
public struct FeedSettings: Sendable, Hashable {
    public var alertmanagerSituationRoomWhen: [String: String]
    public var pagerdutySituationRoomWhen: [String: String]
    public init(
        alertmanagerSituationRoomWhen: [String: String] = ["severity": "critical"],
        pagerdutySituationRoomWhen: [String: String] = ["urgency": "high"]
    ) {
        self.alertmanagerSituationRoomWhen = alertmanagerSituationRoomWhen
        self.pagerdutySituationRoomWhen = pagerdutySituationRoomWhen
    }
}

/// SPEC §3 `spool:` (sizes in bytes, ages in seconds).
public struct SpoolSettings: Sendable, Hashable {
    public var maxFileSize: Int
    public var keepCur: Double
    public var keepRejected: Double
    public var tmpStaleAfter: Double
    public init(
        maxFileSize: Int = 1 << 20,
        keepCur: Double = 30 * 86_400,
        keepRejected: Double = 90 * 86_400,
        tmpStaleAfter: Double = 86_400
    ) {
        self.maxFileSize = maxFileSize
        self.keepCur = keepCur
        self.keepRejected = keepRejected
        self.tmpStaleAfter = tmpStaleAfter
    }
}

/// `etc/roster.yaml`: teams and people, for feeds that name teams rather than people.
public struct Roster: Sendable, Hashable {
    /// Team name → members.
    public var teams: [String: [Participant]]
    public init(teams: [String: [Participant]] = [:]) { self.teams = teams }
}
