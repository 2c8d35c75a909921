/// One control command as a value (SPEC §7), parsed once from its words by ``parse(_:)``.
///
/// `sitroomctl` parses the words it is given, so bad usage is found before anything is sent (exit 64 with the
/// command's usage line); sitroomd parses the words of each control line the same way. What a command is
/// allowed to do follows from the value: ``isReadOnly`` (open to `control.group` members, not audited),
/// ``auditText`` (the words with secrets redacted), and the help text comes from ``syntaxes``.
///
/// The FIFO protocol is unchanged: ``words`` gives back the words of the line (`room show INC-1`).
public enum AdminCommand: Sendable, Hashable {
    /// `help`: the list of commands.
    case help
    /// `status`: the daemon's state at a glance.
    case status
    /// `reload`: read all of `etc/` again.
    case reload
    /// `rooms [open|all]`: rooms, open ones unless `all`.
    case rooms(all: Bool)
    /// `room show INCIDENT`.
    case roomShow(incident: String)
    /// `room retry INCIDENT`.
    case roomRetry(incident: String)
    /// `room end INCIDENT`: an operator closes the room (the incident stays as it is).
    case roomEnd(incident: String)
    /// `incidents [open|all]`: incidents with or without a room; open ones (not resolved or closed) unless `all`.
    case incidents(all: Bool)
    /// `integrations`.
    case integrations
    /// `integration show NAME`.
    case integrationShow(name: String)
    /// `integration authorize NAME HOST`: prints the authorization URL.
    case integrationAuthorize(name: String, host: String)
    /// `integration authorize NAME HOST code=CODE`: what `sitroomctl ... --code -` sends (the code read from
    /// standard input).
    case integrationAuthorizeCode(name: String, host: String, code: String)
    /// `integration reauthorize NAME`.
    case integrationReauthorize(name: String)
    /// `pool NAME`.
    case pool(name: String)
    /// `pool drain NAME HOST`.
    case poolDrain(name: String, host: String)
    /// `pool resume NAME HOST`.
    case poolResume(name: String, host: String)
    /// `outbox [pending|dead|all]`.
    case outbox(OutboxFilter)
    /// `notify resend INCIDENT [PERSON]`.
    case notifyResend(incident: String, person: String?)
    /// `audit [N]`: the last N entries (1 to ``maxAuditEntries``, default 20).
    case audit(last: Int)
    /// `backup /ABS/PATH`.
    case backup(path: String)

    /// Which notices `outbox` lists.
    public enum OutboxFilter: String, Sendable, Hashable, CaseIterable {
        /// Not yet delivered (`pending`, `sending`, `retrying`): the default.
        case pending
        /// Parked `dead`.
        case dead
        /// Every notice.
        case all
    }

    /// The most entries `audit N` shows.
    public static let maxAuditEntries = 10_000

    /// One form of a command, for usage lines and `help`.
    public struct Syntax: Sendable, Hashable {
        /// The form, e.g. `room show INCIDENT`.
        public var usage: String
        /// What it does, one or two lines.
        public var summary: String
        /// Whether it changes nothing (open to `control.group` members; not audited).
        public var readOnly: Bool
    }

