import Foundation
import PosixIO
import SitroomConfig
import SitroomCore
import SitroomStore
import Testing

@testable import SitroomDaemon
@testable import SitroomService

/// Hot reload of `etc/` on real parts: a real temporary `etc/`, the real ``ConfigWatcher`` on real inotify, a
/// real ``DaemonCore`` over a real LMDB store. Each save style must make exactly one new generation, with the
/// saved content. Serialized: the tests measure "nothing more happened" by time, so they do not share the CPU.
@Suite("hot reload of etc/", .serialized)
struct ConfigReloadTests {
    static let mainFile = "integrations/zoom-main.yaml"

    /// etc/ as a Kubernetes ConfigMap volume: `..2026_11_29_12_00_00.000000001/`, `..data` and links through it.
    static func kubernetesLayout(root: String) throws {
        try Save.kubernetesProject(
            ReloadFixture.defaultFiles,
            into: root + "/etc",
            stamp: "2026_11_29_12_00_00.000000001"
        )
    }

    /// etc/integrations/zoom-main.yaml is a symbolic link to ROOT/shared/zoom-main.yaml.
    static func symlinkedLayout(root: String) throws {
        var files = ReloadFixture.defaultFiles
        files[mainFile] = nil
        try writeFiles(files, under: root + "/etc")
        try writeFiles(["zoom-main.yaml": ReloadFixture.integration()], under: root + "/shared")
        try FileManager.default.createDirectory(atPath: root + "/etc/integrations", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(
            atPath: root + "/etc/" + mainFile,
            withDestinationPath: root + "/shared/zoom-main.yaml"
        )
    }

    /// The default etc/ plus integrations/zoom-other.yaml (one host, o-1).
    static func twoIntegrationsLayout(root: String) throws {
        var files = ReloadFixture.defaultFiles
        files["integrations/zoom-other.yaml"] = ReloadFixture.integration(client: "other-client", hosts: ["o-1"])
        try writeFiles(files, under: root + "/etc")
    }

    /// Runs `body` on a fresh fixture whose watcher is started, and tears it down.
    func withWatchedFixture(
        timing: ConfigWatcher.Timing = ReloadFixture.timing,
        layout: ((String) throws -> Void)? = nil,
        seed: (Store) throws -> Void = { _ in },
        _ body: (ReloadFixture) async throws -> Void
    ) async throws {
        let fixture =
            if let layout { try await ReloadFixture(timing: timing, layout: layout, seed: seed) } else {
                try await ReloadFixture(timing: timing, seed: seed)
            }
        try await fixture.running { fixture in
            try await fixture.startWatching()
            #expect(await fixture.generation().watch.name == "inotify")
            try await body(fixture)
        }
    }

    /// Expects generation 2 to be live with zoom-main's priority `priority`, and no generation after it.
    func expectOneGeneration(
        _ fixture: ReloadFixture,
        priority: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    )
        async throws
    {
        let status = try await fixture.waitForGeneration(2)
        #expect(status.number == 2, sourceLocation: sourceLocation)
        #expect(status.configuration.integrations["zoom-main"]?.priority == priority, sourceLocation: sourceLocation)
        #expect(status.lastRejected == nil, "\(status.lastRejected?.errors ?? [])", sourceLocation: sourceLocation)
        try await fixture.expectNoFurtherGeneration(after: 2, sourceLocation: sourceLocation)
    }

    // MARK: One test per save style

    @Test("written in place (open with O_TRUNC, write, close): exactly one new generation")
    func writeInPlace() async throws {
        try await withWatchedFixture { fixture in
            #expect(await fixture.generation().number == 1)
            try Save.inPlace("\(fixture.etc)/\(Self.mainFile)", ReloadFixture.integration(priority: 5))
            try await expectOneGeneration(fixture, priority: 5)
        }
    }

    @Test("vim's rename-and-replace (swap file, 4913 probe, rename to NAME~, new file, unlink): exactly one")
    func vimRenameAndReplace() async throws {
        try await withWatchedFixture { fixture in
            try Save.vim("\(fixture.etc)/\(Self.mainFile)", ReloadFixture.integration(priority: 6))
            try await expectOneGeneration(fixture, priority: 6)
            // The integration never looked removed on the way: its record and state are untouched.
            #expect(await fixture.core.registry.state("zoom-main") != nil)
        }
    }

    @Test("sed -i (temporary file beside it, renamed over it): exactly one new generation")
    func sedInPlace() async throws {
        try await withWatchedFixture { fixture in
            try Save.sedInPlace("\(fixture.etc)/\(Self.mainFile)", "s/^priority: 10$/priority: 7/")
            try await expectOneGeneration(fixture, priority: 7)
        }
    }

    @Test("cp over the file: exactly one new generation")
    func cpOver() async throws {
        try await withWatchedFixture { fixture in
            try Save.cpOver(
                "\(fixture.etc)/\(Self.mainFile)",
                ReloadFixture.integration(priority: 8),
                scratch: "\(fixture.root)/scratch/zoom-main.yaml"
            )
            try await expectOneGeneration(fixture, priority: 8)
        }
    }

    @Test("truncated, then written slowly in several writes (pauses longer than the quiet period): one generation")
    func truncateThenWriteSlowly() async throws {
        try await withWatchedFixture { fixture in
            let text = ReloadFixture.integration(priority: 9, hosts: ["bridge-1", "bridge-2", "bridge-3"])
            try await Save.truncateThenWriteSlowly(
                "\(fixture.etc)/\(Self.mainFile)",
                text,
                pieces: 4,
                pause: 2 * ReloadFixture.timing.quiet
            )
            try await expectOneGeneration(fixture, priority: 9)
            #expect(await fixture.generation().configuration.integrations["zoom-main"]?.hosts.count == 3)
            // Nothing half-written was even read as a candidate.
            #expect(await fixture.generation().lastRejected == nil)
        }
    }

    @Test("truncated, then appended in separate writes: the halves are refused, the whole applies once")
    func truncateThenAppendInSeparateOpens() async throws {
        try await withWatchedFixture { fixture in
            let path = "\(fixture.etc)/\(Self.mainFile)"
            let text = ReloadFixture.integration(priority: 4)
            let cut = text.range(of: "hosts:")!.lowerBound
            let reloadsBefore = await fixture.reloads.value
            try Save.inPlace(path, "")  // `: > file`
            try await fixture.waitForReload(after: reloadsBefore)
            let afterEmpty = await fixture.reloads.value
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text[..<cut].utf8))  // `>> file`: no hosts yet
            try handle.close()
            try await fixture.waitForReload(after: afterEmpty)
            #expect(await fixture.generation().number == 1)
            let rejected = try #require(await fixture.generation().lastRejected)
            #expect(rejected.errors.contains { $0.hasPrefix("\(fixture.etc)/\(Self.mainFile):") })
            #expect(rejected.errors.contains { $0.hasSuffix("hosts: required field is missing") })
            let rest = try #require(FileHandle(forWritingAtPath: path))
            try rest.seekToEnd()
            try rest.write(contentsOf: Data(text[cut...].utf8))
            try rest.close()
            try await fixture.waitForGeneration(2)
            #expect(await fixture.generation().configuration.integrations["zoom-main"]?.priority == 4)
            try await fixture.expectNoFurtherGeneration(after: 2)
        }
    }

    @Test("a Kubernetes ConfigMap symlink swap (..data → new ..TIMESTAMP): one generation per swap, watch re-armed")
    func kubernetesSymlinkSwap() async throws {
        let first = ReloadFixture.defaultFiles
        try await withWatchedFixture(layout: Self.kubernetesLayout) { fixture in
            let watched = await fixture.generation().watch
            guard case .inotify(let before, _) = watched else { throw TimedOut(what: "inotify") }
            #expect(before.contains("\(fixture.etc)/..2026_11_29_12_00_00.000000001/integrations"))

            var second = first
            second[Self.mainFile] = ReloadFixture.integration(priority: 3)
            try Save.kubernetesProject(second, into: fixture.etc, stamp: "2026_11_29_12_05_00.000000002")
            try await expectOneGeneration(fixture, priority: 3)
            guard case .inotify(let after, _) = await fixture.generation().watch else {
                throw TimedOut(what: "inotify")
            }
            #expect(after.contains("\(fixture.etc)/..2026_11_29_12_05_00.000000002/integrations"))
            #expect(!after.contains { $0.contains("2026_11_29_12_00_00") })

            // A second swap is seen as well (the re-armed watch works), again exactly once.
            var third = second
            third["sitroom.yaml"] = ReloadFixture.sitroom.replacingOccurrences(of: "15m", with: "45m")
            try Save.kubernetesProject(third, into: fixture.etc, stamp: "2026_11_29_12_10_00.000000003")
            let status = try await fixture.waitForGeneration(3)
            #expect(status.number == 3)
            #expect(status.configuration.daemon.reopenHoldDown == 45 * 60)
            #expect(status.configuration.integrations["zoom-main"]?.priority == 3)
            try await fixture.expectNoFurtherGeneration(after: 3)
        }
    }

    @Test("renamed into place: applied without waiting for the quiet period, which a write in place still waits for")
    func renamedIntoPlaceSkipsTheQuietPeriod() async throws {
        // A quiet period of a minute: an edit applied within waitForGeneration's 10 s went the rename way.
        let timing = ConfigWatcher.Timing(
            quiet: 60,
            settle: 0.02,
            maxDelay: 120,
            safetyInterval: 600,
            pollingInterval: 0.25
        )
        try await withWatchedFixture(timing: timing) { fixture in
            let path = "\(fixture.etc)/\(Self.mainFile)"
            try writeFiles(["\(Self.mainFile).new": ReloadFixture.integration(priority: 5)], under: fixture.etc)
            #expect(rename(path + ".new", path) == 0)
            let status = try await fixture.waitForGeneration(2)
            #expect(status.configuration.integrations["zoom-main"]?.priority == 5)
            #expect(fixture.log.lines.contains { $0.contains("trigger=burst (renamed into place)") })

            // The generation is live before the reload call returns and is counted: wait for the count too.
            try await fixture.waitForReload(after: 1)

            // Written in place, complete and valid: still held for the quiet period, as a first part of a file
            // written through several opens would be.
            let reloads = await fixture.reloads.value
            try Save.inPlace(path, ReloadFixture.integration(priority: 6))
            // waits-on-purpose (that nothing happens only time can show): the rename above was applied
            // 20 ms after its events; 600 ms leave a loaded machine ample time to do the same wrongly here.
            try await Task.sleep(for: .milliseconds(600))  // waits-on-purpose
            #expect(await fixture.reloads.value == reloads)
            #expect(await fixture.generation().number == 2)
        }
    }

    @Test("a file that is a symbolic link to another directory is watched where it lives")
    func symlinkedFileEditedWhereItLives() async throws {
        try await withWatchedFixture(layout: Self.symlinkedLayout) { fixture in
            try Save.inPlace("\(fixture.root)/shared/zoom-main.yaml", ReloadFixture.integration(priority: 2))
            try await expectOneGeneration(fixture, priority: 2)
        }
    }

    // MARK: Refused and unchanged generations

    @Test("an invalid edit keeps the live generation; status names the file, line and column")
    func invalidEditKeepsTheLiveGeneration() async throws {
        try await withWatchedFixture { fixture in
            let text = ReloadFixture.integration().replacingOccurrences(of: "priority: 10", with: "priority: yes")
            try Save.inPlace("\(fixture.etc)/\(Self.mainFile)", text)
            let rejected = try await waitFor("the edit to be rejected") { await fixture.generation().lastRejected }
            let line = "\(fixture.etc)/\(Self.mainFile):10:11: priority: must be a plain decimal integer"
            #expect(rejected.errors.contains { $0.hasPrefix(line) }, "\(rejected.errors)")
            let status = await fixture.generation()
            #expect(status.number == 1)
            #expect(status.configuration.integrations["zoom-main"]?.priority == 10)

            let text_ = await fixture.core.execute(try ControlCommand.parse("status"), uid: nil)
            #expect(text_.ok)
            #expect(text_.text.contains("config generation 1 applied"))
            #expect(text_.text.contains(line))
            #expect(text_.text.contains("config watch: inotify on"))
            let json = await fixture.core.execute(try ControlCommand.parse("json status"), uid: nil)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.text.utf8)) as? [String: Any])
            let generation = try #require(object["generation"] as? [String: Any])
            #expect(generation["number"] as? Int == 1)
            #expect(
                ((generation["last_rejected"] as? [String: Any])?["errors"] as? [String])?.contains {
                    $0.hasPrefix(line)
                } == true
            )
            #expect((generation["watch"] as? [String: Any])?["mode"] as? String == "inotify")
            #expect(fixture.log.lines.contains { $0.hasPrefix("error configuration rejected") && $0.contains(line) })

            // Fixing it applies once.
            try Save.inPlace("\(fixture.etc)/\(Self.mainFile)", ReloadFixture.integration(priority: 11))
            let fixed = try await fixture.waitForGeneration(2)
            #expect(fixed.configuration.integrations["zoom-main"]?.priority == 11)
            try await fixture.expectNoFurtherGeneration(after: 2)
            // The refusal stays shown, with when etc/ became valid again.
            #expect(await fixture.generation().lastRejected?.validAgainAt != nil)
            let after = await fixture.core.execute(try ControlCommand.parse("status"), uid: nil).text
            #expect(after.contains("config generation 2 applied"))
            #expect(after.contains("; etc/ is valid again since "))
            // And the log says so at info level, with the generation that applied it.
            #expect(fixture.log.lines.contains { $0.hasPrefix("info etc/ valid again") && $0.contains("generation=2") })
        }
    }

    @Test("one of two files in a single edit is invalid: neither is applied")
    func oneOfTwoFilesInvalid() async throws {
        try await withWatchedFixture { fixture in
            // One `sed -i -e EXPR -e EXPR a b` on both files: the first comes out valid, the second does not.
            try Save.sedInPlace(
                ["\(fixture.etc)/sitroom.yaml", "\(fixture.etc)/\(Self.mainFile)"],
                expressions: ["s/15m/30m/", "s/^priority: 10$/priority: 010/"]
            )
            let rejected = try await waitFor("the edit to be rejected") { await fixture.generation().lastRejected }
            #expect(rejected.errors.contains { $0.hasPrefix("\(fixture.etc)/\(Self.mainFile):10:11: priority:") })
            let status = await fixture.generation()
            #expect(status.number == 1)
            #expect(status.configuration.daemon.reopenHoldDown == 15 * 60)

            try Save.sedInPlace("\(fixture.etc)/\(Self.mainFile)", "s/^priority: 010$/priority: 12/")
            let both = try await fixture.waitForGeneration(2)
            #expect(both.configuration.daemon.reopenHoldDown == 30 * 60)
            #expect(both.configuration.integrations["zoom-main"]?.priority == 12)
            try await fixture.expectNoFurtherGeneration(after: 2)
        }
    }

    @Test("saving the same content again, or only a comment, makes no new generation")
    func unchangedContentMakesNoGeneration() async throws {
        try await withWatchedFixture { fixture in
            let path = "\(fixture.etc)/sitroom.yaml"
            var count = await fixture.reloads.value
            try Save.cpOver(path, ReloadFixture.sitroom, scratch: "\(fixture.root)/scratch/sitroom.yaml")
            try await fixture.waitForReload(after: count)
            #expect(await fixture.generation().number == 1)
            count = await fixture.reloads.value
            try Save.vim(path, ReloadFixture.sitroom + "# a comment only\n")
            try await fixture.waitForReload(after: count)
            #expect(await fixture.generation().number == 1)
            #expect(await fixture.generation().lastRejected == nil)
            let reply = await fixture.core.reload()
            #expect(reply.text == "configuration unchanged; generation 1 stays live")
        }
    }

    @Test("without inotify the watcher polls, says so in status and the log, and applies an edit once")
    func pollingFallback() async throws {
        let fixture = try await ReloadFixture()
        do {
            try await fixture.startWatching(makeWatcher: { directories in
                throw PosixError(call: "inotify_add_watch", path: directories.first, errno: ENOSPC)
            })
            let watch = await fixture.generation().watch
            guard case .polling(let interval, let reason) = watch else { throw TimedOut(what: "polling mode") }
            #expect(interval == ReloadFixture.timing.pollingInterval)
            #expect(reason.contains("inotify_add_watch"))
            #expect(reason.contains("No space left on device"))
            #expect(fixture.log.lines.contains { $0.hasPrefix("warning inotify unavailable; polling etc/ instead") })
            let status = await fixture.core.execute(try ControlCommand.parse("status"), uid: nil)
            #expect(status.text.contains("config watch: polling every 0.25s (inotify unavailable: inotify_add_watch("))

            try Save.vim("\(fixture.etc)/\(Self.mainFile)", ReloadFixture.integration(priority: 13))
            let applied = try await fixture.waitForGeneration(2)
            #expect(applied.configuration.integrations["zoom-main"]?.priority == 13)
            try await fixture.expectNoFurtherGeneration(after: 2)
        } catch {
            Issue.record("log:\n\(fixture.log.lines.joined(separator: "\n"))")
            await fixture.tearDown()
            throw error
        }
        await fixture.tearDown()
    }

    // MARK: Applying a generation

    /// Seeds the store as a running daemon would have left it: zoom-main active with a token, INC-1's room ready
    /// on zoom-main's bridge-1; zoom-other active with a token, INC-9's room ready on its host o-1.
    static func seedReadyRooms(_ store: Store) throws {
        let now = Date().timeIntervalSince1970
        try store.write { txn in
            for (name, incident, roomID, host) in [
                ("zoom-main", "INC-1", "r00000000000000a1", "bridge-1"),
                ("zoom-other", "INC-9", "r00000000000000a9", "o-1"),
            ] {
                try txn.integrations.putRecord(IntegrationRecord(state: .active, reason: nil, since: now), for: name)
                try txn.tokens.put(
                    StoredToken(accessToken: "token-of-\(name)", expiresAt: now + 3600),
                    for: TokenID(integration: name, host: nil)
                )
                var room = Room(id: roomID, incidentID: incident, createdAt: now)
                room.state = .ready
                room.integration = name
                room.hostID = host
                room.hostUser = "\(host)@example.com"
                room.createPhase = .done
                room.meetingID = 8_100_000_001
                room.joinURL = "https://zoom.example/j/8100000001"
                try txn.rooms.put(room)
                try txn.incidents.put(
                    IncidentRecord(
                        info: IncidentInfo(id: incident, title: "Payments down", severity: "critical"),
                        stage: .situationRoom,
                        participants: [Participant(name: "Ada", email: "ada@example.com", role: .commander)],
                        integration: nil,
                        roomID: roomID,
                        lastOccurredAt: now
                    )
                )
            }
        }
    }

    @Test("removing an integration file: its ready room becomes unavailable, its tokens go, no new room through it")
    func removingAnIntegration() async throws {
        try await withWatchedFixture(layout: Self.twoIntegrationsLayout, seed: Self.seedReadyRooms) { fixture in
            let core = fixture.core
            #expect(await core.pool.snapshot().first { $0.host == "bridge-1" }?.openRooms == 1)

            try FileManager.default.removeItem(atPath: "\(fixture.etc)/\(Self.mainFile)")
            let status = try await fixture.waitForGeneration(2)
            #expect(status.configuration.integrations.keys.sorted() == ["zoom-other"])
            try await fixture.expectNoFurtherGeneration(after: 2)

            // Its open room is unavailable, with the reason; the other integration's room is untouched.
            let rooms = try await core.provisioner.rooms()
            let removed = try #require(rooms.first { $0.incidentID == "INC-1" })
            #expect(removed.state == .unavailable)
            #expect(removed.reason?.contains("integration zoom-main was removed") == true)
            #expect(rooms.first { $0.incidentID == "INC-9" }?.state == .ready)

            // Its tokens and record are gone from LMDB; the other integration keeps its own.
            let store = fixture.store
            let (mainToken, mainRecord, otherToken): (StoredToken?, IntegrationRecord?, StoredToken?) = try store.read {
                txn in
                (
                    try txn.tokens.get(TokenID(integration: "zoom-main", host: nil)),
                    try txn.integrations.record("zoom-main"),
                    try txn.tokens.get(TokenID(integration: "zoom-other", host: nil))
                )
            }
            #expect(mainToken == nil)
            #expect(mainRecord == nil)
            #expect(otherToken?.accessToken == "token-of-zoom-other")
            #expect(await core.registry.snapshot().map(\.name) == ["zoom-other"])
            // Its hosts are no longer in the pool, and the room's host was released.
            #expect(await core.pool.snapshot().allSatisfy { $0.integration == "zoom-other" })

            // No new room goes through it: an incident that asks for it fails, saying why.
            let event = IncidentEvent(
                eventID: "evt-2",
                occurredAt: Date().timeIntervalSince1970,
                stage: .situationRoom,
                incident: IncidentInfo(id: "INC-2", title: "Search down"),
                participants: [],
                integration: "zoom-main"
            )
            #expect(try await core.provisioner.apply(event) == .applied)
            let failed = try await waitFor("INC-2's room to fail") { () -> Room? in
                let room = try await core.provisioner.show(incident: "INC-2")?.1
                return room?.state == .failed ? room : nil
            }
            #expect(failed.reason?.contains("integration zoom-main is not configured") == true)
            #expect(failed.integration == nil)

            // status shows the state.
            let text = await core.execute(try ControlCommand.parse("status"), uid: nil).text
            #expect(text.contains("unavailable 1"))
            #expect(!text.contains("zoom-main  zoom-s2s"))
        }
    }

    @Test("adding an integration file adds the integration, pending authorization, with its pool")
    func addingAnIntegration() async throws {
        try await withWatchedFixture { fixture in
            let text = ReloadFixture.integration(client: "new-client", hosts: ["n-1"])
            try Save.sedInPlace("\(fixture.etc)/\(Self.mainFile)", "s/x/x/")  // unchanged: no generation
            try writeFiles(["integrations/.zoom-new.yaml.tmp": text], under: fixture.etc)
            #expect(
                rename("\(fixture.etc)/integrations/.zoom-new.yaml.tmp", "\(fixture.etc)/integrations/zoom-new.yaml")
                    == 0
            )
            let status = try await fixture.waitForGeneration(2)
            #expect(status.configuration.integrations.keys.sorted() == ["zoom-main", "zoom-new"])
            try await fixture.expectNoFurtherGeneration(after: 2)
            let added = await fixture.core.registry.snapshot().first { $0.name == "zoom-new" }
            #expect(added?.record.state == .pendingAuthorization)
            #expect(await fixture.core.pool.snapshot().contains { $0.integration == "zoom-new" && $0.host == "n-1" })
        }
    }

    @Test("an integration whose file was removed while sitroomd was stopped is removed at start")
    func integrationRemovedWhileStopped() async throws {
        // The store knows zoom-main and zoom-other (rooms, tokens); etc/ now has only zoom-main.
        let fixture = try await ReloadFixture(seed: Self.seedReadyRooms)
        do {
            let rooms = try await fixture.core.provisioner.rooms()
            let other = try #require(rooms.first { $0.incidentID == "INC-9" })
            #expect(other.state == .unavailable)
            #expect(other.reason?.contains("integration zoom-other was removed") == true)
            #expect(rooms.first { $0.incidentID == "INC-1" }?.state == .ready)
            let store = fixture.store
            let tokens: [TokenID] = try store.read { txn in try txn.tokens.all().map(\.id) }
            #expect(tokens == [TokenID(integration: "zoom-main", host: nil)])
            #expect(await fixture.core.registry.snapshot().map(\.name) == ["zoom-main"])
            #expect(await fixture.core.pool.snapshot().allSatisfy { $0.integration == "zoom-main" })
        } catch {
            await fixture.tearDown()
            throw error
        }
        await fixture.tearDown()
    }

    @Test("a host removed from a pool keeps its open room until it ends, and takes no new one")
    func removingAHost() async throws {
        try await withWatchedFixture(layout: Self.twoIntegrationsLayout, seed: Self.seedReadyRooms) { fixture in
            try Save.sedInPlace("\(fixture.etc)/\(Self.mainFile)", "/bridge-1/d")
            let status = try await fixture.waitForGeneration(2)
            #expect(status.configuration.integrations["zoom-main"]?.hosts.map(\.id) == ["bridge-2"])
            let rooms = try await fixture.core.provisioner.rooms()
            #expect(rooms.first { $0.incidentID == "INC-1" }?.state == .ready)
            let row = try #require(await fixture.core.pool.snapshot().first { $0.host == "bridge-1" })
            #expect(row.openRooms == 1)
            #expect(row.state == "removed (keeps its open rooms until they end)")
            // The pool leases only bridge-2 now.
            let lease = await fixture.core.pool.lease(room: "r-new", integration: "zoom-main")
            guard case .leased(let key, _, _, _) = lease else { throw TimedOut(what: "a lease") }
            #expect(key.host == "bridge-2")
        }
    }
}

