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
        // Most lines carry only the event's own metadata: taken as it is, not merged into a copy.
        var merged: Logger.Metadata
        if metadata.isEmpty && metadataProvider == nil {
            merged = event.metadata ?? [:]
        } else {
            merged = metadata
            if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
            if let extra = event.metadata { merged.merge(extra) { $1 } }
        }
        // The line is built as bytes and written with one write(2): formatting is most of what a log line costs,
        // and sitroomd logs a line per applied event (no Foundation formatting, no string copies per escape).
        var line: [UInt8] = []
        line.reserveCapacity(160)
        if syslogPrefix {
            line.append(contentsOf: "<\(Self.syslogPriority(event.level))>".utf8)
        }
        switch format {
        case .logfmt:
            line.append(contentsOf: "time=".utf8)
            Self.appendTimestamp(to: &line)
            line.append(contentsOf: " level=".utf8)
            line.append(contentsOf: event.level.rawValue.utf8)
            line.append(contentsOf: " msg=".utf8)
            Self.appendLogfmtValue(event.message.description, to: &line)
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: key.utf8)
                line.append(UInt8(ascii: "="))
                Self.appendLogfmtValue(value.description, to: &line)
            }
        case .json:
            var time: [UInt8] = []
            Self.appendTimestamp(to: &time)
            var object: [String: String] = [
                "time": String(decoding: time, as: UTF8.self), "level": event.level.rawValue,
                "msg": event.message.description,
            ]
            for (key, value) in merged { object[key] = value.description }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            line.append(contentsOf: data)
        }
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }

    /// A logfmt value: as is, or in double quotes with `\`, `"`, line feeds and carriage returns escaped when it
    /// is empty or holds a space, `=`, a quote, a backslash or a line break.
    static func logfmtValue(_ value: String) -> String {
        var bytes: [UInt8] = []
        appendLogfmtValue(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func appendLogfmtValue(_ value: String, to line: inout [UInt8]) {
        var value = value
        value.withUTF8 { utf8 in
            let needsQuotes =
                utf8.isEmpty
                || utf8.contains {
                    $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"") || $0 == 0x0A
                        || $0 == 0x0D || $0 == UInt8(ascii: "\\")
                }
            guard needsQuotes else {
                line.append(contentsOf: utf8)
                return
            }
            line.append(UInt8(ascii: "\""))
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\\"): line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case UInt8(ascii: "\""): line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case 0x0A: line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                default: line.append(byte)
                }
            }
            line.append(UInt8(ascii: "\""))
        }
    }

    /// `2026-11-29T13:00:00.123Z`: now, UTC, to the millisecond.
    static func timestamp() -> String {
        var bytes: [UInt8] = []
        appendTimestamp(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func appendTimestamp(to line: inout [UInt8]) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                line.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        line.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        line.append(UInt8(ascii: "."))
        digits(Int(spec.tv_nsec / 1_000_000), 3)
        line.append(UInt8(ascii: "Z"))
    }
}
