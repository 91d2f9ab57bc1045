/// Random identifiers and secrets from the system's cryptographic source
/// (getrandom on Linux, through SystemRandomNumberGenerator).
enum RandomToken {
    static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func hex(_ byteCount: Int) -> String {
        bytes(byteCount).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// An opaque id with a readable prefix (`ten_…`, `sub_…`, `evt_…`).
    static func identifier(_ prefix: String) -> String { prefix + "_" + hex(12) }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
