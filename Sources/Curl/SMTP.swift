import CCurl

/// One message for ``SMTPClient/send(_:)``: an envelope (sender, recipients) and the RFC 5322 bytes.
public struct SMTPRequest: Sendable {
    /// How a `smtp://` connection is secured (RFC 3207 STARTTLS). A `smtps://` URL is TLS from the first byte
    /// (RFC 8314 §3.3) whatever this says.
    public enum StartTLS: Sendable, Hashable {
        /// Upgrade with STARTTLS or fail (`CURLUSESSL_ALL`): credentials and messages never travel in clear.
        case required
        /// Upgrade when the server offers STARTTLS, else continue in clear (`CURLUSESSL_TRY`).
        case optional
        /// Never upgrade (`CURLUSESSL_NONE`); for a relay on the loopback interface.
        case disabled
    }

    /// `smtp://host[:port][/ehlo-name]` or `smtps://host[:port][/ehlo-name]`. The path, if any, is the name sent
    /// in `EHLO` (libcurl's convention); without it libcurl sends the local host name.
    public var url: String
    /// The envelope sender (`MAIL FROM`), a bare address such as `sitroom@example.org`.
    public var from: String
    /// The envelope recipients (`RCPT TO`), bare addresses. Every one must be accepted or the send fails.
    public var recipients: [String]
    /// The message: RFC 5322 text with CRLF line ends. libcurl adds the SMTP dot-stuffing (RFC 5321 §4.5.2).
    public var message: [UInt8]
    /// Credentials for SMTP AUTH (RFC 4954), or `nil` to send none.
    public var credentials: (user: String, password: String)?
    /// STARTTLS policy for `smtp://` URLs.
    public var startTLS: StartTLS
    /// A PEM file of CA certificates to trust instead of the system's (`CURLOPT_CAINFO`), or `nil`.
    public var caFile: String?
    /// Limit for the whole transaction in seconds, connection included (`CURLOPT_TIMEOUT_MS`).
    public var timeout: Double
    /// Limit for establishing the connection (and TLS) in seconds (`CURLOPT_CONNECTTIMEOUT_MS`).
    public var connectTimeout: Double

    /// Creates a request.
    /// - Parameters:
    ///   - url: A `smtp://` or `smtps://` URL.
    ///   - from: The envelope sender address.
    ///   - recipients: The envelope recipient addresses (at least one).
    ///   - message: The RFC 5322 message with CRLF line ends.
    ///   - credentials: AUTH user and password, or `nil`.
    ///   - startTLS: STARTTLS policy; default ``StartTLS/required``.
    ///   - caFile: CA bundle to trust, or `nil` for the system's.
    ///   - timeout: Whole-transaction limit in seconds; default 60.
    ///   - connectTimeout: Connection limit in seconds; default 10.
    public init(
        url: String,
        from: String,
        recipients: [String],
        message: [UInt8],
        credentials: (user: String, password: String)? = nil,
        startTLS: StartTLS = .required,
        caFile: String? = nil,
        timeout: Double = 60,
        connectTimeout: Double = 10
    ) {
        self.url = url
        self.from = from
        self.recipients = recipients
        self.message = message
        self.credentials = credentials
        self.startTLS = startTLS
        self.caFile = caFile
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }
}

/// A message the server accepted.
public struct SMTPResponse: Sendable {
    /// The server's last reply code, 250 after the end of `DATA` (RFC 5321 §4.2).
    public var replyCode: Int

    /// Creates a response; for test doubles.
    public init(replyCode: Int) {
        self.replyCode = replyCode
    }
}

/// A failed SMTP transaction: the libcurl error and the server's last reply code.
public struct SMTPError: Error, Sendable, CustomStringConvertible {
    /// The libcurl failure (its message names the step, e.g. `RCPT failed: 550`, and the redacted URL).
    public var curl: CurlError
    /// The server's last reply code (`CURLINFO_RESPONSE_CODE`), 0 when none was received.
    public var replyCode: Int
    /// Whether the whole message had been handed to the server when the transaction failed: the server may then
    /// have accepted it (a reply lost after `DATA`), so a retry can deliver it twice. Retries send the same
    /// `Message-ID`, which lets the receiving side tell.
    public var messageMayHaveBeenDelivered: Bool

