import SitroomCore

/// `etc/intake.yaml`: what sitroom-intake listens on and which paths it accepts (SPEC §11), one immutable, fully
/// validated generation.
public struct IntakeConfiguration: Sendable, Hashable {
    /// `host:port` to listen on.
    public struct Listen: Sendable, Hashable, CustomStringConvertible {
        /// An IPv4 or IPv6 address literal (without brackets) or a host name (`localhost`).
        public var host: String
        /// 0 picks a free port (for tests; sitroom-intake prints the one it got).
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `127.0.0.1:8470`, `[::1]:8470`.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// `tls:`: the certificate chain (PEM) and its private key (PEM, a secret file of mode 0600).
    public struct TLSFiles: Sendable, Hashable {
        public var certFile: String
        public var keyFile: String

        public init(certFile: String, keyFile: String) {
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    /// The file it was read from (absolute path).
    public var file: String
    public var listen: Listen
    public var tls: TLSFiles?
    /// The largest request body accepted, in bytes (for a Zoom route: the spool file, body and header lines).
    public var maxBodySize: Int
    /// Connections served at once; more wait in the listen backlog.
    public var maxConnections: Int
    /// Seconds a client has to send a request's headers (from the connection or the end of the last answer).
    public var headerTimeout: Double
    /// Seconds a client has to send a request's body, from the end of its headers.
    public var bodyTimeout: Double
    /// Keyed by path (`/hooks/alertmanager`).
    public var routes: [String: IntakeRoute]

    public init(
        file: String,
        listen: Listen = Listen(host: "127.0.0.1", port: 8470),
        tls: TLSFiles? = nil,
        maxBodySize: Int = 1 << 20,
        maxConnections: Int = 128,
        headerTimeout: Double = 10,
        bodyTimeout: Double = 30,
        routes: [String: IntakeRoute]
    ) {
        self.file = file
        self.listen = listen
        self.tls = tls
        self.maxBodySize = maxBodySize
        self.maxConnections = maxConnections
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.routes = routes
    }

    /// The path sitroom-intake answers itself (`GET`): it cannot be a route.
    public static let healthPath = "/healthz"
}

/// One path of `routes:`: which sender posts there and how it proves who it is.
public struct IntakeRoute: Sendable, Hashable {
    /// What the body is.
    public enum Format: String, Sendable, CaseIterable {
        /// A Prometheus Alertmanager `webhook_config` payload.
        case alertmanager
        /// A PagerDuty webhook v3 payload.
        case pagerduty
        /// A Zoom event subscription (webhook); spooled as the Zoom webhook file of SPEC §4.
        case zoom
        /// sitroom's own event (YAML or JSON).
        case native
    }

    /// How a request is authenticated. Secrets stay in their files (absolute paths, checked at load).
    public enum Authentication: Sendable, Hashable {
        /// `Authorization: Bearer TOKEN`, the token in this file.
        case bearer(tokenFile: String)
        /// `Authorization: Basic`, this user name and the password in this file.
        case basic(username: String, passwordFile: String)
        /// PagerDuty's `X-PagerDuty-Signature` (HMAC-SHA256 of the body) with the subscription's signing secret.
        case pagerDutySignature(secretFile: String)
        /// Zoom's `x-zm-signature` with the integration's `webhook_secret_file`.
        case zoomSignature(integration: String, secretFile: String)
    }

    /// The path, starting with `/`.
    public var path: String
    public var format: Format
    public var authentication: Authentication

    public init(path: String, format: Format, authentication: Authentication) {
        self.path = path
        self.format = format
        self.authentication = authentication
    }
}

/// Reads `etc/intake.yaml`.
enum IntakeFile {
    static let defaultListen = IntakeConfiguration.Listen(host: "127.0.0.1", port: 8470)

