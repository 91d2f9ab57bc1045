/// One subscription's circuit breaker: after `policy.downAfter` failed
/// attempts in a row it counts as down, and while down it gets one probe at a
/// time, spaced by the retry backoff. A value with no clock or thread of its
/// own, kept in the store with the outcomes that change it, so a restart
/// keeps a down subscription down.
struct Breaker: Sendable, Equatable {
    var consecutiveFailures = 0
    /// Probes that failed since it went down: they, not the burst of failures
    /// that tripped the breaker, set the probe backoff.
    var failedProbes = 0
    /// While down: no probe before this time (Unix ms).
    var probeNotBefore: Int64 = 0
    /// When it went down (Unix ms); nil while up.
    var downSince: Int64?
    /// An attempt succeeded since this process started, or since an operator
    /// retried, unpaused or re-pointed it. Not stored: after a restart a
    /// receiver has to show again that it answers before it gets a burst.
    var answering = false

    enum Transition: Equatable, Sendable {
        case wentDown
        /// Its first success after being down for this long (ms).
        case recovered(downMillis: Int64)
    }

    func isDown(_ policy: RetryPolicy) -> Bool { consecutiveFailures >= policy.downAfter }

    /// How many attempts may be in flight now: none while a down
    /// subscription waits for its next probe, one probe while down. While up,
    /// a slow start: until an attempt succeeds, and while attempts fail, no
    /// more at once than the failures that would take it down, so a receiver
    /// that is gone gets `downAfter` attempts before its probes, not a burst
    /// of `maxInFlight`. Then `maxInFlight`.
    func room(_ policy: RetryPolicy, maxInFlight: Int, now: Int64) -> Int {
        if isDown(policy) { return now < probeNotBefore ? 0 : 1 }
        if !answering || consecutiveFailures > 0 { return min(maxInFlight, policy.downAfter - consecutiveFailures) }
        return maxInFlight
    }

    mutating func succeeded(_ policy: RetryPolicy, now: Int64) -> Transition? {
        let wasDown = isDown(policy)
        let since = downSince
        self = Breaker()
        answering = true
        return wasDown ? .recovered(downMillis: max(0, now - (since ?? now))) : nil
    }

    /// `isProbe`: the attempt was claimed while down. `retryAfter`: the
    /// receiver's Retry-After (ms), if it sent one.
    mutating func failed(_ policy: RetryPolicy, isProbe: Bool, retryAfter: Int64?, now: Int64) -> Transition? {
        let wasDown = isDown(policy)
        consecutiveFailures += 1
        if !wasDown && isDown(policy) {
            // Just went down: the first probe after one initial backoff (or the receiver's Retry-After).
            failedProbes = 0
            probeNotBefore = now + policy.delayMillis(failures: 1, retryAfterMillis: retryAfter)
            downSince = now
            return .wentDown
        }
        if isProbe {
            // A failed probe: the next one waits longer, up to --retry-max.
            failedProbes += 1
            probeNotBefore = now + policy.delayMillis(failures: failedProbes + 1, retryAfterMillis: retryAfter)
        } else if wasDown, let retryAfter {
            // An attempt from before it went down: it may still ask for more patience.
            probeNotBefore = max(probeNotBefore, now + retryAfter)
        }
        return nil
    }

    /// Takes the stored breaker's state, keeping what only this process
    /// knows: whether the receiver has answered it yet.
    mutating func adopt(_ stored: Breaker) {
        let answering = answering
        self = stored
        self.answering = answering
    }

    /// An operator asked to try it now (retry, unpause, new URL): the next
    /// probe need not wait for its backoff. It stays down until one succeeds.
    mutating func probeNow() {
        probeNotBefore = 0
        answering = false
    }
}
