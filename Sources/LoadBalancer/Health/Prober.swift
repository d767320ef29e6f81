/// A worker's share of the active health checks: which backends it probes, when, and the probes in
/// flight. Backends are split over workers by position (member k goes to worker k mod W), and each
/// worker walks its share at an even pace, one backend every interval/share: no thundering herd, and
/// the cost per second is flat whatever the pool size.
struct Prober: ~Copyable {
    struct Slot {
        var fd: Int32 = -1
        var backend: BackendID = -1
        var generation: UInt32 = 0
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
    let interval: UInt64
    let timeout: UInt64
    /// Probing only down backends (the default): with none down, the walk has nothing to do.
    let downOnly: Bool
    let httpRequest: [UInt8]
    let capacity: Int

    var slots: UnsafeMutablePointer<Slot>
    var freeHead: Int32 = -1
    var inFlight = 0
    /// Per backend slot: a probe to it is in flight (avoids probing one backend twice at once).
    let probing: UnsafeMutablePointer<Bool>
    let probingCapacity: Int
    var wheel: TimerWheel

    /// TCP probe sockets kept for the next probe, IPv4 and IPv6 (-1: none). A probe that settles inside
    /// its connect call disconnects (AF_UNSPEC, a reset) and hands its socket on: a socket() and a
    /// close() saved per probe, about a quarter of a TCP probe's cost here (ci/probe-floor.c).
    var reusable: (v4: Int32, v6: Int32) = (-1, -1)

    /// Backends to check now, ahead of the walk and whatever the mode: a pair that idled out while its
    /// client waited asks for one (`request`). A fixed ring; a request that finds it full is dropped,
    /// as the next idle timeout will ask again.
    let requested: UnsafeMutablePointer<BackendID>
    static let requestCapacity = 64
    var requestedHead = 0
    var requestedCount = 0

    /// Position in the member list (stepping by workerCount) and when the next step is due.
    var cursor: Int
    var nextStepAt: UInt64

    init(settings: WorkerSettings, workerIndex: Int, backendCapacity: Int, now: UInt64) {
        self.workerIndex = workerIndex
        workerCount = settings.workerCount
        interval = settings.healthInterval
        timeout = settings.healthTimeout
        downOnly = settings.healthMode == .downOnly
        if case .http(let path) = settings.healthMode {
            httpRequest = Array("GET \(path) HTTP/1.0\r\nUser-Agent: lb-health\r\nConnection: close\r\n\r\n".utf8)
        } else {
            httpRequest = []
        }
        capacity = settings.maxProbesInFlight
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(), count: capacity)
        for i in stride(from: capacity - 1, through: 0, by: -1) {
            slots[i].nextFree = freeHead
            freeHead = Int32(i)
        }
        probingCapacity = backendCapacity
        probing = .allocate(capacity: backendCapacity)
        probing.initialize(repeating: false, count: backendCapacity)
        wheel = TimerWheel(capacity: capacity, now: now)
        requested = .allocate(capacity: Self.requestCapacity)
        cursor = workerIndex
        nextStepAt = now
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        probing.deallocate()
        requested.deallocate()
    }

    mutating func request(_ id: BackendID) {
        guard requestedCount < Self.requestCapacity else { return }
        requested[(requestedHead + requestedCount) % Self.requestCapacity] = id
        requestedCount += 1
    }

    mutating func nextRequest() -> BackendID? {
        guard requestedCount > 0 else { return nil }
        let id = requested[requestedHead]
        requestedHead = (requestedHead + 1) % Self.requestCapacity
        requestedCount -= 1
        return id
    }

    /// How often a walk step is due for a share of `members` backends.
    func step(members: Int) -> UInt64 {
        let share = max(1, (members - workerIndex + workerCount - 1) / workerCount)
        return max(interval / UInt64(share), 1)
    }

    /// Whether the walk has anything to do: in "down" mode, nothing while every backend is up.
    @inline(__always)
    func idle(pool: BackendPool) -> Bool {
        downOnly && pool.downCount.load(ordering: .relaxed) == 0
    }

    /// Timeout for epoll_wait on behalf of the probes: the walk wakes at most every 10 ms.
    mutating func millisecondsUntilNext(now: UInt64, pool: BackendPool) -> Int32 {
        var timeout = wheel.millisecondsUntilNext(now: now)
        if !idle(pool: pool) {
            let wait: Int32 = nextStepAt <= now ? 10 : Int32(min(max((nextStepAt - now + 999_999) / 1_000_000, 10), 60_000))
            if timeout < 0 || wait < timeout { timeout = wait }
        }
        return timeout
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
