#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// One client connection, confined to its event loop's thread. It parses
/// requests as bytes arrive, hands each to the handler, and writes the
/// responses back strictly in request order (pipelining), each with one
/// `writev`.
final class Connection: @unchecked Sendable {
    /// A response position in the pipeline, filled when its handler finishes.
    final class Slot: @unchecked Sendable {  // touched on the loop thread only
        let isHead: Bool
        /// An HTTP/1.0 client keeps the connection only if the answer says `keep-alive`.
        let isHTTP10: Bool
        var closeAfter: Bool
        var head: [UInt8] = []
        var body: [UInt8] = []
        var ready = false
        init(isHead: Bool, isHTTP10: Bool = false, closeAfter: Bool) {
            self.isHead = isHead
            self.isHTTP10 = isHTTP10
            self.closeAfter = closeAfter
        }
    }

    private enum Phase {
        case open
        /// The last response is written; the write side is shut and we read
        /// until the peer closes, so a pending request body does not turn
        /// our close into a reset that destroys the response.
        case draining(since: UInt64)
        case closed
    }

    let fd: Int32
    private unowned let loop: EventLoop
    private let server: ServerContext
    private var parser: HTTPParser
    private var inbound: [UInt8] = []
    private var inboundIndex = 0
    private var slots: [Slot] = []
    private var unsent: [UInt8] = []
    private var unsentIndex = 0
    private var phase = Phase.open
    private var peerClosed = false
    private var stopParsing = false
    private var closeRequested = false
    private var closeAfterUnsent = false
    private var interest: UInt32 = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
    /// When the current wait (idle, head, body or write) started.
    private var waitingSince: UInt64

    init(fd: Int32, loop: EventLoop, server: ServerContext) {
        self.fd = fd
        self.loop = loop
        self.server = server
        self.parser = HTTPParser(limits: server.limits)
        self.waitingSince = monotonicNanoseconds()
    }

    // MARK: Events

    func handleEvents(_ events: UInt32) {
        if events & EPOLLERR.rawValue != 0 { close(); return }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0 {
            readAvailable()
        }
        if case .closed = phase { return }
        if events & EPOLLHUP.rawValue != 0 { close(); return }
        if events & EPOLLOUT.rawValue != 0 { flush() }
    }

    private func readAvailable() {
        let buffer = loop.readBuffer
        let n = recv(fd, buffer.baseAddress, buffer.count, 0)
        if n > 0 {
            if case .draining = phase { return }  // discard what comes after our last response
            if inboundIndex == inbound.count { waitingSince = monotonicNanoseconds() }
            inbound.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            processInput()
        } else if n == 0 {
            peerClosed = true
            if case .draining = phase { close(); return }
            // The client is done sending; answer what it already sent, then close.
            if slots.isEmpty && unsent.isEmpty { close() } else { applyInterest() }
        } else if errno != EAGAIN && errno != EINTR {
            close()
        }
    }

