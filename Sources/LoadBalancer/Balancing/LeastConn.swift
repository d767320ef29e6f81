/// Least connections: the backend with the fewest active pairs relative to its weight (HAProxy's
/// `leastconn`, nginx's `least_conn`), scored as HAProxy does: (active + 1) / weight, so weights
/// still count while backends are idle (the heaviest idle backend goes first). The counts are the pool's shared atomics, so every worker sees
/// every other's pairs and the balance holds across workers. Ties go in rotation: the scan starts at
/// the pool's shared cursor and only a strictly better backend replaces the first found.
///
/// A pick reads every member: O(backends), about 2 ns each. For thousands of backends prefer p2c,
/// which gets close to the same balance from two reads.
extension Balancer {
    mutating func pickLeastConn(avoid: BackendID, now: UInt64) -> PickResult {
        let n = memberCount
        if n == 0 { return .none }
        let t = pool.table
        var i = Int(pool.cursor.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(n))
        var best: BackendID = -1
        var bestActive = 0, bestWeight = 1
        var sawFull = false, avoidUsable = false
        for _ in 0..<n {
            let id = memberBase[i]
            switch candidate(id) {
            case .ok:
                if id == avoid {
                    avoidUsable = true
                } else {
                    let active = t.activeConnections[Int(id)].load(ordering: .relaxed)
                    let weight = effectiveWeight(member: i, id: id, now: now)
                    // (active+1)/weight < (bestActive+1)/bestWeight, without division.
                    if best < 0 || (active + 1) * bestWeight < (bestActive + 1) * weight {
                        best = id
                        bestActive = active
                        bestWeight = weight
                    }
                }
            case .full: sawFull = true
            case .unavailable: break
            }
            i += 1
            if i == n { i = 0 }
        }
        if best >= 0 { return .backend(best) }
        if avoidUsable { return .backend(avoid) }
        return sawFull ? .full : .none
    }

    /// The weight least-conn and p2c divide by: the configured weight, times slow start's share (both
    /// kept as integers: weight × per mille when slow start is on).
    @inline(__always)
    func effectiveWeight(member i: Int, id: BackendID, now: UInt64) -> Int {
        let w = Int(weightBase[i])
        if slowStart == 0 { return w }
        return Swift.max(1, w * rampPermille(id, now: now))
    }
}