@Suite("coalescing and the pool's removed hosts")
struct ReloadDecisionTests {
    @Test("a burst is due after a quiet period, at the latest maxDelay after its first signal")
    func debouncer() {
        var burst = ReloadDebouncer(quiet: 0.15, settle: 0.02, maxDelay: 2)
        #expect(!burst.isPending)
        #expect(abs(burst.changed(at: 10) - 10.15) < 1e-9)
        #expect(abs(burst.changed(at: 10.1) - 10.25) < 1e-9)
        #expect(burst.due(at: 10.2, watching: []) != nil)
        #expect(burst.due(at: 10.25, watching: []) == nil)
        // A steady trickle of events cannot postpone the reload past maxDelay.
        var last = 0.0
        for step in 1...100 { last = burst.changed(at: 10 + Double(step) * 0.1) }
        #expect(abs(last - 12) < 1e-9)
        #expect(burst.isOverdue(at: 12))
        burst.reset()
        #expect(!burst.isPending)
        #expect(!burst.isOverdue(at: 100))
    }

    /// `etc/` of the decision tests, and the directories it is read from.
    static let etc = "/srv/sitroom/etc"
    static let watching: Set<String> = [etc, etc + "/integrations", etc + "/templates"]

    /// Events in `directory` (relative to ``etc``), as inotify reports them.
    static func events(_ directory: String, _ list: [(DirectoryEvent.Kind, String?)]) -> [DirectoryEvent] {
        list.map { DirectoryEvent(kind: $0.0, directory: etc + "/" + directory, name: $0.1) }
    }

