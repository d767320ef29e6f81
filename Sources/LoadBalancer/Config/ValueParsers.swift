/// Pure parsers for the values flags and config files take. Each returns a reason string on failure;
/// the caller adds the flag and value.
public enum ValueParsers {
    /// `250ms`, `2s`, `1m`, `1h`, `1500us`; decimals allowed (`1.5s`). A bare number is refused: it is
    /// ambiguous (HAProxy reads milliseconds, most people seconds).
    public static func duration(_ text: String) -> Result<Duration, ParseFailure> {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("h", 3600), ("m", 60), ("s", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  let value = Double(number), value.isFinite
            else { return .failure(ParseFailure("expected a duration like 250ms, 2s or 1m")) }
            let seconds = value * scale
            if seconds > 86_400 * 365 { return .failure(ParseFailure("duration too long")) }
            return .success(.nanoseconds(Int64((seconds * 1e9).rounded())))
        }
        return .failure(ParseFailure("expected a duration like 250ms, 2s or 1m"))
    }

    public static func integer(_ text: String, in range: ClosedRange<Int>) -> Result<Int, ParseFailure> {
        guard let n = Int(text) else { return .failure(ParseFailure("not a whole number")) }
        guard range.contains(n) else {
            return .failure(ParseFailure("must be between \(range.lowerBound) and \(range.upperBound)"))
        }
        return .success(n)
    }

    /// `64k`, `16384`, `1m`, `1g`: a byte size (binary units; `kb`/`kib` and the like also read).
    /// Any well-formed size outside `range` is refused with the range, in bytes and in units.
    public static func byteSize(_ text: String, in range: ClosedRange<Int>) -> Result<Int, ParseFailure> {
        var digits = Substring(text.lowercased())
        var scale = 1
        for (suffixes, s) in [(["kib", "kb", "k"], 1 << 10), (["mib", "mb", "m"], 1 << 20), (["gib", "gb", "g"], 1 << 30)] {
            if let suffix = suffixes.first(where: { digits.hasSuffix($0) }) {
                scale = s
                digits = digits.dropLast(suffix.count)
                break
            }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return .failure(ParseFailure("expected a size like 16384 or 16k"))
        }
        let (bytes, overflow) = (Int(digits) ?? Int.max).multipliedReportingOverflow(by: scale)
        guard !overflow, range.contains(bytes) else {
            return .failure(ParseFailure("must be between \(range.lowerBound) and \(range.upperBound) bytes"
                + " (\(sizeText(range.lowerBound)) to \(sizeText(range.upperBound)))"))
        }
        return .success(bytes)
    }

    /// `16k`, `16m`, `1g` when `bytes` is a whole number of those units, else the plain number.
    static func sizeText(_ bytes: Int) -> String {
        for (unit, s) in [("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)] where bytes >= s && bytes % s == 0 {
            return "\(bytes / s)\(unit)"
        }
        return "\(bytes)"
    }

    /// A boolean flag's value: `true/false`, `yes/no` or `on/off` (any case).
    public static func boolean(_ text: String) -> Result<Bool, ParseFailure> {
        switch text.lowercased() {
        case "true", "yes", "on": return .success(true)
        case "false", "no", "off": return .success(false)
        default: return .failure(ParseFailure("expected true/false, yes/no or on/off"))
        }
    }

    /// A port, 1-65535 (0 only where `allowZero`: "pick a free one").
    public static func port(_ text: Substring, allowZero: Bool = false) -> Result<UInt16, ParseFailure> {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return .failure(ParseFailure("bad port '\(text)'"))
        }
        guard let n = Int(text), n <= 65535, n >= (allowZero ? 0 : 1) else {
            return .failure(ParseFailure("port out of range"))
        }
        return .success(UInt16(n))
    }

    /// A port, or a range `LO-HI` of ports (both included): `9000` is `9000...9000`.
    public static func portRange(_ text: Substring) -> Result<ClosedRange<UInt16>, ParseFailure> {
        guard let dash = text.firstIndex(of: "-") else { return port(text).map { $0...$0 } }
        let low: UInt16, high: UInt16
        switch (port(text[..<dash]), port(text[text.index(after: dash)...])) {
        case (.success(let l), .success(let h)): low = l; high = h
        case (.failure(let f), _), (_, .failure(let f)): return .failure(f)
        }
        guard low <= high else { return .failure(ParseFailure("port range runs backwards")) }
        return .success(low...high)
    }

