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
/// Writers (add, drain, remove) take `membership`'s lock and bump `version`. Readers on the hot path
/// never take it: each worker keeps its own `RoundRobinView`, rebuilt from a snapshot only when `version`
/// moved, and reads health through the table's atomics. Health transitions bump `version` too, so views
/// list only backends that can take traffic.
public final class BackendPool: Sendable {
    let table: BackendTable
    let version = Atomic<UInt64>(1)
    /// Shared by all workers: one relaxed fetch-add per pick.
    let roundRobin = Atomic<UInt64>(0)
    let downCount = Atomic<Int>(0)

    struct Membership {
        var order: [BackendID] = []
        var byAddress: [SocketAddress: BackendID] = [:]
        var nextSlot: Int = 0
        /// Removed backends' slots and when they left (monotonic ns).
        var retired: [(id: BackendID, at: UInt64)] = []
        /// Members counted in `downCount`. Kept under the lock with the admin state, so a health change
        /// racing a removal can neither count a removed backend nor uncount one twice.
        var countedDown: Set<BackendID> = []
    }
    /// A retired slot is reused only this long after its removal, and only when no fresh slot is left:
    /// by then every worker has refreshed its view (a loop waits 60 s at most) and every probe of the
    /// old backend has ended, so none of them acts on the new one.
    static let slotReuseGrace: UInt64 = 120_000_000_000
    private let membership = Mutex(Membership())

    /// `headroom` extra slots remain for backends added at run time.
    public init(_ specs: [BackendSpec], headroom: Int = 16_384) {
        table = BackendTable(capacity: specs.count + headroom)
        membership.withLock { m in
            for spec in specs where m.byAddress[spec.address] == nil {
                let id = BackendID(m.nextSlot)
                m.nextSlot += 1
                table.prepare(id, address: spec.address, weight: spec.weight)
                m.byAddress[spec.address] = id
                m.order.append(id)
            }
        }
    }

    public var count: Int { membership.withLock { $0.order.count } }

    /// Adds a backend, up and active. Its slot is published before `version` moves, so no worker can
    /// pick it half-written.
    @discardableResult
    public func add(_ spec: BackendSpec) -> Result<BackendID, PoolError> {
        let result: Result<BackendID, PoolError> = membership.withLock { m in
            if m.byAddress[spec.address] != nil { return .failure(.duplicate(spec.address)) }
            let id: BackendID
            let now = MonotonicClock.now()
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
            table.prepare(id, address: spec.address, weight: spec.weight)
            m.byAddress[spec.address] = id
            m.order.append(id)
            return .success(id)
        }
        version.add(1, ordering: .releasing)
        return result
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
            }
            return true
        }
        guard found else { return .failure(.unknown(address)) }
        version.add(1, ordering: .releasing)
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

    public func info(_ address: SocketAddress) -> BackendInfo? {
        id(of: address).map(info(id:))
    }

    public func info(id: BackendID) -> BackendInfo {
        let i = Int(id)
        let h = table.healthState(id)
        return BackendInfo(
            id: id, address: table.addresses[i], weight: Int(table.weights[i]), isUp: h.isUp,
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

    /// Applies a health event; on a transition, views are told to rebuild and the caller (the one
    /// worker that won the race) logs it.
    func apply(_ event: HealthEvent, to id: BackendID, rise: Int, fall: Int) -> (HealthTransition, HealthState) {
        let result = table.apply(event, to: id, rise: rise, fall: fall)
        if result.0 == .none { return result }
        table.lastChange[Int(id)].store(MonotonicClock.now(), ordering: .relaxed)
        // Transitions are rare: the count is settled under the lock, against the admin state. A probe
        // or pair that outlived its backend's removal changes nothing the pool counts.
        let counted: Bool = membership.withLock { m in
            if table.admin[Int(id)].load(ordering: .acquiring) == AdminState.removed.rawValue { return false }
            if result.0 == .wentDown {
                if m.countedDown.insert(id).inserted { downCount.add(1, ordering: .relaxed) }
            } else if m.countedDown.remove(id) != nil {
                downCount.subtract(1, ordering: .relaxed)
            }
            return true
        }
        if counted { version.add(1, ordering: .releasing) }
        return result
    }

    public func isAvailable(_ id: BackendID) -> Bool { table.isAvailable(id) }
}
