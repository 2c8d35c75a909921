import Crypto
import Curl
import Foundation

/// A PKCE pair (RFC 7636): a random `code_verifier` and its `S256` `code_challenge`.
public struct PKCE: Sendable, Hashable {
    /// 43 characters of base64url from 32 random bytes (RFC 7636 §4.1); a secret until the code is exchanged.
    public let verifier: String
    /// `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2, method `S256`).
    public let challenge: String

    /// A fresh pair from the system's random generator.
    public init() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        self.init(verifier: Self.base64url(bytes))
    }

    /// The pair for a given verifier (tests: RFC 7636 appendix B).
    public init(verifier: String) {
        self.verifier = verifier
        self.challenge = Self.base64url(Array(SHA256.hash(data: Array(verifier.utf8))))
    }

    /// Base64url without padding (RFC 4648 §5).
    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/",
            with: "_"
        )
        .replacingOccurrences(of: "=", with: "")
    }

    /// A random opaque value for the OAuth `state` parameter (RFC 6749 §10.12).
    public static func randomState() -> String {
        var generator = SystemRandomNumberGenerator()
        return base64url((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}

extension ZoomClient {
    /// The URL an admin opens to authorize a user-OAuth app for one Zoom user
    /// (`GET {oauth_url}/authorize?response_type=code&client_id&redirect_uri&state&code_challenge&code_challenge_method=S256`).
    public func authorizationURL(clientID: String, redirectURI: String, state: String, pkce: PKCE) -> String {
        "\(oauthURL)/authorize?response_type=code&client_id=\(Self.queryEscape(clientID))"
            + "&redirect_uri=\(Self.queryEscape(redirectURI))&state=\(Self.queryEscape(state))"
            + "&code_challenge=\(pkce.challenge)&code_challenge_method=S256"
    }

    /// Exchanges an authorization code (valid 5 minutes at Zoom) for a token pair:
    /// `POST {oauth_url}/token` with `grant_type=authorization_code&code&redirect_uri&code_verifier`, Basic auth.
    /// - Throws: ``ZoomError`` (`.oauth` when refused: 4700 invalid, 4709 redirect URI mismatch, ...).
    public func exchangeAuthorizationCode(
        code: String,
        redirectURI: String,
        codeVerifier: String,
        clientID: String,
        clientSecret: String
    ) async throws(ZoomError) -> AccessToken {
        try await tokenRequest(
            form: [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                ("code_verifier", codeVerifier),
            ],
            clientID: clientID,
            clientSecret: clientSecret
        )
    }

    /// Refreshes a user-OAuth token: `grant_type=refresh_token`. Zoom rotates the refresh token on every
    /// refresh and the previous one stops working at once (developers.zoom.us/docs/integrations/oauth/).
    /// - Throws: ``ZoomError``; ``ZoomAnswer/refreshTokenInvalid`` (4711, or `invalid_grant` without a code) when
    ///   the refresh token is no longer valid.
    public func refresh(
        refreshToken: String,
        clientID: String,
        clientSecret: String
    ) async throws(ZoomError) -> AccessToken {
        try await tokenRequest(
            form: [("grant_type", "refresh_token"), ("refresh_token", refreshToken)],
            clientID: clientID,
            clientSecret: clientSecret
        )
    }

    /// Zoom API "Get a user": `GET /users/{userId}` (`me` for the token's own user).
    /// - Returns: the user's `id` and `email`.
    public func getUser(token: String, userID: String = "me") async throws(ZoomError) -> (id: String, email: String?) {
        let response = try await send(
            HTTPRequest(
                method: .get,
                url: "\(apiURL)/users/\(Self.pathEscape(userID))",
                headers: Self.headers(token: token),
                timeout: timeout
            ),
            .getUser
        )
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let id = object["id"] as? String
        else { throw ZoomError(.invalidResponse(message: "user answer without id"), operation: .getUser) }
        return (id, object["email"] as? String)
    }

    private func tokenRequest(
        form: [(String, String)],
        clientID: String,
        clientSecret: String
    ) async throws(ZoomError)
        -> AccessToken
    {
        let body = form.map { "\($0.0)=\(Self.queryEscape($0.1))" }.joined(separator: "&")
        let request = HTTPRequest(
            method: .post,
            url: "\(oauthURL)/token",
            headers: [
                (name: "Accept", value: "application/json"),
                (name: "Content-Type", value: "application/x-www-form-urlencoded"),
            ],
            body: Array(body.utf8),
            basicAuth: (user: clientID, password: clientSecret),
            timeout: timeout
        )
        let response = try await send(request, .token, grant: form.first?.1)
        return try Self.token(from: response.body)
    }
}
