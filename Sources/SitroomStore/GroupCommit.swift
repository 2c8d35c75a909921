/// Writes gathered for one synced write transaction (a group commit): many callers' writes share one
/// `fdatasync`, and each caller is resumed only once the commit that holds its write is durable, so nothing is
/// acted on (a create sent, a notice queued) before the write that records it is on disk.
///
/// Each write runs in its own nested transaction (``StoreTransaction/nested(_:)``): one that throws is undone
/// alone and its caller gets the error; a commit that fails as a whole fails every caller. The owner (an actor)
/// keeps one `GroupCommit`, adds writes with ``add(_:done:)`` and calls ``flush(into:committed:)`` once per
/// batch, after the jobs already queued on it, so their writes join the same commit.
public struct GroupCommit {
    /// A write: it runs later, on the owner, maybe more than once (when the map is grown), so it must have no
    /// effects outside the transaction.
    public typealias Write = (borrowing StoreTransaction) throws -> any Sendable

    private var pending: [(body: Write, done: CheckedContinuation<any Sendable, any Error>)] = []
    private var flushScheduled = false

    /// An empty batch.
    public init() {}

    /// Adds a write to the next commit; `done` is resumed with what the write returned (or threw) once that
    /// commit is synced.
    /// - Returns: true when the owner must schedule a ``flush(into:committed:)`` (none is scheduled yet).
    public mutating func add(_ body: @escaping Write, done: CheckedContinuation<any Sendable, any Error>) -> Bool {
        pending.append((body, done))
        guard !flushScheduled else { return false }
        flushScheduled = true
        return true
    }

    /// Commits every write added since the last flush in one synced transaction, then resumes their callers in
    /// the order the writes were added.
    /// - Parameters:
    ///   - store: the store written.
    ///   - committed: told how many writes the commit held, after it is synced and before any caller is resumed
    ///     (not called when there was nothing to commit or the commit failed).
    public mutating func flush(into store: Store, committed: (Int) -> Void) {
        flushScheduled = false
        let batch = pending
        pending = []
        guard !batch.isEmpty else { return }
        var outcomes: [Result<any Sendable, any Error>] = []
        do {
            try store.write { txn in
                outcomes = []
                for write in batch {
                    outcomes.append(Result { try txn.nested { child in try write.body(child) } })
                }
            }
        } catch {
            for write in batch { write.done.resume(throwing: error) }
            return
        }
        committed(batch.count)
        for (write, outcome) in zip(batch, outcomes) { write.done.resume(with: outcome) }
    }
}
