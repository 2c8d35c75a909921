import SitroomCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Secret files (`client_secret_file`, `webhook_secret_file`, `password_file`): checked like ssh checks a private
/// key, read only when used, never logged (SPEC §3).
///
/// Two kinds of path are accepted:
/// - a file of mode 0600 or stricter (nothing for group or others), such as `etc/secrets/zoom-main.secret`;
/// - a systemd credential: a path starting with `$CREDENTIALS_DIRECTORY/` names a file that the unit passed
///   with `LoadCredential=NAME:SOURCE` (systemd.exec(5), "Credentials"). systemd writes it mode 0400 and grants
///   the service's user read access with a POSIX ACL, so `stat` shows the ACL mask in the group bits (0440); in
///   that directory, which only the service can enter, group read is accepted (never write, never others).
public enum SecretFile {
    /// How a configured path relates to `$CREDENTIALS_DIRECTORY`.
    enum Expansion: Equatable {
        /// An ordinary path (relative to the file that names it, or absolute).
        case notCredential
        /// `$CREDENTIALS_DIRECTORY/NAME` with the variable replaced.
        case credential(String)
        /// The path names the variable, which is not set.
        case unset
    }

    /// Replaces a leading `$CREDENTIALS_DIRECTORY/` or `${CREDENTIALS_DIRECTORY}/` with the variable's value.
    static func expandCredentials(_ text: String) -> Expansion {
        for prefix in ["$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"] where text.hasPrefix(prefix) {
            guard let directory = credentialsDirectory else { return .unset }
            return .credential(FileReading.normalize(directory + "/" + text.dropFirst(prefix.count)))
        }
        return .notCredential
    }

    /// `$CREDENTIALS_DIRECTORY` (absolute, without a trailing `/`), or `nil` when unset.
    static var credentialsDirectory: String? {
        guard let value = getenv("CREDENTIALS_DIRECTORY").map({ String(cString: $0) }), value.hasPrefix("/") else {
            return nil
        }
        return value.count > 1 && value.hasSuffix("/") ? String(value.dropLast()) : value
    }

    /// Checks a secret file without reading it: it must exist, be a regular file (after following links), be
    /// readable by this process, and grant nothing to group or others (group read is tolerated for a systemd
    /// credential, see above).
    /// - Parameter path: an absolute path (as the configuration holds it).
    /// - Returns: a problem description that starts with the path, or `nil` when the file is fine.
    public static func problem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT { return "\(path) does not exist" }
            return "\(path) cannot be checked: \(FileReading.errnoText(code))"
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return "\(path) is not a regular file" }
        let mode = Int(info.st_mode & 0o7777)
        let isCredential = credentialsDirectory.map { path.hasPrefix($0 + "/") } ?? false
        if isCredential {
            if mode & 0o037 != 0 {
                return "\(path) is writable by group or accessible by others (mode \(FileReading.octal(mode)))"
            }
        } else if mode & 0o077 != 0 {
            let what = mode & 0o044 != 0 ? "readable" : "accessible"
            return "\(path) is \(what) by group or others (mode \(FileReading.octal(mode))); chmod 600 it"
        }
        guard access(path, R_OK) == 0 else {
            return "\(path) is not readable by sitroomd (\(FileReading.errnoText(errno)))"
        }
        return nil
    }

    /// Reads a secret (checked by ``problem(_:)`` first), without surrounding white space.
    /// - Parameters:
    ///   - path: the file, as the configuration holds it.
    ///   - key: the configuration key that names it, for the message (`client_secret_file`).
    /// - Returns: the secret; never log it.
    /// - Throws: ``SitroomError`` `.badConfig` naming the key and the path.
    public static func read(_ path: String, key: String) throws -> String {
        if let problem = problem(path) { throw SitroomError(.badConfig, "\(key): \(problem)") }
        guard let file = fopen(path, "re") else {
            throw SitroomError(.badConfig, "\(key): \(path) cannot be opened: \(FileReading.errnoText(errno))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 1 << 20 {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SitroomError(.badConfig, "\(key): \(path) cannot be read as UTF-8 text")
        }
        return text.trimmingWhitespace()
    }
}
