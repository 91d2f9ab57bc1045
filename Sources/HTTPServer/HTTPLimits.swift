/// Limits and timeouts that protect the server from slow, large or hostile
/// clients. Every one is configurable so tests can use small values.
public struct HTTPLimits: Sendable {
    /// Request line plus headers (and chunked trailers); over it: 431.
    public var maxHeadBytes = 16 * 1024
    /// Header fields in one request; over it: 431.
    public var maxHeaderCount = 128
    /// Decoded request body; over it: 413, without reading the rest.
    public var maxBodyBytes = 1 << 20
    /// Open connections; beyond it new ones get 503 and are closed.
    public var maxConnections = 10_000
    /// Requests of one connection being handled at once (pipelining depth).
    public var maxPipelinedRequests = 16

    /// From the first byte of a request to the end of its head; then 408 (slowloris).
    public var headTimeout: Duration = .seconds(10)
    /// From the end of the head to the end of the body; then 408.
    public var bodyTimeout: Duration = .seconds(30)
    /// A keep-alive connection with nothing to do is closed after this.
    public var idleTimeout: Duration = .seconds(60)
    /// A response the client takes no byte of for this long is abandoned (a
    /// slow but steady reader is not: each byte taken restarts the clock).
    public var writeTimeout: Duration = .seconds(30)

    public init() {}
}
