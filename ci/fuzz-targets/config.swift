// libFuzzer target: a JSON config file (ConfigFile.parse), the input taken as its text. A file either
// parses to a configuration that passes the cross checks (every service named, listening and with
// unique backends), and parses the same a second time, or is refused with one ConfigError whose line
// names the file and is printable (no control character: the operator reads it on a terminal or journal).
import LoadBalancer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let first: Result<Configuration, ConfigError> = Result { () throws(ConfigError) in try ConfigFile.parse(text, file: "fuzz.json") }
    switch first {
    case .success(let config):
        let services = config.effectiveServices
        require(!services.isEmpty, "no service")
        for s in services {
            require(ServiceConfiguration.isValidName(s.name), "bad service name")
            require(!s.listen.isEmpty, "service without a listener")
            require(Set(s.backends.map(\.address)).count == s.backends.count, "duplicate backend")
        }
        require(config.configFile == "fuzz.json", "config file not recorded")
        let again = Result { () throws(ConfigError) in try ConfigFile.parse(text, file: "fuzz.json") }
        require(again == first, "a second parse differs")
    case .failure(let error):
        let line = error.description
        require(!error.reason.isEmpty, "error gives no reason")
        // A path holding a control character is quoted whole, escaped ('fuzz.json: a\u{7f}b': ...).
        require(line.hasPrefix("fuzz.json") || line.hasPrefix("'fuzz.json"), "error does not name the file: \(line)")
        require(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) },
                     "error is not one printable line: \(line.debugDescription)")
    }
    return 0
}

/// precondition's message is dropped in -O builds; this one reaches the log.
func require(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}
