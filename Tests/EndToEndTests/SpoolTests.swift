import Curl
import Foundation
import LMDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The incident spool end to end (SPEC §4): real files in a real spool, real inotify, sitroomd and zoom-sim as
/// processes.
@Suite("incident spool end to end", .serialized)
struct SpoolTests {
    static let roster = """
        teams:
          payments-sre:
            - { name: Ada Lovelace, email: ada@example.com, phone: "+15005550101", role: commander }
            - { name: Grace Hopper, email: grace@example.com, role: responder }
          search:
            - { name: Alan Turing, email: alan@example.com, phone: "+15005550102", role: commander }
            - { name: Katherine Johnson, phone: "+15005550103", role: responder }

        """

    // MARK: Rejections

    @Test("every kind of unusable file goes to rejected/ with a reason, and the daemon keeps going")
    func rejections() async throws {
        let sandbox = try Sandbox(settings: "spool: { max_file_size: 4KiB }")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let spool = "\(sandbox.root)/var/spool/incidents"

            try sandbox.submit("syntax.yaml", "event_id: [unclosed\nstage: situation_room\n")
            try sandbox.submit(
                "missing.yaml",
                "event_id: e-m\noccurred_at: \"2026-11-29T12:00:00Z\"\nstage: opened\nincident: { title: No id }\n"
            )
            try sandbox.submit(
                "typed.yaml",
                "event_id: e-t\noccurred_at: \"2026-11-29T12:00:00Z\"\nstage: opened\nincident: { id: I-T, title: 42 }\n"
            )
            try sandbox.submit("stage.yaml", incidentEvent(id: "e-s", stage: "exploded", incident: "I-S"))
            try sandbox.submit(
                "big.yaml",
                incidentEvent(id: "e-b", stage: "opened", incident: "I-B", title: String(repeating: "x", count: 5000))
            )
            try sandbox.submitBytes(
                "utf8.yaml",
                Array("event_id: e-u\nstage: opened\nincident: { id: I-U, title: ".utf8) + [0xFF, 0xFE]
                    + Array(" }\n".utf8)
            )
            try sandbox.submit("unknown.json", #"{"hello": "world"}"#)
            try sandbox.submit("pd-v2.json", #"{"messages": [{"event": "incident.trigger"}]}"#)
            try sandbox.submitBytes(
                "zoom.http",
                Array(
                    try Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/examples/zoom-app-deauthorized.http"))
                )
            )
            // A symbolic link and a FIFO, renamed into new/ as a feed would.
            try FileManager.default.createSymbolicLink(
                atPath: "\(spool)/tmp/link.yaml",
                withDestinationPath: "/etc/passwd"
            )
            #expect(rename("\(spool)/tmp/link.yaml", "\(spool)/new/link.yaml") == 0)
            #expect(mkfifo("\(spool)/tmp/fifo.yaml", 0o600) == 0)
            #expect(rename("\(spool)/tmp/fifo.yaml", "\(spool)/new/fifo.yaml") == 0)
            try sandbox.submit("good.yaml", incidentEvent(id: "e-good", stage: "situation_room", incident: "I-GOOD"))

            try await sandbox.waitForRoom("I-GOOD", state: "ready")
            let expected: [String: [String]] = [
                "syntax.yaml": ["new/syntax.yaml:", "invalid YAML"],
                "missing.yaml": ["incident.id: required field is missing"],
                "typed.yaml": ["incident.title", "must be a string"],
                "stage.yaml": ["unknown stage 'exploded'"],
                "big.yaml": ["more than the limit of 4096 bytes"],
                "utf8.yaml": ["new/utf8.yaml:3:", "invalid UTF-8 (byte 0xff)"],
                "unknown.json": ["not an incident event sitroom knows"],
                "pd-v2.json": ["PagerDuty webhook v2"],
                "zoom.http": ["Zoom webhook refused", "no integration has client_id sitroom-sim-client"],
                "link.yaml": ["is a symbolic link"],
                "fifo.yaml": ["is a FIFO, not a regular file"],
            ]
            let names = try await waitFor("\(expected.count) rejections") { () -> [String]? in
                let names = sandbox.files("var/spool/incidents/rejected")
                return names.count == expected.count * 2 ? names : nil
            }
            for (name, fragments) in expected {
                #expect(names.contains(name), "\(name) not in rejected/")
                let reason = sandbox.read("var/spool/incidents/rejected/\(name).error")
                for fragment in fragments {
                    #expect(reason.contains(fragment), "\(name).error: \(reason)")
                }
            }
            // The symbolic link was moved, not followed.
            #expect(
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(spool)/rejected/link.yaml"))
                    == "/etc/passwd"
            )
            #expect(sandbox.files("var/spool/incidents/new").isEmpty)
            #expect(sandbox.files("var/spool/incidents/cur") == ["good.yaml"])
            #expect(try await sandbox.ctl(["status"]).code == 0)
        }
    }

