import Glibc
import Synchronization

/// A running balancer: its listeners, workers and backend pool. Start one with `LoadBalancer.start`;
/// the `lb` executable is a thin wrapper around this, and tests run it in-process.
public final class LoadBalancer: Sendable {
    public let configuration: Configuration
    public let pool: BackendPool
    public let log: EventLog
    /// The bound listen addresses (a port 0 in the configuration is resolved here).
    public let listenAddresses: [SocketAddress]
    let workers: [WorkerShared]
    private let threads: Mutex<[OSThread]>
    private let draining = Atomic<Bool>(false)
    /// Monotonic ns when it started (uptime).
    public let startedAt = MonotonicClock.now()

    /// Binds the listeners (one SO_REUSEPORT socket per worker per address), then starts the workers.
    /// Throws the bind or epoll error, with errno and address, before any thread starts.
    public static func start(_ configuration: Configuration, log: EventLog = EventLog()) throws(SystemError) -> LoadBalancer {
        let fdLimit = FileLimit.raiseToHard()
        let pool = BackendPool(configuration.backends)
        let workerCount = max(1, configuration.workers)
        var sockets = [[Int32]](repeating: [], count: workerCount)
        var bound: [SocketAddress] = []
        func closeAll(from first: Int = 0) { for list in sockets[first...] { for fd in list { Sys.close(fd) } } }
        do throws(SystemError) {
            for var address in configuration.listen {
                try Sockets.requireUnused(address)
                for w in 0..<workerCount {
                    let fd = try Sockets.listen(on: address, backlog: configuration.backlog, reusePort: true, proxied: true)
                    sockets[w].append(fd)
                    if w == 0 && address.port == 0 {
                        address.port = try Sys.localAddress(of: fd).port
                    }
                }
                bound.append(address)
            }
        } catch {
            closeAll()
            throw error
        }

        let settings = WorkerSettings(configuration, workers: workerCount, fdLimit: fdLimit)
        var shared: [WorkerShared] = []
        var boots: [WorkerBoot] = []
        do throws(SystemError) {
            for w in 0..<workerCount {
                let s = try WorkerShared(index: w, accessLogCapacity: configuration.accessLog?.bufferPerWorker ?? 0)
                shared.append(s)
                let worker = try Worker(shared: s, pool: pool, log: log, settings: settings, listeners: sockets[w])
                boots.append(WorkerBoot(worker))
            }
        } catch {
            // Built workers own their listeners and close them as they go; the rest are still ours.
            let built = boots.count
            boots.removeAll()
            closeAll(from: built)
            throw error
        }
        let balancer = LoadBalancer(configuration: configuration, pool: pool, log: log, listenAddresses: bound, workers: shared)
        var started: [OSThread] = []
        for boot in boots {
            do throws(SystemError) {
                started.append(try OSThread.spawn { if var worker = boot.take() { worker.run() } })
            } catch {
                balancer.stopNow()
                for t in started { t.join() }
                throw error
            }
        }
        balancer.threads.withLock { $0 = started }
        if configuration.backends.contains(where: { $0.weight != 1 }) {
            log.log("backend weights are kept and reported, but round robin treats every backend alike")
        }
        return balancer
    }

    private init(configuration: Configuration, pool: BackendPool, log: EventLog, listenAddresses: [SocketAddress], workers: [WorkerShared]) {
        self.configuration = configuration
        self.pool = pool
        self.log = log
        self.listenAddresses = listenAddresses
        self.workers = workers
        self.threads = Mutex([])
    }

    /// Closes the listeners at once and lets open pairs finish for up to `drainTimeout`; then the
    /// workers close what is left and stop. Returns immediately; `wait` joins.
    public func beginDrain() {
        draining.store(true, ordering: .relaxed)
        let deadline = MonotonicClock.now() &+ configuration.drainTimeout.nanoseconds
        for w in workers { w.send(.drain(deadline: deadline)) }
    }

    /// Marks a backend down by hand (health checks bring it back), logged like any other change.
    @discardableResult
    public func markDown(_ address: SocketAddress) -> Result<Bool, PoolError> {
        let result = pool.markDown(address, rise: configuration.health.rise, fall: configuration.health.fall)
        if case .success(true) = result { log.backendChanged(address, "down", "marked down by hand") }
        return result
    }

    /// Closes everything now.
    public func stopNow() {
        draining.store(true, ordering: .relaxed)
        for w in workers { w.send(.stop) }
    }

    /// Joins the worker threads. Returns false if they did not all finish within `timeout`.
    @discardableResult
    public func wait(timeout: Duration = .seconds(60)) -> Bool {
        let deadline = MonotonicClock.now() &+ timeout.nanoseconds
        var delay: UInt32 = 1000
        while !isFinished {
            if MonotonicClock.now() >= deadline { return false }
            usleep(delay)
            delay = min(delay * 2, 20_000)
        }
        let joined = threads.withLock { t in
            let all = t
            t.removeAll()
            return all
        }
        for t in joined { t.join() }
        return true
    }

    /// Drain, then wait for the workers.
    public func shutdown() {
        beginDrain()
        wait(timeout: configuration.drainTimeout + .seconds(10))
    }

    public var isFinished: Bool { workers.allSatisfy { $0.finished.load(ordering: .acquiring) } }

    /// Totals over all workers.
    public var counters: WorkerCounters { workers.reduce(WorkerCounters()) { $0 + $1.counters } }

    /// Per worker, in worker order.
    public var workerCounters: [WorkerCounters] { workers.map(\.counters) }

    public var workerCount: Int { workers.count }

    /// True once a drain or stop began (the admin API's `/healthz` answers 503 from then on).
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Counters, close reasons, connect failure causes and histograms, summed over workers. Reads only
    /// the workers' own cells: a scrape never pauses or slows a worker.
    public var metrics: MetricsSnapshot { MetricsSnapshot.sum(workers) }

    /// Each worker's ring of closed-pair records (empty when the access log is off): the access-log
    /// writer drains them. One consumer at a time.
    public var accessLogRings: [AccessLogRing] { workers.compactMap(\.accessLog) }

    deinit {
        let pending = threads.withLock { $0 }
        if !pending.isEmpty {
            stopNow()
            for t in pending { t.join() }
        }
    }
}

/// Carries a worker to its thread.
private final class WorkerBoot: @unchecked Sendable {
    // @unchecked: handed from the starting thread to the worker thread exactly once, via OSThread.spawn.
    private var worker: Worker?

    init(_ worker: consuming Worker) { self.worker = consume worker }

    func take() -> Worker? { worker.take() }
}
