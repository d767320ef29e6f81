/// One worker run on the calling thread, one loop pass at a time, against kernel `K`: how the
/// simulation runs the real event loop, pair lifecycle, forwarding, timers and probes (lb itself runs
/// `Worker<LinuxKernel>.run()` on its own threads). Between passes the caller may look at the worker
/// (`inspect`), which is what the simulation's properties are checked against.
public struct WorkerDriver<K: Kernel>: ~Copyable {
    var worker: Worker<K>
    let shared: WorkerShared

    /// A single worker (index 0 of 1) over `listeners` (fds of kernel `K`), with `configuration`'s
    /// settings. Throws what creating its epoll or eventfd throws.
    public init(configuration: Configuration, pool: BackendPool, log: EventLog, listeners: [Int32], fdLimit: Int) throws(SystemError) {
        let wake = try K.eventFD()
        let shared = WorkerShared(index: 0, wakeFD: wake, ownsWakeFD: false)
        let settings = WorkerSettings(configuration, workers: 1, fdLimit: fdLimit)
        var worker: Worker<K>
        do throws(SystemError) {
            worker = try Worker<K>(shared: shared, pool: pool, log: log, settings: settings, listeners: listeners)
        } catch {
            K.close(wake)
            throw error
        }
        worker.view.rebuild(from: pool)
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

    public var counters: WorkerCounters { shared.counters }

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
                    closeReason: p.pointee.lifecycle.closeReason))
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
    public var pairs: [Pair] = []
}
