import Foundation
import Logging
import SitroomConfig
import SitroomCore
import SitroomNotify
import SitroomRooms
import SitroomStore

// Zoom's meeting events applied to open rooms, and the reconciliation with Zoom after a gap.
extension RoomProvisioner {
    /// Applies one of Zoom's meeting events (from a verified webhook or the WebSocket subscription) to the open
    /// room whose meeting it names; events of meetings sitroom did not make, or of rooms no longer open, change
    /// nothing. Duplicates and events out of order are harmless (``LiveMeeting/apply(_:)``).
    /// - Parameter via: `webhook` or `websocket`, for the log.
    /// - Returns: what it did, for the log.
    @discardableResult
    public func applyMeetingEvent(_ event: ZoomMeetingEvent, via: String) async -> String {
        let store = self.store
        let planner = self.planner
        let now = clock.now()
        var withdrawn: [Notice] = []
        var timings: [(String, Double)] = []
        let outcome: Result<(Room, Bool)?, any Error> = Result {
            try store.write { txn -> (Room, Bool)? in
                withdrawn = []
                timings = []
                guard
                    var room = try txn.rooms.matching({ $0.state.isOpen }).first(where: {
                        $0.meetingID == event.meetingID
                    })
                else { return nil }
                var live = room.live ?? LiveMeeting(status: .waiting, statusAt: 0)
                guard live.apply(event) else { return (room, false) }
                if event.kind == .participantJoined, let record = try txn.incidents.get(room.incidentID) {
                    // Whoever of the participants is in (or has been in) the meeting is not nudged.
                    var present: [Double] = []
                    var firstJoins: [Double] = []
                    for person in record.participants where live.standing(of: person) != .notYet {
                        withdrawn += try planner.joined(room: room, person: person, now: now, txn)
                        if case .present(let since) = live.standing(of: person) { present.append(since) }
                        let email = person.email?.lowercased()
                        firstJoins += live.attendees.filter { $0.email == email }.compactMap(\.firstJoinedAt)
                    }
                    // The times come from the attendees, not this event (a reconciliation may bring an earlier join).
                    if let first = firstJoins.min() {
                        if live.participantFirstJoinAt == nil {
                            timings.append(("sitroom_meeting_first_join_seconds", first - (room.readyAt ?? first)))
                        }
                        live.participantFirstJoinAt = min(live.participantFirstJoinAt ?? first, first)
                    }
                    let expected = record.participants.filter { $0.email != nil }.count
                    if live.assembledAt == nil, expected > 0, present.count == expected, let last = present.max() {
                        live.assembledAt = last  // when the last of them came in
                        timings.append(("sitroom_meeting_assembled_seconds", last - (room.readyAt ?? last)))
                    }
                }
                room.live = live
                try txn.rooms.put(room)
                return (room, true)
            }
        }
        if !withdrawn.isEmpty { await notifier.enqueued(withdrawn) }
        if case .success(_?) = outcome {
            for (name, seconds) in timings { metrics.observe(name, max(0, seconds)) }
        }
        var metadata: Logger.Metadata = [
            "event": "\(event.kind.rawValue)", "meeting": "\(event.meetingID)", "via": "\(via)",
        ]
        if let person = event.person { metadata["participant"] = "\(person.name)" }
        switch outcome {
        case .failure(let error):
            metadata["error"] = "\(error)"
            logger.error("cannot apply a Zoom meeting event", metadata: metadata)
            return "not applied: \(error)"
        case .success(nil):
            logger.debug(
                "Zoom meeting event of no open room (a meeting sitroom did not make, or ended): ignored",
                metadata: metadata
            )
            return "no open room has meeting \(event.meetingID): ignored"
        case .success(let (room, changed)?):
            metadata["room.id"] = "\(room.id)"
            metadata["incident.id"] = "\(room.incidentID)"
            if changed {
                metadata["present"] = "\(room.live?.present.count ?? 0)"
                logger.info("Zoom meeting event applied", metadata: metadata)
                // Counted as Zoom reported them; reconciliation's corrections are not joins or leaves seen.
                if via != "reconcile" {
                    if event.kind == .participantJoined { metrics.increment("sitroom_meeting_joins_total") }
                    if event.kind == .participantLeft { metrics.increment("sitroom_meeting_leaves_total") }
                }
                return "room \(room.id) updated"
            }
            logger.debug(
                "Zoom meeting event changed nothing (a duplicate, or older than what the room knows)",
                metadata: metadata
            )
            return "room \(room.id): nothing new"
        }
    }

