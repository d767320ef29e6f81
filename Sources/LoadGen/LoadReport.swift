import Glibc
import LoadBalancer
import OperatorHTTP

/// How a request failed. `status` is a complete response whose code is not 2xx.
public enum LoadErrorKind: String, Sendable, CaseIterable {
    case refused, reset, timeout, status
    case shortRead = "short-read"
    case mismatch, other

    /// Position in `allCases`, for per-thread counter arrays.
    var index: Int {
        switch self {
        case .refused: 0
        case .reset: 1
        case .timeout: 2
        case .status: 3
        case .shortRead: 4
        case .mismatch: 5
        case .other: 6
        }
    }

    /// Sorted as `ConnectFailure` sorts errno: ECONNREFUSED, ECONNRESET/EPIPE/ECONNABORTED, ETIMEDOUT;
    /// anything else (unreachable, EADDRNOTAVAIL, EMFILE...) is `other`.
    public init(errno: Int32) {
        switch ConnectFailure(errno: errno) {
        case .refused: self = .refused
        case .reset: self = .reset
        case .timeout: self = .timeout
        case .unreachable, .other, .local: self = .other
        }
    }
}

/// The outcome of a run, merged across worker threads.
public struct LoadReport: Sendable {
    public var mode: LoadMode = .http
    public var target = ""
    public var concurrency = 0
    public var threads = 0
    public var keepAlive = false
    /// Requests started. With `--duration`, those still in flight at the end are cut off: started but
    /// not completed.
    public var requested = 0
    /// Requests that ended, well or badly: `succeeded` plus every error.
    public var completed = 0
    public var succeeded = 0
    public var errors: [LoadErrorKind: Int] = [:]
    /// Every status code seen, 2xx included.
    public var statusCodes: [Int: Int] = [:]
    public var elapsed: Duration = .zero
    public var bytesSent = 0
    public var bytesReceived = 0
    /// Latency of completed requests (successes and failures alike), nanoseconds.
    public var latency = LatencyHistogram()
    /// `X-Backend` value -> responses carrying it.
    public var backends: [String: Int] = [:]
    /// Connections opened (equal to requests without keep-alive).
    public var connections = 0

    public init() {}

    public var failed: Int { errors.values.reduce(0, +) }