    /// Reads the intake's settings; `nil` when the file has errors (all reported to `diag`).
    /// - Parameters:
    ///   - integrations: reads `etc/integrations/NAME.yaml` for a Zoom route (`nil` when there is no such file; its
    ///     own errors are reported to its own diagnostics).
    ///   - spoolMaxFileSize: sitroom.yaml's `spool.max_file_size`, when known: `max_body_size` may not exceed it.
    static func read(
        file: String,
        root: YAMLDocument.Result,
        integrations: (String) -> IntegrationLookup,
        spoolMaxFileSize: Int?,
        diag: Diagnostics
    ) -> IntakeConfiguration? {
        let top: YAMLMapping
        switch root {
        case .failed: return nil
        case .empty:
            diag.report("the file is empty; sitroom-intake needs routes", at: .start)
            return nil
        case .node(let node):
            guard let mapping = YAMLValue(node: node, path: "", diag: diag).mapping() else { return nil }
            top = mapping
        }
        let before = diag.count
        let directory = FileReading.directory(of: file)

        let listen = top.value("listen").flatMap(readListen) ?? defaultListen
        var tls: IntakeConfiguration.TLSFiles?
        if top.value("tls") != nil {
            let mapping = top.mapping("tls")
            let cert = mapping.required("cert_file").flatMap { value -> String? in
                guard let path = value.path(relativeTo: directory) else { return nil }
                guard FileReading.kind(of: path) == .regular else {
                    value.fail("\(path) is not a readable regular file (a PEM certificate chain)")
                    return nil
                }
                return path
            }
            let key = mapping.required("key_file")?.secretFile(relativeTo: directory)
            mapping.finish()
            if let cert, let key { tls = .init(certFile: cert, keyFile: key) }
        }
        let maxBodyValue = top.value("max_body_size")
        let maxBodySize = maxBodyValue?.size(in: 1024...(64 << 20)) ?? (1 << 20)
        if let spoolMaxFileSize, maxBodySize > spoolMaxFileSize {
            let message =
                "\(FileReading.describeSize(maxBodySize)) is larger than spool.max_file_size "
                + "(\(FileReading.describeSize(spoolMaxFileSize))) of sitroom.yaml: sitroomd would reject such files"
            if let maxBodyValue {
                maxBodyValue.fail(message)
            } else {
                diag.report("max_body_size: the default " + message, at: .start)
            }
        }
        let maxConnections = top.value("max_connections")?.int(in: 1...10_000) ?? 128
        let headerTimeout = top.value("header_timeout")?.duration(in: 1...300) ?? 10
        let bodyTimeout = top.value("body_timeout")?.duration(in: 1...600) ?? 30
        let routes = readRoutes(top.required("routes"), directory: directory, integrations: integrations, diag: diag)
        top.finish()

        guard diag.count == before, let routes else { return nil }
        return IntakeConfiguration(
            file: file,
            listen: listen,
            tls: tls,
            maxBodySize: maxBodySize,
            maxConnections: maxConnections,
            headerTimeout: headerTimeout,
            bodyTimeout: bodyTimeout,
            routes: routes
        )
    }

    /// What a Zoom route's integration file gave.
    enum IntegrationLookup {
        /// There is no `etc/integrations/NAME.yaml`.
        case missing
        /// The file has errors (reported in it).
        case invalid
        case found(IntegrationConfig)
    }

    /// `host:port`, `[v6]:port`; the host is an address literal or a name, the port 0...65535.
    private static func readListen(_ value: YAMLValue) -> IntakeConfiguration.Listen? {
        guard let text = value.text(expected: "host:port") else { return nil }
        var host: Substring
        var port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else {
                value.fail("must be host:port or [IPv6]:port, not '\(text)'")
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                value.fail("must be host:port (an IPv6 address in brackets: [::1]:8470), not '\(text)'")
                return nil
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        let hostBytes = Array(host.utf8)
        guard !hostBytes.isEmpty,
            hostBytes.allSatisfy({
                isDigit($0) || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z"))
                    || ".-:%".utf8.contains($0)
            })
        else {
            value.fail("'\(host)' is not an address or host name")
            return nil
        }
        guard let number = Scalars.decimalInteger(String(port)), (0...65_535).contains(number) else {
            value.fail("the port must be a number between 0 and 65535, not '\(port)'")
            return nil
        }
        return .init(host: String(host), port: number)
    }

    /// `routes: { PATH: { format, bearer_token_file | basic | signing_secret_file | integration } }`.
    private static func readRoutes(
        _ value: YAMLValue?,
        directory: String,
        integrations: (String) -> IntegrationLookup,
        diag: Diagnostics
    ) -> [String: IntakeRoute]? {
        guard let value, let mapping = value.mapping() else { return nil }
        var routes: [String: IntakeRoute] = [:]
        var ok = true
        let entries = mapping.freeEntries()
        if entries.isEmpty {
            value.fail("must name at least one path")
            return nil
        }
        for (key, entry) in entries {
            guard let path = key.string() else {
                ok = false
                continue
            }
            if let problem = pathProblem(path) {
                key.fail(problem)
                ok = false
            }
            guard let route = readRoute(path: path, entry, directory: directory, integrations: integrations) else {
                ok = false
                continue
            }
            routes[path] = route
        }
        return ok ? routes : nil
    }

    /// Why `path` cannot be a route, or `nil`.
    static func pathProblem(_ path: String) -> String? {
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return "a path must start with /" }
        guard bytes.count <= 256 else { return "a path may have at most 256 bytes" }
        // RFC 3986 path characters, without percent-escapes (requests are matched byte for byte).
        let allowed = "-._~!$&'()*+,;=:@/".utf8
        guard
            bytes.allSatisfy({
                isDigit($0) || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z"))
                    || allowed.contains($0)
            })
        else { return "a path may hold only letters, digits and -._~!$&'()*+,;=:@/ (no %, ?, # or spaces)" }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if segments.contains(where: { $0 == "." || $0 == ".." }) { return "a path may not hold . or .. segments" }
        if path == IntakeConfiguration.healthPath { return "\(path) is sitroom-intake's own health check" }
        return nil
    }

