import CCurl
import Essentials
import Foundation
import Logging

/// Pushes every pending delivery to its subscription's webhook URL, on one
/// thread that owns libcurl. Work comes from SQLite in batches; outcomes go
/// back through the writer. Each subscription has its own in-flight limit
/// and circuit breaker, so one slow or dead receiver never holds up another.
final class Dispatcher: @unchecked Sendable {
    struct Settings: Sendable {
        var policy: RetryPolicy
        var deliveryTimeout: Duration
        var maxInFlight: Int
        /// Attempts at once across all subscriptions (--max-outgoing), before
        /// the descriptor limit lowers it.
        var maxOutgoing = 1024
        var userAgent = "provisiond/\(ProvisiondVersion.current)"
        /// PEM bundle of the CAs trusted for https webhooks; nil: the system's.
        var caFile: String?
        init(policy: RetryPolicy, deliveryTimeout: Duration, maxInFlight: Int) {
            self.policy = policy
            self.deliveryTimeout = deliveryTimeout
            self.maxInFlight = maxInFlight
        }
    }

    /// Per-subscription bookkeeping. The breaker is the stored one (the
    /// outcome write works it out, from every instance's attempts), moved on
    /// by this process's outcomes until they are written; `busy` lives in
    /// memory only: after a restart, attempts that were in flight are simply
    /// due again.
    private struct SubscriptionState {
        /// Deliveries being attempted, or whose outcome is not committed yet:
        /// not to be claimed again.
        var busy = Set<Int64>()
        /// Outcomes not written yet: until they are, the stored breaker is behind this one.
        var unwritten = 0
        var breaker: Breaker
        /// Keyed once per subscription (and again if its secret changes).
        var signer: (secret: String, signer: WebhookSigner)?
    }

    /// Outcomes the store could not write yet (descriptors or disk ran out):
    /// written again later, never dropped; their deliveries stay busy until then.
    private struct Unrecorded {
        let reports: [AttemptReport]
        let keys: [(subscription: Int64, delivery: Int64)]
        /// Not written again before this time (Unix ms).
        var notBefore: Int64
    }

    /// What other threads hand the dispatcher thread.
    private struct Inbox {
        var wake = false
        var committed: [(subscription: Int64, delivery: Int64)] = []
        /// The breakers as the committed outcome writes stored them.
        var stored: [(seq: Int64, breaker: Breaker)] = []
        var unrecorded: [Unrecorded] = []
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

    private let queue: any DeliveryQueue
    private let settings: Settings
    private let metrics: Metrics
    private let logger: Logger
    private let curl = CurlMulti()
    private let inbox = Locked(Inbox())
    private let finish = Locked(Finish())

    // Dispatcher-thread state.
    private var targets: [Int64: SubscriptionTarget] = [:]
    private var subscriptions: [Int64: SubscriptionState] = [:]
    private var attempts: [UnsafeMutableRawPointer: WebhookAttempt] = [:]
    private var awaitingCommit = 0
    private var nextScanAt: Int64 = 0
    /// --max-outgoing, lowered to what the descriptor limit leaves room for.
    let maxOutgoing: Int
    /// Where the next scan starts, so that under --max-outgoing every
    /// subscription gets its turn (an index into the subscriptions by seq).
    private var scanOffset = 0

    init(queue: any DeliveryQueue, settings: Settings, metrics: Metrics, logger: Logger) {
        self.queue = queue
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        maxOutgoing = min(settings.maxOutgoing, Dispatcher.descriptorBudget())
        curl.limitConnections(to: maxOutgoing)
    }

