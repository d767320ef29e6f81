/// Builds JSON text (RFC 8259) into a byte buffer, keeping track of commas. The one place JSON strings
/// are escaped in the project's operator tools.
///
///     var w = JSONWriter()
///     w.object { w.field("address", "127.0.0.1:8000"); w.field("active", 3) }
///     w.text   // {"address":"127.0.0.1:8000","active":3}
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// One entry per open object or array: whether a value was written in it yet.
    private var started: [Bool] = []
    private var afterKey = false

    public init(reserving capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separate() {
        if afterKey { afterKey = false; return }
        if let last = started.last {
            if last { bytes.append(UInt8(ascii: ",")) }
            started[started.count - 1] = true
        }
    }

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); started.append(false) }
    public mutating func endObject() { started.removeLast(); bytes.append(UInt8(ascii: "}")) }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); started.append(false) }
    public mutating func endArray() { started.removeLast(); bytes.append(UInt8(ascii: "]")) }

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        beginObject(); body(&self); endObject()
    }

    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        beginArray(); body(&self); endArray()
    }

    /// A key inside an object; the next value written is its value.
    public mutating func key(_ name: String) {
        separate()
        Self.appendQuoted(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func string(_ value: String) { separate(); Self.appendQuoted(value, to: &bytes) }
    public mutating func int(_ value: Int) { separate(); Self.appendDecimal(value, to: &bytes) }
    public mutating func bool(_ value: Bool) { separate(); bytes.append(contentsOf: (value ? "true" : "false").utf8) }
    public mutating func null() { separate(); bytes.append(contentsOf: "null".utf8) }

    /// A number; NaN and infinities (which JSON cannot carry) are written as null.
    public mutating func double(_ value: Double) {
        guard value.isFinite else { null(); return }
        separate()
        if value == value.rounded(), abs(value) < 1e15 {
            Self.appendDecimal(Int(value), to: &bytes)
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
    }

    /// Already-encoded JSON, written as one value.
    public mutating func raw(_ json: String) { separate(); bytes.append(contentsOf: json.utf8) }

    public mutating func field(_ name: String, _ value: String) { key(name); string(value) }
    public mutating func field(_ name: String, _ value: Int) { key(name); int(value) }
    public mutating func field(_ name: String, _ value: Double) { key(name); double(value) }
    public mutating func field(_ name: String, _ value: Bool) { key(name); bool(value) }
    public mutating func field(_ name: String, _ value: String?) {
        key(name)
        if let value { string(value) } else { null() }
    }

    /// `"` + the text escaped as a JSON string + `"`: quote, backslash and control characters
    /// (RFC 8259 section 7); everything else is copied as UTF-8.
    public static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 10: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 13: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 9: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigit(b >> 4))
                out.append(hexDigit(b & 15))
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The text escaped for the inside of a JSON string (no quotes around it).
    public static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        appendQuoted(text, to: &out)
        return String(decoding: out.dropFirst().dropLast(), as: UTF8.self)
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 48 + v : 87 + v }

    /// Decimal digits without going through `String` (a scrape writes tens of thousands of numbers).
    public static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value == 0 { out.append(48); return }
        var v = value.magnitude
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 {
                d[n] = UInt8(48 + v % 10)
                v /= 10
                n += 1
            }
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }
}