    /// Every form, in the order `help` lists them.
    public static let syntaxes: [Syntax] = [
        Syntax(
            usage: "status",
            summary: "generation, integrations, pool usage, rooms, outbox, spool, uptime",
            readOnly: true
        ),
        Syntax(usage: "reload", summary: "read etc/ again; applied only if all of it is valid", readOnly: false),
        Syntax(usage: "rooms [open|all]", summary: "rooms, open ones by default", readOnly: true),
        Syntax(usage: "room show INCIDENT", summary: "one incident's room (add --json for JSON)", readOnly: true),
        Syntax(
            usage: "room retry INCIDENT",
            summary: "try the room of a failed, unavailable or waiting incident again",
            readOnly: false
        ),
        Syntax(
            usage: "room end INCIDENT",
            summary: "close the incident's room and end its meeting now (the incident stays open)",
            readOnly: false
        ),
        Syntax(
            usage: "incidents [open|all]",
            summary: "incidents, with their room if they have one; open (not resolved) ones by default",
            readOnly: true
        ),
        Syntax(usage: "integrations", summary: "integrations and their states", readOnly: true),
        Syntax(
            usage: "integration show NAME",
            summary: "one integration: kind, state, hosts and their authorization",
            readOnly: true
        ),
        Syntax(
            usage: "integration authorize NAME HOST",
            summary: "(zoom-oauth) prints the URL that authorizes HOST; then pass the code with\n"
                + "`sitroomctl integration authorize NAME HOST --code -` on standard input",
            readOnly: false
        ),
        Syntax(
            usage: "integration reauthorize NAME",
            summary: "zoom-s2s: get a token again now; zoom-oauth: authorize every host again",
            readOnly: false
        ),
        Syntax(
            usage: "pool NAME",
            summary: "the hosts of an integration: open rooms, creates today, state and why",
            readOnly: true
        ),
        Syntax(
            usage: "pool drain NAME HOST",
            summary: "the host takes no new rooms (keeps its open ones)",
            readOnly: false
        ),
        Syntax(usage: "pool resume NAME HOST", summary: "the host takes rooms again", readOnly: false),
        Syntax(
            usage: "outbox [pending|dead|all]",
            summary: "notices not yet delivered (default), parked dead, or all",
            readOnly: true
        ),
        Syntax(
            usage: "notify resend INCIDENT [PERSON]",
            summary: "queue an incident's dead notices again (with PERSON: that person's, sent ones too)",
            readOnly: false
        ),
        Syntax(
            usage: "audit [N]",
            summary: "the last N (20) audited commands: time, uid, command, outcome",
            readOnly: true
        ),
        Syntax(
            usage: "backup /ABS/PATH",
            summary: "a consistent, compacted copy of the store into a new (or empty) directory",
            readOnly: false
        ),
        Syntax(usage: "help", summary: "this text", readOnly: true),
    ]

    /// `help`'s text: each form and what it does, read-only ones marked.
    public static var helpText: String {
        var lines = ["commands (r: read-only, open to control.group members):"]
        for syntax in syntaxes {
            let mark = syntax.readOnly ? "r " : "  "
            let summary = syntax.summary.split(separator: "\n").map(String.init)
            if syntax.usage.count <= 30 {
                lines.append(
                    "  \(mark)\(syntax.usage)" + String(repeating: " ", count: 31 - syntax.usage.count) + summary[0]
                )
            } else {
                lines.append("  \(mark)\(syntax.usage)")
                lines.append(String(repeating: " ", count: 35) + summary[0])
            }
            for more in summary.dropFirst() { lines.append(String(repeating: " ", count: 35) + more) }
        }
        return lines.joined(separator: "\n")
    }

