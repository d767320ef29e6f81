// libFuzzer entry points for the preamble parsers. ci/fuzz-preamble compiles this file with the
// parser sources and Tests/UnitTests/PreambleFuzzing.swift (the checks the unit tests also run),
// once per target: -D FUZZ_PROXY or -D FUZZ_CLIENTHELLO.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data.map { UnsafeRawPointer($0) }, count: data == nil ? 0 : size)
    #if FUZZ_PROXY
    if let problem = PreambleFuzzing.checkProxy(bytes) { fatalError("PROXY parser: \(problem)") }
    #else
    if let problem = PreambleFuzzing.checkClientHello(bytes) { fatalError("ClientHello parser: \(problem)") }
    #endif
    return 0
}
