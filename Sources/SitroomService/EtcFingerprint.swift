import Foundation
import PosixIO

/// What `etc/` looks like on disk, cheaply: for every entry of `etc/`, `etc/integrations/` and `etc/templates/`
/// its name, type, inode, size, modification and change times (nanoseconds), and for a symbolic link its target
/// and the same of what it points to. Two equal fingerprints mean nothing was saved in between (as far as
/// `stat` can tell).
struct EtcFingerprint: Hashable, Sendable {
    var lines: [String]

    /// - Complexity: O(entries of the three directories).
    static func take(etc: String) -> EtcFingerprint {
        var lines: [String] = []
        for base in [etc, etc + "/integrations", etc + "/templates"] {
            lines.append("dir \(base) \(describe(base, follow: true))")
            for name in list(base) {
                let path = base + "/" + name
                var line = "\(path) \(describe(path, follow: false))"
                if let target = linkTarget(path) { line += " -> \(target) \(describe(path, follow: true))" }
                lines.append(line)
            }
        }
        return EtcFingerprint(lines: lines)
    }

    private static func describe(_ path: String, follow: Bool) -> String {
        var info = stat()
        guard (follow ? stat(path, &info) : lstat(path, &info)) == 0 else { return "missing" }
        return "\(info.st_mode) \(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) "
            + "\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
    }

    private static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory (without `.` and `..`), sorted; none when it cannot be listed.
    static func list(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }
}