    public var seconds: Double {
        let c = elapsed.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    public var requestsPerSecond: Double { seconds > 0 ? Double(completed) / seconds : 0 }
    public var bytesReceivedPerSecond: Double { seconds > 0 ? Double(bytesReceived) / seconds : 0 }
    public var bytesSentPerSecond: Double { seconds > 0 ? Double(bytesSent) / seconds : 0 }

    /// Backends sorted by name, each with its count and share of all responses that named one.
    public var backendSpread: [(name: String, count: Int, share: Double)] {
        let total = backends.values.reduce(0, +)
        return backends.sorted { $0.key < $1.key }.map { ($0.key, $0.value, total > 0 ? Double($0.value) / Double(total) : 0) }
    }

    mutating func merge(_ other: LoadReport) {
        requested += other.requested
        completed += other.completed
        succeeded += other.succeeded
        for (k, v) in other.errors { errors[k, default: 0] += v }
        for (k, v) in other.statusCodes { statusCodes[k, default: 0] += v }
        bytesSent += other.bytesSent
        bytesReceived += other.bytesReceived
        latency.merge(other.latency)
        for (k, v) in other.backends { backends[k, default: 0] += v }
        connections += other.connections
    }

    static let percentiles: [(label: String, key: String, p: Double)] = [
        ("p50", "p50", 50), ("p90", "p90", 90), ("p99", "p99", 99), ("p99.9", "p99_9", 99.9),
    ]

    // MARK: JSON

    /// The whole report as one JSON object (hand-written: no Foundation in the library).
    public func json() -> String {
        var o = ReportJSON()
        o.begin()
        o.key("target"); o.string(target)
        o.key("mode"); o.string(mode.rawValue)
        o.key("keepalive"); o.raw(keepAlive ? "true" : "false")
        o.key("concurrency"); o.int(concurrency)
        o.key("threads"); o.int(threads)
        o.key("requested"); o.int(requested)
        o.key("completed"); o.int(completed)
        o.key("succeeded"); o.int(succeeded)
        o.key("failed"); o.int(failed)
        o.key("connections"); o.int(connections)
        o.key("elapsed_s"); o.double(seconds)
        o.key("requests_per_s"); o.double(requestsPerSecond)
        o.key("bytes_sent"); o.int(bytesSent)
        o.key("bytes_received"); o.int(bytesReceived)
        o.key("bytes_sent_per_s"); o.double(bytesSentPerSecond)
        o.key("bytes_received_per_s"); o.double(bytesReceivedPerSecond)
        o.key("latency_us"); o.begin()
        o.key("count"); o.int(Int(latency.count))
        o.key("min"); o.double(latency.count == 0 ? 0 : Double(latency.min) / 1000)
        o.key("mean"); o.double(latency.mean / 1000)
        for q in Self.percentiles { o.key(q.key); o.double(Double(latency.percentile(q.p)) / 1000) }
        o.key("max"); o.double(Double(latency.max) / 1000)
        o.end()
        o.key("errors"); o.begin()
        for kind in LoadErrorKind.allCases { o.key(kind.rawValue); o.int(errors[kind] ?? 0) }
        o.end()
        o.key("status_codes"); o.begin()
        for (code, n) in statusCodes.sorted(by: { $0.key < $1.key }) { o.key(String(code)); o.int(n) }
        o.end()
        o.key("backends"); o.begin()
        for b in backendSpread {
            o.key(b.name); o.begin(); o.key("count"); o.int(b.count); o.key("share"); o.double(b.share); o.end()
        }
        o.end()
        let counts = backends.values
        o.key("backend_spread"); o.begin()
        o.key("max"); o.int(counts.max() ?? 0)
        o.key("min"); o.int(counts.min() ?? 0)
        o.end()
        o.end()
        return o.text
    }

    // MARK: text

    /// Up to this many backends, the text report lists each; above, it summarises the spread (min,
    /// median and max share, the `spreadEnds` most and least loaded) so it stays about a screenful.
    public static let spreadListLimit = 20
    public static let spreadEnds = 5

    /// A human report in the spirit of `ab` and `wrk`, plus the spread over backends.
    public func text() -> String {
        var s = ""
        func row(_ label: String, _ value: String) { s += pad(label + ":", 22) + value + "\n" }
        row("Target", "\(target) (\(mode.rawValue), \(keepAlive ? "keep-alive" : "new connection per request"))")
        row("Concurrency", "\(Plural.count(concurrency, "connection")) on \(Plural.count(threads, "thread"))")
        row("Requests", "\(requested) started, \(completed) completed, \(succeeded) succeeded, \(failed) failed")
        row("Time taken", fixed(seconds, 3) + " s")
        row("Requests per second", fixed(requestsPerSecond, 1))
        row("Transfer", "received \(bytesReceived) B (\(fixed(bytesReceivedPerSecond / 1024, 1)) KiB/s), sent \(bytesSent) B (\(fixed(bytesSentPerSecond / 1024, 1)) KiB/s)")
        if mode != .connect { row("Connections opened", String(connections)) }
        if latency.count > 0 {
            var l = ""
            for q in Self.percentiles { l += "\(q.label) \(ms(latency.percentile(q.p)))  " }
            l += "max \(ms(latency.max))  mean \(fixed(latency.mean / 1e6, 3))"
            row("Latency (ms)", l)
        }
        if !statusCodes.isEmpty {
            row("Status codes", statusCodes.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        }
        let errorText = LoadErrorKind.allCases.compactMap { k in errors[k].map { $0 > 0 ? "\(k.rawValue) \($0)" : nil } ?? nil }
        row("Errors", errorText.isEmpty ? "none" : errorText.joined(separator: ", "))
        if !backends.isEmpty {
            row("Backends", "\(backends.count)")
            let spread = backendSpread
            func line(_ b: (name: String, count: Int, share: Double)) -> String {
                "  " + pad(b.name, 24) + pad(String(b.count), 10) + fixed(b.share * 100, 1) + "%\n"
            }
            if spread.count <= Self.spreadListLimit {
                for b in spread { s += line(b) }
            } else {
                // A screenful at most: the shape of the spread and its ends; --json keeps every backend.
                let byCount = spread.sorted { $0.count != $1.count ? $0.count > $1.count : $0.name < $1.name }
                let median = byCount[byCount.count / 2]
                let total = Double(backends.values.reduce(0, +))
                func share(_ n: Int) -> String { fixed(total > 0 ? Double(n) / total * 100 : 0, 3) + "%" }
                s += "  share per backend: min \(share(byCount.last!.count)), median \(share(median.count)), max \(share(byCount[0].count))"
                    + " (responses: \(byCount.last!.count), \(median.count), \(byCount[0].count))\n"
                s += "  most loaded:\n"
                for b in byCount.prefix(Self.spreadEnds) { s += line(b) }
                s += "  least loaded:\n"
                for b in byCount.suffix(Self.spreadEnds) { s += line(b) }
                s += "  (\(spread.count - 2 * Self.spreadEnds) more; --json lists every backend)\n"
            }
            let hi = backends.values.max() ?? 0, lo = backends.values.min() ?? 0
            s += "  spread: max \(hi), min \(lo)" + (lo > 0 ? ", max/min \(fixed(Double(hi) / Double(lo), 3))" : "") + "\n"
        }
        return s
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

/// `value` with `digits` decimals, without Foundation's String(format:).
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return String(value) }
    let n = UInt64(scaled)
    let whole = n / UInt64(scale)
    var text = (negative && n > 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let frac = String(n % UInt64(scale))
        text += "." + String(repeating: "0", count: digits - frac.count) + frac
    }
    return text
}

func ms(_ nanoseconds: UInt64) -> String { fixed(Double(nanoseconds) / 1e6, 3) }
/// The report's JSON through the project's one JSON writer (`OperatorHTTP.JSONWriter`, one escaping
/// routine), with numbers in the report's fixed three-decimal form.
struct ReportJSON {
    private var w = OperatorHTTP.JSONWriter()

    var text: String { w.text }
    mutating func begin() { w.beginObject() }
    mutating func end() { w.endObject() }
    mutating func key(_ k: String) { w.key(k) }
    mutating func raw(_ v: String) { w.raw(v) }
    mutating func int(_ v: Int) { w.int(v) }
    mutating func double(_ v: Double) { w.raw(fixed(v, 3)) }
    mutating func string(_ v: String) { w.string(v) }
}
