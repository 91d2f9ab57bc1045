// Fuzz target for the HTTP/1.1 request parser. Built with -DFUZZING and
// -sanitize=fuzzer by `make fuzz`; otherwise a replayer that runs the given
// corpus files once (`make test` replays the committed corpus and crashes).
import FuzzSupport
import HTTPServer

/// Feeds the input to a parser in pieces whose size the first byte picks
/// (so arrival in fragments is fuzzed too) and checks what it produces.
func parseInPieces(_ bytes: [UInt8]) {
    guard let first = bytes.first else { return }
    var limits = HTTPLimits()
    limits.maxHeadBytes = 1024
    limits.maxBodyBytes = 4096
    limits.maxHeaderCount = 32
    var parser = HTTPParser(limits: limits)
    let input = Array(bytes.dropFirst())
    let piece = 1 + Int(first % 64)
    var buffer: [UInt8] = []
    var index = 0
    var offset = 0
    while offset < input.count {
        buffer.append(contentsOf: input[offset..<min(offset + piece, input.count)])
        offset += piece
        parsing: while true {
            switch parser.parse(buffer, index: &index) {
            case .incomplete:
                break parsing
            case .request(let request):
                precondition(request.body.count <= limits.maxBodyBytes, "body over the limit was accepted")
                precondition(index <= buffer.count)
            case .failure(let status, _):
                precondition((400..<600).contains(status))
                return  // the connection would close here
            }
        }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzzInput(data, size, parseInPieces) }

// SwiftPM links an executable's entry point under this name.
@_cdecl("FuzzHTTPParser_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv) { fuzzOne($0, $1) }
}
#else
@main
struct Replay {
    static func main() throws { try replayCommandLine(through: "the HTTP parser", parseInPieces) }
}
#endif
