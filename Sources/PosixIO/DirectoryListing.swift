import Glibc

/// One entry of a directory, with what `lstat` says of it (symbolic links are not followed).
public struct DirectoryEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case regular, directory, symlink, other
    }

    /// The entry's name (decoded as UTF-8).
    public var name: String
    public var kind: Kind
    /// Size in bytes (`st_size`).
    public var size: Int
    /// Last modification, seconds since 1970 (`st_mtim`).
    public var modified: Double
}

extension DurableFile {
    /// The entries of a directory except `.` and `..`, with their `lstat` information; entries that vanish
    /// while listed are left out.
    /// - Parameters:
    ///   - path: the directory.
    ///   - includeHidden: whether names starting with `.` are listed.
    /// - Returns: the entries, in no particular order.
    /// - Throws: `PosixError` (`opendir`).
    /// - Complexity: O(n) `lstat` calls for n entries.
    /// The corresponding C calls are `opendir`, `readdir`, `fstatat(AT_SYMLINK_NOFOLLOW)`.
    public static func list(_ path: String, includeHidden: Bool = false) throws -> [DirectoryEntry] {
        guard let directory = opendir(path) else { throw PosixError(call: "opendir", path: path, errno: errno) }
        defer { closedir(directory) }
        let fd = dirfd(directory)
        var entries: [DirectoryEntry] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name == "." || name == ".." || (!includeHidden && name.hasPrefix(".")) { continue }
            var status = stat()
            guard fstatat(fd, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let kind: DirectoryEntry.Kind
            switch status.st_mode & S_IFMT {
            case S_IFREG: kind = .regular
            case S_IFDIR: kind = .directory
            case S_IFLNK: kind = .symlink
            default: kind = .other
            }
            entries.append(
                DirectoryEntry(name: name, kind: kind, size: Int(status.st_size), modified: seconds(status.st_mtim))
            )
        }
        return entries
    }

    /// The current wall-clock time in seconds since 1970, the clock file times are stamped with.
    /// The corresponding C call is `clock_gettime(CLOCK_REALTIME)`.
    public static func now() -> Double { wallClockSeconds() }
}
