import ArgumentParser
import Foundation
import PosixIO
import SitroomCore

/// `sitroomctl [--root DIR] [--json] COMMAND...` and `sitroomctl submit FILE|-` (SPEC §2, §7).
@main
struct Sitroomctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitroomctl",
        abstract: "Sends one command to a running sitroomd through its control FIFO and prints the reply.",
        discussion: """
            The root is --root, else $SITROOM_ROOT, else the current directory; the control FIFO is \
            VAR/run/sitroom.ctl (a systemd install: --var /var/lib/sitroom, run as root or the daemon's user, e.g. \
            `sudo sitroomctl --var /var/lib/sitroom status`). `sitroomctl help` lists the daemon's \
            commands: status, reload, rooms, room show, integrations, integration show|authorize|reauthorize, pool, \
            pool drain|resume, backup, help.

            Local commands: `sitroomctl submit FILE|-` puts an incident event into the spool (tmp/, fsync, rename \
            into new/). `sitroomctl integration authorize NAME HOST --code -` reads the authorization code from \
            standard input (never from the command line). `sitroomctl backup PATH` asks sitroomd for a consistent, \
            compacted copy of its store into PATH (new or empty; a relative PATH is taken from the current \
            directory; waits up to 10 minutes unless --timeout says otherwise).

            Exit codes: 0 ok, 1 the command failed, 64 bad usage, 69 sitroomd is not running (at once, never \
            hangs), 75 no reply in time.
            """,
        version: sitroomVersion)

    @Option(help: "The root holding var/ (default: $SITROOM_ROOT, else the current directory).")
    var root: String?

    @Option(name: .customLong("var"), help: "The state directory (default: ROOT/var).")
    var varDirectory: String?

    @Flag(help: "Ask for the reply as JSON.")
    var json = false

    @Option(help: "Seconds to wait for the reply (default 10; 600 for backup).")
    var timeout: Double?

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments, e.g. `status` or `room show INC-1`.")
    var command: [String] = []

    func run() throws {
        var words = command
        var asJSON = json
        if let index = words.firstIndex(of: "--json") {
            asJSON = true
            words.remove(at: index)
        }
        // The command words are captured as they are, so the standard flags are looked for here.
        if words.first == "--version" { throw CleanExit.message(sitroomVersion) }
        if let first = words.first, ["--help", "-h", "--help-hidden"].contains(first) { throw CleanExit.helpRequest(self) }
        guard !words.isEmpty else { throw ValidationError("give a command, e.g. `sitroomctl status` (or `sitroomctl help`)") }
        let rootPath = root ?? ProcessInfo.processInfo.environment["SITROOM_ROOT"] ?? FileManager.default.currentDirectoryPath
        let varPath = varDirectory.map(Self.absolute) ?? "\(Self.absolute(rootPath))/var"
        let timeout = self.timeout ?? (words.first == "backup" ? 600 : 10)
        if words.first == "backup" {
            // The daemon runs elsewhere: a relative path means the caller's current directory.
            guard words.count == 2 else { throw ValidationError("usage: sitroomctl backup PATH (a new or empty directory)") }
            words[1] = Self.absolute(words[1])
        }
        if words[0] == "submit" {
            guard words.count == 2 else { throw ValidationError("usage: sitroomctl submit FILE|-") }
            try submit(words[1], spool: "\(varPath)/spool/incidents")
            return
        }
        if let index = words.firstIndex(of: "--code") {
            // The authorization code comes on standard input, never on a command line (ps would show it).
            guard index + 1 < words.count, words[index + 1] == "-" else {
                throw ValidationError("--code takes `-`: pass the authorization code on standard input")
            }
            let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            let code = input.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !code.isEmpty, !code.contains(where: { $0.isWhitespace }) else {
                throw ValidationError("no authorization code on standard input")
            }
            words.replaceSubrange(index...(index + 1), with: ["code=\(code)"])
        }
        for word in words where word.contains("\n") || word.contains(" ") {
            throw ValidationError("arguments cannot contain spaces or newlines: \(word)")
        }
        let line = (asJSON ? "json " : "") + words.joined(separator: " ")
        let reply: String
        do {
            reply = try ControlClient.send(line, controlFIFO: "\(varPath)/run/sitroom.ctl", timeout: timeout)
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
        if status == "ok" {
            print(body, terminator: body.hasSuffix("\n") || body.isEmpty ? "" : "\n")
        } else {
            FileHandle.standardError.write(Data("sitroomctl: \(body)\(body.hasSuffix("\n") ? "" : "\n")".utf8))
            throw ExitCode(1)
        }
    }

    /// Delivers an event file into the spool by the maildir protocol: write into tmp/, fsync, rename into new/.
    func submit(_ source: String, spool: String) throws {
        let data: Data
        if source == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let read = FileManager.default.contents(atPath: source) else {
                throw ValidationError("cannot read \(source)")
            }
            data = read
        }
        var generator = SystemRandomNumberGenerator()
        let name = "\(Int(Date().timeIntervalSince1970)).\(getpid()).\(String(generator.next() as UInt32, radix: 16)).sitroomctl"
        try DurableFile.write(Array(data), name: name, tmpDirectory: "\(spool)/tmp", finalDirectory: "\(spool)/new")
        print("\(spool)/new/\(name)")
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : "\(FileManager.default.currentDirectoryPath)/\(path)"
    }
}

