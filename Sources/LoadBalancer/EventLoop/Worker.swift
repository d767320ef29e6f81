import CShim
import Glibc

/// One event loop on one thread: its own epoll, its own SO_REUSEPORT listeners, its own pair table,
/// timers, buffers and probes. A pair lives on the worker that accepted it for its whole life.
///
/// Every worker serves every service: its service table holds, at each service's index, that
/// service's settings, pool view and health-check walk (`WorkerService`); a pair carries the index.
///
/// Everything here is owned by the worker thread; the only shared state it touches is the services'
/// pools (atomics), the event log (rare), and `shared` (its command queue and counters).
///
/// Generic over the kernel it calls (`Kernel`): lb runs `Worker<LinuxKernel>`, whose calls inline to
/// the `Sys` wrappers; the simulation runs the same code against a simulated kernel.
struct Worker<K: Kernel>: ~Copyable {
    let shared: WorkerShared
    let log: EventLog
    let settings: WorkerSettings
    let epoll: KernelEpoll<K>
    let scratch: UnsafeMutableRawPointer

    /// Indexed by service index; slots are never reused (see `Service`).
    var services: UnsafeMutablePointer<WorkerService>
    var serviceCount = 0
    var serviceCapacity: Int
    /// The earliest `retireDeadline` of a retired service with pairs still open (0: none).
    var nextRetireDeadline: UInt64 = 0

    /// A closed listener keeps its place as fd -1, so the epoll tags of the others stay valid.
    var listeners: [WorkerListener]
    /// The route of every listener that reads server names, by listener id: kept after its listener
    /// closes (a drain, a reload) while pairs accepted on it may still be in their preamble.
    var routes: [UInt32: ListenerRoute] = [:]
    var listenersRegistered = false
    /// One fd held in reserve (an eventfd), given up when a backend socket cannot be had, so a pair
    /// already accepted is never lost to fd exhaustion. Accepting resumes only once it is back.
    var spareFD: Int32 = -1
    var resumeListenersAt: UInt64 = 0
    var lastPauseLog: UInt64 = 0
    /// Services whose listeners are paused at their `--max-conns`, and when to look for room again.
    var limitPausedServices = 0
    var limitCheckAt: UInt64 = 0
    /// Pairs waiting in the services' queues on this worker.
    var queuedPairs = 0

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
    var buffers: BufferPool
    var pipes: PipePool<K>
    var prober: Prober

    var now: UInt64
    var draining = false
    var drainDeadline: UInt64 = 0
    var running = true

    init(
        shared: WorkerShared, services: [(Service, ServiceRunSettings)], log: EventLog, settings: WorkerSettings,
        listeners: [WorkerListener]
    ) throws(SystemError) {
        self.shared = shared
        self.log = log
        self.settings = settings
        self.listeners = listeners
        for l in listeners { if let route = l.route { routes[l.id] = route } }
        let epoll = try KernelEpoll<K>(capacity: 512)
        try epoll.add(shared.wakeFD, events: EpollEvents.input, data: EventTag.make(EventTag.wakeup, index: 0, generation: 0))
        try Self.register(listeners, with: epoll)
        self.epoll = epoll
        listenersRegistered = true
        scratch = .allocate(byteCount: max(settings.bufferSize, 4096), alignment: 16)
        now = K.now()
        pairCapacity = 256
        pairs = .allocate(capacity: pairCapacity)
        pairs.initialize(repeating: ConnectionPair(), count: pairCapacity)
        // A listener routing by server name checks the client's address once the pair is routed.
        if shared.accessLog != nil || services.contains(where: { $0.1.preamble.needsPeers }) || listeners.contains(where: { $0.route != nil }) {
            peers = Self.addressTable(pairCapacity)
        }
        if services.contains(where: { $0.1.preamble.needsLocals }) {
            locals = Self.addressTable(pairCapacity)
        }
        timers = TimerWheel(capacity: pairCapacity, now: now)
        buffers = BufferPool(size: settings.bufferSize)
        pipes = PipePool()
        prober = Prober(settings: settings, workerIndex: shared.index, now: now)
        serviceCapacity = max(4, services.count)
        self.services = .allocate(capacity: serviceCapacity)
        for (service, runSettings) in services {
            precondition(service.index == serviceCount, "services are indexed in order")
            (self.services + serviceCount).initialize(to: WorkerService(service: service, settings: runSettings, workerIndex: shared.index, now: now))
            serviceCount += 1
        }
        for i in stride(from: pairCapacity - 1, through: 0, by: -1) {
            pairs[i].nextFree = freeHead
            freeHead = Int32(i)
        }
        spareFD = (try? K.eventFD()) ?? -1
    }

    /// A worker owns its listeners and spare fd from `init` on: one that never ran (a later worker or
    /// thread failed to start) closes them here; `run()` has closed them already otherwise.
    deinit {
        for l in listeners where l.fd >= 0 { K.close(l.fd) }
        services.deinitialize(count: serviceCount)
        services.deallocate()
        if spareFD >= 0 { K.close(spareFD) }
        pairs.deinitialize(count: pairCapacity)
        pairs.deallocate()
        peers?.deallocate()
        locals?.deallocate()
        scratch.deallocate()
    }

    // MARK: the loop

    mutating func run() {
        while running { iterate() }
        finish()
    }

