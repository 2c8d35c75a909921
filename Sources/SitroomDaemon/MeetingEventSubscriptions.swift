import Logging
import SitroomConfig
import SitroomCore
import SitroomZoom
import SitroomZoomEvents
import Synchronization

/// Which integrations' meeting events are known to be complete now: false from a WebSocket subscription's start
/// until it is connected and has reconciled its rooms, and again while it is disconnected. The notifier holds a nudge
/// of such an integration's room (someone may have joined unheard). Integrations without a subscription (webhooks:
/// sitroomd cannot tell) count as complete.
public final class MeetingEventsReadiness: Sendable {
    private let unsettled = Mutex<Set<String>>([])

    public init() {}

    /// Whether `integration`'s events can be trusted to say who has not joined.
    public func isComplete(_ integration: String) -> Bool { unsettled.withLock { !$0.contains(integration) } }

    func set(_ integration: String, complete: Bool) {
        unsettled.withLock { if complete { $0.remove(integration) } else { $0.insert(integration) } }
    }
}

/// The WebSocket event subscriptions of the integrations that have one (`events.websocket`): one
/// ``ZoomEventSubscription`` each, connected by sitroomd itself (outbound only). Their meeting events go to
/// ``RoomProvisioner/applyMeetingEvent(_:via:)``, the same applier as the webhooks'; after each (re)connection and
/// every ``reconcileInterval`` seconds the integration's open rooms are reconciled with Zoom
/// (``RoomProvisioner/reconcileMeetings(integration:)``), since Zoom replays nothing missed while disconnected.
public actor MeetingEventSubscriptions {
    /// Seconds between reconciliations while connected (a missed event is corrected within this).
    public static let reconcileInterval: Double = 300

    private struct Running {
        var settings: MeetingEventSources.WebSocket
        var task: Task<Void, Never>
        var reconciler: Task<Void, Never>
    }

    private let provisioner: RoomProvisioner
    private let registry: IntegrationRegistry
    private let metrics: SitroomMetrics
    private let logger: Logger
    private var running: [String: Running] = [:]
    private var states: [String: ZoomEventSubscription.State] = [:]
    /// Integrations whose subscription has been connected once (a later connection is a reconnect).
    private var connectedOnce: Set<String> = []
    private var stopped = false
    /// What `app_deauthorized` over a subscription does (the daemon's ``DaemonCore/applyAppDeauthorized(_:)``).
    private var deauthorized: @Sendable (AppDeauthorized) async -> Void = { _ in }

    /// Sets what an `app_deauthorized` arriving over a subscription does (before ``configure(_:)``).
    public func setDeauthorizationHandler(_ handler: @escaping @Sendable (AppDeauthorized) async -> Void) {
        deauthorized = handler
    }

    /// Whose events are complete now (read by the notifier).
    public nonisolated let readiness = MeetingEventsReadiness()

    public init(provisioner: RoomProvisioner, registry: IntegrationRegistry, metrics: SitroomMetrics, logger: Logger) {
        self.provisioner = provisioner
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    /// Starts the subscriptions `configuration` names, stops those it no longer names, restarts changed ones.
    public func configure(_ configuration: Configuration) {
        guard !stopped else { return }
        var wanted: [String: MeetingEventSources.WebSocket] = [:]
        for (name, integration) in configuration.integrations {
            if let socket = integration.events.websocket { wanted[name] = socket }
        }
        for (name, entry) in running where wanted[name] != entry.settings {
            entry.task.cancel()
            entry.reconciler.cancel()
            running[name] = nil
            states[name] = nil
            readiness.set(name, complete: true)
            logger.info("Zoom event subscription stopped", metadata: ["integration": "\(name)"])
        }
        for (name, settings) in wanted.sorted(by: { $0.key < $1.key }) where running[name] == nil {
            readiness.set(name, complete: false)
            running[name] = start(name, settings)
        }
    }

    /// Stops every subscription (shutdown).
    public func stop() {
        stopped = true
        for entry in running.values {
            entry.task.cancel()
            entry.reconciler.cancel()
        }
        running = [:]
    }

    /// Each subscription and whether it is connected, for the metrics and `status`.
    public func snapshot() -> [(integration: String, state: ZoomEventSubscription.State)] {
        running.keys.sorted().map { ($0, states[$0] ?? .connecting) }
    }

    private func start(_ name: String, _ settings: MeetingEventSources.WebSocket) -> Running {
        let provisioner = self.provisioner
        let registry = self.registry
        var logger = self.logger
        logger[metadataKey: "integration"] = "\(name)"
        let subscription = ZoomEventSubscription(
            url: settings.url,
            subscriptionID: settings.subscriptionID,
            logger: logger,
            token: { fresh in
                if fresh { try? await registry.invalidateToken(name) }
                return try await registry.accessToken(name)
            },
            onEvent: { event in await provisioner.applyMeetingEvent(event, via: "websocket") },
            onState: { [weak self] state, _ in await self?.changed(name, state) },
            onConnected: { [weak self] in
                await provisioner.reconcileMeetings(integration: name)
                await self?.reconciled(name)
            },
            onDeauthorized: deauthorized
        )
        let task = Task { await subscription.run() }
        let reconciler = Task { [weak self] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(Self.reconcileInterval)) } catch { return }
                if await self?.states[name] == .connected { await provisioner.reconcileMeetings(integration: name) }
            }
        }
        logger.info("Zoom event subscription started", metadata: ["url": "\(settings.url)"])
        return Running(settings: settings, task: task, reconciler: reconciler)
    }

    /// Connected and reconciled: the integration's events are complete again.
    private func reconciled(_ name: String) {
        if running[name] != nil, states[name] == .connected { readiness.set(name, complete: true) }
    }

    private func changed(_ name: String, _ state: ZoomEventSubscription.State) {
        guard running[name] != nil else { return }
        states[name] = state
        if state != .connected { readiness.set(name, complete: false) }
        if state == .connected {
            if connectedOnce.contains(name) {
                metrics.increment("sitroom_zoom_event_subscription_reconnects_total", [("integration", name)])
            }
            connectedOnce.insert(name)
        }
    }
}
