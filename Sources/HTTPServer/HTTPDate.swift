#if canImport(Glibc)
import Glibc
#endif

/// The IMF-fixdate for the `Date` header, formatted once per second.
struct HTTPDateCache {
    private var second: Int = -1
    private var cached: [UInt8] = []

    mutating func current() -> [UInt8] {
        var now = time(nil)
        if now != second {
            second = now
            cached = Array(HTTPDateCache.format(&now).utf8)
        }
        return cached
    }

    static func format(_ t: inout time_t) -> String {
        var parts = tm()
        gmtime_r(&t, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