    /// Events in ``etc`` itself.
    static func events(_ list: [(DirectoryEvent.Kind, String?)]) -> [DirectoryEvent] {
        list.map { DirectoryEvent(kind: $0.0, directory: etc, name: $0.1) }
    }

    /// The events of saves, as measured with inotify (`IN_CREATE|IN_CLOSE_WRITE|IN_MOVED_*|IN_DELETE`), and whether
    /// each may take the rename rule.
    static let saves: [(what: String, batches: [[DirectoryEvent]], published: Bool)] = [
        (
            "NAME.new written, renamed over NAME (the bench; python's os.replace)",
            [
                events([(.created, "sitroom.yaml.new")]),
                events([
                    (.closedWrite, "sitroom.yaml.new"), (.movedOut, "sitroom.yaml.new"), (.movedIn, "sitroom.yaml"),
                ]),
            ],
            true
        ),
        (
            "sed -i on two files in one process (perl -i alike)",
            [
                events([
                    (.created, "sedFfuUAx"), (.closedWrite, "sedFfuUAx"), (.movedOut, "sedFfuUAx"),
                    (.movedIn, "sitroom.yaml"),
                ]),
                events(
                    "integrations",
                    [
                        (.created, "sed20OBDG"), (.closedWrite, "sed20OBDG"), (.movedOut, "sed20OBDG"),
                        (.movedIn, "zoom-main.yaml"),
                    ]
                ),
            ],
            true
        ),
        (
            "a hidden temporary file renamed into place (rsync, Ansible)",
            [
                events(
                    "integrations",
                    [
                        (.created, ".zoom-main.yaml.Xa81"), (.closedWrite, ".zoom-main.yaml.Xa81"),
                        (.movedOut, ".zoom-main.yaml.Xa81"), (.movedIn, "zoom-main.yaml"),
                    ]
                )
            ],
            true
        ),
        (
            "a file renamed into place while an editor's swap file comes and goes",
            [
                events([(.created, ".sitroom.yaml.swp"), (.closedWrite, ".sitroom.yaml.swp")]),
                events([(.created, "sed1"), (.closedWrite, "sed1"), (.movedOut, "sed1"), (.movedIn, "sitroom.yaml")]),
                events([(.deleted, ".sitroom.yaml.swp")]),
            ],
            true
        ),
        (
            "NAME.new written earlier, now renamed over NAME",
            [events("integrations", [(.movedOut, "zoom-main.yaml.new"), (.movedIn, "zoom-main.yaml")])],
            true
        ),
        (
            "written in place (`>`, nano, cp): one close",
            [events("integrations", [(.closedWrite, "zoom-main.yaml")])],
            false
        ),
        (
            "truncated, then appended in a second open: the first close could be a valid first part",
            [
                events("integrations", [(.closedWrite, "zoom-main.yaml")]),
                events("integrations", [(.closedWrite, "zoom-main.yaml")]),
            ],
            false
        ),
        (
            "vim: swap file, 4913 probe, NAME renamed to NAME~, a new NAME written, NAME~ deleted",
            [
                events([(.created, ".sitroom.yaml.swp"), (.closedWrite, ".sitroom.yaml.swp")]),
                events([(.created, "4913"), (.closedWrite, "4913"), (.deleted, "4913")]),
                events([(.movedOut, "sitroom.yaml"), (.movedIn, "sitroom.yaml~")]),
                events([(.created, "sitroom.yaml"), (.closedWrite, "sitroom.yaml"), (.deleted, "sitroom.yaml~")]),
                events([(.deleted, ".sitroom.yaml.swp")]),
            ],
            false
        ),
        (
            "vim paused after renaming NAME to NAME~ (NAME looks removed)",
            [events("integrations", [(.movedOut, "zoom-main.yaml"), (.movedIn, "zoom-main.yaml~")])],
            false
        ),
        (
            "a file renamed into place beside one created and not closed yet",
            [
                events("integrations", [(.created, "zoom-other.yaml")]),
                events([(.created, "sed1"), (.closedWrite, "sed1"), (.movedOut, "sed1"), (.movedIn, "sitroom.yaml")]),
            ],
            false
        ),
        (
            "a file renamed into place, then written again in place",
            [events([(.movedIn, "sitroom.yaml"), (.closedWrite, "sitroom.yaml")])],
            false
        ),
        ("a file removed", [events("integrations", [(.deleted, "zoom-main.yaml")])], false),
        (
            "a file renamed to another configuration name (mv a.yaml b.yaml)",
            [events("integrations", [(.movedOut, "zoom-main.yaml"), (.movedIn, "zoom-new.yaml")])],
            false
        ),
        (
            "a file renamed to another name (mv NAME.yaml NAME.yaml.off)",
            [events("integrations", [(.movedOut, "zoom-main.yaml"), (.movedIn, "zoom-main.yaml.off")])],
            false
        ),
        (
            "a file renamed into place, but events were lost",
            [events([(.movedIn, "sitroom.yaml")]), [DirectoryEvent(kind: .overflow, directory: "", name: nil)]],
            false
        ),
        (
            "a file renamed into place, but a watched directory went away",
            [events([(.movedIn, "sitroom.yaml")]), events("integrations", [(.directoryGone, nil)])],
            false
        ),
        ("only an editor's swap file", [events([(.created, ".sitroom.yaml.swp")])], false),
    ]

