import Synchronization

/// An index into `BackendTable`: stable for a backend's whole life in the pool.
public typealias BackendID = Int32

/// What an operator did to a backend, apart from its health.
public enum AdminState: UInt8, Sendable {
    /// Takes new connections while healthy.
    case active = 0
    /// Takes no new connections; open ones finish.
    case draining = 1
    /// Gone from the pool; the slot waits for its open connections to end before reuse.
    case removed = 2
    /// Takes no new connections and is not health-checked; open ones finish.
    case disabled = 3
}

/// Fixed-capacity storage for every backend the pool has ever held, shared by all workers.
///
/// Concurrency: addresses are written once, under the pool's lock, before the slot is published by a
/// version bump (release); workers read them only after seeing that version (acquire). Weights are
/// atomics: a reload may change a kept backend's weight (under the lock, then a new snapshot), while
/// the admin side reads them.
/// Health, admin state and counters are atomics that any worker updates without a lock.
final class BackendTable: @unchecked Sendable {
    // @unchecked: the plain fields below follow the write-once-then-publish rule above.
    let capacity: Int
    let addresses: UnsafeMutablePointer<SocketAddress>
    let weights: UnsafeMutablePointer<Atomic<Int32>>
    /// Active pairs allowed (0: no limit); written with the address.
    let maxConns: UnsafeMutablePointer<Int32>
    /// When the backend last came up or was added (monotonic ns; 0: at start-up), for slow start.
    let upSince: UnsafeMutablePointer<Atomic<UInt64>>
    let health: UnsafeMutablePointer<Atomic<UInt64>>
    let admin: UnsafeMutablePointer<Atomic<UInt8>>
    let activeConnections: UnsafeMutablePointer<Atomic<Int>>
    let totalConnections: UnsafeMutablePointer<Atomic<Int>>
    let failedConnects: UnsafeMutablePointer<Atomic<Int>>
    let bytesFromBackend: UnsafeMutablePointer<Atomic<Int>>
    let bytesToBackend: UnsafeMutablePointer<Atomic<Int>>
    /// Monotonic ns of the last health or admin change (written rarely: transitions, operator actions).
    let lastChange: UnsafeMutablePointer<Atomic<UInt64>>

    init(capacity: Int) {
        self.capacity = capacity
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: SocketAddress(), count: capacity)
        maxConns = .allocate(capacity: capacity)
        maxConns.initialize(repeating: 0, count: capacity)
        func atomics<T: AtomicRepresentable>(_ zero: T) -> UnsafeMutablePointer<Atomic<T>> {
            let p = UnsafeMutablePointer<Atomic<T>>.allocate(capacity: capacity)
            for i in 0..<capacity { (p + i).initialize(to: Atomic(zero)) }
            return p
        }
        weights = atomics(Int32(1))
        health = atomics(UInt64(0))
        upSince = atomics(UInt64(0))
        admin = atomics(AdminState.removed.rawValue)
        activeConnections = atomics(0)
        totalConnections = atomics(0)
        failedConnects = atomics(0)
        bytesFromBackend = atomics(0)
        bytesToBackend = atomics(0)
        lastChange = atomics(UInt64(0))
    }

    deinit {
        addresses.deallocate()
        weights.deallocate()
        maxConns.deallocate()
        upSince.deallocate()
        health.deallocate()
        admin.deallocate()
        activeConnections.deallocate()
        totalConnections.deallocate()
        failedConnects.deallocate()
        bytesFromBackend.deallocate()
        bytesToBackend.deallocate()
        lastChange.deallocate()
    }

    /// Up and active: may take a new connection.
    @inline(__always)
    func isAvailable(_ id: BackendID) -> Bool {
        health[Int(id)].load(ordering: .relaxed) & 1 == 0 && admin[Int(id)].load(ordering: .relaxed) == AdminState.active.rawValue
    }

    /// Active, whatever its health: what panic mode picks from.
    @inline(__always)
    func isActive(_ id: BackendID) -> Bool {
        admin[Int(id)].load(ordering: .relaxed) == AdminState.active.rawValue
    }

    @inline(__always)
    func healthState(_ id: BackendID) -> HealthState {
        HealthState(packed: health[Int(id)].load(ordering: .relaxed))
    }

    /// Applies a health event with a compare-and-swap loop. Exactly one caller sees each transition,
    /// so each change is logged and counted once however many workers race.
    func apply(_ event: HealthEvent, to id: BackendID, rise: Int, fall: Int) -> (HealthTransition, HealthState) {
        let cell = health + Int(id)
        var old = cell.pointee.load(ordering: .relaxed)
        while true {
            var state = HealthState(packed: old)
            let transition = state.apply(event, rise: rise, fall: fall)
            let new = state.packed
            if new == old { return (transition, state) }
            let (exchanged, current) = cell.pointee.compareExchange(
                expected: old, desired: new, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if exchanged { return (transition, state) }
            old = current
        }
    }

    /// Resets a slot for a newly added backend (called under the pool's lock, before publication).
    func prepare(_ id: BackendID, address: SocketAddress, weight: Int, maxConns limit: Int = 0, upSince since: UInt64 = 0) {
        let i = Int(id)
        addresses[i] = address
        weights[i].store(Int32(weight), ordering: .relaxed)
        maxConns[i] = Int32(clamping: limit)
        upSince[i].store(since, ordering: .relaxed)
        health[i].store(HealthState().packed, ordering: .relaxed)
        totalConnections[i].store(0, ordering: .relaxed)
        failedConnects[i].store(0, ordering: .relaxed)
        bytesFromBackend[i].store(0, ordering: .relaxed)
        bytesToBackend[i].store(0, ordering: .relaxed)
        lastChange[i].store(MonotonicClock.now(), ordering: .relaxed)
        admin[i].store(AdminState.active.rawValue, ordering: .releasing)
    }
}
