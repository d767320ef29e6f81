// libFuzzer target: the TLS ClientHello server-name extractor (ClientHello.serverName). The properties
// are the ones the bounded unit test checks too (Tests/UnitTests/PreambleFuzzing.swift, compiled in): a
// name is 1-255 bytes of lowercase host characters, a verdict does not change when more bytes follow,
// and the parser never asks for more past its 16 KiB bound.
// fuzz-with: Tests/UnitTests/PreambleFuzzing.swift
// fuzz-max-len: 17000
import LoadBalancer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let problem = PreambleFuzzing.checkClientHello(UnsafeRawBufferPointer(start: data, count: size)) {
        fatalError("ClientHello parser: \(problem)")
    }
    return 0
}
