import Foundation
import Yams

/// What the simulator serves: its OAuth apps, its Zoom users and its limits.
///
/// Loaded from YAML (or JSON) by ``load(path:)``; tests may build one directly.
/// Defaults: `limits.daily_create_limit` 100 (Zoom: 100 meeting create/update requests per host per
/// UTC day, developers.zoom.us/docs/api/rate-limits/), per-second limits 0 (unlimited), `token_expires_in` 3600 s,
/// `refresh_token_lifetime` 7776000 s (90 days: the shortest lifetime reported, Zoom documents none reliably),
/// authorization codes 300 s (developers.zoom.us/docs/integrations/oauth/: the code is valid 5 minutes).
public struct SimConfiguration: Sendable {
    /// The kind of an OAuth app, as Zoom's Marketplace names them.
    public enum AppKind: String, Sendable {
        /// Server-to-Server OAuth: `grant_type=account_credentials`, no refresh token.
        case s2s
        /// User-authorized OAuth: `authorization_code` then `refresh_token` (rotating).
        case oauth
    }

    /// One OAuth app (client) known to the simulator.
    public struct App: Sendable {
        public var clientID: String
        public var clientSecret: String
        public var accountID: String
        public var kind: AppKind
        /// The scopes added to the app (its Scopes tab), classic (`meeting:write:admin`) or granular
        /// (`meeting:write:meeting:admin`); `nil` grants every operation. Tokens carry the scopes the app had when
        /// they were issued; an API call whose scope the token lacks answers 4711.
        public var scopes: [String]?

        public init(
            clientID: String,
            clientSecret: String,
            accountID: String,
            kind: AppKind = .s2s,
            scopes: [String]? = nil
        ) {
            self.clientID = clientID
            self.clientSecret = clientSecret
            self.accountID = accountID
            self.kind = kind
            self.scopes = scopes
        }
    }

    /// The passcode rules an account admin may set (support.zoom.us, "Meeting and webinar passcodes": minimum
    /// length, at least one letter, one number, one special character); a create whose `password` breaks them is
    /// refused with a validation error on `password`. All off by default.
    public struct PasscodePolicy: Sendable, Equatable {
        public var minLength: Int = 0
        public var requireLetter = false
        public var requireDigit = false
        public var requireSpecial = false

        public init(
            minLength: Int = 0,
            requireLetter: Bool = false,
            requireDigit: Bool = false,
            requireSpecial: Bool = false
        ) {
            self.minLength = minLength
            self.requireLetter = requireLetter
            self.requireDigit = requireDigit
            self.requireSpecial = requireSpecial
        }

        /// What `password` breaks, or `nil` when it meets the rules.
        public func violation(_ password: String) -> String? {
            var missing: [String] = []
            if password.count < minLength { missing.append("at least \(minLength) characters") }
            if requireLetter && !password.contains(where: { $0.isASCII && $0.isLetter }) { missing.append("a letter") }
            if requireDigit && !password.contains(where: { $0.isASCII && $0.isNumber }) { missing.append("a number") }
            if requireSpecial && !password.contains(where: { "@-_*".contains($0) }) {
                missing.append("a special character (@ - _ *)")
            }
            return missing.isEmpty
                ? nil
                : "Passcode does not meet the account's requirements: it needs " + missing.joined(separator: ", ") + "."
        }
    }

    /// One Zoom user, addressable by `id` or `email` (case-insensitive) in `/v2/users/{userId}`.
    public struct User: Sendable {
        /// Zoom userId.
        public var id: String
        public var email: String
        /// 1 basic, 2 licensed (Zoom `type`).
        public var type: Int
        /// How many meetings the host may run at once: Pro 1, Business+ 2 (support.zoom.us, "Hosting multiple
        /// meetings simultaneously").
        public var concurrentMeetings: Int
        /// The account the user belongs to; `nil` means every configured account.
        public var accountID: String?
        /// `false` makes create answer 3161 "Meeting hosting and scheduling capabilities are not allowed".
        public var hostingAllowed: Bool
        public var firstName: String
        public var lastName: String

        public init(
            id: String,
            email: String,
            type: Int = 2,
            concurrentMeetings: Int = 1,
            accountID: String? = nil,
            hostingAllowed: Bool = true,
            firstName: String = "Sim",
            lastName: String? = nil
        ) {
            self.id = id
            self.email = email
            self.type = type
            self.concurrentMeetings = concurrentMeetings
            self.accountID = accountID
            self.hostingAllowed = hostingAllowed
            self.firstName = firstName
            self.lastName = lastName ?? String(email.prefix(while: { $0 != "@" }))
        }
    }

