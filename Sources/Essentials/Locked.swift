import Foundation

/// A value behind a lock. Built on NSLock (a pthread mutex), which
/// ThreadSanitizer understands; the Synchronization module's Mutex locks
/// inside the uninstrumented standard library, so TSan reports every
/// properly locked access through it as a race.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
