@testable import Provisioning
import XCTest

/// The breaker as a value: no threads, no clock, no receiver.
final class BreakerTests: XCTestCase {
    let policy = RetryPolicy(initial: .seconds(1), maximum: .seconds(8), maxAttempts: 0)

    func testFifthFailureInARowTakesItDownOnce() {
        var breaker = Breaker()
        for i in 1...4 {
            XCTAssertNil(breaker.failed(policy, isProbe: false, retryAfter: nil, now: Int64(i)))
            XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: Int64(i)), 5 - i, "no more at once than would take it down")
        }
        XCTAssertEqual(breaker.failed(policy, isProbe: false, retryAfter: nil, now: 10_000), .wentDown)
        XCTAssertEqual(breaker.downSince, 10_000)
        // The first probe after one initial backoff (jittered: half to all of it).
        XCTAssert((10_500...11_000).contains(breaker.probeNotBefore), "\(breaker.probeNotBefore)")
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 10_400), 0)
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 11_000), 1)
        // Late failures of the burst that tripped it do not take it down again or push the probe out.
        XCTAssertNil(breaker.failed(policy, isProbe: false, retryAfter: nil, now: 10_001))
        XCTAssertEqual(breaker.failedProbes, 0)
    }

    func testFailedProbesBackOffUpToTheMaximum() {
        var breaker = Breaker(consecutiveFailures: 5, probeNotBefore: 0, downSince: 0)
        var now: Int64 = 0
        var delays: [Int64] = []
        for _ in 0..<8 {
            XCTAssertNil(breaker.failed(policy, isProbe: true, retryAfter: nil, now: now))
            delays.append(breaker.probeNotBefore - now)
            now = breaker.probeNotBefore
        }
        // 2nd step (1-2 s), 3rd (2-4 s), 4th (4-8 s), then capped at 8 s (4-8 s).
        XCTAssert((1000...2000).contains(delays[0]), "\(delays)")
        XCTAssert((2000...4000).contains(delays[1]), "\(delays)")
        XCTAssert(delays.dropFirst(2).allSatisfy { (4000...8000).contains($0) }, "\(delays)")
    }

    func testRetryAfterOfAnOlderAttemptPostponesTheProbe() {
        var breaker = Breaker(consecutiveFailures: 5, probeNotBefore: 1000, downSince: 0)
        XCTAssertNil(breaker.failed(policy, isProbe: false, retryAfter: 60_000, now: 500))
        XCTAssertEqual(breaker.probeNotBefore, 60_500)
    }

    func testSuccessRecoversAndResetsEverything() {
        var breaker = Breaker(consecutiveFailures: 7, failedProbes: 2, probeNotBefore: 9000, downSince: 1000)
        XCTAssertEqual(breaker.succeeded(policy, now: 31_000), .recovered(downMillis: 30_000))
        XCTAssertEqual(breaker, Breaker(answering: true))
        XCTAssertNil(breaker.succeeded(policy, now: 32_000))  // up already: no transition
    }

    func testProbeNowLiftsTheWaitButNotTheDownState() {
        var breaker = Breaker(consecutiveFailures: 5, probeNotBefore: 99_000, downSince: 0)
        breaker.probeNow()
        XCTAssert(breaker.isDown(policy))
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 1), 1)
    }

    /// Slow start: an unknown or failing receiver gets at most `downAfter`
    /// attempts at once; one that answers gets --max-in-flight.
    func testSlowStartUntilAnAttemptSucceeds() {
        var breaker = Breaker()
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 0), 5, "nothing known yet")
        XCTAssertEqual(breaker.room(policy, maxInFlight: 3, now: 0), 3, "never more than --max-in-flight")
        XCTAssertNil(breaker.succeeded(policy, now: 1))
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 1), 32, "it answers")
        XCTAssertNil(breaker.failed(policy, isProbe: false, retryAfter: nil, now: 2))
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 2), 4, "failing again: careful again")
        XCTAssertNil(breaker.succeeded(policy, now: 3))
        breaker.probeNow()  // an operator retried, unpaused or re-pointed it
        XCTAssertEqual(breaker.room(policy, maxInFlight: 32, now: 4), 5, "a new URL is unknown again")
    }
}