    /// Reads a command from its words (`["room", "show", "INC-1"]`), without the `json` flag.
    /// - Returns: the command.
    /// - Throws: ``AdminCommandError``: an unknown command, or a known one used wrongly (with its usage lines).
    public static func parse(_ words: [String]) throws(AdminCommandError) -> AdminCommand {
        guard let first = words.first else {
            throw AdminCommandError("no command given (try `help`)", usage: [])
        }
        let rest = Array(words.dropFirst())
        func usage(_ forms: String...) -> [String] { forms }
        func expect(_ count: Int, _ form: String, _ what: String) throws(AdminCommandError) {
            if rest.count - 1 < count {
                throw AdminCommandError("\(words.prefix(2).joined(separator: " ")): \(what) is missing", usage: [form])
            }
            if rest.count - 1 > count {
                let extra = rest.dropFirst(count + 1).joined(separator: " ")
                throw AdminCommandError("\(words.prefix(2).joined(separator: " ")): unexpected \(extra)", usage: [form])
            }
        }
        func noArguments(_ form: String) throws(AdminCommandError) {
            guard rest.isEmpty else {
                throw AdminCommandError("\(first): unexpected \(rest.joined(separator: " "))", usage: [form])
            }
        }
        func openOrAll(_ form: String) throws(AdminCommandError) -> Bool {
            switch rest {
            case []: return false
            case ["open"]: return false
            case ["all"]: return true
            default:
                throw AdminCommandError(
                    "\(first): expected open or all, not \(rest.joined(separator: " "))",
                    usage: [form]
                )
            }
        }
        switch first {
        case "help":
            try noArguments("help")
            return .help
        case "status":
            try noArguments("status")
            return .status
        case "reload":
            try noArguments("reload")
            return .reload
        case "rooms":
            return .rooms(all: try openOrAll("rooms [open|all]"))
        case "incidents":
            return .incidents(all: try openOrAll("incidents [open|all]"))
        case "integrations":
            try noArguments("integrations")
            return .integrations
        case "room":
            let forms = ["room show INCIDENT", "room retry INCIDENT", "room end INCIDENT"]
            guard let verb = rest.first, ["show", "retry", "end"].contains(verb) else {
                throw AdminCommandError(
                    rest.first.map { "room: unknown subcommand \($0)" } ?? "room: show, retry or end?",
                    usage: forms
                )
            }
            try expect(1, "room \(verb) INCIDENT", "INCIDENT")
            let incident = rest[1]
            switch verb {
            case "show": return .roomShow(incident: incident)
            case "retry": return .roomRetry(incident: incident)
            default: return .roomEnd(incident: incident)
            }
        case "integration":
            let forms = ["integration show NAME", "integration authorize NAME HOST", "integration reauthorize NAME"]
            switch rest.first {
            case "show":
                try expect(1, forms[0], "NAME")
                return .integrationShow(name: rest[1])
            case "reauthorize":
                try expect(1, forms[2], "NAME")
                return .integrationReauthorize(name: rest[1])
            case "authorize":
                if rest.count == 4, rest[3].hasPrefix("code=") {
                    let code = String(rest[3].dropFirst("code=".count))
                    guard !code.isEmpty else {
                        throw AdminCommandError("integration authorize: the code is empty", usage: [forms[1]])
                    }
                    return .integrationAuthorizeCode(name: rest[1], host: rest[2], code: code)
                }
                try expect(2, forms[1], rest.count < 2 ? "NAME" : "HOST")
                return .integrationAuthorize(name: rest[1], host: rest[2])
            default:
                throw AdminCommandError(
                    rest.first.map { "integration: unknown subcommand \($0)" }
                        ?? "integration: show, authorize or reauthorize?",
                    usage: forms
                )
            }
        case "pool":
            let forms = ["pool NAME", "pool drain NAME HOST", "pool resume NAME HOST"]
            switch rest.first {
            case "drain", "resume":
                let form = "pool \(rest[0]) NAME HOST"
                try expect(2, form, rest.count < 2 ? "NAME" : "HOST")
                return rest[0] == "drain"
                    ? .poolDrain(name: rest[1], host: rest[2]) : .poolResume(name: rest[1], host: rest[2])
            case .some(let name):
                guard rest.count == 1 else {
                    throw AdminCommandError("pool: unexpected \(rest.dropFirst().joined(separator: " "))", usage: forms)
                }
                return .pool(name: name)
            case .none:
                throw AdminCommandError("pool: NAME is missing", usage: forms)
            }
        case "outbox":
            let form = "outbox [pending|dead|all]"
            guard rest.count <= 1 else {
                throw AdminCommandError("outbox: unexpected \(rest.joined(separator: " "))", usage: [form])
            }
            guard let filter = rest.first.map({ OutboxFilter(rawValue: $0) }) ?? .pending else {
                throw AdminCommandError("outbox: expected pending, dead or all, not \(rest[0])", usage: [form])
            }
            return .outbox(filter)
        case "notify":
            let form = "notify resend INCIDENT [PERSON]"
            guard rest.first == "resend" else {
                throw AdminCommandError(
                    rest.first.map { "notify: unknown subcommand \($0)" } ?? "notify: resend?",
                    usage: [form]
                )
            }
            guard rest.count == 2 || rest.count == 3 else {
                throw AdminCommandError(
                    rest.count < 2
                        ? "notify resend: INCIDENT is missing"
                        : "notify resend: unexpected \(rest.dropFirst(3).joined(separator: " "))",
                    usage: [form]
                )
            }
            return .notifyResend(incident: rest[1], person: rest.count == 3 ? rest[2] : nil)
        case "audit":
            let form = "audit [N]"
            switch rest.count {
            case 0: return .audit(last: 20)
            case 1:
                guard let count = Int(rest[0]), (1...maxAuditEntries).contains(count) else {
                    throw AdminCommandError(
                        "audit N: N must be a whole number from 1 to \(maxAuditEntries), not \(rest[0])",
                        usage: [form]
                    )
                }
                return .audit(last: count)
            default:
                throw AdminCommandError("audit: unexpected \(rest.dropFirst().joined(separator: " "))", usage: [form])
            }
        case "backup":
            let form = "backup /ABS/PATH"
            guard rest.count == 1 else {
                throw AdminCommandError(
                    rest.isEmpty ? "backup: PATH is missing" : "backup: give one PATH",
                    usage: [form]
                )
            }
            guard rest[0].hasPrefix("/") else {
                throw AdminCommandError("backup: the path must be absolute: \(rest[0])", usage: [form])
            }
            return .backup(path: rest[0])
        default:
            throw AdminCommandError("unknown command: \(auditText(words)) (try `help`)", usage: [])
        }
    }

