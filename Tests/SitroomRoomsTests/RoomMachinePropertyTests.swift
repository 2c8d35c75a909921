import PropertyBased
import SitroomCore
import Testing

@testable import SitroomRooms

/// The room machine under random sequences of events, provider answers (lost, 5xx, refused, quota, scope,
/// credentials), restarts and crashes in the middle of runs: the rules hold after every request, and once every
/// incident is resolved and the provider answers again, nothing is left behind.
@Suite("room machine under random sequences")
struct RoomMachinePropertyTests {
    /// One step of a scenario, decoded from a generated number (so that failing scenarios shrink).
    enum Action: CustomStringConvertible {
        case open(withHost: Bool)
        case run(incident: Int, crashAfter: Int?)
        case resolve(Int, whileRunning: Bool)
        case reopen(Int)
        case restart
        case answer(World.Answer)
        case later(seconds: Double)

        static let answers: [World.Answer] = [
            .lost, .serverError, .notSent, .dailyLimit, .validation, .tokenRejected, .missingScope, .credentialsRefused,
        ]

        init(_ code: Int) {
            let incident = code % 3
            switch code % 10 {
            case 0: self = .open(withHost: (code / 10) % 2 == 1)
            case 1, 2: self = .run(incident: incident, crashAfter: nil)
            case 3: self = .run(incident: incident, crashAfter: 1 + (code / 10) % 6)
            case 4: self = .resolve(incident, whileRunning: (code / 10) % 2 == 1)
            case 5: self = .reopen(incident)
            case 6: self = .restart
            case 7, 8: self = .answer(Self.answers[(code / 10) % Self.answers.count])
            default: self = .later(seconds: (code / 10) % 2 == 0 ? 60 : 2_000)
            }
        }

        var description: String {
            switch self {
            case .open(let withHost): withHost ? "open(with host)" : "open"
            case .run(let incident, let crash): "run(\(incident)\(crash.map { ", crash after \($0)" } ?? ""))"
            case .resolve(let incident, let whileRunning):
                "resolve(\(incident)\(whileRunning ? ", while running" : ""))"
            case .reopen(let incident): "reopen(\(incident))"
            case .restart: "restart"
            case .answer(let answer): "answer(\(answer))"
            case .later(let seconds): "later(\(Int(seconds)) s)"
            }
        }
    }

    @Test("rules hold over random scenarios, and a resolved incident is left with no live meeting and no host")
    func randomScenarios() async {
        await propertyCheck(count: 2_000, input: Gen.int(in: 0...999).array(of: 1...40)) { codes in
            let actions = codes.map(Action.init)
            let world = World(hostsPerIntegration: 1)
            var opened: [String] = []
            // Rooms made with their host whose first run has not started (it starts with `intentCommitted`).
            var fresh: Set<String> = []
            for action in actions {
                switch action {
                case .open(let withHost):
                    guard opened.count < 3 else { continue }
                    opened.append("INC-\(opened.count)")
                    if withHost {
                        let (id, leased) = world.openWithHost(opened.last!)
                        if leased { fresh.insert(id) }
                    } else {
                        world.open(opened.last!)
                    }
                case .run(let index, let crashAfter):
                    guard index < opened.count, let id = world.incidents[opened[index]] else { continue }
                    world.driven = []
                    world.run(id, first: fresh.remove(id) != nil ? .intentCommitted : .start, crashAfter: crashAfter)
                    if crashAfter != nil {
                        world.restart()
                        fresh = []
                    }
                case .resolve(let index, let whileRunning):
                    if index < opened.count { world.resolve(opened[index], whileRunning: whileRunning) }
                case .reopen(let index):
                    if index < opened.count { world.reopen(opened[index]) }
                case .restart:
                    world.restart()
                    fresh = []
                case .answer(let answer):
                    world.script.append(answer)
                case .later(let seconds):
                    world.now += seconds
                }
                world.check()
            }
            // Every incident resolved; the provider answers again (the admins fixed what it refused); every room runs
            // until nothing is left to do.
            for incident in opened { world.resolve(incident) }
            world.script = []
            world.hostsOut = []
            world.integrationsOut = []
            world.restart()
            for _ in 0..<6 {
                for id in world.rooms.keys.sorted() where world.rooms[id]!.state.isOpen || world.rooms[id]!.endRequested
                {
                    world.settle(id)
                }
                for incident in opened { world.resolve(incident) }
            }
            for incident in opened {
                // The one meeting left live is one the provider refused to let sitroom end: its room says so.
                for meeting in world.liveMeetings(of: incident) {
                    let room = world.rooms[world.meetings[meeting]!.roomID]!
                    #expect(
                        room.reason?.contains("could not be ended") == true,
                        "\(incident): meeting \(meeting) of \(room.id) (\(room.state.rawValue)) is live; \(actions)"
                    )
                }
            }
            for room in world.rooms.values {
                #expect(!room.state.isOpen, "room \(room.id) is still \(room.state.rawValue) after resolve; \(actions)")
                #expect(
                    world.leases[room.id] == nil,
                    "room \(room.id) still holds \(world.leases[room.id]!); \(actions)"
                )
            }
            // Every room told it was ready and then resolved is told it ended.
            for notice in world.notices where notice.kind == "ready" && world.rooms[notice.room]?.state == .ended {
                #expect(
                    world.notices.contains { $0.room == notice.room && $0.kind == "ended" },
                    "room \(notice.room) ended without telling its people; \(actions)"
                )
            }
            #expect(world.violations.isEmpty, "\(world.violations); \(actions)")
        }
    }
}