    @Test(
        "tmp/ files older than tmp_stale_after go to rejected/; old cur/ and rejected/ files are purged, with a trace"
    )
    func staleAndPurged() async throws {
        let sandbox = try Sandbox(settings: "spool: { keep_cur: 30d, keep_rejected: 90d, tmp_stale_after: 1h }")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            let spool = "\(sandbox.root)/var/spool/incidents"
            let day = 86_400.0
            try sandbox.place("var/spool/incidents/tmp/abandoned.yaml", "event_id: half", age: 2 * 3600)
            try sandbox.place("var/spool/incidents/tmp/writing.yaml", "event_id: busy", age: 10)
            try sandbox.place("var/spool/incidents/cur/old.yaml", "x", age: 31 * day)
            try sandbox.place("var/spool/incidents/cur/recent.yaml", "x", age: 29 * day)
            try sandbox.place("var/spool/incidents/rejected/old.json", "x", age: 91 * day)
            try sandbox.place("var/spool/incidents/rejected/old.json.error", "why", age: 91 * day)
            try sandbox.place("var/spool/incidents/rejected/recent.json", "x", age: 89 * day)
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()

            _ = try await waitFor("housekeeping") { () -> Bool? in
                FileManager.default.fileExists(atPath: "\(spool)/rejected/abandoned.yaml.error")
                    && !FileManager.default.fileExists(atPath: "\(spool)/rejected/old.json") ? true : nil
            }
            #expect(sandbox.files("var/spool/incidents/tmp") == ["writing.yaml"])
            #expect(sandbox.files("var/spool/incidents/cur") == ["recent.yaml"])
            #expect(
                sandbox.files("var/spool/incidents/rejected") == [
                    "abandoned.yaml", "abandoned.yaml.error", "recent.json",
                ]
            )
            let reason = sandbox.read("var/spool/incidents/rejected/abandoned.yaml.error")
            #expect(reason.contains("tmp_stale_after"))
            #expect(reason.contains("never renamed it into new/"))
            #expect(sandbox.read("var/spool/incidents/rejected/abandoned.yaml") == "event_id: half")
            let log = sandbox.daemonLogs()
            for purged in ["cur/old.yaml", "rejected/old.json", "rejected/old.json.error"] {
                #expect(log.contains("spool file purged") && log.contains(purged), "no trace of \(purged)")
            }
        }
    }

    // MARK: Protocol violations and crashes

    @Test("a file written slowly straight into new/ is never read half-written")
    func slowWriter() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let newDirectory = "\(sandbox.root)/var/spool/incidents/new"
            let text = incidentEvent(id: "e-slow", stage: "situation_room", incident: "I-SLOW")
            let half = text.utf8.count / 2

            // Kept open across a pause: the half alone would be a syntax error.
            let fd = open("\(newDirectory)/slow.yaml", O_WRONLY | O_CREAT | O_EXCL, 0o600)
            try #require(fd >= 0)
            Array(text.utf8)[..<half].withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
            try await sandbox.waitForLog("new/slow.yaml: open for writing", count: 2)  // seen twice, still open
            Array(text.utf8)[half...].withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
            close(fd)
            try await sandbox.waitForRoom("I-SLOW", state: "ready")

            // Closed between two writes: the quiet period waits for the second.
            let second = incidentEvent(id: "e-slow-2", stage: "situation_room", incident: "I-SLOW-2")
            let path = "\(newDirectory)/reopened.yaml"
            try String(second.prefix(second.count / 2)).write(toFile: path, atomically: false, encoding: .utf8)
            try await sandbox.waitForLog("new/reopened.yaml: modified")
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(second.dropFirst(second.count / 2).utf8))
            try handle.close()
            try await sandbox.waitForRoom("I-SLOW-2", state: "ready")

            #expect(sandbox.files("var/spool/incidents/rejected").isEmpty)
            #expect(sandbox.files("var/spool/incidents/cur") == ["reopened.yaml", "slow.yaml"])
        }
    }

    @Test("SIGKILL after a file is claimed and before its commit: processed again, exactly once")
    func crashBeforeCommit() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()

            // Hold LMDB's writer lock so sitroomd blocks in the commit of the batch it read.
            let holder = try WriterLockHolder(directory: "\(sandbox.root)/var/lib/sitroom")
            try sandbox.submit(
                "claimed.yaml",
                incidentEvent(id: "e-claimed", stage: "situation_room", incident: "I-CLAIMED")
            )
            try await sandbox.waitForLog("applying spool batch")
            #expect(sandbox.daemonLogs().contains("claimed.yaml"))
            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            holder.release()
            #expect(sandbox.files("var/spool/incidents/new") == ["claimed.yaml"])
            #expect(!sandbox.daemonLogs().contains("event applied"))

            try await sandbox.startDaemon()
            let room = try await sandbox.waitForRoom("I-CLAIMED", state: "ready")
            #expect(sandbox.files("var/spool/incidents/new").isEmpty)
            #expect(sandbox.files("var/spool/incidents/cur") == ["claimed.yaml"])
            let log = sandbox.daemonLogs()
            #expect(log.split(separator: "\n").filter { $0.contains("msg=\"event applied\"") }.count == 1)
            #expect(!log.contains("duplicate event ignored"))
            #expect(try await sandbox.simMeetings(room: room["room_id"] as? String ?? "").count == 1)
        }
    }

    // MARK: Alertmanager and PagerDuty

    @Test("Alertmanager: firing, re-notification, grouped alerts, a non-critical group, resolved")
    func alertmanager() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.write("etc/roster.yaml", Self.roster)
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let examples = "\(repositoryRoot)/examples"
            let firing = try String(contentsOfFile: "\(examples)/alertmanager-firing.json", encoding: .utf8)

            #expect(try await sandbox.ctl(["submit", "\(examples)/alertmanager-firing.json"]).code == 0)
            let incident = try await waitFor("the Alertmanager incident") { () -> String? in
                let out = try await sandbox.ctl(["rooms", "all", "--json"]).out
                let rooms = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [[String: Any]] ?? []
                return rooms.first.flatMap { $0["incident"] as? String }
            }
            #expect(incident.hasPrefix("am-PaymentsAPIErrorRate-"))
            let room = try await sandbox.waitForRoom(incident, state: "ready")
            let roomID = try #require(room["room_id"] as? String)
            let joinURL = try #require(room["join_url"] as? String)
            // The roster team of the `team` label: Ada (email, SMS), Grace (email).
            let mails = try await waitFor("two emails") {
                sandbox.files("var/mail/new").count == 2 ? sandbox.files("var/mail/new") : nil
            }
            #expect(mails.allSatisfy { sandbox.mail($0).contains(joinURL) })
            _ = try await waitFor("one SMS") { sandbox.files("var/sms/new").count == 1 ? true : nil }

            // Alertmanager re-sends the unchanged group every repeat_interval: a duplicate.
            try sandbox.submit("am-repeat.json", firing)
            try await sandbox.waitForLog("spool file was a duplicate")
            // A third alert joins the group: the same incident, a new event, still one meeting.
            var object = try JSONSerialization.jsonObject(with: Data(firing.utf8)) as! [String: Any]
            var alerts = object["alerts"] as! [[String: Any]]
            var third = alerts[0]
            third["fingerprint"] = "ffff000011112222"
            third["startsAt"] = "2026-11-29T12:05:00Z"
            var labels = third["labels"] as! [String: Any]
            labels["instance"] = "api-3:9100"
            third["labels"] = labels
            alerts.append(third)
            object["alerts"] = alerts
            try sandbox.submit(
                "am-grouped.json",
                String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            )
            _ = try await waitFor("three files in cur/") {
                sandbox.files("var/spool/incidents/cur").count == 3 ? true : nil
            }
            #expect(try await sandbox.room(incident)?["room_id"] as? String == roomID)

            // A warning-only group records an incident without a room.
            let warning = firing.replacingOccurrences(of: "critical", with: "warning")
                .replacingOccurrences(of: "PaymentsAPIErrorRate", with: "PaymentsLatency")
            try sandbox.submit("am-warning.json", warning)
            _ = try await waitFor("four files in cur/") {
                sandbox.files("var/spool/incidents/cur").count == 4 ? true : nil
            }
            let rooms = try await sandbox.ctl(["rooms", "all", "--json"]).out
            #expect(((try JSONSerialization.jsonObject(with: Data(rooms.utf8))) as? [Any])?.count == 1)

            // Resolved: the meeting is ended (and deleted: no hold-down here).
            #expect(try await sandbox.ctl(["submit", "\(examples)/alertmanager-resolved.json"]).code == 0)
            try await sandbox.waitForRoom(incident, state: "ended")
            let meetings = try await sandbox.simMeetings(room: roomID)
            #expect(meetings.count == 1)
            #expect(meetings.first?["status"] as? String == "deleted")
            #expect(try await sandbox.allSimMeetings().count == 1)
            #expect(sandbox.files("var/spool/incidents/rejected").isEmpty)
        }
    }

    @Test("PagerDuty: triggered, priority raised, escalation, resolved, reopened within the hold-down")
    func pagerduty() async throws {
        let sandbox = try Sandbox(
            holdDown: "10m",
            settings: "feeds: { pagerduty: { situation_room_when: { priority: P1 } } }"
        )
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.write("etc/roster.yaml", Self.roster)
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let examples = "\(repositoryRoot)/examples"
            let incident = "pd-Q2K3PJ7ZB1XV4L"

            // Low priority: the incident is recorded, no room.
            #expect(try await sandbox.ctl(["submit", "\(examples)/pagerduty-triggered.json"]).code == 0)
            let none = try await waitFor("the incident") { () -> String? in
                let result = try await sandbox.ctl(["room", "show", incident])
                return result.err.contains("has no room") ? result.err : nil
            }
            #expect(none.contains("stage opened"))

            // P1: the room opens; the assignee (Alan) gets the link.
            #expect(try await sandbox.ctl(["submit", "\(examples)/pagerduty-priority-updated.json"]).code == 0)
            let room = try await sandbox.waitForRoom(incident, state: "ready")
            let roomID = try #require(room["room_id"] as? String)
            let joinURL = try #require(room["join_url"] as? String)
            _ = try await waitFor("Alan's email") { () -> Bool? in
                sandbox.files("var/mail/new").contains {
                    sandbox.mail($0).contains("alan@example.com")
                } ? true : nil
            }

            // Escalated to Katherine (phone only): she gets an SMS with the same link.
            #expect(try await sandbox.ctl(["submit", "\(examples)/pagerduty-escalated.json"]).code == 0)
            _ = try await waitFor("Katherine's SMS") { () -> Bool? in
                sandbox.files("var/sms/new").contains {
                    let sms = sandbox.read("var/sms/new/\($0)")
                    return sms.contains("+15005550103") && sms.contains(joinURL)
                } ? true : nil
            }
            #expect(try await sandbox.room(incident)?["room_id"] as? String == roomID)

            // Resolved: ended; within the hold-down the meeting is ended but kept.
            #expect(try await sandbox.ctl(["submit", "\(examples)/pagerduty-resolved.json"]).code == 0)
            try await sandbox.waitForRoom(incident, state: "ended")
            #expect(try await sandbox.simMeetings(room: roomID).first?["status"] as? String == "ended")

            // A late, older priority change after the resolve does not reopen.
            try sandbox.submit(
                "pd-late.json",
                try Self.pagerDuty(from: "pagerduty-priority-updated.json", id: "late", at: "2026-11-29T13:30:00Z")
            )
            try await sandbox.waitForLog("event.id=pd-late")
            #expect(try await sandbox.room(incident)?["state"] as? String == "ended")

            // Reopened: the same room and meeting come back; nobody is told twice.
            let mailsBefore = sandbox.files("var/mail/new").count
            try sandbox.submit(
                "pd-reopened.json",
                try Self.pagerDuty(
                    from: "pagerduty-escalated.json",
                    id: "reopen",
                    at: "2026-11-29T14:00:00Z",
                    type: "incident.reopened"
                )
            )
            let reopened = try await sandbox.waitForRoom(incident, state: "ready")
            #expect(reopened["room_id"] as? String == roomID)
            #expect(reopened["join_url"] as? String == joinURL)
            #expect(try await sandbox.allSimMeetings().count == 1)
            #expect(sandbox.files("var/mail/new").count == mailsBefore)
        }
    }

    @Test("after the hold-down the meeting is deleted (also across a restart); a later reopen gets a new room")
    func holdDownPasses() async throws {
        let sandbox = try Sandbox(holdDown: "2s")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            try sandbox.submit("h-open.yaml", incidentEvent(id: "h-open", stage: "situation_room", incident: "I-H"))
            let room = try await sandbox.waitForRoom("I-H", state: "ready")
            let roomID = try #require(room["room_id"] as? String)
            try sandbox.submit(
                "h-resolved.yaml",
                incidentEvent(id: "h-resolved", stage: "resolved", incident: "I-H", at: "2026-11-29T12:10:00Z")
            )
            try await sandbox.waitForRoom("I-H", state: "ended")
            #expect(try await sandbox.simMeetings(room: roomID).first?["status"] as? String == "ended")

            // A crash while the deletion waits out the hold-down: the restarted daemon still deletes it.
            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            try await sandbox.startDaemon()
            _ = try await waitFor("the meeting to be deleted") { () -> Bool? in
                try await sandbox.simMeetings(room: roomID).first?["status"] as? String == "deleted" ? true : nil
            }
            try await sandbox.waitForLog("meeting deleted after the reopen hold-down")

            // Reopened after that: the old meeting is gone, so a new room (and meeting) it is.
            try sandbox.submit(
                "h-reopened.yaml",
                incidentEvent(id: "h-reopened", stage: "reopened", incident: "I-H", at: "2026-11-29T12:20:00Z")
            )
            let reopened = try await waitFor("a new room") { () -> [String: Any]? in
                guard let room = try await sandbox.room("I-H"), room["room_id"] as? String != roomID,
                    room["state"] as? String == "ready"
                else { return nil }
                return room
            }
            #expect(reopened["join_url"] as? String != room["join_url"] as? String)
            #expect(try await sandbox.allSimMeetings().count == 2)
        }
    }

    @Test("a reopen within the hold-down whose meeting was deleted in Zoom meanwhile gets a new room")
    func reopenedMeetingGone() async throws {
        let sandbox = try Sandbox(holdDown: "10m")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            try sandbox.submit("g-open.yaml", incidentEvent(id: "g-open", stage: "situation_room", incident: "I-G"))
            let room = try await sandbox.waitForRoom("I-G", state: "ready")
            let roomID = try #require(room["room_id"] as? String)
            let meetingID = try #require((room["meeting_id"] as? NSNumber)?.int64Value)
            try sandbox.submit(
                "g-resolved.yaml",
                incidentEvent(id: "g-resolved", stage: "resolved", incident: "I-G", at: "2026-11-29T12:10:00Z")
            )
            try await sandbox.waitForRoom("I-G", state: "ended")
            // Somebody deletes the meeting in Zoom (here through the API, as the web portal would).
            #expect(try await sandbox.zoomDelete(meetingID) == 204)

            try sandbox.submit(
                "g-reopened.yaml",
                incidentEvent(id: "g-reopened", stage: "reopened", incident: "I-G", at: "2026-11-29T12:12:00Z")
            )
            let reopened = try await waitFor("a new room") { () -> [String: Any]? in
                guard let room = try await sandbox.room("I-G"), room["room_id"] as? String != roomID,
                    room["state"] as? String == "ready"
                else { return nil }
                return room
            }
            #expect(reopened["join_url"] as? String != room["join_url"] as? String)
            #expect(try await sandbox.allSimMeetings().count == 2)
            try await sandbox.waitForLog("room not reopened")
        }
    }

    @Test("a backlog applied in one batch makes no room for an incident opened and resolved within it")
    func batchDropsResolvedRooms() async throws {
        let sandbox = try Sandbox()
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            sandbox.daemon?.signal(SIGTERM)
            #expect(try await sandbox.daemon?.waitForExit() == 0)
            // While sitroomd is down: resolve first in name order, but later in occurred_at.
            try sandbox.submit(
                "a-resolved.yaml",
                incidentEvent(id: "x-resolved", stage: "resolved", incident: "I-X", at: "2026-11-29T12:05:00Z")
            )
            try sandbox.submit("b-open.yaml", incidentEvent(id: "x-open", stage: "situation_room", incident: "I-X"))
            try sandbox.submit("c-other.yaml", incidentEvent(id: "y-open", stage: "situation_room", incident: "I-Y"))
            try await sandbox.startDaemon()

            try await sandbox.waitForRoom("I-Y", state: "ready")
            _ = try await waitFor("all three applied") {
                sandbox.files("var/spool/incidents/cur").count == 3 ? true : nil
            }
            let shown = try await sandbox.ctl(["room", "show", "I-X"])
            #expect(shown.err.contains("has no room (stage resolved)"))
            #expect(try await sandbox.allSimMeetings().count == 1)
            #expect(sandbox.daemonLogs().contains("count=3"))  // one batch
        }
    }

    /// An example PagerDuty payload with another event id, time and (optionally) type.
    static func pagerDuty(from example: String, id: String, at time: String, type: String? = nil) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/examples/\(example)"))
        var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        var event = object["event"] as! [String: Any]
        event["id"] = id
        event["occurred_at"] = time
        if let type { event["event_type"] = type }
        object["event"] = event
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test("an alert flapping 20 times between firing and resolved within the hold-down gets one meeting")
    func flapping() async throws {
        let sandbox = try Sandbox(holdDown: "10m")
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try sandbox.write("etc/roster.yaml", Self.roster)
            try await sandbox.startSim()
            try sandbox.writeIntegration()
            try await sandbox.startDaemon()
            let start = Date(timeIntervalSince1970: 1_795_950_000)
            func payload(_ cycle: Int, resolved: Bool) -> String {
                let starts = Self.rfc3339(start.addingTimeInterval(Double(cycle) * 60))
                let ends =
                    resolved ? Self.rfc3339(start.addingTimeInterval(Double(cycle) * 60 + 30)) : "0001-01-01T00:00:00Z"
                let status = resolved ? "resolved" : "firing"
                return """
                    {"version":"4","groupKey":"{}:{alertname=\\"Flappy\\"}","status":"\(status)","receiver":"sitroom",
                     "groupLabels":{"alertname":"Flappy"},"commonLabels":{"alertname":"Flappy","severity":"critical","team":"search"},
                     "commonAnnotations":{"summary":"Flappy service"},"externalURL":"http://am",
                     "alerts":[{"status":"\(status)","labels":{"alertname":"Flappy","severity":"critical","team":"search"},
                       "annotations":{},"startsAt":"\(starts)","endsAt":"\(ends)","generatorURL":"","fingerprint":"f1a9"}]}
                    """
            }
            // The first cycles one at a time (the meeting is made, ended, taken back) ...
            try sandbox.submit("flap-00-f.json", payload(0, resolved: false))
            let incident = try await waitFor("the incident") { () -> String? in
                let out = try await sandbox.ctl(["rooms", "all", "--json"]).out
                let rooms = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [[String: Any]] ?? []
                return rooms.first.flatMap { $0["incident"] as? String }
            }
            let room = try await sandbox.waitForRoom(incident, state: "ready")
            try sandbox.submit("flap-00-r.json", payload(0, resolved: true))
            try await sandbox.waitForRoom(incident, state: "ended")
            try sandbox.submit("flap-01-f.json", payload(1, resolved: false))
            let back = try await sandbox.waitForRoom(incident, state: "ready")
            #expect(back["room_id"] as? String == room["room_id"] as? String)
            // ... then the rest as fast as they come.
            try sandbox.submit("flap-01-r.json", payload(1, resolved: true))
            for cycle in 2..<20 {
                try sandbox.submit(String(format: "flap-%02d-f.json", cycle), payload(cycle, resolved: false))
                try sandbox.submit(String(format: "flap-%02d-r.json", cycle), payload(cycle, resolved: true))
            }
            _ = try await waitFor("all 40 files in cur/") {
                sandbox.files("var/spool/incidents/cur").count == 40 ? true : nil
            }
            let final = try await sandbox.waitForRoom(incident, state: "ended")
            #expect(final["room_id"] as? String == room["room_id"] as? String)
            let all = try await sandbox.allSimMeetings()
            #expect(all.count == 1)
            #expect(all.first?["status"] as? String == "ended")  // kept for the hold-down
            #expect(sandbox.files("var/spool/incidents/rejected").isEmpty)
        }
    }

    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    // MARK: Chaos

    @Test(
        "a move to cur/ lost to a crash (the moves are not fsynced): the file back in new/ is a duplicate at the next start"
    )
    func lostMoveIsADuplicate() async throws {
        let sandbox = try Sandbox(hosts: 1)
        defer { sandbox.tearDown() }
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 1)
            try await sandbox.startDaemon()
            try sandbox.submit("lost.yaml", incidentEvent(id: "evt-lost", stage: "situation_room", incident: "I-LOST"))
            let room = try await sandbox.waitForRoom("I-LOST", state: "ready")
            _ = try await waitFor("the file in cur/") {
                sandbox.files("var/spool/incidents/cur") == ["lost.yaml"] ? true : nil
            }
            sandbox.daemon?.signal(SIGKILL)
            _ = try await sandbox.daemon?.waitForExit()
            // As if the rename into cur/ never reached the disk: the file is in new/ again.
            let spool = "\(sandbox.root)/var/spool/incidents"
            try FileManager.default.moveItem(atPath: "\(spool)/cur/lost.yaml", toPath: "\(spool)/new/lost.yaml")

            try await sandbox.startDaemon()
            try await sandbox.waitForLog("spool file was a duplicate")
            _ = try await waitFor("new/ empty") { sandbox.files("var/spool/incidents/new").isEmpty ? true : nil }
            #expect(sandbox.files("var/spool/incidents/cur") == ["lost.yaml"])
            #expect(try await sandbox.simMeetings(room: room["room_id"] as? String ?? "").count == 1)
            let applied = sandbox.daemonLogs().split(separator: "\n").filter { $0.contains("msg=\"event applied\"") }
            #expect(applied.count == 1)
        }
    }

    @Test("chaos: SIGKILL at random moments while incidents flow; every event applied once, one meeting each")
    func chaos() async throws {
        let rounds = 12
        let sandbox = try Sandbox(hosts: 10)
        defer { sandbox.tearDown() }
        var generator = SystemRandomNumberGenerator()
        try await sandbox.recordingLogs {
            try await sandbox.startSim()
            try sandbox.writeIntegration(hosts: 10)
            try await sandbox.startDaemon()
            var accepted: [String] = []
            var resolved: Set<Int> = []
            var people: [Int: [String]] = [:]
            var opened: [Int: String] = [:]
            for round in 0..<rounds {
                let time = "2026-11-29T12:\(String(format: "%02d", round)):00Z"
                opened[round] = incidentEvent(
                    id: "c\(round)-open",
                    stage: "situation_room",
                    incident: "INC-C\(round)",
                    at: time,
                    participants: """
                          - { name: Lead \(round), email: lead\(round)@example.com, phone: "+1500555\(String(format: "%04d", round))", role: commander }
                          - { name: Helper \(round), email: helper\(round)@example.com, role: responder }
                        """
                )
                try sandbox.submit("c\(round)-open.yaml", opened[round]!)
                accepted.append("c\(round)-open")
                people[round] = ["lead\(round)@example.com", "helper\(round)@example.com"]
                if round > 0 {
                    // The previous incident's event again, the same bytes under another name (a feed retrying):
                    // whichever of the two is applied first, the other is a duplicate.
                    try sandbox.submit("c\(round)-dup.yaml", opened[round - 1]!)
                }
                if round > 0, round % 3 == 0 {
                    try sandbox.submit(
                        "c\(round)-resolve.yaml",
                        incidentEvent(
                            id: "c\(round - 2)-resolve",
                            stage: "resolved",
                            incident: "INC-C\(round - 2)",
                            at: time
                        )
                    )
                    accepted.append("c\(round - 2)-resolve")
                    resolved.insert(round - 2)
                } else if round > 0 {
                    try sandbox.submit(
                        "c\(round)-update.yaml",
                        incidentEvent(
                            id: "c\(round - 1)-update",
                            stage: "updated",
                            incident: "INC-C\(round - 1)",
                            at: time,
                            participants: "      - { name: Late \(round - 1), email: late\(round - 1)@example.com }"
                        )
                    )
                    accepted.append("c\(round - 1)-update")
                    people[round - 1, default: []].append("late\(round - 1)@example.com")
                }
                let moment = UInt64.random(in: 0...400, using: &generator)
                try await Task.sleep(for: .milliseconds(moment))  // waits-on-purpose: the random moment of the kill
                sandbox.daemon?.signal(SIGKILL)
                _ = try await sandbox.daemon?.waitForExit()
                try await sandbox.startDaemon()
            }

            // Everything settles: new/ empty, each room in its final state.
            _ = try await waitFor("new/ to empty", timeout: 60) {
                sandbox.files("var/spool/incidents/new").isEmpty ? true : nil
            }
            for round in 0..<rounds {
                try await sandbox.waitForRoom(
                    "INC-C\(round)",
                    state: resolved.contains(round) ? "ended" : "ready",
                    timeout: 60
                )
            }
            let meetings = try await sandbox.allSimMeetings()
            for round in 0..<rounds {
                let mine = meetings.filter { ($0["agenda"] as? String)?.contains("Incident INC-C\(round):") == true }
                if resolved.contains(round) {
                    #expect(mine.count <= 1, "INC-C\(round) has \(mine.count) meetings")
                } else {
                    #expect(mine.count == 1, "INC-C\(round) has \(mine.count) meetings")
                }
            }
            // Every participant of an open incident has exactly one email with the link (and the lead one SMS).
            for round in 0..<rounds where !resolved.contains(round) {
                let room = try #require(try await sandbox.room("INC-C\(round)"))
                let joinURL = try #require(room["join_url"] as? String)
                try await sandbox.expectToldOnce(
                    emails: people[round] ?? [],
                    phone: "+1500555\(String(format: "%04d", round))",
                    joinURL: joinURL,
                    timeout: 20
                )
            }
            #expect(sandbox.files("var/spool/incidents/rejected").isEmpty)

            // Every accepted event is recorded in LMDB, and none was applied twice.
            sandbox.daemon?.signal(SIGTERM)
            _ = try await sandbox.daemon?.waitForExit()
            let environment = try Environment(
                path: "\(sandbox.root)/var/lib/sitroom",
                mapSize: 64 << 20,
                maxDatabases: 16
            )
            let events = try environment.database(named: "events")
            let missing = try environment.read { txn -> [String] in
                var missing: [String] = []
                for id in accepted where try txn.get(events, id) == nil { missing.append(id) }
                return missing
            }
            #expect(missing.isEmpty, "events never applied: \(missing)")
            let applied = sandbox.daemonLogs().split(separator: "\n").filter { $0.contains("msg=\"event applied\"") }
            for id in accepted {
                let times = applied.filter { $0.contains("event.id=\(id) ") }.count
                #expect(times <= 1, "\(id) applied \(times) times")
            }
        }
    }
}

