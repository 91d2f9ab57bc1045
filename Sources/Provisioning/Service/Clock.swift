import Foundation

/// Wall-clock time in Unix milliseconds, the unit of every stored timestamp.
public enum WallClock {
    public static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// RFC 3339 in UTC with whole seconds (`2026-11-29T16:00:00Z`).
    public static func rfc3339(_ millis: Int64) -> String {
        var seconds = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int32, _ width: Int = 2) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))Z"
    }
}

/// Random identifiers and secrets from the system's cryptographic source
/// (getrandom on Linux, through SystemRandomNumberGenerator).
public enum RandomToken {
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    public static func hex(_ byteCount: Int) -> String {
        bytes(byteCount).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// An opaque id with a readable prefix (`ten_…`, `sub_…`, `evt_…`).
    public static func identifier(_ prefix: String) -> String { prefix + "_" + hex(12) }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
