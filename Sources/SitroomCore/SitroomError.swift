/// A domain error: a code people and scripts can match, a message that names the thing
/// (path, incident, integration), and the underlying cause if any.
public struct SitroomError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a matchable value (a struct over a private enum, so cases can be added).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case badConfig = "bad config"
            case cannotCreateState = "cannot create state"
            case alreadyRunning = "already running"
            case store = "store"
            case notFound = "not found"
            case badCommand = "bad command"
            case zoom = "zoom"
            case notAuthorized = "not authorized"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let badConfig = Code(.badConfig)
        public static let cannotCreateState = Code(.cannotCreateState)
        public static let alreadyRunning = Code(.alreadyRunning)
        public static let store = Code(.store)
        public static let notFound = Code(.notFound)
        public static let badCommand = Code(.badCommand)
        public static let zoom = Code(.zoom)
        /// A zoom-oauth host has no valid authorization (never authorized, or it needs re-authorization).
        public static let notAuthorized = Code(.notAuthorized)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message): \(cause)" }
        return message
    }
}
