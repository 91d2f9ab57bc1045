import Foundation

/// When to try a failed delivery again: exponential backoff with jitter from
/// `initial` up to `maximum`; a longer `Retry-After` on 429/503 wins.
struct RetryPolicy: Sendable {
    var initial: Duration
    var maximum: Duration
    /// 0: until it succeeds.
    var maxAttempts: Int
    /// Consecutive failures after which a subscription counts as down.
    var downAfter = 5

    init(initial: Duration, maximum: Duration, maxAttempts: Int) {
        self.initial = initial
        self.maximum = maximum
        self.maxAttempts = maxAttempts
    }

    /// Whether `attempts` failed attempts exhaust the delivery.
    func isExhausted(attempts: Int) -> Bool { maxAttempts > 0 && attempts >= maxAttempts }

    /// The delay after the `failures`-th failure in a row (1-based), in ms:
    /// the exponential step, with its upper half jittered so that a batch
    /// that failed together does not return together.
    func delayMillis(failures: Int, retryAfterMillis: Int64? = nil) -> Int64 {
        let initialMs = Double(initial.milliseconds), maxMs = Double(maximum.milliseconds)
        let exponent = Double(min(max(failures - 1, 0), 40))
        let step = min(maxMs, initialMs * pow(2, exponent))
        let jittered = Int64(step / 2 + Double.random(in: 0...(step / 2)))
        if let retryAfterMillis, retryAfterMillis > jittered { return retryAfterMillis }
        return max(1, jittered)
    }

    /// `Retry-After` as delay-seconds or an HTTP date, in ms from `now`.
    static func parseRetryAfter(_ value: String, nowMillis: Int64) -> Int64? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int64(trimmed), seconds >= 0 { return min(seconds, 86_400) * 1000 }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        let delay = Int64(date.timeIntervalSince1970 * 1000) - nowMillis
        return min(max(0, delay), 86_400_000)
    }
}
