/// Acknowledgements per subscription over the last minute, in one-second
/// buckets: what the status page shows as an environment's delivery rate.
/// Kept in memory by the process that delivered them.
struct DeliveryRate: Sendable {
    private var buckets = [Int](repeating: 0, count: 60)
    /// The second each bucket holds (Unix seconds).
    private var seconds = [Int64](repeating: 0, count: 60)

    mutating func count(atSecond second: Int64) {
        let i = Int(second % 60)
        if seconds[i] != second {
            seconds[i] = second
            buckets[i] = 0
        }
        buckets[i] += 1
    }

    /// Acknowledgements in the 60 seconds up to and including `second`.
    func lastMinute(atSecond second: Int64) -> Int {
        zip(seconds, buckets).reduce(0) { $0 + ($1.0 > second - 60 && $1.0 <= second ? $1.1 : 0) }
    }
}
