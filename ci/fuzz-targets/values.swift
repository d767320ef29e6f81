// libFuzzer target: the value parsers flags and config files share (ValueParsers, SocketAddress). The
// first byte picks the parser, the rest is its text. What is accepted must print back to something the
// same parser reads as the same value (addresses, backends, durations).
import LoadBalancer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    switch data[0] % 8 {
    case 0:
        if case .success(let d) = ValueParsers.duration(text) {
            precondition(d >= .zero && d <= .seconds(86_400 * 365), "duration out of bounds")
        }
    case 1:
        if case .success(let n) = ValueParsers.integer(text, in: -5...100_000) { precondition((-5...100_000).contains(n)) }
    case 2:
        if case .success(let n) = ValueParsers.byteSize(text, in: 1024...(16 << 20)) { precondition((1024...(16 << 20)).contains(n)) }
    case 3:
        if case .success(let r) = ValueParsers.portRange(Substring(text)) { precondition(r.lowerBound >= 1) }
    case 4:
        if case .success(let a) = ValueParsers.listenAddress(text) {
            precondition(ValueParsers.listenAddress(a.description) == .success(a), "listen address does not round-trip")
        }
    case 5:
        if case .success(let specs) = ValueParsers.backends(text) {
            precondition(!specs.isEmpty && specs.count <= 65_535, "backend count")
            for s in [specs.first!, specs.last!] {
                precondition(ValueParsers.backends(s.description) == .success([s]), "backend does not round-trip")
            }
        }
    case 6:
        if let a = SocketAddress(host: text, port: 80) {
            precondition(SocketAddress(host: a.host, port: 80) == a, "host does not round-trip")
            precondition(!text.utf8.contains(0), "a host with a NUL byte was accepted")
        }
    default:
        _ = ValueParsers.splitHostPort(text)
    }
    return 0
}