/// Holds LMDB's writer lock of an environment from a thread of its own until released, so that another
/// process's commit blocks (the moment between reading a spool file and committing its effect).
final class WriterLockHolder: @unchecked Sendable {
    // Invariant: `environment` is used only by `thread` after init; `acquired`/`done` are semaphores.
    private let acquired = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var thread: Thread?

    struct Release: Error {}

    init(directory: String) throws {
        let environment = try Environment(path: directory, mapSize: 64 << 20, maxDatabases: 16)
        let acquired = self.acquired
        let done = self.done
        let thread = Thread {
            _ = try? environment.write { _ -> Void in
                acquired.signal()
                done.wait()
                throw Release()  // abort: nothing is written
            }
            acquired.signal()  // in case the write never began
        }
        self.thread = thread
        thread.start()
        acquired.wait()
    }

    func release() {
        done.signal()
    }
}

extension Sandbox {
    /// Delivers raw bytes by the maildir protocol (tmp/, then rename into new/).
    func submitBytes(_ name: String, _ bytes: [UInt8]) throws {
        let spool = "\(root)/var/spool/incidents"
        try Data(bytes).write(to: URL(fileURLWithPath: "\(spool)/tmp/\(name)"))
        guard rename("\(spool)/tmp/\(name)", "\(spool)/new/\(name)") == 0 else {
            throw TimedOut(what: "rename \(name)")
        }
    }

