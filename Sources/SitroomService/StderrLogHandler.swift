import Foundation
import Logging

/// A swift-log handler writing one line per event to standard error, as logfmt or JSON (SPEC §9).
///
/// logfmt: `time=2026-11-29T13:00:00.123Z level=info msg="room ready" incident.id=INC-1 room.id=r0123`.
/// Each line is one `write(2)`, so lines from several threads never interleave; a newline inside a message or a
/// value is escaped, so one event is always one line. Metadata keys: `incident.id`, `room.id`, `integration`,
/// `host`, `event.id` (SPEC §9), then what the event needs (`error`, `reason`, `file`, ...).
///
/// Under systemd (standard error is the journal stream named by `$JOURNAL_STREAM`), each line starts with the
/// `<N>` syslog priority that journald reads as the entry's priority (sd-daemon(3)): trace and debug `<7>`, info
/// `<6>`, notice `<5>`, warning `<4>`, error `<3>`, critical `<2>`, so `journalctl -p warning` works.
public struct StderrLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable { case logfmt, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format
    private let syslogPrefix: Bool

    /// - Parameters:
    ///   - format: logfmt or JSON.
    ///   - level: the lowest level written.
    ///   - syslogPrefix: start each line with `<N>` (journald); ``stderrIsJournal()`` tells when.
    public init(label: String, format: Format, level: Logger.Level, syslogPrefix: Bool = false) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.syslogPrefix = syslogPrefix
    }

    /// Whether standard error is connected to the journal: `$JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd
    /// for `StandardError=journal`) names the device and inode of file descriptor 2 (systemd.exec(5)).
    public static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// The syslog priority journald gives a line with this level's `<N>` prefix.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = Self.timestamp()
        var line: String
        switch format {
        case .logfmt:
            line = "time=\(time) level=\(event.level.rawValue) msg=\(Self.logfmtValue(event.message.description))"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line += " \(key)=\(Self.logfmtValue(value.description))"
            }
        case .json:
            var object: [String: String] = ["time": time, "level": event.level.rawValue, "msg": event.message.description]
            for (key, value) in merged { object[key] = value.description }
            line =
                (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map {
                    String(decoding: $0, as: UTF8.self)
                } ?? "{}"
        }
        if syslogPrefix { line = "<\(Self.syslogPriority(event.level))>" + line }
        line += "\n"
        line.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty
            || value.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\\" }
        guard needsQuotes else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        return "\"\(escaped)\""
    }

    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, Int(spec.tv_nsec / 1_000_000))
    }
}