    /// The words of the control line (the FIFO protocol): `["room", "show", "INC-1"]`.
    public var words: [String] {
        switch self {
        case .help: ["help"]
        case .status: ["status"]
        case .reload: ["reload"]
        case .rooms(let all): all ? ["rooms", "all"] : ["rooms"]
        case .roomShow(let incident): ["room", "show", incident]
        case .roomRetry(let incident): ["room", "retry", incident]
        case .roomEnd(let incident): ["room", "end", incident]
        case .incidents(let all): all ? ["incidents", "all"] : ["incidents"]
        case .integrations: ["integrations"]
        case .integrationShow(let name): ["integration", "show", name]
        case .integrationAuthorize(let name, let host): ["integration", "authorize", name, host]
        case .integrationAuthorizeCode(let name, let host, let code):
            ["integration", "authorize", name, host, "code=\(code)"]
        case .integrationReauthorize(let name): ["integration", "reauthorize", name]
        case .pool(let name): ["pool", name]
        case .poolDrain(let name, let host): ["pool", "drain", name, host]
        case .poolResume(let name, let host): ["pool", "resume", name, host]
        case .outbox(let filter): filter == .pending ? ["outbox"] : ["outbox", filter.rawValue]
        case .notifyResend(let incident, let person): ["notify", "resend", incident] + (person.map { [$0] } ?? [])
        case .audit(let count): count == 20 ? ["audit"] : ["audit", String(count)]
        case .backup(let path): ["backup", path]
        }
    }

    /// Whether the command changes nothing: open to `control.group` members, and not recorded in the audit log.
    public var isReadOnly: Bool {
        switch self {
        case .help, .status, .rooms, .roomShow, .incidents, .integrations, .integrationShow, .pool, .outbox, .audit:
            return true
        case .reload, .roomRetry, .roomEnd, .integrationAuthorize, .integrationAuthorizeCode, .integrationReauthorize,
            .poolDrain, .poolResume, .notifyResend, .backup:
            return false
        }
    }

    /// The command as the audit log and the log keep it: the authorization code redacted.
    public var auditText: String { Self.auditText(words) }

    /// Words as the audit log keeps them: `key=value` secrets (`code=`, `token=`, `secret=`, `password=`)
    /// redacted, so even a line that does not parse leaves no secret behind.
    public static func auditText(_ words: [String]) -> String {
        words.map { word in
            for key in ["code=", "token=", "secret=", "password="] where word.hasPrefix(key) { return key + "REDACTED" }
            return word
        }.joined(separator: " ")
    }
}

/// A control command that cannot be run as written: unknown, or a known one with missing or extra words.
public struct AdminCommandError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the command (`room show: INCIDENT is missing`).
    public var message: String
    /// The command's forms (`room show INCIDENT`); empty for an unknown command.
    public var usage: [String]

    public init(_ message: String, usage: [String]) {
        self.message = message
        self.usage = usage
    }

    /// The message, then one `usage: FORM` line per form.
    public var description: String {
        ([message] + usage.map { "usage: \($0)" }).joined(separator: "\n")
    }
}