    /// Rate limits.
    public struct Limits: Sendable {
        /// Meeting create/update requests per host per UTC day (Zoom: 100).
        public var dailyCreateLimit: Int = 100
        /// Medium-class requests per second per account; 0 = unlimited (Zoom Pro: 20).
        public var mediumPerSecond: Int = 0
        /// Light-class requests per second per account; 0 = unlimited (Zoom Pro: 30).
        public var lightPerSecond: Int = 0
        /// How the daily limit is answered: 429 (HTTP 429, code 429) or 300 (HTTP 400, code 300); Zoom documents
        /// both ("Create a meeting" lists 300 for it, developers.zoom.us/docs/api/rate-limits/ the 429).
        public var dailyLimitCode: Int = 429

        public init(
            dailyCreateLimit: Int = 100,
            mediumPerSecond: Int = 0,
            lightPerSecond: Int = 0,
            dailyLimitCode: Int = 429
        ) {
            self.dailyCreateLimit = dailyCreateLimit
            self.mediumPerSecond = mediumPerSecond
            self.lightPerSecond = lightPerSecond
            self.dailyLimitCode = dailyLimitCode
        }
    }

    public var apps: [App]
    public var users: [User]
    public var limits: Limits
    /// The accounts' passcode rules (`passcode_policy`; `/_sim/faults` kind `passcode_policy` changes them).
    public var passcodePolicy = PasscodePolicy()
    /// Access token lifetime in seconds.
    public var tokenExpiresIn: Int
    /// Refresh token lifetime in seconds.
    public var refreshTokenLifetime: Int
    /// Authorization code lifetime in seconds.
    public var authorizationCodeLifetime: Int

    public init(
        apps: [App],
        users: [User],
        limits: Limits = Limits(),
        tokenExpiresIn: Int = 3600,
        refreshTokenLifetime: Int = 7_776_000,
        authorizationCodeLifetime: Int = 300
    ) {
        self.apps = apps
        self.users = users
        self.limits = limits
        self.tokenExpiresIn = tokenExpiresIn
        self.refreshTokenLifetime = refreshTokenLifetime
        self.authorizationCodeLifetime = authorizationCodeLifetime
    }

    /// The configuration used without `--config`: one s2s app `sim-client` / `sim-secret` on account
    /// `AcctSim1`, one oauth app `sim-oauth-client` / `sim-oauth-secret`, and two licensed Pro users
    /// `bridge-1@example.com` (`u1sim`) and `bridge-2@example.com` (`u2sim`).
    public static var `default`: SimConfiguration {
        SimConfiguration(
            apps: [
                App(clientID: "sim-client", clientSecret: "sim-secret", accountID: "AcctSim1", kind: .s2s),
                App(
                    clientID: "sim-oauth-client",
                    clientSecret: "sim-oauth-secret",
                    accountID: "AcctSim1",
                    kind: .oauth
                ),
            ],
            users: [
                User(id: "u1sim", email: "bridge-1@example.com"),
                User(id: "u2sim", email: "bridge-2@example.com"),
            ]
        )
    }

