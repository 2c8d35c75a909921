import CLMDB

/// A named database inside an ``Environment``, as returned by ``Environment/database(named:)``.
///
/// A plain handle (`MDB_dbi`): valid in every transaction of the environment that opened it, for the
/// environment's lifetime.
public struct Database: Sendable, Hashable {
    /// The LMDB database handle.
    let dbi: MDB_dbi

    /// The name the database was opened with.
    public let name: String
}