    @Test("renamed into place: due `settle` after the last event; written in place, created or removed: `quiet`")
    func renameRule() {
        for save in Self.saves {
            var burst = ReloadDebouncer(quiet: 0.15, settle: 0.02, maxDelay: 2)
            var due = 0.0
            var now = 10.0
            for batch in save.batches {
                now += 0.001
                due = burst.changed(at: now, events: batch, watching: Self.watching)
            }
            #expect(burst.isPublished(watching: Self.watching) == save.published, "\(save.what)")
            #expect(abs(due - (now + (save.published ? 0.02 : 0.15))) < 1e-9, "\(save.what)")
            #expect(burst.due(at: now + 0.02, watching: Self.watching) == (save.published ? nil : due), "\(save.what)")
        }
    }

    @Test("a Kubernetes swap is published: the old ..TIMESTAMP/ it deletes is no longer read")
    func kubernetesSwapIsPublished() {
        let new = Self.etc + "/..2026_11_29_12_05_00.000000002"
        let old = Self.etc + "/..2026_11_29_12_00_00.000000001"
        let after: Set<String> = [Self.etc, new, new + "/integrations", new + "/templates"]
        var burst = ReloadDebouncer(quiet: 0.15, settle: 0.02, maxDelay: 2)
        _ = burst.changed(
            at: 10,
            events: Self.events([
                (.created, "..2026_11_29_12_05_00.000000002"), (.created, "..data_tmp"), (.movedOut, "..data_tmp"),
                (.movedIn, "..data"),
            ]),
            watching: after
        )
        let cleanup = [
            DirectoryEvent(kind: .deleted, directory: old + "/integrations", name: "zoom-main.yaml"),
            DirectoryEvent(kind: .directoryGone, directory: old + "/integrations", name: nil),
            DirectoryEvent(kind: .deleted, directory: old, name: "sitroom.yaml"),
            DirectoryEvent(kind: .deleted, directory: old, name: "integrations"),
            DirectoryEvent(kind: .directoryGone, directory: old, name: nil),
            DirectoryEvent(kind: .deleted, directory: Self.etc, name: "..2026_11_29_12_00_00.000000001"),
        ]
        #expect(abs(burst.changed(at: 10.001, events: cleanup, watching: after) - 10.021) < 1e-9)
        #expect(burst.isPublished(watching: after))
        // Had the old directory still been read from, its removal would have put the burst on the quiet rule.
        #expect(!burst.isPublished(watching: after.union([old, old + "/integrations"])))
    }

