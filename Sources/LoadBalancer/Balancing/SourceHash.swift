/// Source hash: the client's address hashed modulo the member count (HAProxy's `balance source`
/// without consistent hashing). Kept for comparison with Maglev: adding or removing one backend
/// changes the modulus and moves nearly every client, so do not use it where the pool changes.
/// A key whose backend is down, draining or full is re-hashed to another member.
extension Balancer {
    mutating func pickSourceHash(key: UInt64, avoid: BackendID) -> PickResult {
        let n = memberCount
        if n == 0 { return .none }
        var h = key
        for attempt in 0..<Self.quickTries {
            let id = memberBase[Int(h % UInt64(n))]
            if id != avoid && candidate(id) == .ok { return .backend(id) }
            h = StableHash.mix(key &+ UInt64(attempt + 1))
        }
        return scan(from: Int(key % UInt64(n)), avoid: avoid)
    }
}
