import ArgumentParser
import Curl
import Foundation
import LMDB
import PosixIO
import SitroomCore
import SitroomStore
import SitroomZoom

/// The Swift half of `make bench` (README "Performance"): the floor of sitroom's parts and the store prefill
/// for the start-up figure. `scripts/bench` runs it, starts zoom-sim and sitroomd, and prints the table.
///
/// A plain executable rather than an ordo-one/benchmark suite: that package needs swift-tools 6.1 traits and
/// minutes of extra build, and most figures here are of other processes (sitroomd, zoom-sim) that its
/// in-process harness cannot time.
@main
struct SitroomBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitroom-bench",
        abstract: "Measures the floor of sitroom's parts; prefills a store for the start-up figure.",
        subcommands: [Floor.self, Prefill.self]
    )
}

/// A minimal sequential loop per incident over the parts sitroomd uses: one synced LMDB commit of a room-sized
/// value, one create-meeting POST to zoom-sim over a reused libcurl handle, one fsynced maildir message with its
/// directory fsync. Prints one JSON object (milliseconds).
struct Floor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the floor loop; print JSON.")

    @Option(help: "Scratch directory (LMDB environment and maildir are made under it).")
    var directory: String

    @Option(help: "zoom-sim's API base URL, e.g. http://127.0.0.1:PORT/v2.")
    var apiURL: String

    @Option(help: "zoom-sim's OAuth base URL, e.g. http://127.0.0.1:PORT/oauth.")
    var oauthURL: String

    @Option(help: "Account id of the S2S app.") var accountID: String
    @Option(help: "Client id of the S2S app.") var clientID: String
    @Option(help: "File holding the client secret.") var clientSecretFile: String
    @Option(help: "Zoom user to create meetings for.") var user: String
    @Option(help: "Incidents to loop over.") var count = 200

    func run() async throws {
        let secret = try String(contentsOfFile: clientSecretFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let lmdbDirectory = directory + "/lmdb"
        let mail = directory + "/mail"
        for path in [lmdbDirectory, mail, mail + "/tmp", mail + "/new"] {
            try DurableFile.makeDirectory(path, mode: 0o700)
        }
        let environment = try Environment(path: lmdbDirectory, mapSize: 64 << 20)
        let rooms = try environment.database(named: "rooms")
        let http = HTTPClient(maxConnectionsPerOrigin: 1)
        defer { http.shutdown() }
        let zoom = ZoomClient(http: http, apiURL: apiURL, oauthURL: oauthURL)
        let token = try await zoom.requestAccountToken(accountID: accountID, clientID: clientID, clientSecret: secret)
        let settings = MeetingRequest.Settings(
            waitingRoom: false,
            joinBeforeHost: true,
            autoRecording: "none",
            alternativeHosts: nil
        )
        let message = Array(
            String(repeating: "Subject: floor notice\r\nTo: ada@example.com\r\n\r\n", count: 1)
                .appending(String(repeating: "The situation room is open: https://zoom.example/j/1\r\n", count: 30))
                .utf8
        )

        var lmdb: [Double] = []
        var request: [Double] = []
        var notice: [Double] = []
        var total: [Double] = []
        let started = DispatchTime.now().uptimeNanoseconds
        for n in 0..<count {
            let t0 = DispatchTime.now().uptimeNanoseconds
            var room = Room(id: "floor-\(n)", incidentID: "INC-F\(n)", createdAt: Date().timeIntervalSince1970)
            room.state = .ready
            room.integration = "zoom-main"
            room.hostID = "bridge-0"
            room.hostUser = user
            room.createPhase = .done
            room.meetingID = 85_000_000_000 + Int64(n)
            room.joinURL = "https://zoom.example/j/\(85_000_000_000 + n)?pwd=abcdef"
            room.passcode = "123456"
            let value = try Store.encode(room)
            try environment.write { txn in _ = try txn.put(rooms, room.id, value) }
            let t1 = DispatchTime.now().uptimeNanoseconds
            let meeting = MeetingRequest(
                topic: "Floor incident \(n)",
                startTime: "2026-01-01T00:00:00Z",
                duration: 60,
                password: "123456",
                agenda: "sitroom:floor-\(n)",
                settings: settings
            )
            _ = try await zoom.createMeeting(token: token.value, userID: user, meeting)
            let t2 = DispatchTime.now().uptimeNanoseconds
            try DurableFile.write(
                message,
                name: "floor-\(n).eml",
                tmpDirectory: mail + "/tmp",
                finalDirectory: mail + "/new"
            )
            let t3 = DispatchTime.now().uptimeNanoseconds
            lmdb.append(Double(t1 - t0) / 1e6)
            request.append(Double(t2 - t1) / 1e6)
            notice.append(Double(t3 - t2) / 1e6)
            total.append(Double(t3 - t0) / 1e6)
        }
        let wall = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
        let result: [String: Any] = [
            "count": count,
            "wall_ms": wall,
            "per_incident_ms": wall / Double(count),
            "lmdb_commit_ms": summary(lmdb),
            "create_meeting_ms": summary(request),
            "maildir_notice_ms": summary(notice),
            "incident_ms": summary(total),
            "connections_opened": http.connectionsOpened,
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Fills a store with ended rooms, their resolved incidents, their settled notices and audit entries, in a few
/// large transactions, so sitroomd's start-up can be timed over a store of a given size: per room, the
/// `room-ready` email and SMS to its one participant, both `sent` (as the notifier leaves them).
struct Prefill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prefill a store (var/lib/sitroom).")

    @Option(help: "The store directory (made if missing).") var store: String
    @Option(help: "Ended rooms (with resolved incidents and two sent notices each) to write.") var rooms = 10_000
    @Option(help: "Audit entries to write.") var audit = 100_000

    func run() throws {
        try DurableFile.makeDirectory(store, mode: 0o700)
        let db = try Store(directory: store, mapSize: 256 << 20)
        let now = Date().timeIntervalSince1970
        let batch = 2_000
        var written = 0
        while written < rooms {
            let upper = min(rooms, written + batch)
            try db.write { txn in
                for n in written..<upper {
                    var room = Room(id: "prefill-\(n)", incidentID: "INC-P\(n)", createdAt: now - 86_400)
                    room.state = .ended
                    room.integration = "zoom-main"
                    room.hostID = "bridge-0"
                    room.createPhase = .done
                    room.meetingID = 86_000_000_000 + Int64(n)
                    room.joinURL = "https://zoom.example/j/\(86_000_000_000 + n)"
                    room.endedAt = now - 3_600
                    room.meetingDeletedAt = now - 3_600
                    room.updatedAt = now - 3_600
                    try txn.rooms.put(room)
                    let record = IncidentRecord(
                        info: IncidentInfo(id: "INC-P\(n)", title: "Prefilled incident \(n)", severity: "critical"),
                        stage: .resolved,
                        participants: [
                            Participant(
                                name: "Ada Lovelace",
                                email: "ada@example.com",
                                phone: "+15005550101",
                                role: .commander
                            )
                        ],
                        integration: nil,
                        roomID: room.id,
                        lastOccurredAt: now - 3_600
                    )
                    try txn.incidents.put(record)
                    for channel in [NoticeChannel.email, .sms] {
                        var notice = Notice(
                            roomID: room.id,
                            incidentID: record.info.id,
                            personID: channel == .email ? "email:ada@example.com" : "phone:+15005550101",
                            kind: .roomReady,
                            channel: channel,
                            recipient: channel == .email ? "ada@example.com" : "+15005550101",
                            recipientName: "Ada Lovelace",
                            subject: channel == .email ? "[critical] Prefilled incident \(n): situation room" : "",
                            body: "The situation room for INC-P\(n) (Prefilled incident \(n), critical) is open: "
                                + "\(room.joinURL ?? "") passcode 123456. You are the commander.\n",
                            createdAt: now - 86_400
                        )
                        notice.state = .sent
                        notice.attempts = 1
                        notice.sentAt = now - 86_390
                        notice.detail =
                            channel == .email ? "var/mail/new/\(notice.id).eml" : "var/sms/new/\(notice.id).txt"
                        try txn.outbox.enqueue(notice)
                    }
                }
            }
            written = upper
        }
        var entries = 0
        while entries < audit {
            let upper = min(audit, entries + 10_000)
            try db.write { txn in
                for n in entries..<upper {
                    try txn.audit.append(
                        AuditEntry(time: now - 3_600 + Double(n) / 100, uid: 1000, command: "status", outcome: "ok")
                    )
                }
            }
            entries = upper
        }
        print("{\"rooms\": \(rooms), \"notices\": \(2 * rooms), \"audit\": \(audit)}")
    }
}

/// p50, p99, max and mean of `values` (milliseconds).
func summary(_ values: [Double]) -> [String: Double] {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return [:] }
    func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))] }
    return [
        "p50": at(0.5), "p99": at(0.99), "max": sorted[sorted.count - 1],
        "mean": sorted.reduce(0, +) / Double(sorted.count),
    ]
}
