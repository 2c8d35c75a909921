import Foundation
import PosixIO

/// Coalesces a burst of change signals into one reload, and decides how long to wait for it (the rules are on
/// ``ConfigWatcher``): `settle` seconds after the last event when the burst ``isPublished(watching:)``, else
/// `quiet` seconds (followed by one more quiet period in which the files must look the same, which the watcher
/// checks and reports with ``stillChanging(at:)``); at the latest `maxDelay` seconds after the first signal.
/// Times are seconds on any monotonic scale. A value type with no I/O, so its decisions are testable without
/// time passing.
struct ReloadDebouncer: Sendable {
    let quiet: Double
    let settle: Double
    let maxDelay: Double
    private var first: Double? = nil
    private var last: Double = 0
    /// Every entry the burst's events named, with the kinds of its first and its latest event.
    private var touched: [Entry: (first: DirectoryEvent.Kind, last: DirectoryEvent.Kind)] = [:]
    /// Watched directories that went away during the burst (`.directoryGone`).
    private var gone: Set<String> = []
    /// A signal that says nothing about how it was saved came (a lost-events overflow, a safety-net check).
    private var blind = false
    /// The files changed without an event: the quiet rule for the rest of the burst.
    private var unsettled = false

    /// A directory entry: the watched directory as inotify reported it, and the name in it.
    struct Entry: Hashable, Sendable {
        var directory: String
        var name: String
    }

    /// - Parameters: seconds, see ``ConfigWatcher/Timing``.
    init(quiet: Double, settle: Double, maxDelay: Double) {
        self.quiet = quiet
        self.settle = settle
        self.maxDelay = maxDelay
    }

    /// Whether a burst waits to be reloaded.
    var isPending: Bool { first != nil }

    /// Records a change signal that names nothing (the safety-net check saw a change): the quiet rule.
    /// - Returns: when the burst is due.
    mutating func changed(at now: Double) -> Double {
        blind = true
        return record(at: now, watching: [])
    }

    /// Records one batch of inotify events.
    /// - Parameters:
    ///   - now: when it was read.
    ///   - events: in the kernel's order.
    ///   - watching: the directories `etc/` is read from now (``ConfigWatcher/watchDirectories(etc:)``).
    /// - Returns: when the burst is due.
    mutating func changed(at now: Double, events: [DirectoryEvent], watching: Set<String>) -> Double {
        for event in events {
            switch event.kind {
            case .overflow:
                blind = true
            case .directoryGone:
                gone.insert(event.directory)
            case .created, .closedWrite, .movedIn, .movedOut, .deleted:
                guard let name = event.name else {
                    blind = true
                    continue
                }
                let entry = Entry(directory: event.directory, name: name)
                touched[entry] = (touched[entry]?.first ?? event.kind, event.kind)
            }
        }
        return record(at: now, watching: watching)
    }

    private mutating func record(at now: Double, watching: Set<String>) -> Double {
        if first == nil { first = now }
        last = now
        return dueTime(watching: watching)
    }

    /// Whether the burst only published files by renaming them into place, so that it may be reloaded `settle`
    /// seconds after its last event instead of after the quiet rule. Only entries in `watching` count (a
    /// Kubernetes swap deletes the old `..TIMESTAMP/`, which is no longer read). It is when nothing blind came,
    /// no watched directory went away, the files were not seen changing without events, at least one entry's
    /// latest event is a rename into place, and every other entry
    /// - has a rename into place as its latest event (`sed -i`'s result, `..data`), or
    /// - is hidden or a backup (`.NAME`, `NAME~`): names the loader never reads (`..data` and `..TIMESTAMP/` are
    ///   read only through a link renamed into place), whatever happened to them, or
    /// - is gone (renamed away or deleted) and either was created in the burst (`sedXXXXXX`, `NAME.new`,
    ///   `4913`) or has a name the loader does not read (`NAME.new` written earlier and now renamed over `NAME`).
    ///
    /// So a file written in place (its close), created and not yet renamed away, or a configuration file removed
    /// or renamed away (vim's `NAME` → `NAME~`, a deletion) keeps the quiet rule; ``ConfigWatcher`` says why.
    func isPublished(watching: Set<String>) -> Bool {
        guard isPending, !blind, !unsettled, gone.isDisjoint(with: watching) else { return false }
        var renamedIn = false
        for (entry, kinds) in touched where watching.contains(entry.directory) {
            if kinds.last == .movedIn {
                renamedIn = true
                continue
            }
            if Self.isHiddenOrBackup(entry.name) { continue }
            if kinds.last == .movedOut || kinds.last == .deleted,
                kinds.first == .created || !Self.mayBeRead(entry.name)
            {
                continue
            }
            return false
        }
        return renamedIn
    }

    /// Dotfiles and `~` backups: a subset of what the configuration loader ignores, so that a change to its rules
    /// can only make this more careful.
    static func isHiddenOrBackup(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix("~")
    }

    /// Whether the configuration loader may read an entry of this name: `*.yaml`, `*.mustache` and the
    /// `integrations` and `templates` directories (a superset of what it reads).
    static func mayBeRead(_ name: String) -> Bool {
        name.hasSuffix(".yaml") || name.hasSuffix(".mustache") || name == "integrations" || name == "templates"
    }

    /// The files changed during the wait (or were not compared yet): starts a quiet period now, and the quiet
    /// rule holds for the rest of the burst. - Returns: when the burst is due.
    mutating func stillChanging(at now: Double) -> Double {
        unsettled = true
        last = now
        return dueTime(watching: [])
    }

    /// When the pending burst is due if that is still in the future, else `nil` (due now, or nothing pending).
    /// - Parameter watching: as for ``changed(at:events:watching:)``.
    func due(at now: Double, watching: Set<String>) -> Double? {
        guard isPending else { return nil }
        let due = dueTime(watching: watching)
        return due > now ? due : nil
    }

    private func dueTime(watching: Set<String>) -> Double {
        guard let first else { return last }
        return min(last + (isPublished(watching: watching) ? settle : quiet), first + maxDelay)
    }

    /// Whether the pending burst has waited `maxDelay` since its first signal.
    func isOverdue(at now: Double) -> Bool {
        guard let first else { return false }
        return now >= first + maxDelay
    }

    /// Forgets the burst (it is being reloaded).
    mutating func reset() {
        first = nil
        touched = [:]
        gone = []
        blind = false
        unsettled = false
    }
}
