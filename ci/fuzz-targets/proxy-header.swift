// libFuzzer target: the PROXY protocol v1/v2 header parser (ProxyProtocol.parse). The properties are
// the ones the bounded unit test checks too (Tests/UnitTests/PreambleFuzzing.swift, compiled in): a
// verdict is stable, `consumed` lies within the input and is exact, parsed addresses survive
// re-encoding in both versions, and a full-length prefix never asks for more.
// fuzz-with: Tests/UnitTests/PreambleFuzzing.swift
// fuzz-max-len: 2100
import LoadBalancer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let problem = PreambleFuzzing.checkProxy(UnsafeRawBufferPointer(start: data, count: size)) {
        fatalError("PROXY parser: \(problem)")
    }
    return 0
}
