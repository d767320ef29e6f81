/// Writes the Prometheus text exposition format, version 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/): a `# HELP` and `# TYPE` line per
/// metric family, then one `name{labels} value` line per series. Built for large scrapes: numbers and
/// labels are appended as bytes, with no `String` per line.
public struct PrometheusWriter: Sendable {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public private(set) var bytes: [UInt8] = []

    public init(reserving capacity: Int = 4096) { bytes.reserveCapacity(capacity) }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Starts a metric family. `help` is escaped (backslash, newline).
    public mutating func family(_ name: String, _ kind: Kind, help: String) {
        bytes.append(contentsOf: "# HELP ".utf8)
        bytes.append(contentsOf: name.utf8)
        bytes.append(32)
        for b in help.utf8 {
            switch b {
            case UInt8(ascii: "\\"): bytes.append(contentsOf: "\\\\".utf8)
            case 10: bytes.append(contentsOf: "\\n".utf8)
            default: bytes.append(b)
            }
        }
        bytes.append(contentsOf: "\n# TYPE ".utf8)
        bytes.append(contentsOf: name.utf8)
        bytes.append(32)
        bytes.append(contentsOf: kind.rawValue.utf8)
        bytes.append(10)
    }

    /// Label pairs rendered once as `a="x",b="y"` (values escaped), to be reused for many series.
    public static func labels(_ pairs: KeyValuePairs<String, String>) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in pairs {
            if !out.isEmpty { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: "=\"".utf8)
            appendLabelValue(value, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        return out
    }

    /// A label value escaped as the format asks: backslash, double quote and newline.
    public static func appendLabelValue(_ value: String, to out: inout [UInt8]) {
        for b in value.utf8 {
            switch b {
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case 10: out.append(contentsOf: "\\n".utf8)
            default: out.append(b)
            }
        }
    }

    /// `name{labels} value` (no braces when `labels` is empty). `extra` is one more label, pre-rendered.
    public mutating func sample(_ name: String, _ labels: [UInt8] = [], extra: [UInt8] = [], _ value: Int) {
        start(name, labels, extra)
        JSONWriter.appendDecimal(value, to: &bytes)
        bytes.append(10)
    }

    public mutating func sample(_ name: String, _ labels: [UInt8] = [], extra: [UInt8] = [], _ value: Double) {
        start(name, labels, extra)
        Self.appendDouble(value, to: &bytes)
        bytes.append(10)
    }

    private mutating func start(_ name: String, _ labels: [UInt8], _ extra: [UInt8]) {
        bytes.append(contentsOf: name.utf8)
        if !labels.isEmpty || !extra.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            bytes.append(contentsOf: labels)
            if !labels.isEmpty && !extra.isEmpty { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: extra)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(32)
    }

    /// A histogram's series: `_bucket{le=...}` (cumulative, ending with `+Inf`), `_sum` and `_count`.
    /// `counts[i]` is the number of observations in bucket i alone (not cumulative); it has one more
    /// entry than `bounds`, for the observations above the last bound.
    public mutating func histogram(_ name: String, _ labels: [UInt8] = [], bounds: [Double], counts: [Int], sum: Double) {
        var cumulative = 0
        for i in 0...bounds.count {
            cumulative += i < counts.count ? counts[i] : 0
            var le: [UInt8] = Array("le=\"".utf8)
            if i < bounds.count { Self.appendDouble(bounds[i], to: &le) } else { le.append(contentsOf: "+Inf".utf8) }
            le.append(UInt8(ascii: "\""))
            sample(name + "_bucket", labels, extra: le, cumulative)
        }
        sample(name + "_sum", labels, sum)
        sample(name + "_count", labels, cumulative)
    }

    /// Go's `strconv.FormatFloat(v, 'g', -1, 64)` shape, as Prometheus prints: integers without a
    /// fraction, `+Inf`, `-Inf`, `NaN`.
    public static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        if value.isNaN { out.append(contentsOf: "NaN".utf8); return }
        if value.isInfinite { out.append(contentsOf: (value > 0 ? "+Inf" : "-Inf").utf8); return }
        if value == value.rounded(), abs(value) < 1e15 {
            JSONWriter.appendDecimal(Int(value), to: &out)
        } else {
            out.append(contentsOf: value.description.utf8)
        }
    }
}
