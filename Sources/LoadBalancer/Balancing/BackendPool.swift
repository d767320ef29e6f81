import Synchronization

/// A backend as the pool reports it (to tests now, to the admin API later).
public struct BackendInfo: Sendable, Equatable, CustomStringConvertible {
    public var id: BackendID
    public var address: SocketAddress
    public var weight: Int
    public var isUp: Bool
    public var admin: AdminState
    public var activeConnections: Int
    public var totalConnections: Int
    public var failedConnects: Int
    public var failStreak: Int
    public var healthTransitions: Int
    /// Bytes of finished pairs: sent to the backend (client to backend) and received from it.
    public var bytesToBackend: Int
    public var bytesFromBackend: Int
    /// Monotonic ns of the last health or admin change (or of its addition).
    public var lastChange: UInt64

    public var description: String {
        "\(address) \(isUp ? "up" : "down") \(admin) active=\(activeConnections) total=\(totalConnections) failed=\(failedConnects)"
    }
}

public enum PoolError: Error, Equatable, Sendable, CustomStringConvertible {
    case duplicate(SocketAddress)
    case full(capacity: Int)
    case unknown(SocketAddress)

    public var description: String {
        switch self {
        case .duplicate(let a): "backend \(a) is already in the pool"
        case .full(let c): "backend pool is full (\(c) backends)"
        case .unknown(let a): "backend \(a) is not in the pool"
        }
    }
}

/// The set of backends, shared by every worker, changeable at run time without stopping traffic.
///
/// Writers that change membership (add, remove) take `membership`'s lock, build the balancing
/// algorithm's `BalancerSnapshot` for the new member list and publish it by bumping `version`. Readers
/// on the hot path never take the lock: each worker's `Balancer` adopts a new snapshot only when
/// `version` moved, and reads health and admin state through the table's atomics. Health changes and
/// drains do not touch `version`: a pick skips those backends by their bits, so a flapping backend
/// rebuilds nothing.
public final class BackendPool: Sendable {
    let table: BackendTable
    let version = Atomic<UInt64>(1)
    /// Shared by all workers: round robin's position in its sequence, least-conn's rotation for ties.
    let cursor = Atomic<UInt64>(0)
    let downCount = Atomic<Int>(0)
    /// Members that are active (not draining or disabled), and those of them that are up: panic mode
    /// compares the two on each pick. Recounted under the lock on every membership, admin or health
    /// change (rare), so a pick reads two relaxed atomics.
    let activeCount = Atomic<Int>(0)
    let usableCount = Atomic<Int>(0)
    public let balancing: BalancingSettings

    struct Membership {
        var order: [BackendID] = []
        var byAddress: [SocketAddress: BackendID] = [:]
        var nextSlot: Int = 0
        /// Removed backends' slots and when they left (monotonic ns).
        var retired: [(id: BackendID, at: UInt64)] = []
        /// Members counted in `downCount`. Kept under the lock with the admin state, so a health change
        /// racing a removal can neither count a removed backend nor uncount one twice.
        var countedDown: Set<BackendID> = []
        /// The published snapshot for `version` (set in `init`, replaced on each membership change).
        var snapshot: BalancerSnapshot?
    }
    /// A retired slot is reused only this long after its removal, and only when no fresh slot is left:
    /// by then every worker has refreshed its view (a loop waits 60 s at most) and every probe of the
    /// old backend has ended, so none of them acts on the new one.
    static let slotReuseGrace: UInt64 = 120_000_000_000
    private let membership = Mutex(Membership())

    /// `headroom` extra slots remain for backends added at run time.
    public init(_ specs: [BackendSpec], headroom: Int = 16_384, balancing: BalancingSettings = BalancingSettings()) {
        table = BackendTable(capacity: specs.count + headroom)
        self.balancing = balancing
        membership.withLock { m in
            for spec in specs where m.byAddress[spec.address] == nil {
                let id = BackendID(m.nextSlot)
                m.nextSlot += 1
                table.prepare(id, address: spec.address, weight: spec.weight, maxConns: limit(spec))
                m.byAddress[spec.address] = id
                m.order.append(id)
            }
            publish(&m)
        }
    }

    private func limit(_ spec: BackendSpec) -> Int {
        spec.maxConnections > 0 ? spec.maxConnections : balancing.backendMaxConns
    }

    /// Builds the snapshot for the current members and publishes it (under the lock; release, so a
    /// worker that sees the new version sees the snapshot and every slot it names).
    private func publish(_ m: inout Membership) {
        let next = version.load(ordering: .relaxed) &+ 1
        let weights = m.order.map { table.weights[Int($0)].load(ordering: .relaxed) }
        let keys = m.order.map { table.addresses[Int($0)] }
        m.snapshot = BalancerSnapshot(version: next, algorithm: balancing.algorithm, members: m.order, weights: weights, keys: keys)
        recount(m)
        version.store(next, ordering: .releasing)
    }