    private static func readRoute(
        path: String,
        _ value: YAMLValue,
        directory: String,
        integrations: (String) -> IntegrationLookup
    ) -> IntakeRoute? {
        guard let entry = value.mapping() else { return nil }
        let format = entry.required("format")?.enumeration(IntakeRoute.Format.self, noun: "format")
        // Every key is known wherever it appears; which one a format needs is checked below.
        let bearer = entry.value("bearer_token_file")?.secretFile(relativeTo: directory)
        let basicValue = entry.value("basic")
        var basic: (String, String)?
        if basicValue != nil {
            let mapping = entry.mapping("basic")
            let username = mapping.string("username", required: true)
            if let username, username.contains(":") {
                mapping.required("username")?.fail("a Basic user name cannot contain ':' (RFC 7617)")
            }
            let password = mapping.required("password_file")?.secretFile(relativeTo: directory)
            mapping.finish()
            if let username, !username.contains(":"), let password { basic = (username, password) }
        }
        let signing = entry.value("signing_secret_file")?.secretFile(relativeTo: directory)
        let integrationValue = entry.value("integration")
        let integrationName = integrationValue?.string()
        let given = ["bearer_token_file", "basic", "signing_secret_file", "integration"].filter { entry.contains($0) }
        entry.finish()
        guard let format else { return nil }

        func only(_ allowed: [String], _ what: String) -> Bool {
            let others = given.filter { !allowed.contains($0) }
            if !others.isEmpty {
                entry.keyPositionFail(others[0], "not used by format \(format.rawValue) (it takes \(what))")
                return false
            }
            if given.count > 1 {
                entry.keyPositionFail(given[1], "give one of \(allowed.joined(separator: ", ")), not both")
                return false
            }
            if given.isEmpty {
                value.fail("format \(format.rawValue) needs \(what): every route must authenticate its sender")
                return false
            }
            return true
        }
        let authentication: IntakeRoute.Authentication
        switch format {
        case .alertmanager:
            guard only(["bearer_token_file", "basic"], "bearer_token_file or basic {username, password_file}") else {
                return nil
            }
            if let bearer {
                authentication = .bearer(tokenFile: bearer)
            } else if let basic {
                authentication = .basic(username: basic.0, passwordFile: basic.1)
            } else {
                return nil
            }
        case .native:
            guard only(["bearer_token_file"], "bearer_token_file"), let bearer else { return nil }
            authentication = .bearer(tokenFile: bearer)
        case .pagerduty:
            guard only(["signing_secret_file"], "signing_secret_file (the subscription's signing secret)"), let signing
            else { return nil }
            authentication = .pagerDutySignature(secretFile: signing)
        case .zoom:
            guard only(["integration"], "integration (whose webhook_secret_file verifies Zoom's signatures)"),
                let integrationValue, let integrationName
            else { return nil }
            switch integrations(integrationName) {
            case .missing:
                integrationValue.fail(
                    "no integration named '\(integrationName)' (etc/integrations/\(integrationName).yaml)"
                )
                return nil
            case .invalid:
                integrationValue.fail("integration '\(integrationName)' has errors (see its file)")
                return nil
            case .found(let integration):
                guard let secret = integration.webhookSecretFile else {
                    integrationValue.fail(
                        "integration '\(integrationName)' has no webhook_secret_file (\(integration.file)): "
                            + "Zoom's signatures cannot be verified"
                    )
                    return nil
                }
                authentication = .zoomSignature(integration: integrationName, secretFile: secret)
            }
        }
        return IntakeRoute(path: path, format: format, authentication: authentication)
    }
}

extension YAMLMapping {
    /// Reports `message` at `key`'s name.
    fileprivate func keyPositionFail(_ key: String, _ message: String) {
        diag.report("\(path.isEmpty ? key : "\(path).\(key)"): \(message)", at: keyPosition(key))
    }
}
