import Curl
import SitroomConfig

/// The connections a process's notice transports share: one SMTP client for `notify.email` and one HTTP client for
/// the SMS gateway and the chat webhook. The notifier holds this and asks it for transports, so it needs nothing
/// of the libcurl layer under them.
///
/// Make one per process (the notifier's), and keep it: transports made from it share its worker threads and
/// connections; ``shutdown()`` stops them all.
public struct NoticeConnections: Sendable {
    private let smtp: SMTPClient
    private let http: HTTPClient

    /// Creates the clients; no thread starts until the first notice.
    /// - Parameters:
    ///   - smtpConnections: The most SMTP transactions (and connections) at once (at least 1).
    ///   - httpConnectionsPerOrigin: The most HTTP requests (and connections) at once per origin (at least 1).
    public init(smtpConnections: Int = 2, httpConnectionsPerOrigin: Int = 4) {
        smtp = SMTPClient(maxConnections: smtpConnections)
        http = HTTPClient(maxConnectionsPerOrigin: httpConnectionsPerOrigin)
    }

    /// An SMTP transport for `notify.email: smtp` (SPEC §3), over the shared SMTP client.
    /// - Parameters:
    ///   - settings: The configured server, sender, STARTTLS policy, CA file and timeout.
    ///   - credentials: AUTH user and password (the password read from `settings.passwordFile`), or `nil`.
    /// - Returns: The transport; `starttls: never` becomes libcurl's `CURLUSESSL_NONE`.
    public func smtpTransport(
        _ settings: SMTPSettings,
        credentials: (user: String, password: String)?
    ) -> SMTPTransport {
        let startTLS: SMTPRequest.StartTLS
        switch settings.startTLS {
        case .required: startTLS = .required
        case .optional: startTLS = .optional
        case .never: startTLS = .disabled
        }
        return SMTPTransport(
            client: smtp,
            settings: .init(
                url: settings.url,
                from: settings.from,
                credentials: credentials,
                startTLS: startTLS,
                caFile: settings.caFile,
                timeout: settings.timeout
            )
        )
    }

    /// A transport for an HTTP SMS gateway (`notify.sms: http`), over the shared HTTP client.
    /// - Parameters:
    ///   - url: The gateway's messages URL.
    ///   - from: The sender number.
    ///   - username: The basic-auth user.
    ///   - password: The basic-auth password.
    /// - Returns: The transport (``HTTPSMSTransport``).
    public func smsTransport(url: String, from: String, username: String, password: String) -> HTTPSMSTransport {
        HTTPSMSTransport(client: http, url: url, from: from, username: username, password: password)
    }

    /// A transport for a chat webhook (`notify.chat.webhook_url`), over the shared HTTP client.
    /// - Parameter url: The webhook URL.
    /// - Returns: The transport (``ChatWebhookTransport``).
    public func chatTransport(url: String) -> ChatWebhookTransport {
        ChatWebhookTransport(client: http, url: url)
    }

    /// Stops both clients: queued notices fail with a transport error (and are retried by the notifier's policy
    /// after a restart); transfers in flight finish or time out. Does not block; safe to call more than once.
    public func shutdown() {
        smtp.shutdown()
        http.shutdown()
    }
}
