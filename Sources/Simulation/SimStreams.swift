/// The bytes the simulated peers send: a pure function of (stream key, offset), so a receiver checks
/// every byte it gets without anyone keeping a copy. A dropped, duplicated or reordered run of bytes
/// shows as a mismatch at its first byte.
enum SimStream {
    @inline(__always)
    static func word(_ key: UInt64, _ index: Int) -> UInt64 {
        var z = key &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 31)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 29)
    }

    @inline(__always)
    static func byte(_ key: UInt64, _ offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: word(key, offset >> 3) >> ((offset & 7) << 3))
    }

    static func fill(_ p: UnsafeMutablePointer<UInt8>, key: UInt64, offset: Int, count: Int) {
        var i = 0
        while i < count {
            let o = offset + i
            var w = word(key, o >> 3) >> ((o & 7) << 3)
            var k = o & 7
            while k < 8 && i < count {
                p[i] = UInt8(truncatingIfNeeded: w)
                w >>= 8
                k += 1
                i += 1
            }
        }
    }

    /// The index of the first byte that differs, or nil.
    static func firstMismatch(_ p: UnsafePointer<UInt8>, key: UInt64, offset: Int, count: Int) -> Int? {
        var i = 0
        while i < count {
            let o = offset + i
            var w = word(key, o >> 3) >> ((o & 7) << 3)
            var k = o & 7
            while k < 8 && i < count {
                if p[i] != UInt8(truncatingIfNeeded: w) { return i }
                w >>= 8
                k += 1
                i += 1
            }
        }
        return nil
    }
}

/// The 16 bytes every simulated client sends first, so the backend that gets the connection (whichever
/// lb picked) knows whose stream it carries: "LBSM", client id, download length, flags.
struct SimHello {
    static let size = 16
    var client: UInt32
    var downLength: UInt32
    var echo: Bool

    func encode(into p: UnsafeMutablePointer<UInt8>) {
        p[0] = 0x4C; p[1] = 0x42; p[2] = 0x53; p[3] = 0x4D
        for i in 0..<4 { p[4 + i] = UInt8(truncatingIfNeeded: client >> (8 * UInt32(i))) }
        for i in 0..<4 { p[8 + i] = UInt8(truncatingIfNeeded: downLength >> (8 * UInt32(i))) }
        p[12] = echo ? 1 : 0
        p[13] = 0; p[14] = 0; p[15] = 0
    }

    static func decode(_ p: UnsafePointer<UInt8>) -> SimHello? {
        guard p[0] == 0x4C, p[1] == 0x42, p[2] == 0x53, p[3] == 0x4D else { return nil }
        var client: UInt32 = 0, down: UInt32 = 0
        for i in 0..<4 { client |= UInt32(p[4 + i]) << (8 * UInt32(i)) }
        for i in 0..<4 { down |= UInt32(p[8 + i]) << (8 * UInt32(i)) }
        return SimHello(client: client, downLength: down, echo: p[12] == 1)
    }
}
