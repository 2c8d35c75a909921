import Foundation
import SitroomConfig
import SitroomCore
import SitroomZoom

// Zoom's signed webhooks (through sitroom-intake and the spool) and app_deauthorized, verified again here with the
// webhook secret of an integration of the event's account, then applied.
extension DaemonCore {
    /// Applies a Zoom webhook delivery from the spool (SPEC §4: header lines, a blank line, the raw body).
    /// A meeting event (``ZoomMeetingEvent``), verified with the webhook secret of an integration of its account,
    /// updates the live meeting of the open room it names (``RoomProvisioner/applyMeetingEvent(_:via:)``).
    /// `app_deauthorized`, verified with the webhook secret of the integration whose `client_id` it names, it deletes the tokens it covers, marks the integration (or the host of that user)
    /// `needs_reauthorization`, makes the rooms of open incidents on it `unavailable`, and tells the admins.
    /// Applying the same delivery twice (after a crash) changes nothing more.
    /// - Parameters:
    ///   - event: the parsed delivery (SitroomConfig's spool parser).
    ///   - receivedAt: the spool file's modification time (seconds since 1970); the request timestamp must be
    ///     within 5 minutes of it.
    /// - Returns: what was done, for the log.
    /// - Throws: ``WebhookError`` (forged, stale, unknown app): the file is rejected.
    public func applyZoomWebhook(_ event: ZoomWebhookEvent, receivedAt: Double) async throws -> String {
        let file = ZoomWebhookFile(
            headers: Dictionary(
                event.headers.map { ($0.name.lowercased(), $0.value) },
                uniquingKeysWith: { first, _ in first }
            ),
            body: event.body
        )
        if let meeting = event.meeting {
            // A meeting event names no app: any integration of its account (or without an account_id set) whose
            // webhook secret verifies it. Only meetings sitroom made change anything.
            let candidates = live.integrations.values.filter { $0.accountID == nil || $0.accountID == event.accountID }
                .sorted { $0.name < $1.name }
            _ = try verifiedIntegration(file, candidates: candidates, receivedAt: receivedAt)
            return await provisioner.applyMeetingEvent(meeting, via: "webhook")
        }
        guard let clientID = event.clientID else { throw WebhookError("payload.client_id: missing") }
        let candidates = live.integrations.values.filter { $0.clientID == clientID }.sorted { $0.name < $1.name }
        guard !candidates.isEmpty else {
            throw WebhookError("payload.client_id: no integration has client_id \(clientID)")
        }
        _ = try verifiedIntegration(file, candidates: candidates, receivedAt: receivedAt)
        return try await applyAppDeauthorized(
            AppDeauthorized(accountID: event.accountID, userID: event.userID, clientID: clientID)
        )
    }

    /// Zoom's `app_deauthorized` (a verified webhook, or an event of an integration's WebSocket subscription): deletes
    /// the tokens it covers, marks the integration (or the host of that user) `needs_reauthorization`, makes the
    /// rooms of open incidents on it `unavailable`, and tells the admins. Applying it twice changes nothing more.
    /// - Returns: what was done, for the log.
    /// - Throws: store errors.
    public func applyAppDeauthorized(_ event: AppDeauthorized) async throws -> String {
        let affected = try await registry.deauthorize(event)
        var lines: [String] = []
        for (integration, host) in affected {
            let reason =
                "Zoom deauthorized \(integration)\(host.map { " for host \($0)" } ?? ""); ask your admin to re-integrate Zoom"
            let rooms = try await provisioner.markUnavailable(integration: integration, host: host, reason: reason)
            let advice =
                host.map {
                    "the host's user must approve the app again: `sitroomctl integration authorize \(integration) \($0)`"
                }
                ?? "authorize the app again in the Zoom App Marketplace, then `sitroomctl integration reauthorize \(integration)`"
            await provisioner.notifyAdminsReauthorize(integration: integration, reason: reason, advice: advice)
            lines.append(
                "\(integration)\(host.map { "/\($0)" } ?? ""): needs_reauthorization, \(rooms.count) room(s) unavailable"
            )
        }
        return lines.isEmpty
            ? "app_deauthorized verified; no integration or host matched" : lines.joined(separator: "; ")
    }

    /// The first of `candidates` whose `webhook_secret_file` verifies `file`.
    /// - Throws: ``WebhookError`` naming each candidate's problem when none does.
    func verifiedIntegration(
        _ file: ZoomWebhookFile,
        candidates: [IntegrationConfig],
        receivedAt: Double
    ) throws -> IntegrationConfig {
        var problems: [String] = []
        for integration in candidates {
            guard let secretFile = integration.webhookSecretFile else {
                problems.append("\(integration.name) has no webhook_secret_file")
                continue
            }
            do {
                let secret = try IntegrationRegistry.readSecret(secretFile, key: "webhook_secret_file")
                try file.verify(secret: secret, receivedAt: receivedAt)
                return integration
            } catch {
                problems.append("\(integration.name): \(error)")
            }
        }
        throw WebhookError(problems.isEmpty ? "no integration of this Zoom account" : problems.joined(separator: "; "))
    }
}

/// Hands the spool's Zoom webhook files to ``DaemonCore/applyZoomWebhook(_:receivedAt:)``.
public struct ZoomWebhookApplier: ZoomWebhookSink {
    let core: DaemonCore

    public init(core: DaemonCore) { self.core = core }

    public func deliver(_ event: ZoomWebhookEvent, fileModifiedAt: Double) async -> ZoomWebhookDisposition {
        do {
            _ = try await core.applyZoomWebhook(event, receivedAt: fileModifiedAt)
            return .applied
        } catch {
            return .rejected(reason: "Zoom webhook refused: \(error)")
        }
    }
}