    /// Reads a configuration file (YAML or JSON).
    ///
    /// `client_secret_file` is relative to the configuration file; the secret is the file's text with
    /// surrounding whitespace trimmed. Like ssh with a private key, a secret file readable or writable
    /// by group or others is refused.
    /// - Parameter path: the configuration file.
    /// - Throws: ``SimConfigurationError`` naming the file and the problem.
    public static func load(path: String) throws -> SimConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SimConfigurationError("\(path): cannot read: \(error.localizedDescription)")
        }
        let raw: RawConfig
        do {
            if let node = try Yams.compose(yaml: text) { try checkKeys(node, path: path) }
            raw = try YAMLDecoder().decode(RawConfig.self, from: text)
        } catch let error as SimConfigurationError {
            throw error
        } catch let error as DecodingError {
            throw SimConfigurationError("\(path): \(describe(error))")
        } catch {
            throw SimConfigurationError("\(path): \(error)")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        var apps: [App] = []
        for (index, app) in (raw.apps ?? []).enumerated() {
            let kind: AppKind
            switch app.kind ?? "s2s" {
            case "s2s", "zoom-s2s": kind = .s2s
            case "oauth", "zoom-oauth": kind = .oauth
            case let other:
                throw SimConfigurationError("\(path): apps[\(index)].kind: must be s2s or oauth, not \(other)")
            }
            let secretPath =
                app.client_secret_file.hasPrefix("/")
                ? app.client_secret_file : base.appendingPathComponent(app.client_secret_file).path
            let secret = try readSecretFile(secretPath, key: "apps[\(index)].client_secret_file", configPath: path)
            apps.append(
                App(
                    clientID: app.client_id,
                    clientSecret: secret,
                    accountID: app.account_id,
                    kind: kind,
                    scopes: app.scopes
                )
            )
        }
        let users = (raw.users ?? []).map {
            User(
                id: $0.id,
                email: $0.email,
                type: $0.type ?? 2,
                concurrentMeetings: $0.concurrent_meetings ?? 1,
                accountID: $0.account_id,
                hostingAllowed: $0.hosting_allowed ?? true,
                firstName: $0.first_name ?? "Sim",
                lastName: $0.last_name
            )
        }
        var limits = Limits()
        if let l = raw.limits {
            limits.dailyCreateLimit = l.daily_create_limit ?? limits.dailyCreateLimit
            limits.mediumPerSecond = l.medium_per_second ?? limits.mediumPerSecond
            limits.lightPerSecond = l.light_per_second ?? limits.lightPerSecond
            limits.dailyLimitCode = l.daily_limit_code ?? limits.dailyLimitCode
            guard limits.dailyLimitCode == 429 || limits.dailyLimitCode == 300 else {
                throw SimConfigurationError("\(path): limits.daily_limit_code: must be 429 or 300")
            }
        }
        var configuration = SimConfiguration(
            apps: apps,
            users: users,
            limits: limits,
            tokenExpiresIn: raw.token_expires_in ?? 3600,
            refreshTokenLifetime: raw.refresh_token_lifetime ?? 7_776_000,
            authorizationCodeLifetime: raw.authorization_code_lifetime ?? 300
        )
        if let policy = raw.passcode_policy {
            configuration.passcodePolicy = PasscodePolicy(
                minLength: policy.min_length ?? 0,
                requireLetter: policy.require_letter ?? false,
                requireDigit: policy.require_digit ?? false,
                requireSpecial: policy.require_special ?? false
            )
        }
        return configuration
    }

    /// Reads a secret file, refusing one whose mode lets group or others in (mode must be 0600 or stricter).
    /// - Throws: ``SimConfigurationError`` naming the file and its mode.
    static func readSecretFile(_ path: String, key: String, configPath: String) throws -> String {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw SimConfigurationError("\(configPath): \(key): cannot read secret file \(path)")
        }
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
        if mode & 0o077 != 0 {
            throw SimConfigurationError(
                "\(configPath): \(key): secret file \(path) has mode \(String(format: "%04o", mode)); "
                    + "it must not be accessible by group or others (chmod 600 it)"
            )
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SimConfigurationError("\(configPath): \(key): cannot read secret file \(path)")
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else {
            throw SimConfigurationError("\(configPath): \(key): secret file \(path) is empty")
        }
        return secret
    }

    /// Allowed keys per section; a typo is an error rather than a silently ignored setting.
    private static let allowedKeys: [String: Set<String>] = [
        "": [
            "apps", "users", "limits", "token_expires_in", "refresh_token_lifetime", "authorization_code_lifetime",
            "passcode_policy",
        ],
        "apps": ["client_id", "client_secret_file", "account_id", "kind", "scopes"],
        "passcode_policy": ["min_length", "require_letter", "require_digit", "require_special"],
        "users": [
            "id", "email", "type", "concurrent_meetings", "account_id", "hosting_allowed", "first_name", "last_name",
        ],
        "limits": ["daily_create_limit", "medium_per_second", "light_per_second", "daily_limit_code"],
    ]

    /// Rejects unknown keys, reporting `file:line:col`.
    private static func checkKeys(_ root: Node, path: String) throws {
        func check(_ node: Node, section: String) throws {
            guard let mapping = node.mapping, let allowed = allowedKeys[section] else { return }
            for (key, value) in mapping {
                let name = key.string ?? ""
                guard allowed.contains(name) else {
                    let mark = key.mark
                    let location = mark.map { "\($0.line):\($0.column)" } ?? "?"
                    let where_ = section.isEmpty ? "top level" : section
                    throw SimConfigurationError("\(path):\(location): unknown key '\(name)' in \(where_)")
                }
                if section.isEmpty {
                    if let items = value.sequence {
                        for item in items { try check(item, section: name) }
                    } else {
                        try check(value, section: name)
                    }
                }
            }
        }
        try check(root, section: "")
    }

    private static func describe(_ error: DecodingError) -> String {
        func pathString(_ path: [any CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(pathString(context.codingPath + [key])): required key missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(pathString(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private struct RawConfig: Decodable {
        struct RawApp: Decodable {
            var client_id: String
            var client_secret_file: String
            var account_id: String
            var kind: String?
            var scopes: [String]?
        }
        struct RawUser: Decodable {
            var id: String
            var email: String
            var type: Int?
            var concurrent_meetings: Int?
            var account_id: String?
            var hosting_allowed: Bool?
            var first_name: String?
            var last_name: String?
        }
        struct RawLimits: Decodable {
            var daily_create_limit: Int?
            var medium_per_second: Int?
            var light_per_second: Int?
            var daily_limit_code: Int?
        }
        struct RawPasscodePolicy: Decodable {
            var min_length: Int?
            var require_letter: Bool?
            var require_digit: Bool?
            var require_special: Bool?
        }
        var apps: [RawApp]?
        var users: [RawUser]?
        var limits: RawLimits?
        var passcode_policy: RawPasscodePolicy?
        var token_expires_in: Int?
        var refresh_token_lifetime: Int?
        var authorization_code_lifetime: Int?
    }
}

/// A configuration that cannot be used; the message names the file and the key.
public struct SimConfigurationError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
