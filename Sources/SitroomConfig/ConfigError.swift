/// One problem in one file, printed as `file:line:col: message` (like `nginx -t`).
///
/// `file` is the path as given to the loader or parser (absolute for ``ConfigLoader``); `line` and `column`
/// are 1-based, or 0 when the problem concerns the whole file (missing, too large, badly named).
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file the problem is in.
    public var file: String
    /// 1-based line, 0 if unknown.
    public var line: Int
    /// 1-based column (in Unicode scalars, as libyaml counts), 0 if unknown.
    public var column: Int
    /// What is wrong, starting with the key path it concerns (e.g. `hosts[0].id: ...`).
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:col: message`.
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Something in `etc/` that is valid but probably not meant, printed as `file:line:col: warning: message`.
/// Warnings never block a generation: `--check-config` prints them and still exits 0, the daemon logs them.
public struct ConfigWarning: Sendable, Hashable, CustomStringConvertible {
    /// The file the warning is about (absolute path).
    public var file: String
    /// 1-based line, 0 if it concerns the whole file.
    public var line: Int
    /// 1-based column, 0 if it concerns the whole file.
    public var column: Int
    /// What looks wrong and why it matters.
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:col: warning: message`.
    public var description: String { "\(file):\(line):\(column): warning: \(message)" }
}

/// Where the loader found things it warns about: positions are not part of a ``Configuration`` (a comment
/// edited above a key must not make a new generation), so they travel beside it while one is read.
struct ConfigSites {
    /// `conference.integrations` in `sitroom.yaml`, when it names at least one integration.
    var conferenceIntegrations: Position? = nil
    /// Integration name → lower-cased `hosts[].user` → where it is.
    var hostUsers: [String: [String: Position]] = [:]
}

/// All problems found in one load or parse; never empty when thrown.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    /// In file order (sitroom.yaml, integrations by name, roster.yaml, templates by name), then line order.
    public var errors: [ConfigError]

    public init(errors: [ConfigError]) {
        self.errors = errors
    }

    /// One error per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// A 1-based position in a file (0:0 when unknown).
struct Position: Hashable, Comparable {
    var line: Int
    var column: Int

    static let unknown = Position(line: 0, column: 0)
    static let start = Position(line: 1, column: 1)

    static func < (lhs: Position, rhs: Position) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }
}

/// Collects the errors of one file. Not shared across tasks: one per file, used by one caller.
final class Diagnostics {
    let file: String
    private var seen: Set<ConfigError> = []
    private var list: [ConfigError] = []

    init(file: String) {
        self.file = file
    }

    /// Records `message` at `position`; the same error twice is recorded once.
    func report(_ message: String, at position: Position) {
        let error = ConfigError(file: file, line: position.line, column: position.column, message: message)
        if seen.insert(error).inserted {
            list.append(error)
        }
    }

    var isEmpty: Bool { list.isEmpty }
    var count: Int { list.count }

    /// The errors in line order (stable for equal positions).
    var errors: [ConfigError] {
        list.enumerated()
            .sorted {
                ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
            }
            .map(\.element)
    }
}
