/// Power of two random choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
/// Balancing", IEEE TPDS 2001): draw two members at random and take the one with fewer active pairs
/// relative to its weight. What Envoy's and Linkerd's least-request balancers do. Nearly least-conn's
/// balance for two reads of the shared counts, whatever the pool's size.
///
/// A draw that lands on a down, draining or full backend is drawn again, up to `quickTries` draws;
/// with one usable candidate found it is taken, with none a pass over the members decides.
extension Balancer {
    mutating func pickPowerOfTwo(avoid: BackendID, now: UInt64) -> PickResult {
        let n = memberCount
        if n == 0 { return .none }
        let t = pool.table
        var first: BackendID = -1
        var firstMember = 0
        for _ in 0..<Self.quickTries {
            let m = rng.next(below: n)
            let id = memberBase[m]
            guard id != avoid, id != first, candidate(id) == .ok else { continue }
            if first < 0 {
                first = id
                firstMember = m
                if n == 1 { break }
                continue
            }
            let a1 = t.activeConnections[Int(first)].load(ordering: .relaxed)
            let a2 = t.activeConnections[Int(id)].load(ordering: .relaxed)
            let w1 = effectiveWeight(member: firstMember, id: first, now: now)
            let w2 = effectiveWeight(member: m, id: id, now: now)
            return .backend((a2 + 1) * w1 < (a1 + 1) * w2 ? id : first)
        }
        if first >= 0 { return .backend(first) }
        return scan(from: rng.next(below: n), avoid: avoid)
    }
}
