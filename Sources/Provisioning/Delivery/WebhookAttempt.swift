import CCurl

/// One webhook POST: an easy handle with its headers and error buffer.
final class WebhookAttempt {
    let easy: UnsafeMutableRawPointer
    let subscriptionSeq: Int64
    let delivery: DueDelivery
    let startedAt: Int64
    /// Claimed while its subscription was down: the one probe allowed.
    var isProbe = false
    /// Of the answer's body only this much is read: an endless or huge body
    /// costs no more than that. Reaching it ends the transfer.
    static let maxResponseBytes = 64 * 1024
    private(set) var responseBytes = 0
    /// The first 1 KiB of the answer's body, kept for the attempt history.
    private(set) var responsePrefix: [UInt8] = []
    static let keptResponseBytes = 1024
    /// The body reached `maxResponseBytes` and the transfer was cut there on purpose.
    private(set) var responseCut = false
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    init?(url: String, subscriptionSeq: Int64, delivery: DueDelivery, signer: WebhookSigner,
          timeoutMs: Int, userAgent: String, caFile: String?, now: Int64)
    {
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        self.subscriptionSeq = subscriptionSeq
        self.delivery = delivery
        self.startedAt = now
        errorBuffer[0] = 0

        let timestamp = now / 1000
        for header in [
            "Content-Type: application/json",
            "webhook-id: \(delivery.eventId)",
            "webhook-timestamp: \(timestamp)",
            "webhook-signature: \(signer.signature(id: delivery.eventId, timestamp: timestamp, body: delivery.payload))",
            "Expect:",  // no 100-continue round trip before the body
        ] {
            headers = curl_slist_append(headers, header)
        }
        provisiond_easy_setopt_string(easy, CURLOPT_URL, url)
        provisiond_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        provisiond_easy_setopt_long(easy, CURLOPT_POST, 1)
        provisiond_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, delivery.payload.count)
        delivery.payload.withUnsafeBytes { bytes in
            // COPYPOSTFIELDS: curl keeps its own copy of the exact bytes that were signed.
            _ = provisiond_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
        }
        provisiond_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headers)
        provisiond_easy_setopt_string(easy, CURLOPT_USERAGENT, userAgent)
        provisiond_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, timeoutMs)
        provisiond_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, min(timeoutMs, 10_000))
        provisiond_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)  // a redirect is a failed attempt
        provisiond_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        // Certificates are always verified (libcurl's default, never turned off); a private
        // CA, as internal environments often have, is trusted through --webhook-ca-file.
        if let caFile { provisiond_easy_setopt_string(easy, CURLOPT_CAINFO, caFile) }
        // No CURLOPT_PIPEWAIT: until a host's first answer shows it is not HTTP/2, it holds every
        // other attempt to that host, so one hanging receiver would run at one attempt at a time and
        // stall other subscriptions on the same host. HTTP/2 connections are still reused once known.
        provisiond_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        // The receiver's answer body is not needed: count it and drop it, up to the cap.
        provisiond_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(self).toOpaque())
        provisiond_easy_setopt_write_callback(easy, CURLOPT_WRITEFUNCTION) { data, size, count, attempt in
            Unmanaged<WebhookAttempt>.fromOpaque(attempt!).takeUnretainedValue().received(data, size * count)
        }
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(headers)
        errorBuffer.deallocate()
    }

    /// Returns what libcurl should count as taken; less than `count` ends the transfer.
    private func received(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        let keep = min(count, WebhookAttempt.keptResponseBytes - responsePrefix.count)
        if keep > 0, let data {
            responsePrefix.append(contentsOf: UnsafeRawBufferPointer(start: data, count: keep))
        }
        responseBytes += count
        guard responseBytes > WebhookAttempt.maxResponseBytes else { return count }
        responseCut = true
        return 0
    }

    var responseStatus: Int? {
        var code = 0
        provisiond_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
        return code > 0 ? code : nil
    }

    func header(_ name: String) -> String? {
        var header: UnsafeMutablePointer<curl_header>?
        guard curl_easy_header(easy, name, 0, UInt32(CURLH_HEADER), -1, &header) == CURLHE_OK,
              let value = header?.pointee.value
        else { return nil }
        return String(cString: value)
    }

    var errorDetail: String { String(cString: errorBuffer) }
}