    private func recount(_ m: borrowing Membership) {
        var active = 0, usable = 0
        for id in m.order where table.isActive(id) {
            active += 1
            if table.isAvailable(id) { usable += 1 }
        }
        activeCount.store(active, ordering: .relaxed)
        usableCount.store(usable, ordering: .relaxed)
    }

    /// The snapshot workers pick from. Taken only when `version` moved.
    func currentSnapshot() -> BalancerSnapshot {
        membership.withLock { $0.snapshot! }
    }

    public var count: Int { membership.withLock { $0.order.count } }

    /// Adds a backend, up and active. Its slot is published before `version` moves, so no worker can
    /// pick it half-written.
    @discardableResult
    public func add(_ spec: BackendSpec) -> Result<BackendID, PoolError> {
        membership.withLock { m in
            let result = insert(spec, into: &m, now: MonotonicClock.now())
            if case .success = result { publish(&m) }
            return result
        }
    }

    /// Adds and removes many backends under one lock and one published snapshot, so workers adopt it
    /// once however many changed (a reload of thousands). Removed backends' open connections go
    /// on until they end, as with `remove`. Returns what was refused (a duplicate, a full pool, an
    /// unknown address); the rest is done.
    public func update(adding specs: [BackendSpec], removing addresses: [SocketAddress], reweighting: [BackendSpec] = []) -> [PoolError] {
        if specs.isEmpty && addresses.isEmpty && reweighting.isEmpty { return [] }
        let refused: [PoolError] = membership.withLock { m in
            var refused: [PoolError] = []
            let now = MonotonicClock.now()
            let leaving = Set(addresses.compactMap { m.byAddress[$0] })
            for a in addresses {
                guard let id = m.byAddress[a] else { refused.append(.unknown(a)); continue }
                table.admin[Int(id)].store(AdminState.removed.rawValue, ordering: .releasing)
                m.byAddress[a] = nil
                if m.countedDown.remove(id) != nil { downCount.subtract(1, ordering: .relaxed) }
                m.retired.append((id, now))
            }
            if !leaving.isEmpty { m.order.removeAll { leaving.contains($0) } }
            for spec in specs {
                if case .failure(let e) = insert(spec, into: &m, now: now) { refused.append(e) }
            }
            // A kept backend's new weight: its health, counters and open pairs stay; the next snapshot
            // (a smooth weighted sequence, a Maglev table) is built with it.
            for spec in reweighting {
                guard let id = m.byAddress[spec.address] else { refused.append(.unknown(spec.address)); continue }
                table.weights[Int(id)].store(Int32(clamping: spec.weight), ordering: .relaxed)
            }
            publish(&m)
            return refused
        }
        return refused
    }

    /// Takes a slot for `spec` (a fresh one, else a retired one past its grace) and puts it into `m`;
    /// the caller holds the lock and publishes the snapshot after.
    private func insert(_ spec: BackendSpec, into m: inout Membership, now: UInt64) -> Result<BackendID, PoolError> {
        if m.byAddress[spec.address] != nil { return .failure(.duplicate(spec.address)) }
        let id: BackendID
        if m.nextSlot < table.capacity {
            id = BackendID(m.nextSlot)
            m.nextSlot += 1
        } else if let reusable = m.retired.firstIndex(where: {
            now - $0.at > Self.slotReuseGrace && table.activeConnections[Int($0.id)].load(ordering: .relaxed) == 0
        }) {
            id = m.retired.remove(at: reusable).id
        } else {
            return .failure(.full(capacity: table.capacity))
        }
        // A backend added at run time ramps up (slow start); one present at start-up does not.
        table.prepare(id, address: spec.address, weight: spec.weight, maxConns: limit(spec), upSince: now)
        m.byAddress[spec.address] = id
        m.order.append(id)
        return .success(id)
    }

    /// Stops new connections to a backend; open ones finish.
    public func drain(_ address: SocketAddress) -> Result<Void, PoolError> {
        setAdmin(address, .draining, leave: false)
    }

    /// Takes a backend back into rotation after a drain or a disable.
    public func undrain(_ address: SocketAddress) -> Result<Void, PoolError> {
        setAdmin(address, .active, leave: false)
    }

    /// Stops new connections to a backend and its health checks; open ones finish.
    public func disable(_ address: SocketAddress) -> Result<Void, PoolError> {
        setAdmin(address, .disabled, leave: false)
    }

