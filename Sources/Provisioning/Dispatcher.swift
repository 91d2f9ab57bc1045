import HTTPServer
import CCurl
import Foundation
import Logging

/// Pushes every pending delivery to its subscription's webhook URL, on one
/// thread that owns libcurl. Work comes from SQLite in batches; outcomes go
/// back through the writer. Each subscription has its own in-flight limit
/// and circuit breaker, so one slow or dead receiver never holds up another.
public final class Dispatcher: @unchecked Sendable {
    public struct Settings: Sendable {
        public var policy: RetryPolicy
        public var deliveryTimeout: Duration
        public var maxInFlight: Int
        public var userAgent = "provisiond/\(ProvisiondVersion.current)"
        /// PEM bundle of the CAs trusted for https webhooks; nil: the system's.
        public var caFile: String?
        public init(policy: RetryPolicy, deliveryTimeout: Duration, maxInFlight: Int) {
            self.policy = policy
            self.deliveryTimeout = deliveryTimeout
            self.maxInFlight = maxInFlight
        }
    }

    /// Per-subscription bookkeeping, in memory only: after a restart every
    /// subscription starts healthy and in-flight attempts are simply due again.
    private struct SubscriptionState {
        /// Deliveries being attempted, or whose outcome is not committed yet:
        /// not to be claimed again.
        var busy = Set<Int64>()
        var consecutiveFailures = 0
        /// Probes that failed since the subscription went down: they, not the
        /// burst of failures that tripped the breaker, set the probe backoff.
        var failedProbes = 0
        /// While down: no probe before this time (Unix ms).
        var probeNotBefore: Int64 = 0

        /// Down (failing in a row): probed one attempt at a time.
        func isDown(_ policy: RetryPolicy) -> Bool { consecutiveFailures >= policy.downAfter }
    }

    /// What other threads hand the dispatcher thread.
    private struct Inbox {
        var wake = false
        var committed: [(subscription: Int64, delivery: Int64)] = []
        /// Subscriptions an operator acted on (retry, unpause, new URL).
        var probeNow: Set<String> = []
        /// Set by shutdown: stop claiming; abandon what is in flight after this (Unix ms).
        var stopDeadline: Int64?
    }

    /// Whether the thread has ended, and who waits for it.
    private struct Finish {
        var done = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let store: TopicStore
    private let settings: Settings
    private let metrics: Metrics
    private let logger: Logger
    private let curl = CurlMulti()
    private let inbox = Locked(Inbox())
    private let finish = Locked(Finish())

    // Dispatcher-thread state.
    private var reader: SQLiteConnection?
    private var targets: [Int64: SubscriptionTarget] = [:]
    private var subscriptions: [Int64: SubscriptionState] = [:]
    private var attempts: [UnsafeMutableRawPointer: WebhookAttempt] = [:]
    private var awaitingCommit = 0
    private var nextScanAt: Int64 = 0

