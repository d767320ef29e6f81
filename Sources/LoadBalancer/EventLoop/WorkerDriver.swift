/// One worker run on the calling thread, one loop pass at a time, against kernel `K`: how the
/// simulation runs the real event loop, pair lifecycle, forwarding, timers and probes (lb itself runs
/// `Worker<LinuxKernel>.run()` on its own threads). Between passes the caller may look at the worker
/// (`inspect`), which is what the simulation's properties are checked against.
public struct WorkerDriver<K: Kernel>: ~Copyable {
    var worker: Worker<K>
    let shared: WorkerShared

    /// The services the worker serves, in index order: each with its own pool (health, counters) and
    /// admission, built from `configuration.effectiveServices` as `LoadBalancer.start` builds them.
    public let services: [Service]

    /// A single worker (index 0 of 1) serving `configuration`'s services over `listeners` (fds of
    /// kernel `K`, each with the index of the service it accepts for). Each pool keeps `headroom`
    /// spare slots (lb keeps thousands for run-time additions; a run of many seeds wants few). Throws
    /// what creating its epoll or eventfd throws.
    public init(
        configuration: Configuration, log: EventLog, listeners: [(fd: Int32, service: Int)], fdLimit: Int, headroom: Int = 16
    ) throws(SystemError) {
        let settings = WorkerSettings(configuration, workers: 1, fdLimit: fdLimit)
        var services: [Service] = []
        for (index, sc) in configuration.effectiveServices.enumerated() {
            let pool = BackendPool(sc.backends, headroom: headroom, balancing: sc.settings.balancing)
            let admission = Admission(sc.settings.admission, fdLimit: settings.fdLimit, fdReserve: settings.fdReserve)
            services.append(Service(name: sc.name, index: index, pool: pool, admission: admission, workerCount: 1))
        }
        let runSettings = zip(services, configuration.effectiveServices).map { service, sc in
            (service, ServiceRunSettings(sc.settings, workerBufferSize: settings.bufferSize))
        }
        let wake = try K.eventFD()
        let shared = WorkerShared(index: 0, wakeFD: wake, ownsWakeFD: false)
        var ids: UInt32 = 0
        let workerListeners = listeners.map { l in
            ids += 1
            return WorkerListener(fd: l.fd, service: UInt16(l.service), id: ids)
        }
        var worker: Worker<K>
        do throws(SystemError) {
            worker = try Worker<K>(shared: shared, services: runSettings, log: log, settings: settings, listeners: workerListeners)
        } catch {
            K.close(wake)
            throw error
        }
        self.services = services
        self.shared = shared
        self.worker = worker
    }

    /// False once the worker has stopped (drained, or told to stop).
    public var isRunning: Bool { worker.running }

    /// One pass of the loop: epoll_wait (where a simulated kernel lets time pass), the batch, timers, probes.
    public mutating func step() { worker.iterate() }

    /// Closes what is left, as `run()` does at its end, and the wake-up eventfd.
    public consuming func finish() {
        worker.finish()
        K.close(shared.wakeFD)
    }

    /// Queues a drain (pairs may finish until `deadline`, in `K.now()` nanoseconds) and wakes the worker.
    public func drain(deadline: UInt64) {
        shared.enqueue(.drain(deadline: deadline))
        K.signalEventFD(shared.wakeFD)
    }

    /// The commands other threads (or a simulated operator) send; safe to keep while the worker runs.
    public var mailbox: WorkerMailbox<K> { WorkerMailbox(shared: shared) }

    /// The worker's counters: its own row plus its row of every service (most pair, probe and
    /// admission counters are counted per service), as `LoadBalancer.workerCounters` sums them.
    public var counters: WorkerCounters { services.reduce(shared.counters) { $0 + $1.counters } }

