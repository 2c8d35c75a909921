import SitroomCore

/// A Zoom webhook saved as received (SPEC §4): header lines, a blank line, the raw body byte for byte.
///
/// Recognised when the part before the first blank line is an HTTP header block (RFC 9112 §5: `name: value`
/// lines with `name` a token; an optional request line such as `POST /zoom/webhook HTTP/1.1` first) holding at
/// least one `x-zm-*` header. Line ends may be CRLF or LF. Only the events of ``ZoomWebhookEvent/usedEvents`` are
/// accepted (`app_deauthorized` and the meeting events of ``ZoomMeetingEvent/Kind``); they
/// need `x-zm-signature` (`v0=` and 64 hex digits), `x-zm-request-timestamp` (seconds) and a JSON body with
/// `event` and `payload.account_id` (developers.zoom.us/docs/api/webhooks/). Checking the signature is left to
/// the Zoom integration.
enum ZoomWebhookFile {
    struct Message {
        /// Each header line's bytes (without its line end) and 1-based line number.
        var lines: [(text: String, line: Int)]
        /// Offset of the body's first byte and the line it starts on.
        var bodyOffset: Int
        var bodyLine: Int
    }

    /// The header block and body, or `nil` when the file does not look like a Zoom webhook.
    static func split(_ bytes: [UInt8]) -> Message? {
        guard hasZoomHeaderLine(bytes) else { return nil }  // every event and payload that is not a Zoom webhook
        var lines: [(String, Int)] = []
        var start = 0
        var lineNumber = 1
        var sawZoomHeader = false
        while start < bytes.count {
            guard let newline = bytes[start...].firstIndex(of: 0x0A) else { return nil }
            var end = newline
            if end > start, bytes[end - 1] == 0x0D { end -= 1 }
            if end == start {
                guard sawZoomHeader, !lines.isEmpty else { return nil }
                return Message(lines: lines, bodyOffset: newline + 1, bodyLine: lineNumber + 1)
            }
            let text = String(decoding: bytes[start..<end], as: UTF8.self)
            if lines.isEmpty, isRequestLine(text) {
                // The request line is kept only for the line count.
            } else if let colon = text.firstIndex(of: ":"), text[..<colon].allSatisfy(isTokenCharacter),
                colon != text.startIndex
            {
                if text[..<colon].lowercased().hasPrefix("x-zm-") { sawZoomHeader = true }
                lines.append((text, lineNumber))
            } else {
                return nil
            }
            start = newline + 1
            lineNumber += 1
            if lineNumber > 200 { return nil }  // not a header block anyone sends
        }
        return nil
    }

    /// Whether a line starts with `x-zm-` (any case) before the first blank line: a cheap test over the bytes
    /// that spares the line-by-line reading for every other file of the spool.
    private static func hasZoomHeaderLine(_ bytes: [UInt8]) -> Bool {
        let prefix = Array("x-zm-".utf8)
        var lineStart = 0
        while lineStart + prefix.count <= bytes.count {
            if bytes[lineStart] == 0x0A || (bytes[lineStart] == 0x0D && bytes[lineStart + 1] == 0x0A) { return false }
            var matches = true
            for k in 0..<prefix.count where bytes[lineStart + k] | 0x20 != prefix[k] {
                matches = false
                break
            }
            if matches { return true }
            guard let newline = bytes[lineStart...].firstIndex(of: 0x0A) else { return false }
            lineStart = newline + 1
        }
        return false
    }

    static func read(_ message: Message, bytes: [UInt8], diag: Diagnostics) -> ZoomWebhookEvent? {
        let before = diag.count
        var headers: [ZoomWebhookEvent.Header] = []
        var lineOf: [String: Int] = [:]
        for (text, line) in message.lines {
            let colon = text.firstIndex(of: ":")!
            let name = String(text[..<colon])
            let value = String(text[text.index(after: colon)...]).trimmingWhitespace()
            headers.append(ZoomWebhookEvent.Header(name: name, value: value))
            if lineOf[name.lowercased()] == nil { lineOf[name.lowercased()] = line }
        }
        let headerEnd = Position(line: message.bodyLine - 1, column: 1)
        func header(_ name: String) -> (String, Position)? {
            guard let line = lineOf[name] else {
                diag.report("header \(name): required header is missing", at: headerEnd)
                return nil
            }
            let value = headers.first { $0.name.lowercased() == name }!.value
            return (value, Position(line: line, column: name.count + 2))
        }
        var signature: String?
        if let (value, position) = header("x-zm-signature") {
            let hex = value.dropFirst(3)
            if value.hasPrefix("v0="), hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) {
                signature = value
            } else {
                diag.report("header x-zm-signature: must be v0= and 64 hex digits (HMAC-SHA256)", at: position)
            }
        }
        var timestamp: Int64?
        if let (value, position) = header("x-zm-request-timestamp") {
            if let seconds = Int64(value), seconds > 0, value.allSatisfy(\.isASCII) {
                timestamp = seconds
            } else {
                diag.report("header x-zm-request-timestamp: must be seconds since 1970, not '\(value)'", at: position)
            }
        }