    /// Writes a file whose modification time is `age` seconds in the past.
    func place(_ relative: String, _ text: String, age: Double) throws {
        try write(relative, text)
        let time = Date().addingTimeInterval(-age)
        try FileManager.default.setAttributes([.modificationDate: time], ofItemAtPath: "\(root)/\(relative)")
    }

    /// Waits until the daemons' logs hold `fragment` at least `count` times.
    func waitForLog(_ fragment: String, count: Int = 1, timeout: Double = 20) async throws {
        _ = try await waitFor("'\(fragment)' in the log", timeout: timeout) {
            daemonLogs().components(separatedBy: fragment).count - 1 >= count ? true : nil
        }
    }

    /// Deletes a meeting through the Zoom API of the simulator with the sandbox app's own credentials.
    /// - Returns: the HTTP status of `DELETE /v2/meetings/{id}`.
    func zoomDelete(_ meetingID: Int64) async throws -> Int {
        let secret = read("etc/secrets/zoom.secret").trimmingCharacters(in: .whitespacesAndNewlines)
        let basic = Data("e2e-client:\(secret)".utf8).base64EncodedString()
        let token = try await http.send(
            HTTPRequest(
                method: .post,
                url: "http://127.0.0.1:\(simPort)/oauth/token?grant_type=account_credentials&account_id=AcctE2E",
                headers: [(name: "Authorization", value: "Basic \(basic)")],
                body: []
            )
        )
        let object = try JSONSerialization.jsonObject(with: Data(token.body)) as? [String: Any]
        let access = object?["access_token"] as? String ?? ""
        return try await http.send(
            HTTPRequest(
                method: .delete,
                url: "http://127.0.0.1:\(simPort)/v2/meetings/\(meetingID)",
                headers: [(name: "Authorization", value: "Bearer \(access)")]
            )
        ).status
    }

    /// Every meeting the simulator ever made.
    func allSimMeetings() async throws -> [[String: Any]] {
        let all = try await simGET("/_sim/meetings")
        return (all as? [[String: Any]]) ?? ((all as? [String: Any])?["meetings"] as? [[String: Any]]) ?? []
    }
}
