// libFuzzer target: the JSON parser config files are read with (JSONValue.parse, RFC 8259). A document
// that parses is printed back (compact, keys in file order) and must parse to the same value; a refusal
// names the line and column where it happened and is one printable line.
import LoadBalancer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    switch JSONValue.parse(text) {
    case .success(let value):
        let printed = render(value)
        require(JSONValue.parse(printed) == .success(value), "does not round-trip: \(printed.debugDescription)")
        require(JSONValue.parse(" \n" + printed + "\t ") == .success(value), "white space changed the value")
    case .failure(let failure):
        require(failure.reason.hasPrefix("line "), "failure does not name a place: \(failure.reason)")
        require(!failure.reason.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) },
                     "failure is not one printable line: \(failure.reason.debugDescription)")
    }
    return 0
}

func render(_ v: JSONValue) -> String {
    switch v {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .number(let n): return n
    case .string(let s): return quoted(s)
    case .array(let items): return "[" + items.map(render).joined(separator: ",") + "]"
    case .object(let members): return "{" + members.map { quoted($0.key) + ":" + render($0.value) }.joined(separator: ",") + "}"
    }
}

func quoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where u.value < 0x20: out += "\\u00" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

/// precondition's message is dropped in -O builds; this one reaches the log.
func require(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}