    /// Splits `HOST:PORTS` or `[V6]:PORTS` into host and the text after the colon.
    public static func splitHostPort(_ text: String) -> Result<(host: String, ports: Substring), ParseFailure> {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(ParseFailure("missing ']' after IPv6 address")) }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(ParseFailure("expected [V6]:PORT")) }
            return .success((host, rest.dropFirst()))
        }
        guard let colon = text.lastIndex(of: ":") else { return .failure(ParseFailure("expected HOST:PORT")) }
        let host = String(text[..<colon])
        if host.contains(":") { return .failure(ParseFailure("IPv6 addresses need brackets: [V6]:PORT")) }
        return .success((host, text[text.index(after: colon)...]))
    }

    /// A listen address: `HOST:PORT`, `[V6]:PORT`, or `:PORT` (all IPv4 interfaces). Port 0 picks a free port.
    public static func listenAddress(_ text: String) -> Result<SocketAddress, ParseFailure> {
        let parts: (host: String, ports: Substring)
        switch splitHostPort(text) {
        case .success(let p): parts = p
        case .failure(let f): return .failure(f)
        }
        let port: UInt16
        switch self.port(parts.ports, allowZero: true) {
        case .success(let p): port = p
        case .failure(let f): return .failure(f)
        }
        let host = parts.host.isEmpty ? "0.0.0.0" : parts.host
        guard let address = SocketAddress(host: host, port: port) else {
            return .failure(ParseFailure("bad address '\(host)' (numeric IPv4/IPv6 or localhost)"))
        }
        return .success(address)
    }

    /// A backend spec: `HOST:PORT`, `[V6]:PORT`, a range `HOST:LO-HI`, each with an optional `@WEIGHT`.
    public static func backends(_ text: String) -> Result<[BackendSpec], ParseFailure> {
        var body = Substring(text)
        var weight = 1
        if let at = text.lastIndex(of: "@") {
            let w = text[text.index(after: at)...]
            guard let n = Int(w) else { return .failure(ParseFailure("bad weight '\(w)'")) }
            guard (1...BackendSpec.maxWeight).contains(n) else {
                return .failure(ParseFailure("weight must be between 1 and \(BackendSpec.maxWeight)"))
            }
            weight = n
            body = text[..<at]
        }
        let parts: (host: String, ports: Substring)
        switch splitHostPort(String(body)) {
        case .success(let p): parts = p
        case .failure(let f): return .failure(f)
        }
        guard !parts.host.isEmpty else { return .failure(ParseFailure("missing host")) }
        let low: UInt16, high: UInt16
        switch portRange(parts.ports) {
        case .success(let r): low = r.lowerBound; high = r.upperBound
        case .failure(let f): return .failure(f)
        }
        guard let first = SocketAddress(host: parts.host, port: low) else {
            return .failure(ParseFailure("bad address '\(parts.host)' (numeric IPv4/IPv6 or localhost)"))
        }
        var specs: [BackendSpec] = []
        specs.reserveCapacity(Int(high - low) + 1)
        for p in low...high {
            var a = first
            a.port = p
            specs.append(BackendSpec(address: a, weight: weight))
        }
        return .success(specs)
    }
}

extension ValueParsers {
    /// Most addresses one `--source` range may hold.
    public static let maxSourceAddresses = 256

    /// Source addresses for backend connections: `ADDR` or an IPv4 range `ADDR-ADDR` (both included,
    /// at most 256), e.g. `127.0.0.2-127.0.0.5`. IPv6: one address per value (`::1`, no brackets, no port:
    /// the kernel picks the port at connect).
    public static func sourceAddresses(_ text: String) -> Result<[SocketAddress], ParseFailure> {
        let ends = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard ends.allSatisfy({ !$0.isEmpty }), let first = SocketAddress(host: ends[0], port: 0) else {
            return .failure(ParseFailure("expected an address or an IPv4 range like 127.0.0.2-127.0.0.5"))
        }
        guard ends.count == 2 else { return .success([first]) }
        guard let last = SocketAddress(host: ends[1], port: 0), !first.isIPv6, !last.isIPv6 else {
            return .failure(ParseFailure("a range needs two IPv4 addresses"))
        }
        let lo = first.ipv4Value, hi = last.ipv4Value
        guard lo <= hi else { return .failure(ParseFailure("address range runs backwards")) }
        guard hi - lo < UInt32(maxSourceAddresses) else {
            return .failure(ParseFailure("at most \(maxSourceAddresses) addresses in a range"))
        }
        var addresses: [SocketAddress] = []
        for v in lo...hi {
            let a = UInt8(truncatingIfNeeded: v >> 24), b = UInt8(truncatingIfNeeded: v >> 16)
            let c = UInt8(truncatingIfNeeded: v >> 8), d = UInt8(truncatingIfNeeded: v)
            addresses.append(SocketAddress(ipv4: (a, b, c, d), port: 0))
        }
        return .success(addresses)
    }
}

/// Why a value was refused, without the flag (the caller knows it).
public struct ParseFailure: Error, Equatable, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}
