#if canImport(Glibc)
import Glibc
#endif
import Essentials
import Logging
import Synchronization

public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse
/// Answers a request on the event loop itself when it can without waiting
/// (nil: not this one, the handler takes it). It must not block: it runs on
/// the thread that serves every connection of its loop.
public typealias HTTPImmediateHandler = @Sendable (HTTPRequest) -> HTTPResponse?

/// What every connection shares: limits, the handler, and counters.
final class ServerContext: Sendable {
    let limits: HTTPLimits
    let handler: HTTPHandler
    let immediate: HTTPImmediateHandler?
    let sweepIntervalMs: Int
    private let openConnections = Atomic<Int>(0)
    private let shuttingDown = Atomic<Bool>(false)

    init(limits: HTTPLimits, handler: @escaping HTTPHandler, immediate: HTTPImmediateHandler?) {
        self.limits = limits
        self.handler = handler
        self.immediate = immediate
        // Check deadlines often enough for the shortest timeout to be kept to within ~25%.
        let shortest = [limits.headTimeout, limits.bodyTimeout, limits.idleTimeout, limits.writeTimeout].min()!
        sweepIntervalMs = max(5, min(250, Int(shortest.nanoseconds / 4_000_000)))
    }

    func admitConnection() -> Bool {
        if openConnections.wrappingAdd(1, ordering: .relaxed).newValue > limits.maxConnections {
            openConnections.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releaseConnection() { openConnections.wrappingSubtract(1, ordering: .relaxed) }

    var connectionCount: Int { openConnections.load(ordering: .relaxed) }

    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }
    func markShuttingDown() { shuttingDown.store(true, ordering: .relaxed) }
}

/// A general HTTP/1.1 server on POSIX sockets and epoll, one event loop per
/// core. It knows nothing of what the handler serves.
public final class HTTPServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var eventLoopCount: Int
        public var limits: HTTPLimits

        public init(host: String = "127.0.0.1", port: Int = 8080, eventLoopCount: Int = 0, limits: HTTPLimits = HTTPLimits()) {
            self.host = host
            self.port = port
            self.eventLoopCount = eventLoopCount
            self.limits = limits
        }
    }

    private let configuration: Configuration
    private let context: ServerContext
    private let loops: [EventLoop]
    private let listener = Locked<(fd: Int32, port: Int)?>(nil)
    private let logger: Logger

    /// `listener`: a socket bound earlier with `HTTPListener.bind`, so a
    /// caller can learn that its port is usable before it does anything else.
    public init(configuration: Configuration, listener bound: HTTPListener? = nil, logger: Logger = Logger(label: "http"),
                immediate: HTTPImmediateHandler? = nil, handler: @escaping HTTPHandler) throws {
        self.configuration = configuration
        listener.withLock { $0 = bound.map { ($0.fd, $0.port) } }
        self.logger = logger
        context = ServerContext(limits: configuration.limits, handler: handler, immediate: immediate)
        let count = configuration.eventLoopCount > 0 ? configuration.eventLoopCount : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        loops = try (0..<max(1, count)).map { try EventLoop(name: "http-loop-\($0)") }
    }

    /// Binds the listening socket without serving yet (unless it was handed
    /// one at init); returns the port.
    @discardableResult
    public func bind() throws -> Int {
        if let bound = listener.withLock({ $0 }) { return bound.port }
        let bound = try HTTPListener.bind(host: configuration.host, port: configuration.port, limits: configuration.limits)
        listener.withLock { $0 = (bound.fd, bound.port) }
        return bound.port
    }

    /// Binds (unless `bind` did) and starts serving; returns the bound port (useful with port 0).
    @discardableResult
    public func start() throws -> Int {
        let port = try bind()
        let fd = listener.withLock { $0!.fd }
        for loop in loops { loop.start(server: context, listenerFD: fd) }
        return port
    }

    /// The bound port while serving; nil before `start` and once `shutdown` begins.
    public var port: Int? { listener.withLock { $0?.port } }

    public var openConnections: Int { context.connectionCount }

    /// Stops accepting, lets in-flight requests finish for up to
    /// `gracePeriod`, closes idle connections, then stops the loops.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        // Never started (or start failed), or already shutting down: there is
        // nothing to stop (and no loop would ever report finishing).
        guard let (listenerFD, _) = listener.withLock({ current in defer { current = nil }; return current }) else { return }
        context.markShuttingDown()
        // Refuse new clients at once; they would otherwise sit in the backlog
        // for the whole grace period and then be reset.
        Glibc.shutdown(listenerFD, Int32(SHUT_RD))
        for loop in loops { loop.execute { loop.beginShutdown() } }
        let deadline = ContinuousClock.now + gracePeriod
        while context.connectionCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for loop in loops { loop.execute { loop.forceCloseAll() } }
        for loop in loops { loop.requestStop() }
        while !loops.allSatisfy(\.hasFinished) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        close(listenerFD)
    }
}

/// A bound, listening socket not yet served.
public struct HTTPListener: Sendable {
    let fd: Int32
    public let port: Int

    public static func bind(host: String, port: Int, limits: HTTPLimits) throws -> HTTPListener {
        Socket.raiseDescriptorLimit(toAtLeast: limits.maxConnections + 256)
        // A write to a connection the peer has reset must fail with EPIPE,
        // not kill the process (writev has no MSG_NOSIGNAL).
        signal(SIGPIPE, SIG_IGN)
        let (fd, port) = try Socket.listen(host: host, port: port)
        return HTTPListener(fd: fd, port: port)
    }
}
