import Foundation

/// The bearer token: given, or generated once into `<data-dir>/api-token`
/// (mode 0600) and reused on later starts.
enum APIToken {
    enum Source: Sendable, Equatable {
        case given
        case generated(path: String)
        case stored(path: String)
    }

    static func resolve(given: String?, dataDirectory: String) throws -> (token: String, source: Source) {
        if let given { return (given, .given) }
        let path = (dataDirectory as NSString).appendingPathComponent("api-token")
        if let data = FileManager.default.contents(atPath: path),
           let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty
        {
            return (text, .stored(path: path))
        }
        let token = RandomToken.hex(32)
        // Created 0600 from the start, so it is never readable by others, not even briefly.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupFailure("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array((token + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw StartupFailure("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return (token, .generated(path: path))
    }

    /// Compares without an early exit, so timing does not reveal a prefix.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<a.count { difference |= a[i] ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }
}
