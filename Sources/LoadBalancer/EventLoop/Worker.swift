import CShim
import Glibc

/// One event loop on one thread: its own epoll, its own SO_REUSEPORT listeners, its own pair table,
/// timers, buffers and probes. A pair lives on the worker that accepted it for its whole life.
///
/// Everything here is owned by the worker thread; the only shared state it touches is the backend pool
/// (atomics), the event log (rare), and `shared` (its command queue and counters).
struct Worker: ~Copyable {
    let shared: WorkerShared
    let pool: BackendPool
    let log: EventLog
    let settings: WorkerSettings
    let epoll: Epoll
    let scratch: UnsafeMutableRawPointer

    var listeners: [Int32]
    var listenersRegistered = false
    /// One fd held in reserve (an eventfd), given up when a backend socket cannot be had, so a pair
    /// already accepted is never lost to fd exhaustion. Accepting resumes only once it is back.
    var spareFD: Int32 = -1
    var resumeListenersAt: UInt64 = 0
    var lastPauseLog: UInt64 = 0

    var pairs: UnsafeMutablePointer<ConnectionPair>
    /// The client's address by pair slot: the one place a pair's client address lives. It is the peer
    /// `accept4` reported, replaced by the PROXY header's source under `--accept-proxy`; the access
    /// log and the PROXY header sent on read it here. Kept only while something reads it (the access
    /// log, or the PROXY protocol either way); nil otherwise, so a pair costs no more memory.
    var peers: UnsafeMutablePointer<SocketAddress>?
    /// The address each client connected to, as a PROXY header received said (family 0: none came,
    /// so it is looked up when a header is sent). Kept only with both `--accept-proxy` and
    /// `--proxy-protocol`.
    var locals: UnsafeMutablePointer<SocketAddress>?
    var pairCapacity: Int
    var freeHead: Int32 = -1
    var activePairs = 0

    var timers: TimerWheel
    var view: RoundRobinView
    var buffers: BufferPool
    var pipes: PipePool
    var prober: Prober

    var now: UInt64
    var draining = false
    var drainDeadline: UInt64 = 0
    var running = true

    init(shared: WorkerShared, pool: BackendPool, log: EventLog, settings: WorkerSettings, listeners: [Int32]) throws(SystemError) {
        self.shared = shared
        self.pool = pool
        self.log = log
        self.settings = settings
        self.listeners = listeners
        let epoll = try Epoll(capacity: 512)
        try epoll.add(shared.wakeFD, events: EpollEvents.input, data: EventTag.make(EventTag.wakeup, index: 0, generation: 0))
        try Self.register(listeners, with: epoll)
        self.epoll = epoll
        listenersRegistered = true
        scratch = .allocate(byteCount: max(settings.bufferSize, 4096), alignment: 16)
        now = MonotonicClock.now()
        pairCapacity = 256
        pairs = .allocate(capacity: pairCapacity)
        pairs.initialize(repeating: ConnectionPair(), count: pairCapacity)
        if shared.accessLog != nil || settings.preamble.acceptProxy || settings.preamble.send != nil {
            peers = .allocate(capacity: pairCapacity)
            peers!.initialize(repeating: SocketAddress(), count: pairCapacity)
        }
        if settings.preamble.acceptProxy && settings.preamble.send != nil {
            locals = .allocate(capacity: pairCapacity)
            locals!.initialize(repeating: SocketAddress(), count: pairCapacity)
        }
        timers = TimerWheel(capacity: pairCapacity, now: now)
        buffers = BufferPool(size: settings.bufferSize)
        pipes = PipePool()
        view = RoundRobinView(panicThreshold: settings.panicThreshold)
        prober = Prober(settings: settings, workerIndex: shared.index, backendCapacity: pool.table.capacity, now: now)
        for i in stride(from: pairCapacity - 1, through: 0, by: -1) {
            pairs[i].nextFree = freeHead
            freeHead = Int32(i)
        }
        spareFD = (try? Sys.eventFD()) ?? -1
    }

    /// A worker owns its listeners and spare fd from `init` on: one that never ran (a later worker or
    /// thread failed to start) closes them here; `run()` has closed them already otherwise.
    deinit {
        for fd in listeners { Sys.close(fd) }
        if spareFD >= 0 { Sys.close(spareFD) }
        pairs.deinitialize(count: pairCapacity)
        pairs.deallocate()
        peers?.deallocate()
        locals?.deallocate()
        scratch.deallocate()
    }

    // MARK: the loop

    mutating func run() {
        view.rebuild(from: pool)
        while running {
            // `now` is from just after the last wait: the batch since took microseconds, and a timer
            // woken a little late is still never early. One clock read per iteration, not two.
            let timeout = nextTimeout()
            let n: Int
            do {
                n = try epoll.wait(timeoutMs: timeout)
            } catch {
                log.log("worker \(shared.index): \(error); stopping")
                break
            }
            now = MonotonicClock.now()
            // After the wait, not before: a pool change made while this loop slept is seen before
            // any pick it could affect.
            _ = view.refresh(from: pool)
            for i in 0..<n {
                let event = epoll.events[i]
                dispatch(tag: event.data, events: event.events)
            }
            expireTimers()
            runProbeSchedule()
            publishGauges()
            if !listenersRegistered && !draining && resumeListenersAt != 0 && now >= resumeListenersAt {
                resumeListeners()
            }
            if draining && (activePairs == 0 || now >= drainDeadline) { running = false }
        }
        closeEverything()
        closeSpare()
        publishGauges()
        shared.finished.store(true, ordering: .releasing)
    }

