import Foundation
import SitroomCore

/// Reads Zoom's meeting events from their JSON (a WebSocket `message` frame's `content`, or a webhook body):
/// `{"event": "meeting.participant_joined", "event_ts": ms, "payload": {"account_id", "object": {"id", "uuid",
/// "start_time" | "end_time" | "participant": {...}}}}` (developers.zoom.us/docs/api/meetings/events/; field types
/// as in Zoom's SDK, zoom/rivet-javascript `meetings/meetings.d.ts`: `id` a string there, a number in some payloads: both are read; times RFC 3339).
public enum MeetingEventReader {
    /// What a JSON event is to sitroom.
    public enum Reading: Sendable, Hashable {
        /// A meeting event sitroom applies.
        case meeting(ZoomMeetingEvent)
        /// Zoom's `app_deauthorized`: the app was removed (`payload.account_id`, `user_id`, `client_id`).
        case appDeauthorized(AppDeauthorized)
        /// A well-formed event sitroom does not use (its name).
        case other(String)
    }

    /// Reads one event.
    /// - Throws: ``ZoomError`` `.invalidResponse` naming what is wrong (not JSON, no `event`, a meeting event without
    ///   `payload.object.id` or a time).
    public static func read(_ bytes: [UInt8]) throws(ZoomError) -> Reading {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw ZoomError(.invalidResponse(message: "event is not a JSON object"))
        }
        guard let name = object["event"] as? String else {
            throw ZoomError(.invalidResponse(message: "event without `event`"))
        }
        let payload = object["payload"] as? [String: Any] ?? [:]
        if name == "app_deauthorized" {
            guard let account = payload["account_id"] as? String, let client = payload["client_id"] as? String else {
                throw ZoomError(.invalidResponse(message: "app_deauthorized without payload.account_id and client_id"))
            }
            return .appDeauthorized(
                AppDeauthorized(accountID: account, userID: payload["user_id"] as? String, clientID: client)
            )
        }
        guard let kind = ZoomMeetingEvent.Kind(rawValue: name) else { return .other(name) }
        guard let meeting = payload["object"] as? [String: Any] else {
            throw ZoomError(.invalidResponse(message: "\(name) without payload.object"))
        }
        guard let id = (meeting["id"] as? NSNumber)?.int64Value ?? (meeting["id"] as? String).flatMap(Int64.init),
            id > 0
        else {
            throw ZoomError(.invalidResponse(message: "\(name) without a numeric payload.object.id"))
        }
        let eventTS = (object["event_ts"] as? NSNumber).map { $0.doubleValue / 1000 }
        var at: Double?
        var person: ZoomMeetingEvent.Person?
        switch kind {
        case .started: at = time(meeting["start_time"])
        case .ended: at = time(meeting["end_time"])
        case .participantJoined, .participantLeft:
            guard let participant = meeting["participant"] as? [String: Any] else {
                throw ZoomError(.invalidResponse(message: "\(name) without payload.object.participant"))
            }
            at = time(participant[kind == .participantJoined ? "join_time" : "leave_time"])
            person = ZoomMeetingEvent.Person(
                participantUUID: participant["participant_uuid"] as? String ?? "",
                userID: (participant["user_id"] as? String) ?? (participant["user_id"] as? NSNumber)?.stringValue ?? "",
                name: OneLine.clean(participant["user_name"] as? String ?? "", limit: 200),
                email: participant["email"] as? String
            )
        }
        guard let at = at ?? eventTS else {
            throw ZoomError(.invalidResponse(message: "\(name) of meeting \(id) has no time and no event_ts"))
        }
        return .meeting(
            ZoomMeetingEvent(
                kind: kind,
                meetingID: id,
                uuid: meeting["uuid"] as? String ?? "",
                accountID: payload["account_id"] as? String ?? "",
                at: at,
                person: person
            )
        )
    }

    /// An RFC 3339 time (`2026-12-05T12:00:00Z`, fractional seconds allowed) as seconds since 1970.
    static func time(_ value: Any?) -> Double? {
        guard let text = value as? String else { return nil }
        let plain = ISO8601DateFormatter()
        if let date = plain.date(from: text) { return date.timeIntervalSince1970 }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)?.timeIntervalSince1970
    }
}
