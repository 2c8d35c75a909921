#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemRead = Darwin.read
#endif

/// Small POSIX file helpers for the loader: bounded reads, stat checks, path arithmetic.
enum FileReading {
    /// The largest file the loader reads (SPEC §3: files over 1 MiB are rejected).
    static let maxFileSize = 1 << 20

    /// Why a file could not be read; `message` names no path (the error's `file` does).
    struct Failure: Error {
        var message: String
    }

    /// Reads a whole regular file of at most `limit` bytes (symbolic links followed).
    ///
    /// - Throws: ``Failure`` when it is missing, not a regular file, larger than `limit`, or unreadable.
    static func read(_ path: String, limit: Int = maxFileSize) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(message: "cannot open: \(errnoText(errno))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(message: "cannot stat: \(errnoText(errno))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw Failure(message: "not a regular file") }
        guard Int(info.st_size) <= limit else {
            throw Failure(message: "file is \(info.st_size) bytes, larger than the limit of \(describeSize(limit))")
        }
        var bytes = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "cannot read: \(errnoText(errno))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            // The file may have grown since fstat.
            if bytes.count > limit {
                throw Failure(message: "file is larger than the limit of \(describeSize(limit))")
            }
        }
        return bytes
    }

    enum Kind { case missing, directory, regular, other }

    /// What is at `path` (symbolic links followed).
    static func kind(of path: String) -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regular
        default: return .other
        }
    }

    /// Checks a secret file the way ssh checks a private key, without reading it: it must exist, be a regular
    /// file (after following links), be readable by this process, and grant nothing to group or others.
    ///
    /// - Returns: a problem description that starts with the path, or `nil` when the file is fine.
    static func secretFileProblem(_ path: String) -> String? {
        SecretFile.problem(path)
    }

    /// The names in a directory (without `.` and `..`), sorted; `nil` if it cannot be listed.
    static func list(_ directory: String) -> [String]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// `path` made absolute against `directory` and normalised lexically (`.` and `..` removed).
    static func resolve(_ path: String, relativeTo directory: String) -> String {
        normalize(path.hasPrefix("/") ? path : directory + "/" + path)
    }

    /// `path` made absolute against the current directory.
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return normalize(path) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return normalize(path) }
        let cwd = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return normalize(cwd + "/" + path)
    }

    /// Lexical normalisation of an absolute path.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The directory part of an absolute path.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    static func octal(_ mode: Int) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    static func describeSize(_ bytes: Int) -> String {
        if bytes % (1 << 40) == 0 { return "\(bytes >> 40) TiB" }
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}