    /// Creates an error; for test doubles.
    /// - Parameters:
    ///   - curl: The libcurl error.
    ///   - replyCode: The server's last reply code, or 0.
    ///   - messageMayHaveBeenDelivered: Whether the message was fully sent.
    public init(curl: CurlError, replyCode: Int, messageMayHaveBeenDelivered: Bool = false) {
        self.curl = curl
        self.replyCode = replyCode
        self.messageMayHaveBeenDelivered = messageMayHaveBeenDelivered
    }

    /// A permanent failure (RFC 5321 §4.2.1: a 5yz reply) that retrying the same message cannot fix, such as
    /// `550` for a recipient. Refused credentials (`535`, `CURLE_LOGIN_DENIED`) are not permanent: they are the
    /// configuration's fault, not the message's, and retrying after the admin fixes them helps.
    public var isPermanent: Bool {
        (500...599).contains(replyCode) && curl.code != Self.loginDenied
    }

    /// `CURLE_LOGIN_DENIED` (67).
    static let loginDenied: Int32 = 67

    /// "smtp reply N: curl error ...".
    public var description: String {
        replyCode > 0 ? "smtp reply \(replyCode): \(curl)" : "\(curl)"
    }
}

/// Sends mail over SMTP through libcurl's easy interface.
///
/// Transactions run on up to `maxConnections` worker threads of the client's own (a ``TransferQueue``, as each of
/// ``HTTPClient``'s origins), each with one reused easy handle (so one cached connection); the blocking
/// `curl_easy_perform` never runs on Swift's cooperative pool. Messages wait in a FIFO queue for a free worker.
/// A server that accepts connections but never answers holds a worker only until the request's `timeout`.
public final class SMTPClient: Sendable {
    /// The most transactions in flight (and so connections).
    public let maxConnections: Int
    private let queue: TransferQueue<SMTPResponse>

    /// Creates a client; no thread starts until the first message.
    /// - Parameter maxConnections: The most concurrent transactions (at least 1).
    public init(maxConnections: Int = 2) {
        _ = curlGlobalInit
        self.maxConnections = max(1, maxConnections)
        queue = TransferQueue(limit: self.maxConnections, owner: "SMTPClient", threadName: "curl-smtp")
    }

    deinit {
        shutdown()
    }

    /// Sends one message and returns the server's final reply.
    ///
    /// The transaction is `EHLO`, `STARTTLS` per the request, `AUTH` when credentials are given, `MAIL FROM`,
    /// `RCPT TO` for each recipient, `DATA` and the message (RFC 5321 §3.3). Cancelling the task while it
    /// waits throws `CancellationError`; during the transaction it aborts with ``CurlError/abortedByCallback``.
    /// - Parameter request: The message and how to reach the server.
    /// - Returns: The final reply (250).
    /// - Throws: ``SMTPError`` (see ``SMTPError/isPermanent``); `CancellationError` as above.
    ///
    /// The corresponding C function is `curl_easy_perform` with `CURLOPT_MAIL_FROM`, `CURLOPT_MAIL_RCPT` and
    /// `CURLOPT_UPLOAD` (libcurl's smtp protocol).
    public func send(_ request: SMTPRequest) async throws -> SMTPResponse {
        do {
            return try await queue.submit { easy, isCancelled in
                easy.performSMTP(request, isCancelled: isCancelled).mapError { $0 }
            }
        } catch let error as CurlError {
            // The queue's own failures (shut down, no worker thread, no easy handle): nothing reached the server.
            throw SMTPError(curl: error, replyCode: 0)
        }
    }

