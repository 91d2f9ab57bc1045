import Essentials
import Logging

/// Creates the catch-up deliveries of `deliver: all` subscriptions in
/// batches, one runner at a time; a request while it runs makes it look again.
final class BackfillRunner: Sendable {
    private struct State {
        var running = false
        var again = false
        var task: Task<Void, Never>?
    }

    private let store: TopicStore
    private let logger: Logger
    private let batchDone: @Sendable () -> Void
    private let state = Locked(State())

    init(store: TopicStore, logger: Logger, batchDone: @escaping @Sendable () -> Void) {
        self.store = store
        self.logger = logger
        self.batchDone = batchDone
    }

    func request() {
        state.withLock { state in
            if state.running {
                state.again = true
                return
            }
            state.running = true
            state.task = Task { await self.run() }
        }
    }

    private func run() async {
        repeat {
            do {
                while !Task.isCancelled, try await store.backfillStep() { batchDone() }
            } catch {
                logger.error("catch-up of a deliver=all subscription stopped: \(error)")
            }
        } while state.withLock { state in
            if state.again && !Task.isCancelled {
                state.again = false
                return true
            }
            state.running = false
            return false
        }
    }

    /// Stops after the current batch (the rest resumes on the next start).
    func stop() async {
        let task = state.withLock { $0.task }
        task?.cancel()
        await task?.value
    }
}
