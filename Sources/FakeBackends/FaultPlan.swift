import LoadBalancer

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