    /// Stops the client: queued messages fail, later ``send(_:)`` calls too; transactions in flight finish or
    /// time out on their own. Does not block; safe to call more than once.
    public func shutdown() {
        queue.shutDown()
    }
}

extension EasyHandle {
    /// Performs one SMTP transaction, blocking the calling thread until it completes, fails or `isCancelled`
    /// turns true.
    func performSMTP(_ request: SMTPRequest, isCancelled: @escaping () -> Bool) -> Result<SMTPResponse, SMTPError> {
        let context = TransferContext(isCancelled: isCancelled)
        context.upload = request.message
        var recipients: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(recipients) }
        let basics = Basics(
            url: request.url,
            protocols: "smtp,smtps",
            timeout: request.timeout,
            connectTimeout: request.connectTimeout,
            target: { "SMTP \(redactedURL(request.url))" }
        )
        let end = transfer(basics, context: context) { () throws(CurlError) in
            try configureSMTP(request, context: context, recipients: &recipients)
        }
        switch end {
        case .failed(let error, performed: false):
            return .failure(SMTPError(curl: error, replyCode: 0))
        case .failed(let error, performed: true):
            let uploaded = context.uploaded == context.upload.count
            return .failure(
                SMTPError(
                    curl: error,
                    replyCode: info(CURLINFO_RESPONSE_CODE),
                    messageMayHaveBeenDelivered: uploaded && !context.upload.isEmpty
                )
            )
        case .completed:
            return .success(SMTPResponse(replyCode: info(CURLINFO_RESPONSE_CODE)))
        }
    }

    private func configureSMTP(
        _ request: SMTPRequest,
        context: TransferContext,
        recipients: inout UnsafeMutablePointer<curl_slist>?
    ) throws(CurlError) {
        func bad(_ what: String) -> CurlError {
            CurlError(code: CurlError.badFunctionArgument.code, message: what, requestMayHaveBeenSent: false)
        }
        func isAddress(_ text: String) -> Bool {
            !text.isEmpty
                && !text.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" || $0 == "<" || $0 == ">" })
        }
        guard isAddress(request.from) else { throw bad("invalid envelope sender") }
        guard !request.recipients.isEmpty, request.recipients.allSatisfy(isAddress) else {
            throw bad("invalid or missing envelope recipients")
        }
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()
        let useSSL: curl_usessl
        switch request.startTLS {
        case .required: useSSL = CURLUSESSL_ALL
        case .optional: useSSL = CURLUSESSL_TRY
        case .disabled: useSSL = CURLUSESSL_NONE
        }
        try setLong(CURLOPT_USE_SSL, Int(useSSL.rawValue))
        if let caFile = request.caFile { try setString(CURLOPT_CAINFO, caFile) }
        if let credentials = request.credentials {
            try setString(CURLOPT_USERNAME, credentials.user)
            try setString(CURLOPT_PASSWORD, credentials.password)
        }
        try setString(CURLOPT_MAIL_FROM, "<\(request.from)>")
        for recipient in request.recipients {
            recipients = curl_slist_append(recipients, "<\(recipient)>")
        }
        try setPointer(CURLOPT_MAIL_RCPT, UnsafeRawPointer(recipients))
        try setLong(CURLOPT_UPLOAD, 1)
        try check(
            sitroom_curl_easy_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.message.count)),
            "CURLOPT_INFILESIZE_LARGE"
        )
        try check(
            sitroom_curl_easy_setopt_read_callback(handle, CURLOPT_READFUNCTION, uploadCallback),
            "CURLOPT_READFUNCTION"
        )
        try setPointer(CURLOPT_READDATA, contextPointer)
    }
}

/// Hands libcurl the next part of the message; 0 at the end.
private let uploadCallback: curl_read_callback = { buffer, size, count, userData in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let room = size * count
    let left = context.upload.count - context.uploaded
    let length = min(room, left)
    guard let buffer, length > 0 else { return 0 }
    context.upload.withUnsafeBytes { source in
        UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + context.uploaded, byteCount: length)
    }
    context.uploaded += length
    return length
}
