import Foundation
import Logging
import PosixIO
import SitroomCore
import SitroomStore

/// One parsed control line (SPEC §7): `[reply=/abs/path] [json] COMMAND ARGS...`.
public struct ControlCommand: Sendable, Hashable {
    /// Absolute path of the caller's reply FIFO, if given.
    public var replyPath: String?
    /// Whether the caller asked for JSON.
    public var json: Bool
    /// The command words (`["room", "show", "INC-1"]`).
    public var words: [String]

    /// Parses a control line.
    /// - Throws: ``SitroomError`` `.badCommand` for an empty line or a relative reply path.
    public static func parse(_ line: String) throws -> ControlCommand {
        var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var reply: String? = nil
        var json = false
        if let first = words.first, first.hasPrefix("reply=") {
            let path = String(first.dropFirst("reply=".count))
            guard path.hasPrefix("/") else {
                throw SitroomError(.badCommand, "reply path must be absolute: \(path)")
            }
            reply = path
            words.removeFirst()
        }
        if words.first == "json" {
            json = true
            words.removeFirst()
        }
        if let index = words.firstIndex(of: "--json") {
            json = true
            words.remove(at: index)
        }
        guard !words.isEmpty else { throw SitroomError(.badCommand, "empty command (try `help`)") }
        return ControlCommand(replyPath: reply, json: json, words: words)
    }
}

/// The answer to a command: `ok` or `error`, then text or JSON.
public struct ControlReply: Sendable {
    public var ok: Bool
    public var text: String

    public static func ok(_ text: String) -> ControlReply { ControlReply(ok: true, text: text) }
    public static func error(_ text: String) -> ControlReply { ControlReply(ok: false, text: text) }

    /// `ok\n<text>` or `error\n<text>`, ending in a newline.
    public var wire: String {
        let body = text.isEmpty || text.hasSuffix("\n") ? text : text + "\n"
        return (ok ? "ok\n" : "error\n") + body
    }
}

/// Reads the control FIFO and answers commands (SPEC §7).
public final class ControlServer: Sendable {
    private let control: ControlFIFO
    private let daemon: DaemonCore
    private let logger: Logger
    /// Whether `control.group` opens the FIFO to a group (whose members may run read-only commands).
    private let groupMode: Bool

    /// - Parameters:
    ///   - control: the FIFO, made by the caller (mode 0600 in a 0700 directory; 0620/0710 with a group).
    ///   - groupMode: `control.group` is set: callers other than the daemon's user and root are read-only.
    public init(control: ControlFIFO, daemon: DaemonCore, logger: Logger, groupMode: Bool = false) {
        self.groupMode = groupMode
        self.control = control
        self.daemon = daemon
        self.logger = logger
    }

    /// Serves the FIFO until cancelled.
    public func run() async {
        let control = self.control
        await withTaskCancellationHandler {
            for await input in control.inputs {
                switch input {
                case .line(let line): await handle(line)
                case .rejected(let reason):
                    logger.warning("control line rejected", metadata: ["reason": "\(reason)"])
                }
            }
        } onCancel: {
            control.stop()
        }
    }

    func handle(_ line: String) async {
        // sitroomctl starts each command with a newline (it cuts off a fragment another writer left): an empty line
        // is that separator, not a command.
        if line.allSatisfy({ $0 == " " || $0 == "\t" }) { return }
        let command: ControlCommand
        do {
            command = try ControlCommand.parse(line)
        } catch {
            logger.warning(
                "control line rejected",
                metadata: [
                    "reason": "\(error)",
                    "line": "\(AdminCommand.auditText(line.split(separator: " ").map(String.init)).prefix(200))",
                ]
            )
            // A reply path may still be recoverable from a malformed line: answer there if we can.
            if let first = line.split(separator: " ").first, first.hasPrefix("reply=/") {
                await answer(ControlReply.error("\(error)"), to: String(first.dropFirst(6)))
            }
            return
        }
        var uid: UInt32? = nil
        if let path = command.replyPath { uid = try? ReplyFIFO.owner(of: path) }
        // The reply FIFO's owner is the caller. With a group, a line without a reply path could come from any
        // member: it may only reload (re-reading etc/ changes nothing by itself) or read.
        let privileged: Bool
        if let uid {
            privileged = uid == 0 || uid == geteuid()
        } else {
            privileged = !groupMode || (try? AdminCommand.parse(command.words)) == .reload
        }
        let reply = await daemon.execute(command, uid: uid, privileged: privileged)
        if let path = command.replyPath {
            await answer(reply, to: path)
        } else {
            logger.info(
                "control command",
                metadata: [
                    "command": "\(AdminCommand.auditText(command.words))", "ok": "\(reply.ok)",
                    "reply": "\(reply.text)",
                ]
            )
        }
    }

    /// Writes a reply on a thread of its own: opening and writing a FIFO may block (up to its timeout), which
    /// must not hold one of the cooperative pool's few threads.
    private func answer(_ reply: ControlReply, to path: String) async {
        let logger = self.logger
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Self.replyQueue.async {
                do { try ReplyFIFO.write(reply.wire, to: path) } catch {
                    logger.warning("cannot write a control reply", metadata: ["reply": "\(path)", "error": "\(error)"])
                }
                continuation.resume()
            }
        }
    }

    private static let replyQueue = DispatchQueue(label: "sitroom.control.reply")
}
