// libFuzzer target: lb's command line (CommandLineParser). The input is split at NUL and newline bytes
// into arguments, as argv would carry them (a NUL cannot be inside an argv string). Every outcome must
// be a parsed command or one ConfigError naming a flag; a configuration that parses must be valid.
import LoadBalancer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let args = bytes.split(separator: 0, omittingEmptySubsequences: false)
        .flatMap { $0.split(separator: 10, omittingEmptySubsequences: false) }
        .map { String(decoding: $0, as: UTF8.self) }
    switch CommandLineParser.parse(size == 0 ? [] : args) {
    case .success(.run(let config, _)):
        precondition(!config.listen.isEmpty, "no listen address")
        precondition(!config.backends.isEmpty, "no backend")
        precondition((1...256).contains(config.workers), "workers out of range")
        precondition(config.connectTimeout > .zero && config.idleTimeout > .zero, "non-positive timeout")
        precondition(Set(config.backends.map(\.address)).count == config.backends.count, "duplicate backend")
    case .success: break
    case .failure(let error):
        precondition(!error.reason.isEmpty, "error gives no reason")
        precondition(!error.description.unicodeScalars.contains { $0.value < 0x20 }, "error is not one printable line")
    }
    return 0
}
