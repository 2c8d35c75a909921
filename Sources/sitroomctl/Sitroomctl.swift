import ArgumentParser
import Foundation
import PosixIO
import SitroomConfig
import SitroomCore

/// `sitroomctl [--root DIR] [--json] COMMAND...` and `sitroomctl submit [--wait|--check] FILE|-` (SPEC §2, §7).
@main
struct Sitroomctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitroomctl",
        abstract: "Sends one command to a running sitroomd through its control FIFO and prints the reply.",
        discussion: """
            The root is --root, else $SITROOM_ROOT, else the current directory; the control FIFO is \
            VAR/run/sitroom.ctl (a systemd install: --var /var/lib/sitroom, run as root or the daemon's user, e.g. \
            `sudo sitroomctl --var /var/lib/sitroom status`). `sitroomctl help` lists the daemon's commands: \
            \(AdminCommand.syntaxes.map(\.usage).joined(separator: ", ")). A command is checked before it is sent: \
            bad usage exits 64 with the command's usage line.

            Local commands: `sitroomctl submit FILE|-` puts an incident event into the spool (tmp/, fsync, rename \
            into new/); with --wait it then waits until sitroomd applied the file (exit 0) or rejected it (exit 1, \
            with the reason); with --check it only validates the file here, as sitroomd would (formats, fields, \
            etc/'s feeds rules and roster), and spools nothing. `sitroomctl integration authorize NAME HOST --code -` \
            reads the authorization code from standard input (never from the command line). `sitroomctl backup \
            PATH` asks sitroomd for a consistent, compacted copy of its store into PATH (new or empty; a relative \
            PATH is taken from the current directory; waits up to 10 minutes unless --timeout says otherwise).

            Exit codes: 0 ok, 1 the command failed (or the submitted file was rejected), 64 bad usage, 69 sitroomd \
            is not running (at once, never hangs), 75 no reply in time.
            """,
        version: sitroomVersion
    )

    @Option(help: "The root holding var/ (default: $SITROOM_ROOT, else the current directory).")
    var root: String?

    @Option(name: .customLong("var"), help: "The state directory (default: ROOT/var).")
    var varDirectory: String?

    @Option(name: .customLong("etc"), help: "The configuration directory, for submit --check (default: ROOT/etc).")
    var etcDirectory: String?

    @Flag(help: "Ask for the reply as JSON.")
    var json = false

    @Option(help: "Seconds to wait for the reply (default 10; 600 for backup; 60 for submit --wait).")
    var timeout: Double?

    @Argument(
        parsing: .captureForPassthrough,
        help: "The command and its arguments, e.g. `status` or `room show INC-1`."
    )
    var command: [String] = []

    /// The usage of `submit`.
    static let submitUsage = "submit [--wait | --check] FILE|-"

    func run() async throws {
        var words = command
        var asJSON = json
        if let index = words.firstIndex(of: "--json") {
            asJSON = true
            words.remove(at: index)
        }
        // The command words are captured as they are, so the standard flags are looked for here.
        if words.first == "--version" { throw CleanExit.message(sitroomVersion) }
        if let first = words.first, ["--help", "-h", "--help-hidden"].contains(first) {
            throw CleanExit.helpRequest(self)
        }
        guard !words.isEmpty else {
            throw Self.usage(
                AdminCommandError("give a command, e.g. `sitroomctl status` (`sitroomctl help` lists them)", usage: [])
            )
        }
        let rootPath =
            root ?? ProcessInfo.processInfo.environment["SITROOM_ROOT"] ?? FileManager.default.currentDirectoryPath
        let varPath = varDirectory.map(Self.absolute) ?? "\(Self.absolute(rootPath))/var"
        let etcPath = etcDirectory.map(Self.absolute) ?? "\(Self.absolute(rootPath))/etc"
        let controlFIFO = "\(varPath)/run/sitroom.ctl"

        switch words[0] {
        case "submit":
            let options = try Self.submitOptions(Array(words.dropFirst()))
            let spool = "\(varPath)/spool/incidents"
            if options.check {
                try check(options.source, etc: etcPath)
            } else {
                try await submit(options.source, spool: spool, wait: options.wait, controlFIFO: controlFIFO)
            }
            return
        case "help" where words.count == 1:
            // The catalog is the daemon's own: no need to ask it (and it works while sitroomd is stopped).
            print(AdminCommand.helpText)
            print(
                "local commands (sitroomctl only):\n    \(Self.submitUsage)\n    integration authorize NAME HOST --code -"
            )
            return
        case "backup" where words.count == 2:
            // The daemon runs elsewhere: a relative path means the caller's current directory.
            words[1] = Self.absolute(words[1])
        default:
            break
        }
        var readCode = false
        if let index = words.firstIndex(of: "--code") {
            // The authorization code comes on standard input, never on a command line (ps would show it).
            guard index + 1 < words.count, words[index + 1] == "-" else {
                throw Self.usage(
                    AdminCommandError(
                        "--code takes `-`: pass the authorization code on standard input",
                        usage: ["integration authorize NAME HOST --code -"]
                    )
                )
            }
            words.replaceSubrange(index...(index + 1), with: ["code=from-standard-input"])
            readCode = true
        }
        var parsed: AdminCommand
        do { parsed = try AdminCommand.parse(words) } catch { throw Self.usage(error) }
        if readCode {
            guard case .integrationAuthorizeCode(let name, let host, _) = parsed else {
                throw Self.usage(
                    AdminCommandError(
                        "--code belongs to integration authorize",
                        usage: ["integration authorize NAME HOST --code -"]
                    )
                )
            }
            let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            let code = input.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !code.isEmpty, !code.contains(where: { $0.isWhitespace }) else {
                throw ValidationError("no authorization code on standard input")
            }
            parsed = .integrationAuthorizeCode(name: name, host: host, code: code)
        }
        for word in parsed.words where word.contains("\n") || word.contains(" ") {
            throw Self.usage(AdminCommandError("arguments cannot contain spaces or newlines: \(word)", usage: []))
        }
        let timeout = self.timeout ?? (parsed.isBackup ? 600 : 10)
        let line = (asJSON ? "json " : "") + parsed.words.joined(separator: " ")
        let body = try Self.send(line, controlFIFO: controlFIFO, timeout: timeout)
        print(body, terminator: body.hasSuffix("\n") || body.isEmpty ? "" : "\n")
    }

    /// Sends one line and returns the reply's text when it is `ok`.
    /// - Throws: `ExitCode` 1 (the daemon's error, printed), 69 (not running), 75 (no reply in time).
    static func send(_ line: String, controlFIFO: String, timeout: Double) throws -> String {
        let reply: String
        do {
            reply = try ControlClient.send(line, controlFIFO: controlFIFO, timeout: timeout)
        } catch ControlClientError.notRunning(let why) {
            FileHandle.standardError.write(Data("sitroomctl: sitroomd is not running (\(why))\n".utf8))
            throw ExitCode(69)
        } catch ControlClientError.timedOut {
            FileHandle.standardError.write(Data("sitroomctl: no reply from sitroomd within \(timeout)s\n".utf8))
            throw ExitCode(75)
        }
        let status = reply.prefix(while: { $0 != "\n" })
        var body = String(reply.dropFirst(status.count))
        if body.hasPrefix("\n") { body.removeFirst() }
        guard status == "ok" else {
            FileHandle.standardError.write(Data("sitroomctl: \(body)\(body.hasSuffix("\n") ? "" : "\n")".utf8))
            throw ExitCode(1)
        }
        return body
    }

    /// Prints a usage error (the message, then `usage: sitroomctl FORM` lines) and gives exit code 64 (EX_USAGE).
    static func usage(_ error: AdminCommandError) -> ExitCode {
        var text = "sitroomctl: \(error.message)\n"
        for form in error.usage { text += "usage: sitroomctl \(form)\n" }
        FileHandle.standardError.write(Data(text.utf8))
        return ExitCode(64)
    }

    /// `submit [--wait | --check] FILE|-`.
    static func submitOptions(_ arguments: [String]) throws -> (source: String, wait: Bool, check: Bool) {
        var wait = false
        var check = false
        var sources: [String] = []
        for argument in arguments {
            switch argument {
            case "--wait": wait = true
            case "--check": check = true
            case let flag where flag.hasPrefix("--"):
                throw usage(AdminCommandError("submit: unknown option \(flag)", usage: [submitUsage]))
            default: sources.append(argument)
            }
        }
        guard sources.count == 1 else {
            throw usage(
                AdminCommandError(
                    sources.isEmpty ? "submit: FILE is missing (or `-` for standard input)" : "submit: give one FILE",
                    usage: [submitUsage]
                )
            )
        }
        guard !(wait && check) else {
            throw usage(
                AdminCommandError(
                    "submit: --check spools nothing, so there is nothing to --wait for",
                    usage: [submitUsage]
                )
            )
        }
        return (sources[0], wait, check)
    }

    static func read(_ source: String) throws -> Data {
        if source == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
        guard let data = FileManager.default.contents(atPath: source) else {
            FileHandle.standardError.write(Data("sitroomctl: cannot read \(source)\n".utf8))
            throw ExitCode(1)
        }
        return data
    }

    /// `submit --check`: parses the file as sitroomd would (SitroomConfig's spool parser, with `etc/`'s `feeds`
    /// rules, roster and `spool.max_file_size` when `etc/` can be read), prints what it holds or every error as
    /// `file:line:col: message`, and spools nothing.
    /// - Throws: `ExitCode` 1 when the file would be rejected.
    func check(_ source: String, etc: String) throws {
        let bytes = Array(try Self.read(source))
        var context = FeedContext()
        var maxFileSize = IncidentEventParser.defaultMaxFileSize
        do {
            let configuration = try ConfigLoader.load(etcDirectory: etc)
            context = FeedContext(feeds: configuration.daemon.feeds, roster: configuration.roster)
            maxFileSize = configuration.daemon.spool.maxFileSize
        } catch {
            FileHandle.standardError.write(
                Data(
                    ("sitroomctl: note: \(etc) is not a valid configuration (\(error.errors.first?.description ?? "")"
                        + "\(error.errors.count > 1 ? " and \(error.errors.count - 1) more" : "")); checking with the "
                        + "default feeds rules, no roster and a 1 MiB size limit\n").utf8
                )
            )
        }
        let name = source == "-" ? "(standard input)" : source
        do {
            let item = try SpoolFileParser.parse(bytes, file: name, context: context, maxFileSize: maxFileSize)
            switch item {
            case .event(let event, let format, let notes):
                print(
                    "\(name): valid \(format.rawValue) event \(event.eventID): stage \(event.stage.rawValue), incident "
                        + "\(event.incident.id) (\(event.incident.title)), "
                        + "\(event.participants.count + event.unreachable.filter { person in !event.participants.contains { $0.name == person.name } }.count) "
                        + "participant(s)"
                )
                for note in notes { print("  note: \(note)") }
                for person in event.unreachable { print("  participant \(person.name): \(person.reason)") }
            case .zoomWebhook(let webhook):
                print(
                    "\(name): a Zoom \(webhook.event) webhook for account \(webhook.accountID); its signature is checked "
                        + "by sitroomd with the integration's webhook_secret_file"
                )
            case .ignored(let format, let reason):
                print(
                    "\(name): a \(format.rawValue) payload sitroom has no use for (\(reason)): it would go to cur/ unapplied"
                )
            }
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
    }

    /// Delivers an event file into the spool by the maildir protocol: write into tmp/, fsync, rename into new/.
    /// With `wait`, then waits (inotify on `cur/` and `rejected/`) until sitroomd has moved it out of `new/`.
    /// - Throws: `ExitCode` 1 when the file was rejected (its `.error` printed), 69 when sitroomd is not running
    ///   (the file stays in `new/` and is applied when it starts), 75 when it was not processed in time.
    func submit(_ source: String, spool: String, wait: Bool, controlFIFO: String) async throws {
        let data = try Self.read(source)
        var generator = SystemRandomNumberGenerator()
        let name =
            "\(Int(Date().timeIntervalSince1970)).\(getpid()).\(String(generator.next() as UInt32, radix: 16)).sitroomctl"
        // Watch before delivering, so the move out of new/ cannot be missed.
        let watcher = wait ? try DirectoryWatcher(directories: ["\(spool)/cur", "\(spool)/rejected"]) : nil
        defer { watcher?.stop() }
        try DurableFile.write(Array(data), name: name, tmpDirectory: "\(spool)/tmp", finalDirectory: "\(spool)/new")
        print("queued: \(spool)/new/\(name)")
        guard let watcher else { return }
        let timeout = self.timeout ?? 60
        // The daemon must be there to take it; the file stays delivered either way.
        do {
            _ = try ControlClient.send("status", controlFIFO: controlFIFO, timeout: min(timeout, 10))
        } catch ControlClientError.notRunning(let why) {
            FileHandle.standardError.write(
                Data("sitroomctl: sitroomd is not running (\(why)); the file waits in new/ until it starts\n".utf8)
            )
            throw ExitCode(69)
        } catch {}
        let outcome = await Self.outcome(of: name, spool: spool, watcher: watcher, timeout: timeout)
        switch outcome {
        case .applied(let path):
            print("applied: \(path)")
        case .rejected(let path, let reason):
            FileHandle.standardError.write(
                Data("sitroomctl: rejected: \(path)\n\(reason)\(reason.hasSuffix("\n") ? "" : "\n")".utf8)
            )
            throw ExitCode(1)
        case .pending:
            FileHandle.standardError.write(
                Data("sitroomctl: \(spool)/new/\(name) not processed within \(timeout)s\n".utf8)
            )
            throw ExitCode(75)
        }
    }

    enum Outcome {
        case applied(String)
        case rejected(String, reason: String)
        case pending
    }

    /// Where the file went: `cur/NAME` (applied, or a duplicate event), `rejected/NAME` once its `.error` is
    /// written beside it, or nowhere yet when `timeout` seconds passed.
    static func outcome(of name: String, spool: String, watcher: DirectoryWatcher, timeout: Double) async -> Outcome {
        func look() -> Outcome? {
            let manager = FileManager.default
            if manager.fileExists(atPath: "\(spool)/cur/\(name)") { return .applied("\(spool)/cur/\(name)") }
            if let reason = try? String(contentsOfFile: "\(spool)/rejected/\(name).error", encoding: .utf8) {
                return .rejected("\(spool)/rejected/\(name)", reason: reason)
            }
            return nil
        }
        if let found = look() { return found }
        let deadline = Task {
            try? await Task.sleep(for: .seconds(timeout))
            watcher.stop()
        }
        defer { deadline.cancel() }
        for await batch in watcher.events {
            // Any event may be ours (an overflow hides which): look again.
            _ = batch
            if let found = look() { return found }
        }
        return look() ?? .pending
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : "\(FileManager.default.currentDirectoryPath)/\(path)"
    }
}

extension AdminCommand {
    /// `backup` waits longer for its reply by default.
    var isBackup: Bool {
        if case .backup = self { return true }
        return false
    }
}
