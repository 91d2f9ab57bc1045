// Fuzz target for the JSON request decoding of POST /tenants, POST
// /subscriptions and PATCH /subscriptions/{id}. Built with -DFUZZING and
// -sanitize=fuzzer by `make fuzz`; otherwise a replayer that runs the given
// corpus files once (`make test` replays the committed corpus and crashes).
import Foundation
import Essentials
import FuzzSupport
import Provisioning

/// Decodes the input every way the API does; a crash or a trap is a bug.
func decodeEveryWay(_ bytes: [UInt8]) {
    if let tenant = try? TenantRequest.parse(bytes) {
        // What was accepted must satisfy the contract's rules.
        precondition(tenant.domain == tenant.domain.lowercased() && tenant.domain.utf8.count <= 253)
        precondition(tenant.admin["email"]?.stringValue?.contains("@") == true)
        precondition((try? JSON.parse(tenant.canonical)) != nil)
    }
    _ = try? SubscriptionRequest.parse(bytes)
    _ = try? SubscriptionPatch.parse(bytes)
    if let value = try? JSON.parse(bytes) {
        // Writing and reading back gives the same value.
        precondition((try? JSON.parse(value.serialized())) == value)
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzzInput(data, size, decodeEveryWay) }

// SwiftPM links an executable's entry point under this name.
@_cdecl("FuzzRequestDecoding_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv) { fuzzOne($0, $1) }
}
#else
@main
struct Replay {
    static func main() throws { try replayCommandLine(through: "the request decoders", decodeEveryWay) }
}
#endif
