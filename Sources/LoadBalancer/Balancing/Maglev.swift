/// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
/// Balancer", NSDI 2016, §3.4, Pseudocode 1), with weights.
///
/// Each backend has a preference list of table slots: `(offset + j × skip) mod M` for j = 0, 1, ...,
/// where offset and skip come from two hashes of its address and M is prime, so every list is a
/// permutation. Backends take turns claiming their next free preferred slot until the table is full;
/// a backend of weight w takes w/maxWeight turns per round (credit carried over), so its share of
/// slots is its share of the weight to within one slot. A lookup is `table[key mod M]`.
///
/// Everything is derived from the member list alone (stable hashes, no randomness, no process state),
/// so two `lb` processes with the same backends map a client address to the same backend. Removing one
/// of N backends moves about 1/N of the keys, nearly all of them the removed backend's own. A backend
/// that is down or draining stays in the table; a key that lands on it is re-hashed to another slot,
/// which spreads its share over the rest by weight and moves nobody else.
enum MaglevTable {
    /// Primes the table size is chosen from: the smallest at least 100 × backends (the paper's
    /// guidance), 1,000,003 beyond 10,000 backends. A fixed list, so the size depends only on the
    /// member count and changes rarely (crossing a step re-shuffles the table once).
    static let sizes = [65_537, 131_101, 262_147, 524_309, 1_000_003]
    static let defaultSize = 65_537

    static func size(forBackends n: Int) -> Int {
        sizes.first { $0 >= 100 * n } ?? sizes[sizes.count - 1]
    }

    static func build(_ ids: [BackendID], weights: [Int32], keys: [SocketAddress], size m: Int) -> [BackendID] {
        let n = ids.count
        if n == 0 { return [] }
        var offset = [Int](repeating: 0, count: n)
        var skip = [Int](repeating: 0, count: n)
        for i in 0..<n {
            offset[i] = Int(StableHash.backendKey(keys[i], seed: 0x6D61_676C_6576_3031) % UInt64(m))
            skip[i] = Int(StableHash.backendKey(keys[i], seed: 0x6D61_676C_6576_3032) % UInt64(m - 1)) + 1
        }
        let w = weights.map { Int(max($0, 1)) }
        let maxWeight = w.max()!
        var next = [Int](repeating: 0, count: n)
        var credit = [Int](repeating: 0, count: n)
        var table = [BackendID](repeating: -1, count: m)
        var filled = 0
        while true {
            for i in 0..<n {
                credit[i] += w[i]
                if credit[i] < maxWeight { continue }
                credit[i] -= maxWeight
                var c = (offset[i] + next[i] * skip[i]) % m
                while table[c] >= 0 {
                    next[i] += 1
                    c = (offset[i] + next[i] * skip[i]) % m
                }
                table[c] = ids[i]
                next[i] += 1
                filled += 1
                if filled == m { return table }
            }
        }
    }
}

extension Balancer {
    /// `table[key mod M]`; when that backend cannot take the pair, the key is re-hashed to another
    /// slot (a few times), so the down backend's clients spread by weight and nobody else moves.
    mutating func pickMaglev(key: UInt64, avoid: BackendID) -> PickResult {
        let m = tableCount
        if m == 0 { return .none }
        var h = key
        for attempt in 0..<Self.quickTries {
            let id = tableBase[Int(h % UInt64(m))]
            if id != avoid && candidate(id) == .ok { return .backend(id) }
            h = StableHash.mix(key &+ UInt64(attempt + 1))
        }
        return scan(from: Int(key % UInt64(Swift.max(memberCount, 1))), avoid: avoid)
    }
}
