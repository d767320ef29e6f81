/// A block of addresses in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address for one host):
/// which peers `--accept-proxy-from` trusts to send a PROXY header.
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    public let isIPv6: Bool
    /// Leading bits that must match: 0-32 for IPv4, 0-128 for IPv6.
    public let prefixLength: Int
    /// The network address, host bits cleared: IPv4 in the low 32 bits of `low`, IPv6 as two halves.
    private let high: UInt64
    private let low: UInt64

    /// The loopback blocks, `127.0.0.0/8` and `::1/128`: `--accept-proxy-from`'s default.
    public static let loopback: [AddressRange] = [
        AddressRange(ipv4: 0x7F00_0000, prefixLength: 8), AddressRange(ipv6High: 0, low: 1, prefixLength: 128),
    ]

    init(ipv4 value: UInt32, prefixLength: Int) {
        isIPv6 = false
        self.prefixLength = prefixLength
        high = 0
        low = UInt64(value) & Self.mask(prefixLength, width: 32)
    }

    init(ipv6High h: UInt64, low l: UInt64, prefixLength: Int) {
        isIPv6 = true
        self.prefixLength = prefixLength
        high = h & Self.mask(min(prefixLength, 64), width: 64)
        low = l & Self.mask(max(prefixLength - 64, 0), width: 64)
    }

    @inline(__always)
    private static func mask(_ bits: Int, width: Int) -> UInt64 {
        if bits <= 0 { return 0 }
        let all: UInt64 = width == 64 ? .max : (1 << UInt64(width)) - 1
        return all & ~((1 << UInt64(width - bits)) &- 1)
    }

    private static func halves(_ a: SocketAddress) -> (UInt64, UInt64) {
        let w = a.ipv6Words
        var h: UInt64 = 0, l: UInt64 = 0
        for k in 0..<4 { h = h << 16 | UInt64(w[k]) }
        for k in 4..<8 { l = l << 16 | UInt64(w[k]) }
        return (h, l)
    }

    /// `ADDR/BITS` or `ADDR`; the address numeric (as `--listen` takes it, without brackets). Host
    /// bits set below the prefix are refused (`10.0.0.1/8`): they are usually a typo for another block.
    public static func parse(_ text: String) -> Result<AddressRange, ParseFailure> {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var host = String(parts[0])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let address = SocketAddress(host: host, port: 0), host != "localhost" else {
            return .failure(ParseFailure("bad address '\(host)' (expected numeric IPv4 or IPv6, like 10.0.0.0/8 or fd00::/8)"))
        }
        let width = address.isIPv6 ? 128 : 32
        var bits = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), (0...width).contains(n) else {
                return .failure(ParseFailure("prefix length must be between 0 and \(width)"))
            }
            bits = n
        }
        let range: AddressRange
        if address.isIPv6 {
            let (h, l) = halves(address)
            range = AddressRange(ipv6High: h, low: l, prefixLength: bits)
            guard range.high == h, range.low == l else {
                return .failure(ParseFailure("host bits set after the /\(bits) prefix"))
            }
        } else {
            range = AddressRange(ipv4: address.ipv4Value, prefixLength: bits)
            guard range.low == UInt64(address.ipv4Value) else {
                return .failure(ParseFailure("host bits set after the /\(bits) prefix"))
            }
        }
        return .success(range)
    }

    /// Whether `address` is in the block. An IPv4-mapped IPv6 peer counts as its IPv4 address.
    public func contains(_ address: SocketAddress) -> Bool {
        let a = address.unmapped
        guard a.isIPv6 == isIPv6 else { return false }
        if !isIPv6 { return UInt64(a.ipv4Value) & Self.mask(prefixLength, width: 32) == low }
        let (h, l) = Self.halves(a)
        return h & Self.mask(min(prefixLength, 64), width: 64) == high && l & Self.mask(max(prefixLength - 64, 0), width: 64) == low
    }

    public var description: String {
        if isIPv6 {
            var w = SIMD8<UInt16>()
            for k in 0..<4 { w[k] = UInt16((high >> UInt64(48 - 16 * k)) & 0xFFFF) }
            for k in 0..<4 { w[4 + k] = UInt16((low >> UInt64(48 - 16 * k)) & 0xFFFF) }
            return "\(SocketAddress(ipv6Words: w, port: 0).host)/\(prefixLength)"
        }
        return "\(SocketAddress(ipv4: UInt32(low), port: 0).host)/\(prefixLength)"
    }
}

extension [AddressRange] {
    /// Whether any block holds `address`.
    public func containsAddress(_ address: SocketAddress) -> Bool {
        for r in self where r.contains(address) { return true }
        return false
    }
}
