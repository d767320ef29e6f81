import Synchronization

/// The outcome of a pick.
enum PickResult: Equatable {
    case backend(BackendID)
    /// Nothing is up and active.
    case none
    /// Backends are up, but every one is at its connection limit: the pair may queue.
    case full
}

/// A worker's handle on one pool's balancing: the snapshot it picks from, and the per-worker state
/// an algorithm needs (a random generator for p2c and slow start). One per worker per pool; owned by
/// the worker thread, never shared.
///
/// The contract every algorithm follows (HAProxy's `lb_ops`, pingora's `SelectionAlgorithm`):
/// - *build*: the pool turns its members and weights into a `BalancerSnapshot` once per membership
///   version; `refresh` adopts a new one (one relaxed load when nothing changed);
/// - *pick(key:avoid:now:)*: a backend for a new pair, skipping what is down, draining, disabled or
///   at its limit, and `avoid` (the backend a retry just failed on) unless it is the only one left.
///   A pick makes a few quick tries (at most `quickTries`) and then at most one pass over the members,
///   so it is bounded even when most of the pool is down;
/// - *connectionStarted/Ended*: the shared active counts least-conn and p2c read, and the per-backend
///   limit, kept exact across workers.
/// Dispatch is a `switch` over a closed enum, so each algorithm's pick is specialised and inlined.
/// ~Copyable: a worker's balancer is borrowed in place in its service table; measured, a copyable one
/// was copied (value witness, with retains) twice per new connection.
struct Balancer: ~Copyable {
    let pool: BackendPool
    private var snapshot: BalancerSnapshot
    private(set) var seenVersion: UInt64
    // Copied out of the snapshot so a pick touches no class field (no retain, no exclusivity check).
    var memberBase: UnsafeMutablePointer<BackendID>
    var memberCount: Int
    var weightBase: UnsafeMutablePointer<Int32>
    var tableBase: UnsafeMutablePointer<BackendID>
    var tableCount: Int
    var algorithm: BalanceAlgorithm
    let slowStart: UInt64
    var rng: SplitMix64
    /// Panic mode (`--panic-threshold`): when the share of active members that are up is at most this
    /// percentage, picks take every active member whatever its health, as Envoy's panic threshold does
    /// and as nginx treats a group whose servers are all unavailable. A backend that restarted in a
    /// blink serves again at once, and a down backend that refuses costs a retry, not a client.
    /// 0: only when none is up; nil: never.
    /// Changed by a reload.
    var panicThreshold: Int?
    /// Set at the start of each pick from the pool's two counts.
    private(set) var panicking = false

    static let quickTries = 16

    init(pool: BackendPool, seed: UInt64, panicThreshold: Int? = 0) {
        self.pool = pool
        self.panicThreshold = panicThreshold
        let s = pool.currentSnapshot()
        snapshot = s
        seenVersion = s.version
        memberBase = s.members.baseAddress ?? Self.empty
        memberCount = s.members.count
        weightBase = s.weights.baseAddress ?? Self.emptyWeights
        tableBase = s.table.baseAddress ?? Self.empty
        tableCount = s.table.count
        algorithm = s.algorithm
        slowStart = pool.balancing.slowStart.nanoseconds
        rng = SplitMix64(seed: seed)
    }

    private nonisolated(unsafe) static let empty = UnsafeMutablePointer<BackendID>.allocate(capacity: 1)
    private nonisolated(unsafe) static let emptyWeights = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    // nonisolated(unsafe): never written through; they only stand in for an empty buffer's base.

    /// Every member, available or not, in configuration order (probes walk these).
    var members: UnsafeBufferPointer<BackendID> { UnsafeBufferPointer(start: memberBase, count: memberCount) }

    /// Adopts the pool's current snapshot if its membership changed. One relaxed load when it did not.
    @inline(__always)
    @discardableResult
    mutating func refresh() -> Bool {
        if pool.version.load(ordering: .relaxed) == seenVersion { return false }
        adopt(pool.currentSnapshot())
        return true
    }