    /// Stores the buffer and pipe gauges when they changed (a relaxed load per iteration otherwise).
    @inline(__always)
    private func publishGauges() {
        if shared.load(.buffersInUse) != buffers.outstanding { shared.set(.buffersInUse, buffers.outstanding) }
        if shared.load(.pipesInUse) != pipes.outstanding { shared.set(.pipesInUse, pipes.outstanding) }
    }

    /// The epoll_wait timeout: the nearest of the pair timers, the probes, a paused listener's
    /// resumption and the drain deadline (-1: none).
    private mutating func nextTimeout() -> Int32 {
        var timeout = timers.millisecondsUntilNext(now: now)
        if !prober.idle(pool: pool) || prober.inFlight > 0 {
            timeout = Self.earlier(timeout, prober.millisecondsUntilNext(now: now, pool: pool))
        } else {
            // Idle probers still look once an interval: another worker (or the API) may have marked
            // down a backend of this worker's share, and nothing else would wake this loop.
            timeout = Self.earlier(timeout, Int32(clamping: max(prober.interval / 1_000_000, 1)))
        }
        if resumeListenersAt != 0 { timeout = Self.earlier(timeout, milliseconds(until: resumeListenersAt)) }
        if draining { timeout = Self.earlier(timeout, milliseconds(until: drainDeadline)) }
        return timeout
    }

    @inline(__always)
    private static func earlier(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        return min(a, b)
    }

    private func milliseconds(until deadline: UInt64) -> Int32 {
        deadline <= now ? 0 : Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
    }

    @inline(__always)
    private mutating func dispatch(tag: UInt64, events: UInt32) {
        switch EventTag.kind(tag) {
        case EventTag.client:
            handlePairEvent(index: EventTag.index(tag), generation: EventTag.generation(tag), events: events, fromBackend: false)
        case EventTag.backend:
            handlePairEvent(index: EventTag.index(tag), generation: EventTag.generation(tag), events: events, fromBackend: true)
        case EventTag.listener:
            acceptConnections(listener: Int(EventTag.index(tag)))
        case EventTag.probe:
            handleProbeEvent(index: EventTag.index(tag), generation: EventTag.generation(tag), events: events)
        case EventTag.wakeup:
            Sys.drainEventFD(shared.wakeFD)
            for command in shared.takeCommands() { handle(command) }
        default:
            break
        }
    }

    private mutating func handle(_ command: WorkerCommand) {
        switch command {
        case .drain(let deadline):
            if !draining {
                draining = true
                drainDeadline = deadline
                closeListeners()
            }
        case .stop:
            draining = true
            drainDeadline = now
            closeListeners()
        }
    }

    private mutating func expireTimers() {
        while let id = timers.popExpired(now: now) {
            let p = pairs + Int(id)
            guard p.pointee.inUse else { continue }
            if p.pointee.lifecycle.phase == .preamble { shared.bump(.preambleTimeouts) }
            let actions = p.pointee.lifecycle.timerFired(
                now: now, lastActivity: p.pointee.lastActivity, clientWaiting: p.pointee.clientWaiting,
                settings: settings.pair)
            _ = execute(p, actions)
        }
        expireProbes()
    }

    private mutating func closeSpare() {
        if spareFD >= 0 { Sys.close(spareFD) }
        spareFD = -1
    }

    private mutating func closeEverything() {
        for i in 0..<pairCapacity where pairs[i].inUse {
            let p = pairs + i
            let actions = p.pointee.lifecycle.drainExpired()
            closePair(p, reset: !actions.contains(.close))
        }
        closeAllProbes()
        closeListeners()
    }

    // MARK: pair table

    mutating func allocatePair() -> Int32 {
        if freeHead < 0 { growPairs() }
        let index = freeHead
        let p = pairs + Int(index)
        freeHead = p.pointee.nextFree
        let generation = p.pointee.generation &+ 1
        p.pointee = ConnectionPair()
        p.pointee.generation = generation
        p.pointee.inUse = true
        return index
    }

    mutating func freePair(_ p: UnsafeMutablePointer<ConnectionPair>) {
        p.pointee.inUse = false
        p.pointee.generation &+= 1
        p.pointee.nextFree = freeHead
        freeHead = Int32(p - pairs)
    }

    /// Doubles the table. Only called from accept, when no pair pointer is held.
    private mutating func growPairs() {
        let newCapacity = pairCapacity * 2
        let grown = UnsafeMutablePointer<ConnectionPair>.allocate(capacity: newCapacity)
        grown.moveInitialize(from: pairs, count: pairCapacity)
        (grown + pairCapacity).initialize(repeating: ConnectionPair(), count: newCapacity - pairCapacity)
        pairs.deallocate()
        pairs = grown
        if let old = peers {
            let grownPeers = UnsafeMutablePointer<SocketAddress>.allocate(capacity: newCapacity)
            grownPeers.moveInitialize(from: old, count: pairCapacity)
            (grownPeers + pairCapacity).initialize(repeating: SocketAddress(), count: newCapacity - pairCapacity)
            old.deallocate()
            peers = grownPeers
        }
        if let old = locals {
            let grownLocals = UnsafeMutablePointer<SocketAddress>.allocate(capacity: newCapacity)
            grownLocals.moveInitialize(from: old, count: pairCapacity)
            (grownLocals + pairCapacity).initialize(repeating: SocketAddress(), count: newCapacity - pairCapacity)
            old.deallocate()
            locals = grownLocals
        }
        for i in stride(from: newCapacity - 1, through: pairCapacity, by: -1) {
            pairs[i].nextFree = freeHead
            freeHead = Int32(i)
        }
        pairCapacity = newCapacity
    }
}
