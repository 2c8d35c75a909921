import Foundation
import SitroomConfig

/// What sitroomd knows of sitroom-intake: `--check-config` validates `etc/intake.yaml` too.
enum IntakeCheck {
    /// Validates `etc/intake.yaml` when it exists, against sitroom.yaml's spool settings (its `max_body_size` may
    /// not exceed `spool.max_file_size`); errors go to standard error as `file:line:col: message`.
    /// - Returns: `""` when there is no intake.yaml, `", and intake.yaml with N routes"` when it is valid, `nil`
    ///   when it has errors.
    static func check(etc: String, spool: SpoolSettings) -> String? {
        guard FileManager.default.fileExists(atPath: etc + "/" + ConfigLoader.intakeFileName) else { return "" }
        do {
            let intake = try ConfigLoader.loadIntake(etcDirectory: etc, spoolMaxFileSize: spool.maxFileSize)
            let count = intake.routes.count
            return ", and \(ConfigLoader.intakeFileName) with \(count) route\(count == 1 ? "" : "s")"
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            return nil
        }
    }
}
