import XCTest
@testable import Provisioning

final class WebhookSignatureTests: XCTestCase {
    /// The example published with the Standard Webhooks specification (its
    /// README and reference libraries use this exact vector).
    func testStandardWebhooksPublishedVector() throws {
        let signer = try XCTUnwrap(WebhookSigner(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let signature = signer.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8))
        XCTAssertEqual(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    func testSignatureCoversIdTimestampAndBody() throws {
        let signer = try XCTUnwrap(WebhookSigner(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let body = Array(#"{"a":1}"#.utf8)
        let base = signer.signature(id: "evt_1", timestamp: 100, body: body)
        XCTAssertNotEqual(base, signer.signature(id: "evt_2", timestamp: 100, body: body))
        XCTAssertNotEqual(base, signer.signature(id: "evt_1", timestamp: 101, body: body))
        XCTAssertNotEqual(base, signer.signature(id: "evt_1", timestamp: 100, body: Array(#"{"a":2}"#.utf8)))
    }

    func testUnusableSecretsAreRefused() {
        XCTAssertNil(WebhookSigner(secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        XCTAssertNil(WebhookSigner(secret: "whsec_***not base64***"))
    }
}

final class RetryPolicyTests: XCTestCase {
    func testBackoffGrowsExponentiallyWithJitterUpToTheMaximum() {
        let policy = RetryPolicy(initial: .seconds(1), maximum: .seconds(60), maxAttempts: 0)
        for _ in 0..<200 {
            let first = policy.delayMillis(failures: 1)
            XCTAssert((500...1000).contains(first), "\(first)")
            let third = policy.delayMillis(failures: 3)
            XCTAssert((2000...4000).contains(third), "\(third)")
            let late = policy.delayMillis(failures: 30)
            XCTAssert((30_000...60_000).contains(late), "\(late)")
        }
    }

    func testRetryAfterWinsOnlyWhenLonger() {
        let policy = RetryPolicy(initial: .milliseconds(100), maximum: .seconds(1), maxAttempts: 0)
        XCTAssertEqual(policy.delayMillis(failures: 1, retryAfterMillis: 5000), 5000)
        XCTAssertLessThanOrEqual(policy.delayMillis(failures: 10, retryAfterMillis: 1), 1000)
    }

    func testRetryAfterParsesSecondsAndHTTPDates() {
        XCTAssertEqual(RetryPolicy.parseRetryAfter("120", nowMillis: 0), 120_000)
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
        XCTAssertEqual(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowMillis: 784_111_767_000), 10_000)
        XCTAssertEqual(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowMillis: 784_111_800_000), 0)
        XCTAssertNil(RetryPolicy.parseRetryAfter("soon", nowMillis: 0))
        XCTAssertNil(RetryPolicy.parseRetryAfter("-5", nowMillis: 0))
    }

    func testMaxAttempts() {
        let unlimited = RetryPolicy(initial: .seconds(1), maximum: .seconds(2), maxAttempts: 0)
        XCTAssertFalse(unlimited.isExhausted(attempts: 1_000_000))
        let three = RetryPolicy(initial: .seconds(1), maximum: .seconds(2), maxAttempts: 3)
        XCTAssertFalse(three.isExhausted(attempts: 2))
        XCTAssertTrue(three.isExhausted(attempts: 3))
    }
}
