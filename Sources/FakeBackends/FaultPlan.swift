/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence on every platform for a
/// given seed, which is all fault selection needs (not for cryptography).
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
}

/// Which backends are faulty, and how: a pure function of count, rate, kind and seed.
public enum FaultPlan {
    /// Exactly `round(count * failRate)` backends get a fault, chosen by a seeded partial Fisher-Yates
    /// shuffle; `mixed` resolves each to one of the concrete kinds from the same generator.
    public static func choose(count: Int, failRate: Double, fault: FaultKind, seed: UInt64) -> [FaultKind?] {
        var plan = [FaultKind?](repeating: nil, count: count)
        let faulty = min(count, max(0, Int((Double(count) * failRate).rounded())))
        guard faulty > 0 else { return plan }
        var rng = SplitMix64(seed: seed)
        var indices = Array(0..<count)
        for k in 0..<faulty {
            let j = k + rng.next(below: count - k)
            indices.swapAt(k, j)
            plan[indices[k]] = resolve(fault, &rng)
        }
        return plan
    }

    /// A concrete kind for `fault` (itself unless it is `mixed`).
    public static func resolve(_ fault: FaultKind, _ rng: inout SplitMix64) -> FaultKind {
        guard fault == .mixed else { return fault }
        return FaultKind.concrete[rng.next(below: FaultKind.concrete.count)]
    }
}
