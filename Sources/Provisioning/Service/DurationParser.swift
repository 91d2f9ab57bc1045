/// Parses `250ms`, `2s`, `10m`, `1h` (and a plain number of seconds).
package enum DurationParser {
    package static func parse(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        // "ms" is tried before "m" and "s"; a bare number means seconds.
        let (number, millisPerUnit) = units.first { text.hasSuffix($0.0) }
            .map { (text.dropLast($0.0.count), $0.1) } ?? (Substring(text), 1000)
        // Plain decimals only: no sign, exponent, hex or infinity.
        guard !number.isEmpty, number.first != ".", number.last != ".",
              number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              number.filter({ $0 == "." }).count <= 1,
              let value = Double(number)
        else { return nil }
        let millis = value * millisPerUnit
        // A year is more than any timeout or retry delay needs, and keeps the arithmetic far from overflow.
        guard millis <= 365 * 86_400_000 else { return nil }
        return .milliseconds(Int64(millis))
    }

    package static func format(_ duration: Duration) -> String {
        let ms = duration.milliseconds
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}

extension Duration {
    /// Whole milliseconds, the unit of every stored time and delay.
    package var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
