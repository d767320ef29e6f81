/// An address block, IPv4 (`10.0.0.0/8`) or IPv6 (`fd00::/8`); a bare address is a /32 or /128.
/// An IPv4-mapped IPv6 client (`::ffff:10.1.2.3`, from a dual-stack listener) matches IPv4 blocks.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// The address bits, left-aligned in 128 bits (IPv4 in the top 32).
    let high: UInt64
    let low: UInt64
    public let prefix: Int
    public let isIPv6: Bool

    /// Parses `ADDR/PREFIX` or `ADDR`. Host bits past the prefix must be zero (`10.0.0.1/8` is
    /// refused as a likely mistake).
    public static func parse(_ text: String) -> Result<CIDR, ParseFailure> {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let host = String(parts[0])
        let isV6 = host.contains(":")
        let maxPrefix = isV6 ? 128 : 32
        var prefix = maxPrefix
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(parts[1]), p <= maxPrefix else {
                return .failure(ParseFailure("bad prefix length (0-\(maxPrefix))"))
            }
            prefix = p
        }
        guard host != "localhost", let address = SocketAddress(host: host, port: 0) else {
            return .failure(ParseFailure("expected an address block like 10.0.0.0/8 or fd00::/8"))
        }
        let (h, l) = Self.bits(address, asV6: isV6)
        let (mh, ml) = Self.mask(prefix)
        if h & ~mh != 0 || l & ~ml != 0 {
            return .failure(ParseFailure("host bits set past /\(prefix)"))
        }
        return .success(CIDR(high: h, low: l, prefix: prefix, isIPv6: isV6))
    }

    public func contains(_ address: SocketAddress) -> Bool {
        var v6 = address.isIPv6
        var (h, l) = Self.bits(address, asV6: v6)
        if v6 && !isIPv6 && h == 0 && l >> 32 == 0xFFFF {
            // IPv4-mapped: compare as the IPv4 address it carries.
            h = (l & 0xFFFF_FFFF) << 32
            l = 0
            v6 = false
        }
        guard v6 == isIPv6 else { return false }
        let (mh, ml) = Self.mask(prefix)
        return h & mh == high && l & ml == low
    }

    public var description: String {
        let address: SocketAddress
        if isIPv6 {
            var a = SocketAddress(host: "::", port: 0)!
            withUnsafeMutableBytes(of: &a.storage) { raw in
                raw.storeBytes(of: high.bigEndian, toByteOffset: 8, as: UInt64.self)
                raw.storeBytes(of: low.bigEndian, toByteOffset: 16, as: UInt64.self)
            }
            address = a
        } else {
            let v = UInt32(high >> 32)
            address = SocketAddress(ipv4: (UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)), port: 0)
        }
        return "\(address.host)/\(prefix)"
    }

    /// The address as 128 left-aligned bits.
    static func bits(_ address: SocketAddress, asV6: Bool) -> (UInt64, UInt64) {
        withUnsafeBytes(of: address.storage) { raw in
            if address.isIPv6 {
                return (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                        UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
            }
            return (UInt64(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))) << 32, 0)
        }
    }

    /// Top `prefix` bits of 128 set (an IPv4 prefix counts from the top as well).
    static func mask(_ prefix: Int) -> (UInt64, UInt64) {
        if prefix <= 0 { return (0, 0) }
        if prefix >= 128 { return (~0, ~0) }
        if prefix >= 64 { return (~0, prefix == 64 ? 0 : ~0 << UInt64(128 - prefix)) }
        return (~0 << UInt64(64 - prefix), 0)
    }
}