    @Test("files seen changing without an event put a renamed burst on the quiet rule until it is reloaded")
    func stillChanging() {
        let rename = Self.events([
            (.created, "sed1"), (.closedWrite, "sed1"), (.movedOut, "sed1"), (.movedIn, "sitroom.yaml"),
        ])
        var burst = ReloadDebouncer(quiet: 0.15, settle: 0.02, maxDelay: 2)
        #expect(abs(burst.changed(at: 10, events: rename, watching: Self.watching) - 10.02) < 1e-9)
        #expect(burst.due(at: 10.02, watching: Self.watching) == nil)
        // The watcher found the fingerprint moved over the settle window (a writer at work in place, unseen).
        #expect(abs(burst.stillChanging(at: 10.02) - 10.17) < 1e-9)
        #expect(!burst.isPublished(watching: Self.watching))
        #expect(abs(burst.changed(at: 10.05, events: rename, watching: Self.watching) - 10.2) < 1e-9)
        // The safety-net check's change names no file: the quiet rule as well.
        burst.reset()
        #expect(abs(burst.changed(at: 20, events: rename, watching: Self.watching) - 20.02) < 1e-9)
        #expect(abs(burst.changed(at: 20.01) - 20.16) < 1e-9)
        // And a reload starts the next burst afresh; renames in a row still end by maxDelay.
        burst.reset()
        var due = 0.0
        for step in 0..<300 {
            due = burst.changed(at: 30 + Double(step) * 0.01, events: rename, watching: Self.watching)
        }
        #expect(abs(due - 32) < 1e-9)
        #expect(burst.isOverdue(at: 32))
    }

