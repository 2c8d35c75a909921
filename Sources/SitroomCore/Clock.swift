/// Wall-clock time and sleeping, injectable so tests can drive time by hand.
public protocol WallClock: Sendable {
    /// Seconds since 1970-01-01T00:00:00Z.
    func now() -> Double
    /// Suspends for `seconds` (or until cancelled, then throws `CancellationError`).
    func sleep(seconds: Double) async throws
}

/// The system's clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    public func sleep(seconds: Double) async throws {
        try await Task.sleep(for: .milliseconds(Int64((max(0, seconds) * 1000).rounded(.up))))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Formats seconds since 1970 as an RFC 3339 UTC timestamp, `yyyy-MM-ddTHH:mm:ssZ` (Zoom's `start_time` form).
public func rfc3339UTC(_ seconds: Double) -> String {
    var time = time_t(seconds.rounded(.down))
    var parts = tm()
    gmtime_r(&time, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
        + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
}

/// The UTC calendar day of a time, `yyyy-MM-dd`: the unit of Zoom's daily create limit (reset 00:00 UTC).
public func utcDay(_ seconds: Double) -> String {
    String(rfc3339UTC(seconds).prefix(10))
}

/// RFC 3339 UTC with milliseconds, `yyyy-MM-ddTHH:mm:ss.SSSZ`, for times people compare (room creation order).
public func rfc3339UTCMillis(_ seconds: Double) -> String {
    let whole = seconds.rounded(.down)
    let millis = min(999, Int(((seconds - whole) * 1000).rounded(.down)))
    let base = rfc3339UTC(whole)
    let padded = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
    return "\(base.dropLast()).\(padded)Z"
}
