import CCurl

/// The process-wide libcurl initialisation, done once before any handle.
private let curlGlobalInit: Void = {
    curl_global_init(Int(CURL_GLOBAL_DEFAULT))
}()

/// libcurl's multi interface: many attempts at once on one thread, with
/// connections kept alive and reused per receiver.
final class CurlMulti {
    let multi: UnsafeMutableRawPointer

    init() {
        _ = curlGlobalInit
        multi = curl_multi_init()
        provisiond_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        provisiond_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 512)
    }

    deinit { curl_multi_cleanup(multi) }

    /// At most `count` connections open at once, idle ones in the cache included:
    /// with --max-outgoing, the sockets the dispatcher may hold.
    func limitConnections(to count: Int) {
        provisiond_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, min(count, Int(Int32.max)))
        provisiond_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, min(512, count))
    }

    func add(_ attempt: WebhookAttempt) { curl_multi_add_handle(multi, attempt.easy) }

    func remove(_ attempt: WebhookAttempt) { curl_multi_remove_handle(multi, attempt.easy) }

    func perform() {
        var running: Int32 = 0
        curl_multi_perform(multi, &running)
    }

    /// Handles that finished since the last call, with curl's result code.
    func finished() -> [(UnsafeMutableRawPointer, CURLcode)] {
        var done: [(UnsafeMutableRawPointer, CURLcode)] = []
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            if message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle {
                done.append((easy, message.pointee.data.result))
            }
        }
        return done
    }

    /// Waits for socket activity, a curl timer, a wakeup, or the timeout.
    /// Waits for transfers, a `wakeup`, the timeout, or `socket` (another
    /// source of work) becoming readable.
    func poll(timeoutMs: Int, alsoWatching socket: Int32? = nil) {
        var ready: Int32 = 0
        if let socket {
            var extra = curl_waitfd(fd: socket, events: Int16(CURL_WAIT_POLLIN), revents: 0)
            curl_multi_poll(multi, &extra, 1, Int32(max(0, timeoutMs)), &ready)
        } else {
            curl_multi_poll(multi, nil, 0, Int32(max(0, timeoutMs)), &ready)
        }
    }

    /// Interrupts `poll` from any thread.
    func wakeup() { curl_multi_wakeup(multi) }

    /// What went wrong, in words an operator understands.
    static func describe(_ code: CURLcode, detail: String, timeoutMs: Int) -> String {
        switch code {
        case CURLE_COULDNT_CONNECT: return "connection refused" + (detail.isEmpty ? "" : " (\(detail))")
        case CURLE_OPERATION_TIMEDOUT: return "timed out after \(DurationParser.format(.milliseconds(timeoutMs)))"
        case CURLE_COULDNT_RESOLVE_HOST: return "host not found" + (detail.isEmpty ? "" : " (\(detail))")
        case CURLE_GOT_NOTHING: return "connection closed without a response"
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR: return "connection reset" + (detail.isEmpty ? "" : " (\(detail))")
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE:
            return "TLS error: " + (detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
        default:
            return detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        }
    }
}
