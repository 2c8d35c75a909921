/// What sitroom asks Zoom to create (Zoom API: "Create a meeting", `POST /users/{userId}/meetings`).
public struct MeetingRequest: Sendable, Hashable, Encodable {
    public struct Settings: Sendable, Hashable, Encodable {
        public var waitingRoom: Bool
        public var joinBeforeHost: Bool
        /// `none`, `local` or `cloud`.
        public var autoRecording: String
        /// Semicolon-separated emails of alternative hosts (Zoom: "A semicolon-separated list of the meeting's
        /// alternative hosts' email addresses or IDs", licensed users of the host's account), or `nil`; see
        /// ``MeetingRequest/alternativeHosts(_:excluding:)``.
        public var alternativeHosts: String?

        public init(waitingRoom: Bool, joinBeforeHost: Bool, autoRecording: String, alternativeHosts: String?) {
            self.waitingRoom = waitingRoom
            self.joinBeforeHost = joinBeforeHost
            self.autoRecording = autoRecording
            self.alternativeHosts = alternativeHosts
        }

        enum CodingKeys: String, CodingKey {
            case waitingRoom = "waiting_room"
            case joinBeforeHost = "join_before_host"
            case autoRecording = "auto_recording"
            case alternativeHosts = "alternative_hosts"
        }
    }

    /// At most ``ZoomLimits/topic`` characters (``MeetingRequest/cut(_:to:)``).
    public var topic: String
    /// 2: a scheduled meeting (SPEC §5); needs `start_time`.
    public var type: Int = 2
    /// UTC, `yyyy-MM-ddTHH:mm:ssZ`.
    public var startTime: String
    /// Minutes.
    public var duration: Int
    public var timezone: String = "UTC"
    /// Up to ``ZoomLimits/passcode`` characters (``MeetingRequest/passcode(length:)``); `nil` for no passcode.
    public var password: String?
    /// Carries the room marker `sitroom:room=<id>` first (SPEC §5); at most ``ZoomLimits/agenda`` characters.
    public var agenda: String
    public var settings: Settings

    public init(topic: String, startTime: String, duration: Int, password: String?, agenda: String, settings: Settings)
    {
        self.topic = topic
        self.startTime = startTime
        self.duration = duration
        self.password = password
        self.agenda = agenda
        self.settings = settings
    }

    enum CodingKeys: String, CodingKey {
        case topic, type, duration, timezone, password, agenda, settings
        case startTime = "start_time"
    }
}

/// The limits Zoom puts on the create-meeting fields sitroom fills (developers.zoom.us/docs/api/meetings/, "Create a
/// meeting"; the derived schema in docs/zoom-api/ carries them).
public enum ZoomLimits {
    /// `topic`: at most 200 characters.
    public static let topic = 200
    /// `agenda`: at most 2,000 characters (list answers cut it to 250, so the room's marker goes first).
    public static let agenda = 2000
    /// `password`: at most 10 characters, letters, digits and `@ - _ *`.
    public static let passcode = 10
}

extension MeetingRequest {
    /// The characters of a generated passcode: letters and digits without look-alikes (`l`, `o`, `I`, `O`, `0`,
    /// `1`), and the special characters Zoom allows, `@ - _ *`.
    static let passcodeLetters = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ")
    static let passcodeDigits = Array("23456789")
    static let passcodeSpecials = Array("@-_*")

    /// A random passcode that meets the account passcode rules Zoom lets admins set (a letter, a digit and a special
    /// character; "Meeting and webinar passcodes", support.zoom.us): one of each, the rest from all three, shuffled.
    /// - Parameter length: 3 to ``ZoomLimits/passcode`` characters (`meeting.passcode_length`, 6 to 10).
    /// - Returns: the passcode (a secret: shown only to the room's people).
    public static func passcode(length: Int) -> String {
        precondition((3...ZoomLimits.passcode).contains(length), "passcode length \(length) outside 3...10")
        var generator = SystemRandomNumberGenerator()
        let all = passcodeLetters + passcodeDigits + passcodeSpecials
        var characters = [
            passcodeLetters.randomElement(using: &generator)!, passcodeDigits.randomElement(using: &generator)!,
            passcodeSpecials.randomElement(using: &generator)!,
        ]
        while characters.count < length { characters.append(all.randomElement(using: &generator)!) }
        characters.shuffle(using: &generator)
        return String(characters)
    }

    /// `text` cut to at most `limit` characters without splitting a character: counted in UTF-16 code units, which
    /// are never fewer than the code points JSON Schema's `maxLength` counts, so the cut fits either way of counting;
    /// a user-perceived character (an emoji with its modifiers, a letter with its accents) is kept whole or dropped.
    /// - Complexity: O(n) in the characters kept.
    public static func cut(_ text: String, to limit: Int) -> String {
        guard text.utf16.count > limit else { return text }
        var kept = ""
        var units = 0
        for character in text {
            let size = character.utf16.count
            if units + size > limit { break }
            kept.append(character)
            units += size
        }
        return kept
    }

    /// The `settings.alternative_hosts` value for these emails: semicolon-separated (Zoom's format), each address
    /// once (case-insensitively), without the meeting's own host; `nil` when none is left.
    /// - Parameters:
    ///   - emails: the commanders' addresses, in order.
    ///   - host: the host's Zoom user (id or email), never its own alternative host.
    public static func alternativeHosts(_ emails: [String], excluding host: String?) -> String? {
        var seen: Set<String> = []
        if let host { seen.insert(host.lowercased()) }
        let kept = emails.map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty && seen.insert($0.lowercased()).inserted
        }
        return kept.isEmpty ? nil : kept.joined(separator: ";")
    }
}