    public init(store: TopicStore, settings: Settings, metrics: Metrics, logger: Logger) {
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    /// Opens the dispatcher's own database reader and starts its thread.
    public func start() throws {
        reader = try store.openQueueReader()
        let thread = Thread { [self] in run() }
        thread.name = "dispatcher"
        thread.start()
    }

    /// New or requeued deliveries, or a changed subscription: look now, not
    /// at the next timer.
    public func wake() {
        inbox.withLock { $0.wake = true }
        curl.wakeup()
    }

    /// An operator retried, unpaused or re-pointed the subscription: if it is
    /// down, probe it now rather than after its backoff (which can be as
    /// long as --retry-max). It stays down until a probe succeeds.
    public func probeNow(subscriptionId: String) {
        inbox.withLock {
            $0.probeNow.insert(subscriptionId)
            $0.wake = true
        }
        curl.wakeup()
    }

    /// Stops claiming, lets in-flight attempts finish for up to `grace`, and
    /// hands back the rest as due (they stay pending in the database).
    public func shutdown(grace: Duration) async {
        let deadline = WallClock.nowMillis() + grace.milliseconds
        inbox.withLock { $0.stopDeadline = deadline }
        curl.wakeup()
        await withCheckedContinuation { continuation in
            let done = finish.withLock { finish -> Bool in
                if !finish.done { finish.waiter = continuation }
                return finish.done
            }
            if done { continuation.resume() }
        }
    }

    // MARK: Dispatcher thread

    private func run() {
        var stopDeadline: Int64?
        while true {
            let box = inbox.withLock { box -> Inbox in
                let taken = box
                box.wake = false
                box.committed.removeAll()
                box.probeNow.removeAll()
                return taken
            }
            for (subscription, delivery) in box.committed {
                subscriptions[subscription]?.busy.remove(delivery)
                awaitingCommit -= 1
            }
            for (seq, target) in targets where box.probeNow.contains(target.id) {
                subscriptions[seq]?.probeNotBefore = 0
            }
            stopDeadline = stopDeadline ?? box.stopDeadline
            let now = WallClock.nowMillis()
            if let stopDeadline {
                if attempts.isEmpty && awaitingCommit == 0 { break }
                if now >= stopDeadline {
                    // Out of time: abandon what is in flight; it stays pending and is due after restart.
                    for attempt in attempts.values { curl.remove(attempt) }
                    attempts.removeAll()
                    if awaitingCommit == 0 { break }
                }
            } else if box.wake || !box.committed.isEmpty || now >= nextScanAt {
                scan(now: now)
            }
            curl.perform()
            collectFinished()
            let wait = stopDeadline != nil ? 50 : max(0, min(1000, nextScanAt - WallClock.nowMillis()))
            curl.poll(timeoutMs: Int(wait))
        }
        reader = nil
        let waiter = finish.withLock { finish -> CheckedContinuation<Void, Never>? in
            finish.done = true
            return finish.waiter
        }
        waiter?.resume()
    }

    /// Claims due deliveries for every subscription with room, and works out
    /// when to look again.
    private func scan(now: Int64) {
        guard let reader else { return }
        nextScanAt = now + 1000
        do {
            let current = try TopicStore.targets(reader)
            let known = Set(current.map(\.seq))
            for (seq, _) in targets where !known.contains(seq) { forget(subscription: seq) }
            targets = Dictionary(uniqueKeysWithValues: current.map { ($0.seq, $0) })
            for target in current where !target.paused {
                try claim(for: target, now: now, reader: reader)
            }
        } catch {
            logger.error("dispatcher could not read due deliveries: \(error)")
        }
    }

    private func claim(for target: SubscriptionTarget, now: Int64, reader: SQLiteConnection) throws {
        var state = subscriptions[target.seq] ?? SubscriptionState()
        defer { subscriptions[target.seq] = state }
        let isDown = state.isDown(settings.policy)
        if isDown && now < state.probeNotBefore {
            nextScanAt = min(nextScanAt, state.probeNotBefore)
            return
        }
        // While down, one probe at a time; otherwise up to --max-in-flight.
        let room = (isDown ? 1 : settings.maxInFlight) - state.busy.count
        guard room > 0 else { return }
        let due = try TopicStore.due(reader, subscription: target.seq, now: now, limit: room, excluding: state.busy)
        if due.count < room, let next = try TopicStore.nextDue(reader, subscription: target.seq, after: now) {
            nextScanAt = min(nextScanAt, next)
        }
        guard !due.isEmpty else { return }
        guard let signer = WebhookSigner(secret: target.secret) else {
            logger.error("subscription \(target.name) has an unusable secret")
            return
        }
        for delivery in due {
            guard let attempt = WebhookAttempt(
                url: target.url, subscriptionSeq: target.seq, delivery: delivery, signer: signer,
                timeoutMs: Int(settings.deliveryTimeout.milliseconds), userAgent: settings.userAgent,
                caFile: settings.caFile, now: now)
            else { continue }
            attempt.isProbe = isDown
            state.busy.insert(delivery.seq)
            attempts[attempt.easy] = attempt
            curl.add(attempt)
        }
    }

    /// A deleted subscription: stop its attempts; its rows are gone already.
    private func forget(subscription seq: Int64) {
        for (easy, attempt) in attempts where attempt.subscriptionSeq == seq {
            curl.remove(attempt)
            attempts[easy] = nil
        }
        subscriptions[seq] = nil
    }

    /// Turns finished transfers into outcomes and writes them in one group.
    private func collectFinished() {
        let finished = curl.finished()
        guard !finished.isEmpty else { return }
        let now = WallClock.nowMillis()
        var outcomes: [AttemptOutcome] = []
        var keys: [(subscription: Int64, delivery: Int64)] = []
        var reopened: [Int64] = []
        for (easy, code) in finished {
            guard let attempt = attempts.removeValue(forKey: easy) else { continue }
            curl.remove(attempt)
            let (outcome, retryAfter) = outcome(of: attempt, code: code, now: now)
            outcomes.append(outcome)
            keys.append((attempt.subscriptionSeq, attempt.delivery.seq))
            if account(outcome, retryAfter: retryAfter, attempt: attempt, now: now) {
                reopened.append(attempt.subscriptionSeq)
            }
        }
        guard !outcomes.isEmpty else { return }
        awaitingCommit += keys.count
        let recorded = keys
        store.record(outcomes, backlogDueNow: reopened, now: now) { [self] result in
            let release: @Sendable () -> Void = { [self] in
                inbox.withLock { $0.committed.append(contentsOf: recorded) }
                curl.wakeup()
            }
            if case .failure(let error) = result {
                // Not recorded: the deliveries stay pending and will be sent again (at-least-once).
                // Not at once, though: while the disk refuses writes, that would resend in a loop.
                logger.error("could not record \(recorded.count) delivery outcomes: \(error)")
                DispatchQueue.global().asyncAfter(deadline: .now() + 1, execute: release)
            } else {
                release()
            }
        }
    }

    /// The attempt's outcome to record, and the receiver's Retry-After (ms), if any.
    private func outcome(of attempt: WebhookAttempt, code: CURLcode, now: Int64) -> (AttemptOutcome, Int64?) {
        let status = attempt.responseStatus
        let delivered = code == CURLE_OK && status.map { (200..<300).contains($0) } == true
        if delivered {
            let outcome = AttemptOutcome(
                deliverySeq: attempt.delivery.seq, delivered: true, failed: false, attemptedAt: attempt.startedAt,
                status: status, error: nil, nextAttemptAt: nil)
            return (outcome, nil)
        }
        let timeoutMs = Int(settings.deliveryTimeout.milliseconds)
        let error: String
        if code != CURLE_OK {
            error = CurlMulti.describe(code, detail: attempt.errorDetail, timeoutMs: timeoutMs)
        } else if let status, (300..<400).contains(status) {
            error = "HTTP \(status): redirect not followed" + (attempt.header("Location").map { " (Location: \($0))" } ?? "")
        } else {
            error = "HTTP \(status ?? 0)"
        }
        var retryAfter: Int64?
        if let status, status == 429 || status == 503, let header = attempt.header("Retry-After") {
            retryAfter = RetryPolicy.parseRetryAfter(header, nowMillis: now)
        }
        let attemptsSoFar = attempt.delivery.attempts + 1
        let exhausted = settings.policy.isExhausted(attempts: attemptsSoFar)
        let outcome = AttemptOutcome(
            deliverySeq: attempt.delivery.seq, delivered: false, failed: exhausted, attemptedAt: attempt.startedAt,
            status: status, error: error,
            nextAttemptAt: exhausted ? nil : now + settings.policy.delayMillis(failures: attemptsSoFar, retryAfterMillis: retryAfter))
        return (outcome, retryAfter)
    }

    /// Updates the breaker and the metrics; true when this success brought a
    /// down subscription back up.
    private func account(_ outcome: AttemptOutcome, retryAfter: Int64?, attempt: WebhookAttempt, now: Int64) -> Bool {
        let name = targets[attempt.subscriptionSeq]?.name ?? "deleted"
        guard var state = subscriptions[attempt.subscriptionSeq] else { return false }
        defer { subscriptions[attempt.subscriptionSeq] = state }
        let policy = settings.policy
        let wasDown = state.isDown(policy)
        if outcome.delivered {
            if wasDown {
                logger.info("subscription \(name) is up again; its backlog flows")
            }
            state.consecutiveFailures = 0
            state.failedProbes = 0
            state.probeNotBefore = 0
            metrics.delivery(subscription: name, outcome: "delivered")
            metrics.acknowledged(afterSeconds: Double(max(0, now - attempt.delivery.createdAt)) / 1000)
            return wasDown
        } else {
            state.consecutiveFailures += 1
            if !wasDown && state.isDown(policy) {
                // Just went down: the first probe after one initial backoff (or the receiver's Retry-After).
                state.failedProbes = 0
                state.probeNotBefore = now + policy.delayMillis(failures: 1, retryAfterMillis: retryAfter)
                logger.warning("subscription \(name) is down after \(policy.downAfter) failed attempts in a row; probing it one attempt at a time")
            } else if attempt.isProbe {
                // A failed probe: the next one waits longer, up to --retry-max.
                state.failedProbes += 1
                state.probeNotBefore = now + policy.delayMillis(failures: state.failedProbes + 1, retryAfterMillis: retryAfter)
            } else if wasDown, let retryAfter {
                // An attempt from before it went down: it may still ask for more patience.
                state.probeNotBefore = max(state.probeNotBefore, now + retryAfter)
            }
            metrics.delivery(subscription: name, outcome: outcome.failed ? "failed" : "retry")
            return false
        }
    }
}

public enum ProvisiondVersion {
    public static let current = "0.1.0"
}
