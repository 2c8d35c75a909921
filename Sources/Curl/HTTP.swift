/// The HTTP methods sitroom uses.
public enum HTTPMethod: String, Sendable, Hashable {
    case get = "GET"
    case post = "POST"
    case put = "PUT"
    case patch = "PATCH"
    case delete = "DELETE"
}

/// One HTTP request for ``HTTPClient/send(_:)``.
public struct HTTPRequest: Sendable {
    /// The method.
    public var method: HTTPMethod
    /// An absolute `http` or `https` URL. Other schemes fail with ``CurlError/unsupportedProtocol``.
    public var url: String
    /// Extra request headers, sent in order. libcurl adds `Host`, `Content-Length` and, for basic auth,
    /// `Authorization`; a header named here replaces libcurl's own, and `Name:` with an empty value removes it.
    /// Names and values must not contain CR or LF.
    public var headers: [(name: String, value: String)]
    /// The request body, sent from memory with `Content-Length` (`Content-Length: 0` for an empty POST, PUT
    /// or PATCH). Ignored for GET; a DELETE sends it when not empty.
    public var body: [UInt8]
    /// Credentials for HTTP basic authentication (RFC 7617), or `nil`.
    public var basicAuth: (user: String, password: String)?
    /// Limit for the whole transfer in seconds, connection included (`CURLOPT_TIMEOUT_MS`).
    public var timeout: Double
    /// Limit for establishing the connection in seconds (`CURLOPT_CONNECTTIMEOUT_MS`).
    public var connectTimeout: Double

    /// Creates a request.
    /// - Parameters:
    ///   - method: The HTTP method.
    ///   - url: An absolute `http` or `https` URL.
    ///   - headers: Extra request headers.
    ///   - body: The body bytes.
    ///   - basicAuth: Basic-auth credentials, or `nil`.
    ///   - timeout: Whole-transfer limit in seconds; default 30.
    ///   - connectTimeout: Connection limit in seconds; default 5.
    /// Whether sending the request twice has the effect of sending it once (RFC 9110 §9.2.2): every method
    /// but POST and PATCH. A request that is not is never replayed by libcurl on a new connection.
    public var isIdempotent: Bool { method != .post && method != .patch }

    public init(
        method: HTTPMethod,
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        basicAuth: (user: String, password: String)? = nil,
        timeout: Double = 30,
        connectTimeout: Double = 5
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.basicAuth = basicAuth
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }
}

/// A complete HTTP response (after any `100 Continue`), whatever its status.
public struct HTTPResponse: Sendable {
    /// The status code, such as 200 or 404.
    public var status: Int
    /// The final response's headers, names lower-cased; when a name repeats, the last value wins.
    public var headers: [String: String]
    /// The body bytes, as received (no content decoding is requested).
    public var body: [UInt8]

    /// Creates a response; for test doubles.
    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}
