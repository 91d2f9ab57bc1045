import CLinux
import Glibc

/// Random identifiers and secrets from the system's cryptographic source
/// (getrandom on Linux).
enum RandomToken {
    static func bytes(_ count: Int) -> [UInt8] {
        // One getrandom call for them all (SystemRandomNumberGenerator makes one per 8 bytes).
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress! + filled, count - filled, 0) }
            if got > 0 { filled += got } else if errno != EINTR { fatalError("getrandom failed: errno \(errno)") }
        }
        return bytes
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