    /// Attempts the descriptor limit leaves room for: half of what remains
    /// after a reserve for the store, its readers and the process, the other
    /// half being for the API's clients. An attempt that cannot get a socket
    /// would fail, and so would the store's next file open.
    static func descriptorBudget() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return Int.max }
        return max(1, (Int(clamping: limit.rlim_cur) - 128) / 2)
    }

    /// Opens the dispatcher's queue (its own database reader) and starts its thread.
    func start() throws {
        try queue.open()
        if maxOutgoing < settings.maxOutgoing {
            logger.warning("--max-outgoing lowered from \(settings.maxOutgoing) to \(maxOutgoing): the descriptor limit (ulimit -n) leaves room for no more")
        }
        let thread = Thread { [self] in run() }
        thread.name = "dispatcher"
        thread.start()
    }

    /// New or requeued deliveries, or a changed subscription: look now, not
    /// at the next timer.
    func wake() {
        inbox.withLock { $0.wake = true }
        curl.wakeup()
    }

    /// An operator retried, unpaused or re-pointed the subscription: if it is
    /// down, probe it now rather than after its backoff (which can be as
    /// long as --retry-max). It stays down until a probe succeeds.
    func probeNow(subscriptionId: String) {
        inbox.withLock {
            $0.probeNow.insert(subscriptionId)
            $0.wake = true
        }
        curl.wakeup()
    }

    /// Stops claiming, lets in-flight attempts finish for up to `grace`, and
    /// hands back the rest as due (they stay pending in the database).
    func shutdown(grace: Duration) async {
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
                box.stored.removeAll()
                box.probeNow.removeAll()
                box.unrecorded.removeAll()
                return taken
            }
            for (subscription, delivery) in box.committed {
                subscriptions[subscription]?.busy.remove(delivery)
                subscriptions[subscription]?.unwritten -= 1
                awaitingCommit -= 1
            }
            for (seq, breaker) in box.stored { adopt(breaker, for: seq) }
            for (seq, target) in targets where box.probeNow.contains(target.id) {
                subscriptions[seq]?.breaker.probeNow()
            }
            stopDeadline = stopDeadline ?? box.stopDeadline
            let now = WallClock.nowMillis()
            retryRecording(box.unrecorded, now: now)
            if let stopDeadline {
                if attempts.isEmpty && awaitingCommit == 0 { break }
                if now >= stopDeadline {
                    // Out of time: abandon what is in flight; it stays pending and is due after restart.
                    for attempt in attempts.values { curl.remove(attempt) }
                    attempts.removeAll()
                    if awaitingCommit == 0 { break }
                    // Outcomes the store still cannot take (the database is gone): their
                    // deliveries stay pending and go out again after a restart; stop anyway.
                    if now >= stopDeadline + 5000 {
                        logger.warning("stopping with \(awaitingCommit) delivery outcomes not written: those deliveries stay pending and will be sent again")
                        break
                    }
                }
            } else if box.wake || !box.committed.isEmpty || queue.takeNotifications() || now >= nextScanAt {
                scan(now: now)
            }
            curl.perform()
            collectFinished()
            renewClaims(now: now)
            let wait = stopDeadline != nil || !unrecorded.isEmpty ? 50 : max(0, min(1000, nextScanAt - WallClock.nowMillis()))
            // Another instance's publish wakes this one through the queue's socket (PostgreSQL's NOTIFY).
            curl.poll(timeoutMs: Int(wait), alsoWatching: queue.wakeSocket)
        }
        queue.close()
        let waiter = finish.withLock { finish -> CheckedContinuation<Void, Never>? in
            finish.done = true
            return finish.waiter
        }
        waiter?.resume()
    }

    /// Claims due deliveries for every subscription with room, and works out
    /// when to look again.
    private func scan(now: Int64) {
        nextScanAt = now + 1000
        do {
            let current = try queue.targets()
            let known = Set(current.map(\.seq))
            for (seq, _) in targets where !known.contains(seq) { forget(subscription: seq) }
            targets = Dictionary(uniqueKeysWithValues: current.map { ($0.seq, $0) })
            // Round robin from where the last scan ran out of --max-outgoing.
            let start = current.isEmpty ? 0 : scanOffset % current.count
            for index in Array(start..<current.count) + Array(0..<start) where !current[index].paused {
                guard attempts.count < maxOutgoing else {
                    scanOffset = index
                    break
                }
                try claim(for: current[index], now: now)
            }
        } catch {
            logger.error("dispatcher could not read due deliveries: \(error)")
        }
    }

    private func claim(for target: SubscriptionTarget, now: Int64) throws {
        var state = subscriptions[target.seq] ?? SubscriptionState(breaker: target.breaker)
        // What other instances (or an operator) changed shows in the stored breaker.
        if state.unwritten == 0 { state.breaker.adopt(target.breaker) }
        defer { subscriptions[target.seq] = state }
        let isDown = state.breaker.isDown(settings.policy)
        // While down, one probe at a time; otherwise up to --max-in-flight;
        // and never more than --max-outgoing across all subscriptions.
        let allowed = state.breaker.room(settings.policy, maxInFlight: settings.maxInFlight, now: now)
        if allowed == 0 {
            nextScanAt = min(nextScanAt, state.breaker.probeNotBefore)
            return
        }
        let room = min(allowed - state.busy.count, maxOutgoing - attempts.count)
        guard room > 0 else { return }
        let due = try queue.due(subscription: target.seq, now: now, limit: room, excluding: state.busy)
        if due.count < room, let next = try queue.nextDue(subscription: target.seq, after: now) {
            nextScanAt = min(nextScanAt, next)
        }
        guard !due.isEmpty else { return }
        let signer: WebhookSigner
        if let kept = state.signer, kept.secret == target.secret {
            signer = kept.signer
        } else {
            guard let made = WebhookSigner(secret: target.secret) else {
                logger.error("subscription \(target.name) has an unusable secret")
                return
            }
            signer = made
            state.signer = (target.secret, made)
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

    /// The breaker as an outcome write stored it, unless more outcomes of
    /// this process are on their way to the store.
    private func adopt(_ stored: Breaker, for seq: Int64) {
        guard var state = subscriptions[seq], state.unwritten == 0 else { return }
        state.breaker.adopt(stored)
        subscriptions[seq] = state
    }

    /// When the claims of what this process holds were last extended.
    private var claimsRenewedAt: Int64 = 0

    /// Every second, the leases of what is busy here (see `DeliveryQueue.renewClaims`).
    private func renewClaims(now: Int64) {
        guard queue.leasesClaims, now - claimsRenewedAt >= 1000 else { return }
        claimsRenewedAt = now
        let held = subscriptions.values.flatMap(\.busy)
        do {
            try queue.renewClaims(held, now: now)
        } catch {
            logger.error("could not renew the claims of \(held.count) deliveries in flight: \(error)")
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
        var reports: [AttemptReport] = []
        var keys: [(subscription: Int64, delivery: Int64)] = []
        for (easy, code) in finished {
            guard let attempt = attempts.removeValue(forKey: easy) else { continue }
            curl.remove(attempt)
            let (outcome, retryAfter) = outcome(of: attempt, code: code, now: now)
            reports.append(AttemptReport(outcome: outcome, isProbe: attempt.isProbe, retryAfter: retryAfter))
            keys.append((attempt.subscriptionSeq, attempt.delivery.seq))
            subscriptions[attempt.subscriptionSeq]?.unwritten += 1
            account(outcome, retryAfter: retryAfter, attempt: attempt, now: now)
        }
        guard !reports.isEmpty else { return }
        awaitingCommit += keys.count
        record(Unrecorded(reports: reports, keys: keys, notBefore: now))
    }

    /// Outcomes waiting to be written again, on the dispatcher thread.
    private var unrecorded: [Unrecorded] = []

    private func record(_ batch: Unrecorded) {
        queue.record(batch.reports, now: WallClock.nowMillis()) { [self] result in
            switch result {
            case .success(let recorded):
                for type in recorded.operational { metrics.event(type) }
                for subscription in recorded.subscriptions { logTransitions(subscription) }
                inbox.withLock {
                    $0.committed.append(contentsOf: batch.keys)
                    $0.stored.append(contentsOf: recorded.subscriptions.map { ($0.target.seq, $0.breaker) })
                }
            case .failure(let error):
                // Kept and written again in a second: the deliveries stay busy meanwhile,
                // so nothing is resent before its outcome is on record.
                logger.error("could not record \(batch.keys.count) delivery outcomes yet, writing them again in 1s: \(error)")
                var again = batch
                again.notBefore = WallClock.nowMillis() + 1000
                inbox.withLock { $0.unrecorded.append(again) }
            }
            curl.wakeup()
        }
    }

    /// A subscription that went down or came back, as the stored breaker says (once, whichever instance saw it).
    private func logTransitions(_ recorded: Recorded.Subscription) {
        let name = recorded.target.name
        let url = SubscriptionRules.maskingPassword(recorded.target.url)
        for transition in recorded.transitions {
            switch transition {
            case .wentDown:
                let error = recorded.lastError ?? "failed"
                var fields: Logger.Metadata = ["subscription": "\(name)", "url": "\(url)", "error": "\(error)"]
                if let status = recorded.lastStatus { fields["status"] = "\(status)" }
                logger.warning("subscription \(name) (\(url)) is down after \(settings.policy.downAfter) failed attempts in a row, last error: \(error); probing it one attempt at a time", metadata: fields)
            case .recovered(let downMillis):
                let fields: Logger.Metadata = ["subscription": "\(name)", "url": "\(url)", "downSeconds": "\(downMillis / 1000)"]
                logger.info("subscription \(name) (\(url)) is up again after \(downMillis / 1000)s down; its backlog flows", metadata: fields)
            }
        }
    }

    private func retryRecording(_ failed: [Unrecorded], now: Int64) {
        unrecorded += failed
        let due = unrecorded.filter { $0.notBefore <= now }
        guard !due.isEmpty else { return }
        unrecorded.removeAll { $0.notBefore <= now }
        for batch in due { record(batch) }
    }

    /// The attempt's outcome to record, and the receiver's Retry-After (ms), if any.
    private func outcome(of attempt: WebhookAttempt, code: CURLcode, now: Int64) -> (AttemptOutcome, Int64?) {
        let status = attempt.responseStatus
        // A body cut at the cap still came with its status: the answer is complete enough.
        let code = code == CURLE_WRITE_ERROR && attempt.responseCut ? CURLE_OK : code
        let delivered = code == CURLE_OK && status.map { (200..<300).contains($0) } == true
        if delivered {
            let outcome = AttemptOutcome(
                subscriptionSeq: attempt.subscriptionSeq, delivery: attempt.delivery, delivered: true, failed: false, attemptedAt: attempt.startedAt,
                status: status, error: nil, nextAttemptAt: nil, durationMs: now - attempt.startedAt, response: attempt.responsePrefix)
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
            subscriptionSeq: attempt.subscriptionSeq, delivery: attempt.delivery, delivered: false, failed: exhausted, attemptedAt: attempt.startedAt,
            status: status, error: error,
            nextAttemptAt: exhausted ? nil : now + settings.policy.delayMillis(failures: attemptsSoFar, retryAfterMillis: retryAfter),
            durationMs: now - attempt.startedAt, response: attempt.responsePrefix)
        return (outcome, retryAfter)
    }

    /// Updates the metrics, the log and this process's view of the breaker
    /// (the stored one, worked out by the outcome write, follows).
    private func account(_ outcome: AttemptOutcome, retryAfter: Int64?, attempt: WebhookAttempt, now: Int64) {
        let target = targets[attempt.subscriptionSeq]
        let name = target?.name ?? "deleted"
        guard var state = subscriptions[attempt.subscriptionSeq] else { return }
        defer { subscriptions[attempt.subscriptionSeq] = state }
        let policy = settings.policy
        if outcome.delivered {
            metrics.delivery(subscription: name, outcome: "delivered", attemptMillis: outcome.durationMs)
            metrics.acknowledged(subscription: name, afterSeconds: Double(max(0, now - attempt.delivery.createdAt)) / 1000)
            _ = state.breaker.succeeded(policy, now: now)
            return
        }
        let error = outcome.error ?? "failed"
        // Masked only on this path: a success logs nothing, and masking costs more than the rest of its accounting.
        let url = SubscriptionRules.maskingPassword(target?.url ?? "-")
        // The same facts as fields, for a JSON log that is searched by them.
        var fields: Logger.Metadata = ["subscription": "\(name)", "url": "\(url)"]
        let about = attempt.delivery.domain.map { "tenant \($0)" } ?? attempt.delivery.type
        fields["error"] = "\(error)"
        fields["event"] = "\(attempt.delivery.eventId)"
        if let domain = attempt.delivery.domain { fields["domain"] = "\(domain)" }
        if let status = outcome.status { fields["status"] = "\(status)" }
        logger.debug("attempt to subscription \(name) (\(url)) failed for \(about), event \(attempt.delivery.eventId): \(error)", metadata: fields)
        if outcome.failed {
            logger.warning("gave up on a delivery to subscription \(name) (\(url)) after \(attempt.delivery.attempts + 1) attempts: \(about), event \(attempt.delivery.eventId), last error: \(error)", metadata: fields)
        }
        metrics.delivery(subscription: name, outcome: outcome.failed ? "failed" : "retry", attemptMillis: outcome.durationMs)
        _ = state.breaker.failed(policy, isProbe: attempt.isProbe, retryAfter: retryAfter, now: now)
    }
}
