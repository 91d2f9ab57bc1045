import Dispatch
import Foundation

/// Catches termination signals from the moment it is created (so a SIGTERM
/// during start-up still ends in a clean stop), without a thread blocked in
/// a signal handler.
final class SignalWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
    private var continuation: CheckedContinuation<Int32, Never>?
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
            lock.lock()
            if let received {
                lock.unlock()
                continuation.resume(returning: received)
            } else {
                self.continuation = continuation
                lock.unlock()
            }
        }
    }

    private func deliver(_ number: Int32) {
        lock.lock()
        guard received == nil else { return lock.unlock() }
        received = number
        let waiting = continuation
        continuation = nil
        lock.unlock()
        waiting?.resume(returning: number)
    }
}