    /// One pass of the loop: wait, dispatch the batch, timers, queues, probes. (`WorkerDriver` calls it
    /// one pass at a time so the simulation can look at the worker between passes.)
    @inline(__always)
    mutating func iterate() {
            // `now` is from just after the last wait: the batch since took microseconds, and a timer
            // woken a little late is still never early. One clock read per iteration, not two.
            let timeout = nextTimeout()
            let n: Int
            do {
                n = try epoll.wait(timeoutMs: timeout)
            } catch {
                log.log("worker \(shared.index): \(error); stopping")
                running = false
                return
            }
            now = K.now()
            for i in 0..<n {
                let event = epoll.events[i]
                dispatch(tag: event.data, events: event.events)
            }
            expireTimers()
            if nextRetireDeadline != 0 && now >= nextRetireDeadline { closeRetiredPairs() }
            if queuedPairs > 0 { serveQueues() }
            if limitPausedServices > 0 && now >= limitCheckAt { resumeServicesWithRoom() }
            runProbeSchedule()
            publishGauges()
            if !listenersRegistered && !draining && resumeListenersAt != 0 && now >= resumeListenersAt {
                resumeListeners()
            }
            if draining && (activePairs == 0 || now >= drainDeadline) { running = false }
    }

    /// After the last pass: close what is left and say so.
    mutating func finish() {
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
        timeout = Self.earlier(timeout, prober.wheel.millisecondsUntilNext(now: now))
        for i in 0..<serviceCount where !services[i].retired {
            timeout = Self.earlier(timeout, services[i].walk.millisecondsUntilNext(now: now, pool: services[i].pool))
        }
        if nextRetireDeadline != 0 { timeout = Self.earlier(timeout, milliseconds(until: nextRetireDeadline)) }
        if resumeListenersAt != 0 { timeout = Self.earlier(timeout, milliseconds(until: resumeListenersAt)) }
        // Another worker's pair may free a backend place: look again soon while pairs wait.
        if queuedPairs > 0 { timeout = Self.earlier(timeout, Self.queuePollMs) }
        if limitPausedServices > 0 { timeout = Self.earlier(timeout, milliseconds(until: limitCheckAt)) }
        if draining { timeout = Self.earlier(timeout, milliseconds(until: drainDeadline)) }
        return timeout
    }

    @inline(__always)
    private static func earlier(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        return min(a, b)
    }

    func milliseconds(until deadline: UInt64) -> Int32 {
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
            K.drainEventFD(shared.wakeFD)
            for command in shared.takeCommands() { handle(command) }
        default:
            break
        }
    }

    private mutating func handle(_ command: WorkerCommand) {
        switch command {
        case .reconfigure(let change):
            apply(change)
        case .exportListeners(let export):
            var copies: [(id: UInt32, fd: Int32)] = []
            for l in listeners where l.fd >= 0 && !draining {
                if let fd = try? K.duplicate(l.fd) { copies.append((l.id, fd)) }
            }
            export.deliver(worker: shared.index, copies)
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
            if p.pointee.queued {
                queueTimedOut(p)
                continue
            }
            if p.pointee.lifecycle.phase == .preamble { shared.bump(.preambleTimeouts) }
            let actions = p.pointee.lifecycle.timerFired(
                now: now, lastActivity: p.pointee.lastActivity, clientWaiting: p.pointee.clientWaiting,
                settings: pairSettings(p))
            _ = execute(p, actions)
        }
        expireProbes()
    }

    private mutating func closeSpare() {
        if spareFD >= 0 { K.close(spareFD) }
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

    /// The settings of the pair's service: an index into the service table, no lock, no allocation.
    @inline(__always)
    func pairSettings(_ p: UnsafeMutablePointer<ConnectionPair>) -> PairSettings {
        services[Int(p.pointee.service)].settings.pair
    }

    @inline(__always)
    func service(_ p: UnsafeMutablePointer<ConnectionPair>) -> UnsafeMutablePointer<WorkerService> {
        services + Int(p.pointee.service)
    }

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

    /// A per-slot address table (`peers`, `locals`), every slot empty.
    static func addressTable(_ count: Int) -> UnsafeMutablePointer<SocketAddress> {
        let table = UnsafeMutablePointer<SocketAddress>.allocate(capacity: count)
        table.initialize(repeating: SocketAddress(), count: count)
        return table
    }

    /// `old` moved into a table of `newCount` slots (the new ones empty); `old` is freed.
    private static func grow(_ old: UnsafeMutablePointer<SocketAddress>, from count: Int, to newCount: Int) -> UnsafeMutablePointer<SocketAddress> {
        let grown = UnsafeMutablePointer<SocketAddress>.allocate(capacity: newCount)
        grown.moveInitialize(from: old, count: count)
        (grown + count).initialize(repeating: SocketAddress(), count: newCount - count)
        old.deallocate()
        return grown
    }

    /// Doubles the table. Only called from accept, when no pair pointer is held.
    private mutating func growPairs() {
        let newCapacity = pairCapacity * 2
        let grown = UnsafeMutablePointer<ConnectionPair>.allocate(capacity: newCapacity)
        grown.moveInitialize(from: pairs, count: pairCapacity)
        (grown + pairCapacity).initialize(repeating: ConnectionPair(), count: newCapacity - pairCapacity)
        pairs.deallocate()
        pairs = grown
        if let old = peers { peers = Self.grow(old, from: pairCapacity, to: newCapacity) }
        if let old = locals { locals = Self.grow(old, from: pairCapacity, to: newCapacity) }
        for i in stride(from: newCapacity - 1, through: pairCapacity, by: -1) {
            pairs[i].nextFree = freeHead
            freeHead = Int32(i)
        }
        pairCapacity = newCapacity
    }
}
