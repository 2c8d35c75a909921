import CCurl

/// A libcurl failure (`CURLcode`), with a message naming the request and whether the request may have
/// reached the server.
///
/// Errors compare equal by ``code`` alone, so `catch CurlError.operationTimedOut` works whichever request
/// failed; ``message`` is for logs. An HTTP error status (404, 500) is not a `CurlError`: it comes back
/// in ``HTTPResponse/status``.
public struct CurlError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The `CURLcode`, such as 7 (`CURLE_COULDNT_CONNECT`) or 28 (`CURLE_OPERATION_TIMEDOUT`).
    public let code: Int32

    /// `curl_easy_strerror`, libcurl's detail from `CURLOPT_ERRORBUFFER`, and the method and URL, without
    /// credentials, query or fragment. Safe to log.
    public let message: String

    /// Known for certain from the transfer's progress; `nil` to decide from ``code`` alone.
    private let sent: Bool?

    /// Creates an error; for test doubles and for failures found before libcurl runs.
    /// - Parameters:
    ///   - code: A `CURLcode`.
    ///   - message: A description safe to log.
    ///   - requestMayHaveBeenSent: Whether the server may have received the request; `nil` decides from
    ///     `code` (see ``requestMayHaveBeenSent``).
    public init(code: Int32, message: String, requestMayHaveBeenSent: Bool? = nil) {
        self.code = code
        self.message = message
        self.sent = requestMayHaveBeenSent
    }

    private init(_ code: Int32) {
        self.init(code: code, message: String(cString: curl_easy_strerror(CURLcode(UInt32(code)))))
    }

    /// False only when the request certainly never reached the server: the URL was refused, the host
    /// could not be resolved, the connection (or TLS handshake) was never established, or a timeout
    /// struck before anything was sent. Timeouts and receive errors after sending are true, so a caller
    /// must treat a non-idempotent request as possibly done.
    public var requestMayHaveBeenSent: Bool {
        sent ?? !Self.neverSentCodes.contains(code)
    }

    /// Codes that libcurl only returns before any byte of the request is written.
    static let neverSentCodes: Set<Int32> = [
        1,  // CURLE_UNSUPPORTED_PROTOCOL
        2,  // CURLE_FAILED_INIT
        3,  // CURLE_URL_MALFORMAT
        4,  // CURLE_NOT_BUILT_IN
        5,  // CURLE_COULDNT_RESOLVE_PROXY
        6,  // CURLE_COULDNT_RESOLVE_HOST
        7,  // CURLE_COULDNT_CONNECT
        27,  // CURLE_OUT_OF_MEMORY
        35,  // CURLE_SSL_CONNECT_ERROR
        43,  // CURLE_BAD_FUNCTION_ARGUMENT
        48,  // CURLE_UNKNOWN_OPTION
        53,  // CURLE_SSL_ENGINE_NOTFOUND
        54,  // CURLE_SSL_ENGINE_SETFAILED
        58,  // CURLE_SSL_CERTPROBLEM
        59,  // CURLE_SSL_CIPHER
        60,  // CURLE_PEER_FAILED_VERIFICATION
        77,  // CURLE_SSL_CACERT_BADFILE
        83,  // CURLE_SSL_ISSUER_ERROR
        90,  // CURLE_SSL_PINNEDPUBKEYNOTMATCH
        91,  // CURLE_SSL_INVALIDCERTSTATUS
    ]

    /// `CURLE_UNSUPPORTED_PROTOCOL` (1): a scheme other than http or https.
    public static let unsupportedProtocol = CurlError(1)
    /// `CURLE_FAILED_INIT` (2): libcurl could not start, or the ``HTTPClient`` was shut down.
    public static let failedInit = CurlError(2)
    /// `CURLE_URL_MALFORMAT` (3).
    public static let urlMalformed = CurlError(3)
    /// `CURLE_COULDNT_RESOLVE_HOST` (6).
    public static let couldNotResolveHost = CurlError(6)
    /// `CURLE_COULDNT_CONNECT` (7): refused or unreachable.
    public static let couldNotConnect = CurlError(7)
    /// `CURLE_OPERATION_TIMEDOUT` (28): the request's `timeout` or `connectTimeout` expired.
    public static let operationTimedOut = CurlError(28)
    /// `CURLE_SSL_CONNECT_ERROR` (35): the TLS handshake failed.
    public static let sslConnectError = CurlError(35)
    /// `CURLE_ABORTED_BY_CALLBACK` (42): the awaiting task was cancelled during the transfer.
    public static let abortedByCallback = CurlError(42)
    /// `CURLE_BAD_FUNCTION_ARGUMENT` (43): for example a header containing CR or LF.
    public static let badFunctionArgument = CurlError(43)
    /// `CURLE_GOT_NOTHING` (52): the server closed the connection without answering.
    public static let gotNothing = CurlError(52)
    /// `CURLE_SEND_ERROR` (55).
    public static let sendError = CurlError(55)
    /// `CURLE_RECV_ERROR` (56).
    public static let recvError = CurlError(56)
    /// `CURLE_PEER_FAILED_VERIFICATION` (60): the server's certificate was not trusted.
    public static let peerFailedVerification = CurlError(60)

    /// "curl error N: message".
    public var description: String {
        "curl error \(code): \(message)"
    }

    /// Compares by ``code`` only.
    public static func == (lhs: CurlError, rhs: CurlError) -> Bool {
        lhs.code == rhs.code
    }

    /// Hashes ``code`` only, consistent with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }

    /// Matches any error that is a `CurlError` with the same ``code``.
    public static func ~= (lhs: CurlError, rhs: any Error) -> Bool {
        guard let rhs = rhs as? CurlError else { return false }
        return lhs.code == rhs.code
    }
}

/// The one place `curl_easy_setopt` return codes become Swift errors.
/// - Throws: ``CurlError`` naming the option for anything but `CURLE_OK`.
@inline(__always)
func check(_ rc: CURLcode, _ what: @autoclosure () -> String) throws(CurlError) {
    if rc != CURLE_OK {
        let text = String(cString: curl_easy_strerror(rc))
        throw CurlError(code: Int32(bitPattern: rc.rawValue), message: "\(what()): \(text)")
    }
}
