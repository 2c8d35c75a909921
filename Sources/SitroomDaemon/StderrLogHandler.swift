import Foundation
import Logging

/// A swift-log handler writing one line per event to standard error, as logfmt or JSON (SPEC §9).
///
/// logfmt: `time=2026-11-29T13:00:00.123Z level=info msg="room ready" incident.id=INC-1 room.id=r0123`.
/// Each line is one `write(2)`, so lines from several threads never interleave.
public struct StderrLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable { case logfmt, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format

    public init(label: String, format: Format, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
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
        line += "\n"
        line.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\n" || $0 == "\\" }
        guard needsQuotes else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
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