        let body = Array(bytes[message.bodyOffset...])
        let bodyDiag = Diagnostics(file: diag.file)
        var event: String?
        var eventTS: Int64?
        var accountID: String?
        var clientID: String?
        var userID: String?
        var deauthorizationTime: String?
        var meeting: ZoomMeetingEvent?
        switch YAMLDocument.compose(body, diag: bodyDiag) {
        case .failed:
            break
        case .empty:
            bodyDiag.report("the body after the headers is empty", at: .start)
        case .node(let node):
            if let top = YAMLValue(node: node, path: "", diag: bodyDiag).mapping() {
                if let value = top.required("event"), let name = value.string() {
                    if ZoomWebhookEvent.usedEvents.contains(name) {
                        event = name
                    } else {
                        let used = ZoomWebhookEvent.usedEvents.sorted().joined(separator: ", ")
                        value.fail("Zoom event '\(name)' is not one sitroom uses (only \(used))")
                    }
                }
                if let value = top.value("event_ts") { eventTS = value.int(in: 0...Int.max).map(Int64.init) }
                if let payload = top.required("payload")?.mapping() {
                    accountID = payload.string("account_id", required: true)
                    clientID = payload.string("client_id")
                    userID = payload.string("user_id")
                    deauthorizationTime = payload.value("deauthorization_time")?.text(expected: "a timestamp")
                    if let name = event, let kind = ZoomMeetingEvent.Kind(rawValue: name) {
                        meeting = meetingEvent(
                            kind,
                            payload: payload,
                            accountID: accountID ?? "",
                            eventTS: eventTS,
                            diag: bodyDiag
                        )
                    }
                }
            }
        }
        // Body positions are counted from the body's first line; report them as lines of the file.
        for error in bodyDiag.errors {
            let line = error.line == 0 ? 0 : error.line + message.bodyLine - 1
            diag.report("body: \(error.message)", at: Position(line: line, column: error.column))
        }
        guard diag.count == before, let signature, let timestamp, let event, let accountID else { return nil }
        return ZoomWebhookEvent(
            headers: headers,
            body: body,
            signature: signature,
            requestTimestamp: timestamp,
            event: event,
            eventTimestampMilliseconds: eventTS,
            accountID: accountID,
            clientID: clientID,
            userID: userID,
            deauthorizationTime: deauthorizationTime,
            meeting: meeting
        )
    }

    /// `payload.object` of a meeting event: `id` (digits, as a string or a number), `uuid`, `start_time` / `end_time`, and for a
    /// participant event `participant` {`user_id`, `user_name`, `participant_uuid`, `join_time` | `leave_time`,
    /// `email`} (developers.zoom.us/docs/api/meetings/events/). Other fields Zoom sends are ignored.
    static func meetingEvent(
        _ kind: ZoomMeetingEvent.Kind,
        payload: YAMLMapping,
        accountID: String,
        eventTS: Int64?,
        diag: Diagnostics
    ) -> ZoomMeetingEvent? {
        let before = diag.count
        guard let objectValue = payload.required("object"), let object = objectValue.mapping() else { return nil }
        // Zoom's SDK types the meeting events' `id` as a string, other payloads as a number: both are taken.
        var id: Int?
        if let value = object.required("id"), let text = value.text(expected: "a meeting id") {
            if let number = Int(text), number > 0 {
                id = number
            } else {
                value.fail("must be a meeting id (digits), not '\(OneLine.clean(text, limit: 40))'")
            }
        }
        let uuid = object.value("uuid")?.text(expected: "a string") ?? ""
        func time(_ value: YAMLValue?) -> Double? {
            guard let value, let text = value.text(expected: "an RFC 3339 time") else { return nil }
            guard let seconds = Scalars.rfc3339(text) else {
                value.fail("must be an RFC 3339 time, not '\(OneLine.clean(text, limit: 60))'")
                return nil
            }
            return seconds
        }
        var at: Double?
        var person: ZoomMeetingEvent.Person?
        switch kind {
        case .started: at = time(object.value("start_time"))
        case .ended: at = time(object.value("end_time"))
        case .participantJoined, .participantLeft:
            if let participant = object.required("participant")?.mapping() {
                at = time(participant.value(kind == .participantJoined ? "join_time" : "leave_time"))
                person = ZoomMeetingEvent.Person(
                    participantUUID: participant.value("participant_uuid")?.text(expected: "a string") ?? "",
                    userID: participant.value("user_id")?.text(expected: "a string") ?? "",
                    name: OneLine.clean(participant.value("user_name")?.text(expected: "a string") ?? "", limit: 200),
                    email: participant.value("email")?.text(expected: "an email address")
                )
            }
        }
        guard diag.count == before, let id else { return nil }
        guard let at = at ?? eventTS.map({ Double($0) / 1000 }) else {
            objectValue.fail("has no time (start_time, end_time, join_time or leave_time) and the event no event_ts")
            return nil
        }
        return ZoomMeetingEvent(
            kind: kind,
            meetingID: Int64(id),
            uuid: uuid,
            accountID: accountID,
            at: at,
            person: person
        )
    }

    private static func isRequestLine(_ text: String) -> Bool {
        let words = text.split(separator: " ")
        return words.count == 3 && words[0].allSatisfy({ $0.isUppercase }) && words[2].hasPrefix("HTTP/")
    }

    /// RFC 9110 §5.6.2 `tchar`.
    private static func isTokenCharacter(_ character: Character) -> Bool {
        guard character.isASCII, let scalar = character.unicodeScalars.first else { return false }
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9": return true
        default: return "!#$%&'*+-.^_`|~".unicodeScalars.contains(scalar)
        }
    }
}
