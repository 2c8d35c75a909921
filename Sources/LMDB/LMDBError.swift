import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An error returned by an LMDB function: one of the `MDB_*` codes, or an `errno` value.
///
/// Errors compare equal by ``rawValue`` alone, so `catch LMDBError.notFound` and `error == .mapFull`
/// work whichever call produced them; ``operation`` only feeds ``description``.
public struct LMDBError: Error, Hashable, Sendable, CustomStringConvertible, RawRepresentable {
    /// The `MDB_*` code (negative, -30799 ... -30780) or `errno` value (positive) the C function returned.
    public let rawValue: Int32

    /// The C function (or wrapper operation) that failed, such as `"mdb_put"`; `nil` when unknown.
    public let operation: String?

    /// Creates an error from a C return code, with no operation name.
    /// - Parameter rawValue: An `MDB_*` code or an `errno` value.
    public init(rawValue: Int32) {
        self.init(rawValue, operation: nil)
    }

    /// Creates an error from a C return code and the name of the call that returned it.
    /// - Parameters:
    ///   - rawValue: An `MDB_*` code or an `errno` value.
    ///   - operation: The failing C function, such as `"mdb_put"`, shown in ``description``.
    public init(_ rawValue: Int32, operation: String?) {
        self.rawValue = rawValue
        self.operation = operation
    }

    /// `MDB_NOTFOUND`: key/data pair not found (EOF).
    public static let notFound = LMDBError(rawValue: MDB_NOTFOUND)
    /// `MDB_KEYEXIST`: key/data pair already exists.
    public static let keyExist = LMDBError(rawValue: MDB_KEYEXIST)
    /// `MDB_MAP_FULL`: the environment's map size limit was reached. ``Environment/write(_:)`` handles it
    /// by growing the map, so callers only see it from ``Environment/read(_:)`` or a failed growth.
    public static let mapFull = LMDBError(rawValue: MDB_MAP_FULL)
    /// `MDB_MAP_RESIZED`: another process grew the map beyond this process's mapping.
    public static let mapResized = LMDBError(rawValue: MDB_MAP_RESIZED)
    /// `MDB_READERS_FULL`: all reader slots (`maxReaders`) are taken.
    public static let readersFull = LMDBError(rawValue: MDB_READERS_FULL)
    /// `MDB_TXN_FULL`: the transaction has too many dirty pages; split the work into smaller transactions.
    public static let txnFull = LMDBError(rawValue: MDB_TXN_FULL)
    /// `MDB_DBS_FULL`: more named databases were opened than `maxDatabases` allows.
    public static let dbsFull = LMDBError(rawValue: MDB_DBS_FULL)
    /// `MDB_INVALID`: the file is not an LMDB file.
    public static let invalid = LMDBError(rawValue: MDB_INVALID)
    /// `MDB_VERSION_MISMATCH`: the environment was created by an incompatible LMDB version.
    public static let versionMismatch = LMDBError(rawValue: MDB_VERSION_MISMATCH)
    /// `EBUSY` as raised by ``Environment/init(path:mapSize:maxDatabases:maxReaders:mode:)`` when the
    /// directory is already open in this process (LMDB forbids opening an environment twice per process).
    public static let alreadyOpen = LMDBError(rawValue: EBUSY)

    /// The operation name followed by LMDB's message, e.g.
    /// `"mdb_put: MDB_MAP_FULL: Environment mapsize limit reached"`.
    /// The corresponding C function is `mdb_strerror` (which falls back to `strerror` for `errno` values).
    public var description: String {
        let message = String(cString: mdb_strerror(rawValue))
        guard let operation else { return message }
        return "\(operation): \(message)"
    }

    /// Compares by ``rawValue`` only; ``operation`` is not part of an error's identity.
    public static func == (lhs: LMDBError, rhs: LMDBError) -> Bool {
        lhs.rawValue == rhs.rawValue
    }

    /// Hashes ``rawValue`` only, consistent with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(rawValue)
    }

    /// Matches any error that is an `LMDBError` with the same ``rawValue``, for `catch LMDBError.mapFull`
    /// and `case LMDBError.notFound:` patterns.
    public static func ~= (lhs: LMDBError, rhs: any Error) -> Bool {
        guard let rhs = rhs as? LMDBError else { return false }
        return lhs.rawValue == rhs.rawValue
    }
}

/// The one place LMDB return codes are turned into Swift errors: every C call in this module goes
/// through it (after swift-system's `valueOrErrno`).
/// - Parameters:
///   - rc: The C function's return code; `MDB_SUCCESS` (0) means success.
///   - operation: The C function's name, for the error description.
/// - Throws: ``LMDBError`` for any non-zero code.
@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != MDB_SUCCESS {
        throw LMDBError(rc, operation: operation())
    }
}