    /// Parses and dispatches as many complete requests as the pipeline allows.
    private func processInput() {
        defer {
            compactInbound()
            applyInterest()
        }
        while !stopParsing, unsent.isEmpty, slots.count < server.limits.maxPipelinedRequests {
            let wasReadingBody = parser.isReadingBody
            switch parser.parse(inbound, index: &inboundIndex) {
            case .incomplete:
                // The body timeout runs from the end of the head, not from its start.
                if parser.isReadingBody && !wasReadingBody { waitingSince = monotonicNanoseconds() }
                // curl waits a second for this before sending a body; send it
                // only when no earlier response is still owed.
                if parser.wantsContinue && slots.isEmpty {
                    parser.continueSent()
                    writeRaw(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                }
                return
            case .request(let request):
                waitingSince = monotonicNanoseconds()
                dispatch(request)
            case .failure(let status, let detail):
                stopParsing = true
                let slot = Slot(isHead: false, closeAfter: true)
                slots.append(slot)
                fill(slot, with: .problem(status, detail: detail))
                flush()
                return
            }
        }
    }

    private func dispatch(_ request: HTTPRequest) {
        let closeAfter = !request.wantsKeepAlive || closeRequested || server.isShuttingDown
        if closeAfter { stopParsing = true }
        let slot = Slot(isHead: request.method == "HEAD", isHTTP10: request.version == .http1_0, closeAfter: closeAfter)
        slots.append(slot)
        // Answered here when it needs no wait: no hop to the task pool and back.
        if let immediate = server.immediate, let response = immediate(request) {
            fill(slot, with: response)
            flush()
            return
        }
        let handler = server.handler
        let loop = self.loop
        Task {
            let response = await handler(request)
            loop.execute { [self] in
                fill(slot, with: response)
                flush()
            }
        }
    }

    private func fill(_ slot: Slot, with response: HTTPResponse) {
        guard case .open = phase else { return }
        var head: [UInt8] = []
        head.reserveCapacity(256)
        head.append(contentsOf: "HTTP/1.1 \(response.status) \(HTTPStatus.reason(response.status))\r\n".utf8)
        for (name, value) in response.headers.fields where !Connection.framingHeaders.contains(where: { name.caseInsensitiveEquals($0) }) {
            // CR and LF would let a value smuggle in headers of its own; drop them
            // (byte by byte into the head, with no array built per header).
            for byte in name.utf8 where byte != 13 && byte != 10 { head.append(byte) }
            head.append(contentsOf: ": ".utf8)
            for byte in value.utf8 where byte != 13 && byte != 10 { head.append(byte) }
            head.append(contentsOf: "\r\n".utf8)
        }
        let hasBody = !HTTPStatus.forbidsBody(response.status)
        if hasBody {
            head.append(contentsOf: "Content-Length: \(response.body.count)\r\n".utf8)
        }
        head.append(contentsOf: "Date: ".utf8)
        head.append(contentsOf: loop.dateCache.current())
        if slot.closeAfter || closeRequested {
            slot.closeAfter = true
            head.append(contentsOf: "\r\nConnection: close\r\n\r\n".utf8)
        } else if slot.isHTTP10 {
            head.append(contentsOf: "\r\nConnection: keep-alive\r\n\r\n".utf8)
        } else {
            head.append(contentsOf: "\r\n\r\n".utf8)
        }
        slot.head = head
        slot.body = (hasBody && !slot.isHead) ? response.body : []
        slot.ready = true
    }

    /// Headers the connection writes itself; a handler's own are dropped.
    private static let framingHeaders = ["Content-Length", "Transfer-Encoding", "Connection", "Date"]

    // MARK: Writing

    /// Writes every ready response at the front of the pipeline in one
    /// `writev`, then reads on.
    private func flush() {
        guard case .open = phase else { return }
        if !unsent.isEmpty {
            let remaining = unsent.count - unsentIndex
            let n = unsent.withUnsafeBytes { send(fd, $0.baseAddress! + unsentIndex, remaining, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno != EAGAIN && errno != EINTR { close() }
                return
            }
            unsentIndex += n
            // The write timeout is about a reader that takes nothing: any progress restarts it.
            // (When this completes the write, idle time likewise counts from now.)
            if n > 0 { waitingSince = monotonicNanoseconds() }
            if unsentIndex < unsent.count { return }
            unsent = []
            unsentIndex = 0
            if closeAfterUnsent { finishAfterLastResponse(); return }
            applyInterest()
        }

        var count = 0
        var closeAfter = false
        while count < slots.count, slots[count].ready {
            count += 1
            if slots[count - 1].closeAfter { closeAfter = true; break }
        }
        if count > 0 {
            var buffers: [[UInt8]] = []
            for slot in slots[0..<count] {
                buffers.append(slot.head)
                if !slot.body.isEmpty { buffers.append(slot.body) }
            }
            slots.removeFirst(count)
            let total = buffers.reduce(0) { $0 + $1.count }
            let written = Connection.writev(fd, buffers)
            if written < 0 && errno != EAGAIN && errno != EINTR { close(); return }
            if closeAfter { slots.removeAll() }
            if max(0, written) < total {
                // Keep the rest and wait for the socket to drain. Copied slice by
                // slice: a byte-wise copy of a large body stalled the loop for seconds.
                var skip = max(0, written)
                unsent = []
                unsent.reserveCapacity(total - skip)
                for buffer in buffers {
                    if skip >= buffer.count { skip -= buffer.count; continue }
                    unsent.append(contentsOf: buffer[skip...])
                    skip = 0
                }
                unsentIndex = 0
                closeAfterUnsent = closeAfter
                waitingSince = monotonicNanoseconds()
                applyInterest()
                return
            }
            if closeAfter { finishAfterLastResponse(); return }
            waitingSince = monotonicNanoseconds()
        }

        processInput()
        if case .open = phase, slots.isEmpty, unsent.isEmpty {
            if peerClosed {
                close()
            } else if closeRequested && !parser.isMidRequest(bufferedBytes: inbound.count - inboundIndex) {
                finishAfterLastResponse()
            }
        }
    }

    private func writeRaw(_ bytes: [UInt8]) {
        let n = Connection.writev(fd, [bytes])
        if n < bytes.count {
            unsent = Array(bytes.dropFirst(max(0, n)))
            unsentIndex = 0
            applyInterest()
        }
    }

    static func writev(_ fd: Int32, _ buffers: [[UInt8]]) -> Int {
        // Pin every buffer and hand them to the kernel in one call.
        func pin(_ index: Int, _ vectors: inout [iovec]) -> Int {
            if index == buffers.count {
                return vectors.withUnsafeBufferPointer { Glibc.writev(fd, $0.baseAddress, Int32($0.count)) }
            }
            return buffers[index].withUnsafeBytes { raw in
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count))
                return pin(index + 1, &vectors)
            }
        }
        var vectors: [iovec] = []
        vectors.reserveCapacity(buffers.count)
        return pin(0, &vectors)
    }

