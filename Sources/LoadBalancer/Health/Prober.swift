/// A worker's probes in flight, for every service: the slots, their timeout wheel, the cap, and the
/// TCP sockets kept for reuse. Which backends are due and how to probe them is per service
/// (`ProbeWalk`, one in each `WorkerService`).
struct Prober: ~Copyable {
    struct Slot {
        var fd: Int32 = -1
        var backend: BackendID = -1
        var generation: UInt32 = 0
        /// The service whose backend this probes (an index into the worker's service table).
        var service: UInt16 = 0
        var inUse = false
        var requestSent = false
        /// Asked for by an idle timeout: a failure here asks for another until `fall` or a pass.
        var confirm = false
        var nextFree: Int32 = -1
        /// First bytes of an HTTP answer: "HTTP/1.1 200" is 12.
        var head: (UInt64, UInt64) = (0, 0)
        var headLength: Int8 = 0
    }

    let workerIndex: Int
    let workerCount: Int
    let capacity: Int

    var slots: UnsafeMutablePointer<Slot>
    var freeHead: Int32 = -1
    var inFlight = 0
    var wheel: TimerWheel

    /// TCP probe sockets kept for the next probe, IPv4 and IPv6 (-1: none). A probe that settles inside
    /// its connect call disconnects (AF_UNSPEC, a reset) and hands its socket on: a socket() and a
    /// close() saved per probe, about a quarter of a TCP probe's cost here (ci/probe-floor.c).
    var reusable: (v4: Int32, v6: Int32) = (-1, -1)

    /// Backends to check now, ahead of the walk and whatever the mode: a pair that idled out while its
    /// client waited asks for one (`request`). A fixed ring; a request that finds it full is dropped,
    /// as the next idle timeout will ask again.
    let requested: UnsafeMutablePointer<(service: UInt16, id: BackendID)>
    static let requestCapacity = 64
    var requestedHead = 0
    var requestedCount = 0

    init(settings: WorkerSettings, workerIndex: Int, now: UInt64) {
        self.workerIndex = workerIndex
        workerCount = settings.workerCount
        capacity = settings.maxProbesInFlight
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(), count: capacity)
        for i in stride(from: capacity - 1, through: 0, by: -1) {
            slots[i].nextFree = freeHead
            freeHead = Int32(i)
        }
        wheel = TimerWheel(capacity: capacity, now: now)
        requested = .allocate(capacity: Self.requestCapacity)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        requested.deallocate()
    }

    mutating func request(_ id: BackendID, service: UInt16) {
        guard requestedCount < Self.requestCapacity else { return }
        requested[(requestedHead + requestedCount) % Self.requestCapacity] = (service, id)
        requestedCount += 1
    }

    mutating func nextRequest() -> (service: UInt16, id: BackendID)? {
        guard requestedCount > 0 else { return nil }
        let r = requested[requestedHead]
        requestedHead = (requestedHead + 1) % Self.requestCapacity
        requestedCount -= 1
        return r
    }

    mutating func allocate() -> Int32? {
        guard freeHead >= 0 else { return nil }
        let i = freeHead
        freeHead = slots[Int(i)].nextFree
        let generation = slots[Int(i)].generation &+ 1
        slots[Int(i)] = Slot()
        slots[Int(i)].generation = generation
        slots[Int(i)].inUse = true
        inFlight += 1
        return i
    }

    mutating func free(_ i: Int32) {
        slots[Int(i)].inUse = false
        slots[Int(i)].generation &+= 1
        slots[Int(i)].nextFree = freeHead
        freeHead = i
        inFlight -= 1
    }
}

/// One worker's walk over one service's share of the active health checks. Backends are split over
/// workers by position (member k goes to worker k mod W), and each worker walks its share at an even
/// pace, one backend every interval/share: no thundering herd, and the cost per second is flat
/// whatever the pool size.
struct ProbeWalk: ~Copyable {
    var interval: UInt64
    var timeout: UInt64
    /// Probing only down backends (the default): with none down, the walk has nothing to do.
    var downOnly: Bool
    var httpRequest: [UInt8]
    /// Per backend slot: a probe to it is in flight (avoids probing one backend twice at once).
    let probing: UnsafeMutablePointer<Bool>
    let probingCapacity: Int
    /// Position in the member list (stepping by the worker count) and when the next step is due.
    var cursor: Int
    var nextStepAt: UInt64

    init(settings: ServiceRunSettings, workerIndex: Int, backendCapacity: Int, now: UInt64) {
        interval = 0
        timeout = 0
        downOnly = true
        httpRequest = []
        probingCapacity = backendCapacity
        probing = .allocate(capacity: backendCapacity)
        probing.initialize(repeating: false, count: backendCapacity)
        cursor = workerIndex
        nextStepAt = now
        apply(settings)
    }

    deinit { probing.deallocate() }

    /// New settings (a reload): probes in flight finish as they started; the next ones follow these.
    mutating func apply(_ settings: ServiceRunSettings) {
        interval = settings.healthInterval
        timeout = settings.healthTimeout
        downOnly = settings.healthMode == .downOnly
        if case .http(let path) = settings.healthMode {
            httpRequest = Array("GET \(path) HTTP/1.0\r\nUser-Agent: lb-health\r\nConnection: close\r\n\r\n".utf8)
        } else {
            httpRequest = []
        }
    }

    /// How often a walk step is due for a share of `members` backends.
    func step(members: Int, workerIndex: Int, workerCount: Int) -> UInt64 {
        let share = max(1, (members - workerIndex + workerCount - 1) / workerCount)
        return max(interval / UInt64(share), 1)
    }

    /// Whether the walk has anything to do: in "down" mode, nothing while every backend is up.
    @inline(__always)
    func idle(pool: BackendPool) -> Bool {
        downOnly && pool.downCount.load(ordering: .relaxed) == 0
    }

    /// Milliseconds until the walk wants the loop back (at most every 10 ms while busy); while idle,
    /// once an interval: another worker (or the API) may have marked down a backend of this worker's
    /// share, and nothing else would wake this loop.
    func millisecondsUntilNext(now: UInt64, pool: BackendPool) -> Int32 {
        if idle(pool: pool) { return Int32(clamping: max(interval / 1_000_000, 1)) }
        return nextStepAt <= now ? 10 : Int32(min(max((nextStepAt - now + 999_999) / 1_000_000, 10), 60_000))
    }
}