    /// Reconciles the open rooms of `integration` with Zoom ("Get a meeting", `GET /meetings/{id}`): Zoom replays no
    /// event missed while sitroomd was not listening, so after each (re)connection of its event subscription, and
    /// at a slow interval, each room's meeting state is set from Zoom's `status` (`started`, or `waiting` for a
    /// meeting not started or ended). A call that fails changes nothing (the next reconciliation tries again).
    /// - Returns: the rooms whose meeting state changed.
    @discardableResult
    public func reconcileMeetings(integration: String) async -> Int {
        guard configuration.integrations[integration] != nil else { return 0 }
        let rooms = ((try? self.rooms(openOnly: true)) ?? []).filter {
            $0.integration == integration && $0.state == .ready && $0.meetingID != nil && !$0.endRequested
        }
        var changed = 0
        for room in rooms {
            guard let meetingID = room.meetingID else { continue }
            let provider: any MeetingProvider
            let status: ProviderMeetingStatus
            do {
                provider = try await providers.meetings(
                    integration,
                    host: room.hostID,
                    user: room.hostUser,
                    incident: room.incidentID
                )
                status = try await provider.status(of: meetingID)
            } catch {
                logger.warning(
                    "cannot reconcile a room's meeting with Zoom",
                    metadata: ["room.id": "\(room.id)", "meeting": "\(meetingID)", "error": "\(error)"]
                )
                continue
            }
            let now = clock.now()
            let current = room.live?.status
            var events: [ZoomMeetingEvent] = []
            if status == .started && current != .started {
                events.append(ZoomMeetingEvent(kind: .started, meetingID: meetingID, uuid: "", accountID: "", at: now))
            } else if status == .waiting && current == .started {
                events.append(ZoomMeetingEvent(kind: .ended, meetingID: meetingID, uuid: "", accountID: "", at: now))
            }
            if status == .started {
                events += await reconcileParticipants(room, provider: provider, now: now)
            }
            if !events.isEmpty {
                logger.info(
                    "meeting state reconciled with Zoom",
                    metadata: [
                        "room.id": "\(room.id)", "meeting": "\(meetingID)", "status": "\(status)",
                        "corrections": "\(events.count)",
                    ]
                )
                var updated = false
                for event in events where await applyMeetingEvent(event, via: "reconcile").hasSuffix("updated") {
                    updated = true
                }
                if updated { changed += 1 }
            }
        }
        return changed
    }

    /// Who is in a started meeting by Zoom's Dashboards list ("List meeting participants", `type=live`) against
    /// who the room thinks is in: joins for the missing, leaves (at `now`) for those gone. Without that API (a plan
    /// without Dashboards), nothing: the room corrects itself from the next events.
    func reconcileParticipants(_ room: Room, provider: any MeetingProvider, now: Double) async -> [ZoomMeetingEvent] {
        guard let meetingID = room.meetingID else { return [] }
        let listed: [ProviderParticipant]
        do {
            listed = try await provider.participants(in: meetingID)
        } catch {
            logger.info(
                "cannot list a meeting's participants (Zoom Dashboards); only its state is reconciled",
                metadata: ["room.id": "\(room.id)", "meeting": "\(meetingID)", "error": "\(error)"]
            )
            return []
        }
        let attendees = readRoom(room.id)?.live?.attendees ?? []
        func same(_ attendee: LiveMeeting.Attendee, _ person: ProviderParticipant) -> Bool {
            if let email = person.email { return attendee.email == email }
            return attendee.email == nil && attendee.name == person.name
        }
        // Matched one to one (two dial-in users of one name are two people): what is left over on either side is a
        // join or a leave the room missed.
        var unmatched = attendees.filter(\.isPresent)
        var rejoined: Set<String> = []
        var events: [ZoomMeetingEvent] = []
        for person in listed {
            if let index = unmatched.firstIndex(where: { same($0, person) }) {
                unmatched.remove(at: index)
                continue
            }
            let key: String
            var at = person.joinedAt
            if let known = attendees.first(where: { !$0.isPresent && !rejoined.contains($0.key) && same($0, person) }) {
                key = known.key  // someone who left and came back: their own entry, so their next leave finds it
                rejoined.insert(key)
                at = max(at, known.leftAt ?? at)  // after the leave the room knows, whatever the two clocks say
            } else {
                let base = LiveMeeting.reconciledPrefix + (person.email ?? "name:\(person.name)")
                let taken =
                    attendees.filter { $0.key.hasPrefix(base) }.count
                    + events.filter { $0.person?.participantUUID.hasPrefix(base) == true }.count
                key = taken == 0 ? base : "\(base)#\(taken + 1)"
            }
            events.append(
                ZoomMeetingEvent(
                    kind: .participantJoined,
                    meetingID: meetingID,
                    uuid: "",
                    accountID: "",
                    at: at,
                    person: .init(participantUUID: key, userID: "", name: person.name, email: person.email)
                )
            )
        }
        for attendee in unmatched {
            events.append(
                ZoomMeetingEvent(
                    kind: .participantLeft,
                    meetingID: meetingID,
                    uuid: "",
                    accountID: "",
                    at: now,
                    person: .init(participantUUID: attendee.key, userID: "", name: attendee.name, email: attendee.email)
                )
            )
        }
        return events
    }
}
