#if FUZZING
@_exported import CFuzzer

/// Hands control to libFuzzer with `target` as the function under test.
package func runFuzzer(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    target: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32 {
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments, target)
}

/// One fuzz input, as libFuzzer hands it over, through `run`.
package func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int, _ run: ([UInt8]) -> Void) -> Int32 {
    guard let data else { return 0 }
    run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#endif
