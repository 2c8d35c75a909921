import Dispatch
import Synchronization

/// A FIFO that one consumer thread blocks on: producers append (waiting only for the lock), the consumer takes
/// what is queued, sleeping while nothing is.
///
/// The elements are guarded by a `Mutex`; the consumer sleeps on a `DispatchSemaphore`, which a producer signals
/// only when the consumer said it was going to sleep, so a busy consumer takes elements in batches without a
/// wake-up per element. (`Mutex` has no condition variable; a semaphore keeps a signal given before the consumer
/// waits, so no wake-up is lost.) One thread may call ``take(_:)``; any may call ``append(_:)``.
public final class BlockingQueue<Element: Sendable>: Sendable {
    private struct State {
        var elements: [Element] = []
        /// The consumer found the queue empty and waits (or is about to wait) on `wake`.
        var sleeping = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    /// Creates an empty queue.
    public init() {}

    /// Appends `element`, waking the consumer if it sleeps.
    public func append(_ element: sending Element) {
        append { element }
    }

    /// Appends the element `make` returns, made with the queue locked, so elements made one after another (named
    /// from a counter, say) are queued in that order.
    /// - Throws: What `make` throws (then nothing is appended).
    public func append(_ make: () throws -> sending Element) rethrows {
        let wakeUp = try state.withLock { state in
            state.elements.append(try make())
            defer { state.sleeping = false }
            return state.sleeping
        }
        if wakeUp { wake.signal() }
    }

    /// Waits until an element is queued, then runs `body` on the queue, locked; `body` removes what it takes.
    /// Call it from the one consumer thread.
    /// - Returns: What `body` returns (what it took, say).
    public func take<R>(_ body: (inout [Element]) -> sending R) -> sending R {
        while true {
            let taken: R? = state.withLock { state in
                if state.elements.isEmpty {
                    state.sleeping = true
                    return nil
                }
                return body(&state.elements)
            }
            if let taken { return taken }
            wake.wait()
        }
    }
}