    /// Removes a backend from the pool. Open connections to it go on until they end.
    public func remove(_ address: SocketAddress) -> Result<Void, PoolError> {
        setAdmin(address, .removed, leave: true)
    }

    private func setAdmin(_ address: SocketAddress, _ state: AdminState, leave: Bool) -> Result<Void, PoolError> {
        let found: Bool = membership.withLock { m in
            guard let id = m.byAddress[address] else { return false }
            table.admin[Int(id)].store(state.rawValue, ordering: .releasing)
            table.lastChange[Int(id)].store(MonotonicClock.now(), ordering: .relaxed)
            if leave {
                m.byAddress[address] = nil
                m.order.removeAll { $0 == id }
                if m.countedDown.remove(id) != nil { downCount.subtract(1, ordering: .relaxed) }
                m.retired.append((id, MonotonicClock.now()))
                publish(&m)
            } else {
                recount(m)
            }
            return true
        }
        guard found else { return .failure(.unknown(address)) }
        return .success(())
    }

    /// Marks a backend down now, as a failed connect would. Active health checks bring it back once it
    /// passes `rise` probes in a row. Returns whether it was up.
    @discardableResult
    public func markDown(_ address: SocketAddress, rise: Int = 2, fall: Int = 3) -> Result<Bool, PoolError> {
        guard let id = id(of: address) else { return .failure(.unknown(address)) }
        return .success(apply(.markedDown, to: id, rise: rise, fall: fall).0 == .wentDown)
    }

    public func id(of address: SocketAddress) -> BackendID? {
        membership.withLock { $0.byAddress[address] }
    }

    public func address(of id: BackendID) -> SocketAddress { table.addresses[Int(id)] }

    /// Pairs connected or connecting to `id` now, over all workers (one relaxed load; `info` has it too).
    public func activeConnections(of id: BackendID) -> Int { table.activeConnections[Int(id)].load(ordering: .relaxed) }

    public func info(_ address: SocketAddress) -> BackendInfo? {
        id(of: address).map(info(id:))
    }

    public func info(id: BackendID) -> BackendInfo {
        let i = Int(id)
        let h = table.healthState(id)
        return BackendInfo(
            id: id, address: table.addresses[i], weight: Int(table.weights[i].load(ordering: .relaxed)), isUp: h.isUp,
            admin: AdminState(rawValue: table.admin[i].load(ordering: .relaxed)) ?? .removed,
            activeConnections: table.activeConnections[i].load(ordering: .relaxed),
            totalConnections: table.totalConnections[i].load(ordering: .relaxed),
            failedConnects: table.failedConnects[i].load(ordering: .relaxed),
            failStreak: Int(h.failStreak), healthTransitions: Int(h.transitions),
            bytesToBackend: table.bytesToBackend[i].load(ordering: .relaxed),
            bytesFromBackend: table.bytesFromBackend[i].load(ordering: .relaxed),
            lastChange: table.lastChange[i].load(ordering: .relaxed))
    }

    /// Every backend in the pool, in configuration order.
    public func all() -> [BackendInfo] {
        snapshot().ids.map(info(id:))
    }

    public var downBackends: Int { downCount.load(ordering: .relaxed) }

    /// The member list as of `version` (acquire: slots it names are fully written).
    func snapshot() -> (version: UInt64, ids: [BackendID]) {
        membership.withLock { m in (version.load(ordering: .acquiring), m.order) }
    }

    /// Applies a health event; on a transition the down count is settled and the caller (the one
    /// worker that won the race) logs it. Picks see the change through the health bit: no rebuild.
    func apply(_ event: HealthEvent, to id: BackendID, rise: Int, fall: Int) -> (HealthTransition, HealthState) {
        let result = table.apply(event, to: id, rise: rise, fall: fall)
        if result.0 == .none { return result }
        table.lastChange[Int(id)].store(MonotonicClock.now(), ordering: .relaxed)
        // Transitions are rare: the count is settled under the lock, against the admin state. A probe
        // or pair that outlived its backend's removal changes nothing the pool counts.
        membership.withLock { m in
            if table.admin[Int(id)].load(ordering: .acquiring) == AdminState.removed.rawValue { return }
            if result.0 == .wentDown {
                if m.countedDown.insert(id).inserted { downCount.add(1, ordering: .relaxed) }
            } else {
                if m.countedDown.remove(id) != nil { downCount.subtract(1, ordering: .relaxed) }
                // Slow start ramps from here.
                table.upSince[Int(id)].store(MonotonicClock.now(), ordering: .relaxed)
            }
            recount(m)
        }
        return result
    }

    public func isAvailable(_ id: BackendID) -> Bool { table.isAvailable(id) }
}