    private mutating func adopt(_ s: BalancerSnapshot) {
        snapshot = s
        seenVersion = s.version
        memberBase = s.members.baseAddress ?? Self.empty
        memberCount = s.members.count
        weightBase = s.weights.baseAddress ?? Self.emptyWeights
        tableBase = s.table.baseAddress ?? Self.empty
        tableCount = s.table.count
        algorithm = s.algorithm
    }

    /// A backend for a new pair. `key` is the client's address hashed (`StableHash.sourceKey`), used by
    /// the hashing algorithms; `avoid` is a backend not to use unless nothing else is left (-1: none).
    @inline(__always)
    mutating func pick(key: UInt64, avoid: BackendID = -1, now: UInt64) -> PickResult {
        panicking = isPanicking
        return switch algorithm {
        case .roundRobin: pickRoundRobin(avoid: avoid, now: now)
        case .leastConn: pickLeastConn(avoid: avoid, now: now)
        case .p2c: pickPowerOfTwo(avoid: avoid, now: now)
        case .maglev: pickMaglev(key: key, avoid: avoid)
        case .sourceHash: pickSourceHash(key: key, avoid: avoid)
        }
    }

    /// Counts a new pair on `id`. False when another worker filled the backend's last place since the
    /// pick: nothing was counted, and the caller picks again (avoiding it).
    @inline(__always)
    func connectionStarted(_ id: BackendID) -> Bool {
        let t = pool.table
        let i = Int(id)
        let limit = t.maxConns[i]
        let active = t.activeConnections[i].add(1, ordering: .relaxed).newValue
        if limit > 0 && active > Int(limit) {
            t.activeConnections[i].subtract(1, ordering: .relaxed)
            return false
        }
        t.totalConnections[i].add(1, ordering: .relaxed)
        return true
    }

    @inline(__always)
    func connectionEnded(_ id: BackendID) {
        pool.table.activeConnections[Int(id)].subtract(1, ordering: .relaxed)
    }

    /// Whether picks now ignore health (two relaxed loads).
    var isPanicking: Bool {
        guard let threshold = panicThreshold else { return false }
        let active = pool.activeCount.load(ordering: .relaxed)
        return active > 0 && pool.usableCount.load(ordering: .relaxed) * 100 <= threshold * active
    }

    // MARK: shared by the algorithms

    enum Candidate { case ok, unavailable, full }

    @inline(__always)
    func candidate(_ id: BackendID) -> Candidate {
        let t = pool.table
        if panicking ? !t.isActive(id) : !t.isAvailable(id) { return .unavailable }
        let limit = t.maxConns[Int(id)]
        if limit > 0 && t.activeConnections[Int(id)].load(ordering: .relaxed) >= Int(limit) { return .full }
        return .ok
    }

    /// Slow start's share of weight, per mille (1000 when off or done).
    @inline(__always)
    func rampPermille(_ id: BackendID, now: UInt64) -> Int {
        if slowStart == 0 { return SlowStart.full }
        return SlowStart.permille(since: pool.table.upSince[Int(id)].load(ordering: .relaxed), now: now, duration: slowStart)
    }

    /// The fallback after the quick tries: one pass over the members from `start`, first usable wins.
    func scan(from start: Int, avoid: BackendID) -> PickResult {
        let n = memberCount
        if n == 0 { return .none }
        var i = start % n
        var sawFull = false, avoidUsable = false
        for _ in 0..<n {
            let id = memberBase[i]
            switch candidate(id) {
            case .ok:
                if id != avoid { return .backend(id) }
                avoidUsable = true
            case .full: sawFull = true
            case .unavailable: break
            }
            i += 1
            if i == n { i = 0 }
        }
        if avoidUsable { return .backend(avoid) }
        return sawFull ? .full : .none
    }
}
