#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Essentials
import Foundation
import Synchronization

/// One thread running epoll. Every connection belongs to one loop and is only
/// touched on that loop's thread; other threads hand it work with `execute`,
/// which wakes the loop through an eventfd.
final class EventLoop: @unchecked Sendable {
    private let epollFD: Int32
    private let wakeFD: Int32
    private let queued = Locked<[@Sendable () -> Void]>([])
    private let stopRequested = Atomic<Bool>(false)
    private let finished = Locked<Bool>(false)

    // Loop-thread state.
    private var connections: [Int32: Connection] = [:]
    private var listenerFD: Int32 = -1
    private var server: ServerContext!
    private var lastSweep: UInt64 = 0
    /// Non-zero while accepting is paused (out of file descriptors).
    private var acceptPausedUntil: UInt64 = 0
    var dateCache = HTTPDateCache()
    /// Every read on this loop lands here first: one buffer per loop thread,
    /// instead of a fresh zeroed 64 KiB array per read.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
    let name: String

    init(name: String) throws {
        self.name = name
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw Socket.Failure(call: "epoll_create1", code: errno) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw Socket.Failure(call: "eventfd", code: errno) }
        register(fd: wakeFD, events: EPOLLIN.rawValue)
    }

    deinit {
        close(epollFD)
        close(wakeFD)
        readBuffer.deallocate()
    }

    /// Runs `work` on the loop thread soon. Safe from any thread.
    func execute(_ work: @escaping @Sendable () -> Void) {
        queued.withLock { $0.append(work) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    func start(server: ServerContext, listenerFD: Int32) {
        self.server = server
        self.listenerFD = listenerFD
        registerListener()
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        execute {}
    }

    var hasFinished: Bool { finished.withLock { $0 } }

    // MARK: Loop thread

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !stopRequested.load(ordering: .acquiring) {
            let timeoutMs = connections.isEmpty && acceptPausedUntil == 0 ? 1000 : Int32(server.sweepIntervalMs)
            let count = epoll_wait(epollFD, &events, Int32(events.count), Int32(timeoutMs))
            if count < 0 && errno != EINTR { break }
            for i in 0..<max(0, Int(count)) {
                let fd = events[i].data.fd
                let flags = events[i].events
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                } else if fd == listenerFD {
                    acceptConnections()
                } else if let connection = connections[fd] {
                    connection.handleEvents(flags)
                }
            }
            runQueued()
            let now = monotonicNanoseconds()
            if now &- lastSweep >= UInt64(server.sweepIntervalMs) * 1_000_000 {
                lastSweep = now
                for connection in Array(connections.values) { connection.checkDeadline(now: now) }
            }
            resumeAcceptingIfDue(now: now)
        }
        for connection in Array(connections.values) { connection.close() }
        runQueued()
        finished.withLock { $0 = true }
    }

    private func runQueued() {
        // Work may queue more work; loop until the queue is empty.
        while true {
            let work = queued.withLock { queue -> [@Sendable () -> Void] in
                let taken = queue
                queue.removeAll(keepingCapacity: true)
                return taken
            }
            if work.isEmpty { return }
            for item in work { item() }
        }
    }

    private func acceptConnections() {
        for _ in 0..<64 {
            let fd = accept4(listenerFD, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
            if fd < 0 {
                // Out of descriptors or memory: the pending connection stays
                // queued and the level-triggered listener would wake us in a
                // busy loop, so stop listening for a moment instead.
                switch errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: pauseAccepting()
                default: break
                }
                return  // EAGAIN: another loop took it, or none left
            }
            Socket.setNoDelay(fd)
            guard server.admitConnection() else {
                // Over the connection limit: a short refusal beats a silent hang.
                let refusal = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\nDate: ".utf8)
                    + dateCache.current() + Array("\r\n\r\n".utf8)
                _ = refusal.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                Glibc.close(fd)
                continue
            }
            let connection = Connection(fd: fd, loop: self, server: server)
            connections[fd] = connection
            register(fd: fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
        }
    }

    private func pauseAccepting() {
        guard listenerFD >= 0, acceptPausedUntil == 0 else { return }
        epoll_ctl(epollFD, EPOLL_CTL_DEL, listenerFD, nil)
        acceptPausedUntil = monotonicNanoseconds() + 100_000_000
    }

    private func resumeAcceptingIfDue(now: UInt64) {
        guard acceptPausedUntil != 0, now >= acceptPausedUntil else { return }
        acceptPausedUntil = 0
        if listenerFD >= 0 { registerListener() }
    }

    /// EPOLLEXCLUSIVE: one loop is woken per new connection, not all of them.
    private func registerListener() {
        register(fd: listenerFD, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue)
    }

    /// Stops accepting and asks every connection to finish what it is doing.
    func beginShutdown() {
        if listenerFD >= 0 {
            epoll_ctl(epollFD, EPOLL_CTL_DEL, listenerFD, nil)
            listenerFD = -1
        }
        for connection in Array(connections.values) { connection.closeWhenIdle() }
    }

    func forceCloseAll() {
        for connection in Array(connections.values) { connection.close() }
    }

    // MARK: epoll registration (loop thread)

    func register(fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
    }

    func modify(fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    func connectionClosed(fd: Int32) {
        connections[fd] = nil
        server.releaseConnection()
    }
}
