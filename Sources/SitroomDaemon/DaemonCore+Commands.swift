import Foundation
import SitroomCore
import SitroomStore
import SitroomZoom

// Control commands: each ``AdminCommand`` carried out, audited, answered.
extension DaemonCore {
    /// Runs one control command (SPEC §7): its words are parsed into an ``AdminCommand`` (bad usage is an error
    /// with the command's usage line, and changes nothing); a command that changes something is recorded in the
    /// audit log with its outcome, refusals included.
    /// - Parameter privileged: whether the caller may change things (the daemon's user or root); members of
    ///   `control.group` may only run read-only commands (``AdminCommand/isReadOnly``).
    public func execute(_ line: ControlCommand, uid: UInt32?, privileged: Bool = true) async -> ControlReply {
        let command: AdminCommand
        do { command = try AdminCommand.parse(line.words) } catch { return .error(error.description) }
        if !privileged && !command.isReadOnly {
            audit(command, uid: uid, outcome: "refused: read-only for control.group members")
            let open = AdminCommand.syntaxes.filter(\.readOnly).map(\.usage).joined(separator: ", ")
            return .error(
                "\(command.words.first ?? "") changes things: only sitroomd's user or root may run it "
                    + "(control.group members may run: \(open))"
            )
        }
        let reply: ControlReply
        do {
            reply = try await run(command, json: line.json)
        } catch let error as ZoomError {
            // Zoom refused an `integration authorize` or `reauthorize`: say what to do (the table of Zoom answers).
            let words = line.words
            let integration = words.count > 2 && words[0] == "integration" ? words[2] : nil
            let decision = error.decision(
                now: clock.now(),
                integration: integration,
                host: words.count > 3 ? words[3] : nil
            )
            reply = .error("\(error)\nwhat to do: \(decision.advice)")
        } catch {
            reply = .error("\(error)")
        }
        if !command.isReadOnly {
            // The first line says what happened; a rejected reload's list of errors stays in the log and `status`.
            audit(command, uid: uid, outcome: reply.ok ? "ok" : "error: \(reply.text.prefix { $0 != "\n" })")
        }
        return reply
    }

    /// Carries out a parsed command. - Throws: what the actors throw (the reply is then an error).
    func run(_ command: AdminCommand, json: Bool) async throws -> ControlReply {
        switch command {
        case .help:
            return .ok(AdminCommand.helpText)
        case .status:
            return try await status(json: json)
        case .reload:
            return await reload()
        case .rooms(let all):
            return try await rooms(all: all, json: json)
        case .roomShow(let incident):
            return try await roomShow(incident, json: json)
        case .roomRetry(let incident):
            return .ok(try await provisioner.retry(incident: incident))
        case .roomEnd(let incident):
            return .ok(try await provisioner.end(incident: incident))
        case .incidents(let all):
            return try await incidents(all: all, json: json)
        case .outbox(let filter):
            let states: Set<NoticeState> =
                switch filter {
                case .dead: [.dead]
                case .all: Set(NoticeState.allCases)
                case .pending: [.pending, .sending, .retrying]
                }
            return try await outbox(states: states, json: json)
        case .notifyResend(let incident, let person):
            let resent = try await notifier.resend(incident: incident, person: person)
            if resent.isEmpty {
                return .ok("nothing to resend for \(incident)\(person.map { " and \($0)" } ?? "")")
            }
            return .ok(
                "queued again:\n"
                    + Self.table(
                        ["NOTICE", "KIND", "CHANNEL", "TO"],
                        resent.map { [$0.id, $0.kind.rawValue, $0.channel.rawValue, $0.recipient] }
                    ).joined(separator: "\n")
            )
        case .audit(let count):
            return try audit(last: count, json: json)
        case .integrations:
            return try await integrationsList(json: json)
        case .integrationShow(let name):
            return try await integrationShow(name, json: json)
        case .integrationAuthorize(let name, let host):
            let url = try await registry.beginAuthorization(name, host: host)
            return .ok(
                "open this URL as the Zoom user of \(host) and approve:\n\(url)\n"
                    + "then: sitroomctl integration authorize \(name) \(host) --code -   (the code on standard input)"
            )
        case .integrationAuthorizeCode(let name, let host, let code):
            let line = try await registry.completeAuthorization(name, host: host, code: code)
            await provisioner.retryWaiting()
            return .ok(line)
        case .integrationReauthorize(let name):
            let text = try await registry.reauthorize(name)
            await provisioner.retryWaiting()
            return .ok(text)
        case .backup(let path):
            return await backup(to: path)
        case .pool(let name):
            return try await poolShow(name, json: json)
        case .poolDrain(let name, let host), .poolResume(let name, let host):
            guard await pool.hasPool(name) else { return .error("no integration named \(name)") }
            let drain = command == .poolDrain(name: name, host: host)
            let changed = try await pool.setDrained(HostKey(integration: name, host: host), drain)
            if !drain && changed { await provisioner.retryWaiting() }
            switch (drain, changed) {
            case (true, true): return .ok("\(host) of \(name) drained: it takes no new rooms and keeps its open ones")
            case (true, false): return .ok("\(host) of \(name) is already drained")
            case (false, true): return .ok("\(host) of \(name) resumed: it takes rooms again")
            case (false, false): return .ok("\(host) of \(name) is not drained: nothing to resume")
            }
        }
    }

    /// The outbox's notices in `states`, oldest first (`outbox [pending|dead|all]`).
    func outbox(states: Set<NoticeState>, json: Bool) async throws -> ControlReply {
        let notices = try await notifier.outbox(states: states)
        if json {
            return .ok(
                try Self.json(notices.map(NoticeJSON.init))
            )
        }
        return .ok(
            Self.table(
                ["NOTICE", "INCIDENT", "KIND", "CHANNEL", "TO", "STATE", "ATTEMPTS", "DETAIL"],
                notices.map {
                    [
                        $0.id, $0.incidentID, $0.kind.rawValue, $0.channel.rawValue, $0.recipient, $0.state.rawValue,
                        "\($0.attempts)", $0.detail ?? "",
                    ]
                }
            ).joined(separator: "\n")
        )
    }

    /// The last `count` audit entries, oldest first.
    func audit(last count: Int, json: Bool) throws -> ControlReply {
        let store = self.store
        var entries: [AuditEntry] = []
        try store.read { txn in entries = try txn.audit.last(count) }
        if json {
            return .ok(
                try Self.json(entries.map(AuditJSON.init))
            )
        }
        return .ok(
            Self.table(
                ["TIME", "UID", "COMMAND", "OUTCOME"],
                entries.map { [rfc3339UTCMillis($0.time), $0.uid.map(String.init) ?? "-", $0.command, $0.outcome] }
            ).joined(separator: "\n")
        )
    }

    func audit(_ command: AdminCommand, uid: UInt32?, outcome: String) {
        let entry = AuditEntry(time: clock.now(), uid: uid, command: command.auditText, outcome: outcome)
        let store = self.store
        do { try store.write { txn in try txn.audit.append(entry) } } catch {
            logger.error("cannot append to the audit log", metadata: ["error": "\(error)"])
        }
    }
}
