import Glibc

/// Hashes that are the same in every process, on every run and on every machine, for the algorithms
/// that must agree across `lb` processes (Maglev, source-hash). Swift's `Hasher` is seeded per
/// process, so it cannot be used here.
///
/// The byte hash is FNV-1a (64-bit) finished with SplitMix64's mixer (Steele, Lea, Flood 2014) so every
/// input bit reaches every output bit; not for cryptography, and a client that picks its own source
/// address can choose its backend, as with any source hash.
enum StableHash {
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    static func bytes(_ raw: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for b in raw {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return mix(h)
    }

    /// The client's source address as a balancing key: the address only (not the port), so every
    /// connection from one client maps alike. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
    /// dual-stack listener reports) hashes as the IPv4 address it carries. No allocation.
    @inline(__always)
    static func sourceKey(_ address: SocketAddress) -> UInt64 {
        withUnsafeBytes(of: address.storage) { raw in
            if address.isIPv6 {
                let a = UnsafeRawBufferPointer(rebasing: raw[8..<24])  // sin6_addr
                if a.loadUnaligned(fromByteOffset: 0, as: UInt64.self) == 0
                    && UInt32(bigEndian: a.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == 0x0000_FFFF
                {
                    return v4Key(a.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
                }
                return bytes(a, seed: 6)
            }
            return v4Key(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))  // sin_addr, network order
        }
    }

    @inline(__always)
    private static func v4Key(_ networkOrder: UInt32) -> UInt64 {
        withUnsafeBytes(of: networkOrder) { bytes($0, seed: 4) }
    }

    /// A backend's identity for Maglev: family, address and port, hashed with `seed`.
    static func backendKey(_ address: SocketAddress, seed: UInt64) -> UInt64 {
        withUnsafeBytes(of: address.storage) { raw in
            var h = seed
            if address.isIPv6 {
                h = bytes(UnsafeRawBufferPointer(rebasing: raw[8..<24]), seed: h)
            } else {
                h = bytes(UnsafeRawBufferPointer(rebasing: raw[4..<8]), seed: h)
            }
            return mix(h ^ UInt64(address.port) << 1)
        }
    }
}