    // MARK: Lifecycle

    private func finishAfterLastResponse() {
        guard case .open = phase else { return }
        if peerClosed { close(); return }
        shutdown(fd, Int32(SHUT_WR))
        phase = .draining(since: monotonicNanoseconds())
        applyInterest()
    }

    /// Graceful shutdown: close now if nothing is under way, else after the
    /// current response.
    func closeWhenIdle() {
        closeRequested = true
        if slots.isEmpty && unsent.isEmpty && !parser.isMidRequest(bufferedBytes: inbound.count - inboundIndex) {
            close()
        }
    }

    func close() {
        if case .closed = phase { return }
        phase = .closed
        Glibc.close(fd)
        loop.connectionClosed(fd: fd)
    }

    /// Enforces the timeouts; called by the loop a few times a second.
    func checkDeadline(now: UInt64) {
        let waited = now &- waitingSince
        let limits = server.limits
        switch phase {
        case .closed: return
        case .draining(let since):
            if now &- since > 2_000_000_000 { close() }
            return
        case .open: break
        }
        if !unsent.isEmpty {
            if waited > limits.writeTimeout.nanoseconds { close() }
        } else if !slots.isEmpty {
            return  // a handler is running; it is not the client's fault
        } else if parser.isMidRequest(bufferedBytes: inbound.count - inboundIndex) {
            let limit = parser.isReadingBody ? limits.bodyTimeout : limits.headTimeout
            if waited > limit.nanoseconds {
                if readPendingInput() { return }  // judged again at the next sweep
                stopParsing = true
                let slot = Slot(isHead: false, closeAfter: true)
                slots.append(slot)
                fill(slot, with: .problem(408, detail: "request not received in time"))
                flush()
            }
        } else if waited > limits.idleTimeout.nanoseconds {
            if readPendingInput() { return }
            close()
        }
    }

    /// Before a connection is timed out: bytes may be waiting in the socket
    /// that this loop has not read because the process itself did not run
    /// (a stalled or SIGSTOPped process, an epoll_wait cut short by EINTR).
    /// They arrived in time; read them now instead of closing on a request
    /// we never looked at. A client trickling its head is not helped: the
    /// loop reads its bytes as they come, so none are pending at a sweep,
    /// and reading mid-request does not restart the head or body clock.
    private func readPendingInput() -> Bool {
        guard !stopParsing else { return false }
        var byte: UInt8 = 0
        guard recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0 else { return false }
        readAvailable()
        return true
    }

    // MARK: Interest

    private func compactInbound() {
        if inboundIndex == inbound.count {
            inbound.removeAll(keepingCapacity: inbound.capacity <= 65536)
            inboundIndex = 0
        } else if inboundIndex > 65536 {
            inbound.removeFirst(inboundIndex)
            inboundIndex = 0
        }
    }

    /// Reads only while there is room: a full pipeline or a response the
    /// client does not read stops reading, so nobody can make us buffer
    /// without bound.
    private func applyInterest() {
        let wantsRead: Bool
        switch phase {
        case .closed: return
        case .draining: wantsRead = true
        case .open: wantsRead = !stopParsing && unsent.isEmpty && slots.count < server.limits.maxPipelinedRequests
        }
        var wanted: UInt32 = 0
        if !peerClosed {
            wanted |= EPOLLRDHUP.rawValue
            if wantsRead { wanted |= EPOLLIN.rawValue }
        }
        if !unsent.isEmpty { wanted |= EPOLLOUT.rawValue }
        if wanted != interest {
            interest = wanted
            loop.modify(fd: fd, events: wanted)
        }
    }
}
