/// What a pool publishes once per membership version for its algorithm: the members, their weights,
/// and the structure the algorithm picks from (a smooth weighted sequence, a Maglev table). Built
/// under the pool's lock when a backend is added or removed, never on the hot path, and immutable
/// after: workers read it without a lock.
///
/// Health and admin state (down, draining) are not part of it: a pick skips those by their atomic
/// bits, so a flapping backend never rebuilds a Maglev table (pingora keeps health apart likewise).
final class BalancerSnapshot: @unchecked Sendable {
    // @unchecked: every field is written in `init` and only read after; the pointers are owned here.
    let version: UInt64
    let algorithm: BalanceAlgorithm
    /// Members in configuration order.
    let members: UnsafeMutableBufferPointer<BackendID>
    /// Configured weight of `members[i]`.
    let weights: UnsafeMutableBufferPointer<Int32>
    /// round-robin: one period of the smooth weighted sequence. maglev: the lookup table. Else empty.
    let table: UnsafeMutableBufferPointer<BackendID>
    /// Weights of `members` are all alike.
    let uniform: Bool

    init(version: UInt64, algorithm: BalanceAlgorithm, members ids: [BackendID], weights w: [Int32], keys: [SocketAddress]) {
        self.version = version
        self.algorithm = algorithm
        members = .allocate(capacity: ids.count)
        _ = members.initialize(from: ids)
        weights = .allocate(capacity: w.count)
        _ = weights.initialize(from: w)
        uniform = w.allSatisfy { $0 == w.first }
        let built: [BackendID]
        switch algorithm {
        case .roundRobin: built = SmoothWeightedSequence.build(ids, weights: w)
        case .maglev: built = MaglevTable.build(ids, weights: w, keys: keys, size: MaglevTable.size(forBackends: ids.count))
        case .leastConn, .p2c, .sourceHash: built = []
        }
        table = .allocate(capacity: built.count)
        _ = table.initialize(from: built)
    }

    deinit {
        members.deallocate()
        weights.deallocate()
        table.deallocate()
    }
}