    @Test("a host removed from the configuration stays counted (retired) until its last room is released")
    func retiredHosts() {
        var state = PoolState()
        let limits = HostLimits(user: "b1@example.com", concurrentMeetings: 1, dailyCreateLimit: 100)
        state.configure(["zoom-main": [("b1", limits), ("b2", limits)]])
        let now = 1_795_958_400.0
        let first = state.lease(integration: "zoom-main", room: "r1", now: now)
        #expect(first?.key.host == "b1")
        state.configure(["zoom-main": [("b2", limits)]])
        let key = HostKey(integration: "zoom-main", host: "b1")
        #expect(state.retired[key] == limits)
        #expect(state.usage[key]?.openRooms == ["r1"])
        #expect(state.lease(integration: "zoom-main", room: "r2", now: now)?.key.host == "b2")
        #expect(state.lease(integration: "zoom-main", room: "r3", now: now) == nil)
        state.release(key, room: "r1")
        #expect(state.retired[key] == nil)
        // A host removed without open rooms is simply gone.
        state.configure([:])
        #expect(state.retired.isEmpty == false)  // b2 holds r2
        state.release(HostKey(integration: "zoom-main", host: "b2"), room: "r2")
        #expect(state.retired.isEmpty)
    }

    @Test("the watched directories: etc/, its subdirectories and where their symbolic links point, resolved")
    func watchDirectories() throws {
        var template = Array((NSTemporaryDirectory() + "/sitroom-watchdirs-XXXXXX").utf8CString)
        let root = ConfigWatcher.realPath(String(cString: try #require(mkdtemp(&template))))!
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeFiles(["sitroom.yaml": ""], under: root + "/etc")
        #expect(ConfigWatcher.watchDirectories(etc: root + "/etc") == [root + "/etc"])
        try writeFiles(["a.yaml": "", "b.mustache": ""], under: root + "/elsewhere")
        try FileManager.default.createDirectory(atPath: root + "/etc/templates", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(
            atPath: root + "/etc/integrations",
            withDestinationPath: "../elsewhere"
        )
        try FileManager.default.createSymbolicLink(
            atPath: root + "/etc/templates/room-ready.sms.mustache",
            withDestinationPath: root + "/elsewhere/b.mustache"
        )
        #expect(
            ConfigWatcher.watchDirectories(etc: root + "/etc") == [
                root + "/etc", root + "/elsewhere", root + "/etc/templates",
            ]
        )
    }
}