    /// The worker's state now: its pairs, timers, buffers and probes.
    public func inspect() -> WorkerInspection {
        var result = WorkerInspection()
        result.activePairs = worker.activePairs
        result.pairTimers = worker.timers.count
        result.probeTimers = worker.prober.wheel.count
        result.probesInFlight = worker.prober.inFlight
        result.buffersOutstanding = worker.buffers.outstanding
        result.pipesOutstanding = worker.pipes.outstanding
        result.draining = worker.draining
        result.drainDeadline = worker.drainDeadline
        result.listenersRegistered = worker.listenersRegistered
        result.queuedPairs = worker.queuedPairs
        for i in 0..<worker.serviceCount { result.admitted += worker.services[i].admission.active.load(ordering: .relaxed) }
        result.servicesPausedAtLimit = worker.limitPausedServices
        var found = 0
        var i = 0
        while found < worker.activePairs && i < worker.pairCapacity {
            let p = worker.pairs + i
            i += 1
            guard p.pointee.inUse else { continue }
            found += 1
            result.pairs.append(
                WorkerInspection.Pair(
                    slot: i - 1, generation: p.pointee.generation, clientFD: p.pointee.clientFD, backendFD: p.pointee.backendFD,
                    backend: p.pointee.backend, phase: p.pointee.lifecycle.phase, attempts: Int(p.pointee.lifecycle.attempts),
                    pendingUp: Int(p.pointee.up.end - p.pointee.up.start) + Int(p.pointee.up.piped),
                    pendingDown: Int(p.pointee.down.end - p.pointee.down.start) + Int(p.pointee.down.piped),
                    timerArmed: worker.timers.isScheduled(Int32(i - 1)), lastActivity: p.pointee.lastActivity,
                    acceptedAt: p.pointee.acceptedAt, halfClosedAt: p.pointee.lifecycle.halfClosedAt,
                    closeReason: p.pointee.lifecycle.closeReason, service: Int(p.pointee.service), queued: p.pointee.queued))
        }
        return result
    }
}

/// Sends a worker its commands through kernel `K`'s eventfd.
public struct WorkerMailbox<K: Kernel>: Sendable {
    let shared: WorkerShared

    public func drain(deadline: UInt64) {
        shared.enqueue(.drain(deadline: deadline))
        K.signalEventFD(shared.wakeFD)
    }

    public func stop() {
        shared.enqueue(.stop)
        K.signalEventFD(shared.wakeFD)
    }
}

/// A look at a worker between two loop passes (`WorkerDriver.inspect`).
public struct WorkerInspection: Sendable {
    public struct Pair: Sendable {
        public var slot: Int
        public var generation: UInt32
        public var clientFD: Int32
        public var backendFD: Int32
        public var backend: BackendID
        public var phase: PairLifecycle.Phase
        public var attempts: Int
        /// Bytes read from one side and not yet accepted by the other (leftover buffer plus pipe).
        public var pendingUp: Int
        public var pendingDown: Int
        public var timerArmed: Bool
        public var lastActivity: UInt64
        public var acceptedAt: UInt64
        public var halfClosedAt: UInt64
        /// Why a lingering pair gave up (`.none` while it is open).
        public var closeReason: CloseReason
        /// The index of the service whose listener accepted it.
        public var service: Int
        /// Waiting in its service's queue for a backend place (every backend at its limit).
        public var queued: Bool
    }

    public var activePairs = 0
    public var pairTimers = 0
    public var probeTimers = 0
    public var probesInFlight = 0
    public var buffersOutstanding = 0
    public var pipesOutstanding = 0
    public var draining = false
    public var drainDeadline: UInt64 = 0
    public var listenersRegistered = false
    /// Pairs waiting in the services' queues.
    public var queuedPairs = 0
    /// Places taken under the services' `max_conns` (one per open pair, summed over services).
    public var admitted = 0
    /// Services whose listeners are paused at their `max_conns`.
    public var servicesPausedAtLimit = 0
    public var pairs: [Pair] = []
}
