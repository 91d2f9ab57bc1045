import Dispatch
import Essentials
import Foundation

/// Catches termination signals from the moment it is created (so a SIGTERM
/// during start-up still ends in a clean stop), without a thread blocked in
/// a signal handler.
final class SignalWaiter: @unchecked Sendable {
    private struct State {
        var received: Int32?
        var continuation: CheckedContinuation<Int32, Never>?
    }
    private let state = Locked(State())
    private var sources: [DispatchSourceSignal] = []

    init(_ signals: [Int32]) {
        for number in signals {
            signal(number, SIG_IGN)  // let the dispatch source see it instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in deliver(number) }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal caught, now or later.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let received = state.withLock { state -> Int32? in
                if state.received == nil { state.continuation = continuation }
                return state.received
            }
            if let received { continuation.resume(returning: received) }
        }
    }

    private func deliver(_ number: Int32) {
        let waiting = state.withLock { state -> CheckedContinuation<Int32, Never>? in
            guard state.received == nil else { return nil }
            state.received = number
            defer { state.continuation = nil }
            return state.continuation
        }
        waiting?.resume(returning: number)
    }
}
