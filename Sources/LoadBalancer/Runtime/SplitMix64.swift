/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence on every platform for a
/// given seed, which is all its users need: the farm's fault selection, loadgen's echo payloads, the
/// tests' reproducible streams (not for cryptography).
public struct SplitMix64: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound` (Lemire's multiply-shift with rejection, so no modulo bias).
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        while true {
            let product = next().multipliedFullWidth(by: b)
            if product.low >= (0 &- b) % b { return Int(product.high) }
        }
    }

    /// Fills `count` bytes at `p`, eight per `next()`, low byte first. Allocation-free.
    public mutating func fill(_ p: UnsafeMutablePointer<UInt8>, count: Int) {
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                p[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
    }

    /// `count` bytes, as `fill` writes them.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { fill(buffer.baseAddress!, count: count) }
            initialized = count
        }
    }
}
