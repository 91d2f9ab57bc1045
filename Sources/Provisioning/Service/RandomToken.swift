/// Random identifiers and secrets from the system's cryptographic source
/// (getrandom on Linux, through SystemRandomNumberGenerator).
enum RandomToken {
    static func bytes(_ count: Int) -> [UInt8] {
        // One draw of the system generator per 8 bytes (each is a getrandom call), not one per byte.
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count { withUnsafeBytes(of: generator.next()) { bytes.append(contentsOf: $0) } }
        return Array(bytes.prefix(count))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func hex(_ byteCount: Int) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(byteCount * 2)
        for byte in bytes(byteCount) {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// An opaque id with a readable prefix (`ten_…`, `sub_…`, `evt_…`).
    static func identifier(_ prefix: String) -> String { prefix + "_" + hex(12) }
}
