import Curl

/// The HTTP connections a process's Zoom calls share (the API and the OAuth token endpoint), so the daemon holds
/// Zoom's client without depending on the libcurl layer under it.
///
/// Make one at start-up, hand it to every ``ZoomClient`` (``ZoomClient/init(http:apiURL:oauthURL:timeout:)``), and
/// call ``shutdown()`` when the process stops. Up to `maxConnectionsPerOrigin` requests (and keep-alive
/// connections) per origin are in flight; more wait in order (``HTTPClient``).
public struct ZoomHTTPClient: Sendable {
    /// The libcurl client under it.
    public let http: HTTPClient

    /// Creates the connections; no thread starts until the first request.
    /// - Parameter maxConnectionsPerOrigin: The most concurrent requests, and connections, per origin (at least 1).
    public init(maxConnectionsPerOrigin: Int = 4) {
        http = HTTPClient(maxConnectionsPerOrigin: maxConnectionsPerOrigin)
    }

    /// Shares an existing libcurl client (a test's, which also speaks to zoom-sim directly).
    /// - Parameter http: The client; its ``HTTPClient/shutdown()`` stops Zoom's calls too.
    public init(sharing http: HTTPClient) {
        self.http = http
    }

    /// Stops the connections: later Zoom calls fail with a transport error; calls in flight finish or time out.
    /// Does not block; safe to call more than once.
    public func shutdown() {
        http.shutdown()
    }
}

extension ZoomClient {
    /// Creates a client over a process's shared Zoom connections.
    /// - Parameters:
    ///   - http: The connections, shared by every integration.
    ///   - apiURL: Zoom's REST API base, such as `https://api.zoom.us/v2` (a trailing slash is dropped).
    ///   - oauthURL: Zoom's OAuth base, such as `https://zoom.us/oauth` (a trailing slash is dropped).
    ///   - timeout: Seconds for a whole request.
    public init(http: ZoomHTTPClient, apiURL: String, oauthURL: String, timeout: Double = 30) {
        self.init(http: http.http, apiURL: apiURL, oauthURL: oauthURL, timeout: timeout)
    }
}
