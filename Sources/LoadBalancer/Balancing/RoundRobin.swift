/// A worker's own list of the backends that can take traffic, rebuilt when the pool's version moves,
/// and round robin over it with the pool's shared counter.
///
/// Owned by one worker thread; never shared. Picking costs one relaxed fetch-add and one relaxed load;
/// a backend that went down since the last rebuild is skipped by its health bit.
struct RoundRobinView: ~Copyable {
    private(set) var seenVersion: UInt64 = 0
    private var available: UnsafeMutablePointer<BackendID>
    private var capacity: Int
    private(set) var availableCount = 0
    /// Every member, available or not (probes walk these).
    private(set) var members: [BackendID] = []

    init() {
        capacity = 64
        available = .allocate(capacity: capacity)
    }

    deinit { available.deallocate() }

    /// Rebuilds the available list if the pool changed. One relaxed load when nothing did.
    @inline(__always)
    mutating func refresh(from pool: BackendPool) -> Bool {
        if pool.version.load(ordering: .relaxed) == seenVersion { return false }
        rebuild(from: pool)
        return true
    }

    mutating func rebuild(from pool: BackendPool) {
        let (version, ids) = pool.snapshot()
        if ids.count > capacity {
            available.deallocate()
            capacity = ids.count
            available = .allocate(capacity: capacity)
        }
        var n = 0
        for id in ids where pool.table.isAvailable(id) {
            available[n] = id
            n += 1
        }
        availableCount = n
        members = ids
        seenVersion = version
    }

    /// The next backend in round-robin order that is up and active, or nil when none is.
    @inline(__always)
    func pick(from pool: BackendPool) -> BackendID? {
        let n = availableCount
        if n == 0 { return nil }
        let start = Int(pool.roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(n))
        var i = start
        for _ in 0..<n {
            let id = available[i]
            if pool.table.isAvailable(id) { return id }
            i += 1
            if i == n { i = 0 }
        }
        return nil
    }
}
