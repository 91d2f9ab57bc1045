import Crypto
import Foundation

/// Standard Webhooks signing: `v1,` + base64(HMAC-SHA256(key, id.timestamp.body)),
/// the key being the base64-decoded part of the secret after `whsec_`.
/// Keyed once: the HMAC state after the key schedule is kept and copied for
/// each signature (swift-crypto's digest state is copy-on-write), instead of
/// keying SHA-256 again for every delivery. `@unchecked Sendable`: a value
/// whose one stored HMAC is never mutated in place, only copied.
struct WebhookSigner: @unchecked Sendable {
    private let keyed: HMAC<SHA256>

    init?(secret: String) {
        guard let key = WebhookSigner.key(ofSecret: secret) else { return nil }
        keyed = HMAC<SHA256>(key: SymmetricKey(data: key))
    }

    /// The key a `whsec_<base64>` secret stands for (nil if it is not of that form).
    static func key(ofSecret secret: String) -> Data? {
        guard secret.hasPrefix("whsec_") else { return nil }
        return Data(base64Encoded: String(secret.dropFirst(6)))
    }

    func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        var hmac = keyed
        hmac.update(data: Array("\(id).\(timestamp).".utf8))
        hmac.update(data: body)
        return "v1," + Data(hmac.finalize()).base64EncodedString()
    }
}
