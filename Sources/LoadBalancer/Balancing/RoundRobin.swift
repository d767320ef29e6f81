/// A worker's own list of the backends that can take traffic, rebuilt when the pool's version moves,
/// and round robin over it with the pool's shared counter.
///
/// Owned by one worker thread; never shared. Picking costs one relaxed fetch-add and one relaxed load;
/// a backend that went down since the last rebuild is skipped by its health bit.
///
/// Panic mode: when the share of members that are up falls to `panicThreshold` percent or below (by
/// default 0: when none is up), the list holds every active member whatever its health, as Envoy's
/// panic threshold does and as nginx treats a group whose servers are all unavailable. A backend that
/// restarted in a blink then serves again at once, instead of after `rise` health checks, and a down
/// backend that refuses costs a retry, not a client. `panicThreshold` nil: never.
struct RoundRobinView: ~Copyable {
    private(set) var seenVersion: UInt64 = 0
    private var available: UnsafeMutablePointer<BackendID>
    private var capacity: Int
    private(set) var availableCount = 0
    /// Every member, available or not (probes walk these).
    private(set) var members: [BackendID] = []
    let panicThreshold: Int?
    /// The list holds active members regardless of health.
    private(set) var panicking = false

    init(panicThreshold: Int? = 0) {
        self.panicThreshold = panicThreshold
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
        var n = 0, active = 0
        for id in ids where pool.table.isActive(id) {
            active += 1
            if pool.table.isAvailable(id) {
                available[n] = id
                n += 1
            }
        }
        panicking = false
        if let threshold = panicThreshold, active > 0, n * 100 <= threshold * active {
            panicking = true
            n = 0
            for id in ids where pool.table.isActive(id) {
                available[n] = id
                n += 1
            }
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
            if panicking ? pool.table.isActive(id) : pool.table.isAvailable(id) { return id }
            i += 1
            if i == n { i = 0 }
        }
        return nil
    }
}
