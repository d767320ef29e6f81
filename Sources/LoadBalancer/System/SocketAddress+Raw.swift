import Glibc

/// Building and reading addresses as numbers, without text: what the PROXY protocol and CIDR matching
/// need. IPv4 values are host-order `UInt32`s; IPv6 addresses are eight host-order 16-bit groups.
extension SocketAddress {
    public init(ipv4 value: UInt32, port: UInt16) {
        self.init(ipv4: (UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)), port: port)
    }

    public init(ipv6Words words: SIMD8<UInt16>, port: UInt16) {
        self.init()
        storage.sin6_family = sa_family_t(AF_INET6)
        storage.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &storage.sin6_addr) { raw in
            for k in 0..<8 {
                raw[2 * k] = UInt8(words[k] >> 8)
                raw[2 * k + 1] = UInt8(words[k] & 0xFF)
            }
        }
    }

    /// From 4 or 16 address bytes in network order; nil for any other count.
    public init?(addressBytes bytes: UnsafeRawBufferPointer, port: UInt16) {
        switch bytes.count {
        case 4:
            self.init(ipv4: UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]), port: port)
        case 16:
            var words = SIMD8<UInt16>()
            for k in 0..<8 { words[k] = UInt16(bytes[2 * k]) << 8 | UInt16(bytes[2 * k + 1]) }
            self.init(ipv6Words: words, port: port)
        default:
            return nil
        }
    }

    /// The IPv6 address as eight groups; an IPv4 address comes back IPv4-mapped (`::ffff:a.b.c.d`).
    public var ipv6Words: SIMD8<UInt16> {
        var words = SIMD8<UInt16>()
        if !isIPv6 {
            let v = ipv4Value
            words[5] = 0xFFFF
            words[6] = UInt16(v >> 16)
            words[7] = UInt16(v & 0xFFFF)
            return words
        }
        withUnsafeBytes(of: storage.sin6_addr) { raw in
            for k in 0..<8 { words[k] = UInt16(raw[2 * k]) << 8 | UInt16(raw[2 * k + 1]) }
        }
        return words
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports an IPv4 peer)
    /// as the IPv4 address it stands for; any other address as it is.
    public var unmapped: SocketAddress {
        guard isIPv6 else { return self }
        let w = ipv6Words
        guard w[0] == 0, w[1] == 0, w[2] == 0, w[3] == 0, w[4] == 0, w[5] == 0xFFFF else { return self }
        return SocketAddress(ipv4: UInt32(w[6]) << 16 | UInt32(w[7]), port: port)
    }
}
