import Glibc
import Synchronization

/// A running balancer: its services (each with listeners and a backend pool) and the workers that
/// serve them all. Start one with `LoadBalancer.start`; the `lb` executable is a thin wrapper around
/// this, and tests run it in-process.
public final class LoadBalancer: Sendable {
    public let log: EventLog
    let workers: [WorkerShared]
    let workerSettings: WorkerSettings
    private let threads: Mutex<[OSThread]>
    /// What runs now; replaced whole by a reload. Read by anyone, written under `reloading`.
    let state: Mutex<RunState>
    /// Held for a whole reload, so two never interleave.
    let reloading = Mutex<Void>(())
    private let draining = Atomic<Bool>(false)
    private let logReopeners = Mutex<[@Sendable () -> Void]>([])
    /// Monotonic ns when it started (uptime).
    public let startedAt = MonotonicClock.now()

    /// A service as it runs: the shared object, its configuration, and its listeners (one id each,
    /// one socket per worker behind it).
    struct RunningService: Sendable {
        var service: Service
        var config: ServiceConfiguration
        var listeners: [RunningListener]
    }

    struct RunningListener: Sendable, Equatable {
        /// As configured (port 0 stays 0: a reload compares these).
        var configured: SocketAddress
        /// As bound.
        var bound: SocketAddress
        var id: UInt32
    }

    struct RunState: Sendable {
        var configuration: Configuration
        /// The current services, in configuration order.
        var services: [RunningService]
        /// The name of every service ever started, by index (removed ones stay: their pairs may be
        /// draining, and their access records name them).
        var serviceNames: [String]
        var nextListenerID: UInt32
        /// Every service ever started, by index: the process's totals sum their counters (a removed
        /// service's counts stay in them).
        var everyService: [Service] = []
    }

    /// The configuration running now (the last one a reload applied).
    public var configuration: Configuration { state.withLock { $0.configuration } }

    /// The current services, in configuration order.
    public var services: [Service] { state.withLock { $0.services.map(\.service) } }

    public func service(named name: String) -> Service? {
        state.withLock { $0.services.first { $0.service.name == name }?.service }
    }

    /// The name of every service started since the process began, by service index (what
    /// `AccessRecord.service` holds); a service a reload removed keeps its name here.
    public var serviceNamesByIndex: [String] { state.withLock { $0.serviceNames } }

    /// The first service's pool: with flags, the one pool there is.
    public var pool: BackendPool { state.withLock { $0.services[0].service.pool } }

    /// The bound listen addresses of every current service, in configuration order (a port 0 in the
    /// configuration is resolved here).
    public var listenAddresses: [SocketAddress] {
        state.withLock { $0.services.flatMap { $0.listeners.map(\.bound) } }
    }

    /// The bound listen addresses of one service: its own sockets, then the addresses it shares with
    /// a service listed before it (whose socket serves both).
    public func listenAddresses(of service: String) -> [SocketAddress] {
        state.withLock { st in
            guard let r = st.services.first(where: { $0.service.name == service }) else { return [] }
            let shared = r.config.listen.filter { a in a.port != 0 && !r.listeners.contains { $0.configured == a } }.compactMap { a in
                st.services.lazy.flatMap(\.listeners).first { $0.configured == a }?.bound
            }
            return r.listeners.map(\.bound) + shared
        }
    }

    /// Binds every service's listeners (one SO_REUSEPORT socket per worker per address), then starts
    /// the workers. Throws the bind or epoll error, with errno and address, before any thread starts.
    /// The configuration is assumed valid (`Configuration.validate()`).
    ///
    /// Backends that are one of lb's own listeners (`SelfLoop`) are left out of their pool, and
    /// logged once.
    ///
    /// `inherited`: listening sockets received from the `lb` this one takes over from
    /// (`Takeover.request`). An address found there is served on those very sockets instead of new
    /// ones; they are owned from here on (unused ones are closed).
    public static func start(
        _ configuration: Configuration, log: EventLog = EventLog(), inherited: [Takeover.InheritedListener] = []
    ) throws(SystemError) -> LoadBalancer {
        var inherited = inherited
        defer { for l in inherited { for fd in l.fds { Sys.close(fd) } } }
        let fdLimit = FileLimit.raiseToHard()
        let workerCount = max(1, configuration.workers)
        let settings = WorkerSettings(configuration, workers: workerCount, fdLimit: fdLimit)
        let serviceConfigs = configuration.effectiveServices
        var running: [RunningService] = []
        var sockets = [[WorkerListener]](repeating: [], count: workerCount)
        var nextID: UInt32 = 1
        var looped: [BackendSpec] = []
        func closeAll(from first: Int = 0) { for list in sockets[first...] { for l in list { Sys.close(l.fd) } } }
        // An address shared by services is opened once, by the first service listing it; a listener
        // reading server names routes each pair to its service.
        let members = Configuration.listenMembers(serviceConfigs)
        do throws(SystemError) {
            var opened: [[RunningListener]] = []
            for (index, sc) in serviceConfigs.enumerated() {
                var listeners: [RunningListener] = []
                for (k, address) in sc.listen.enumerated() where members[index][k][0] == index {
                    let route = ListenerRoute(members: members[index][k].map { (serviceConfigs[$0].settings, $0) })
                    let fds: [Int32], bound: SocketAddress
                    if let k = inherited.firstIndex(where: { $0.matches(service: sc.name, configured: address) }) {
                        (fds, bound) = try adopt(inherited.remove(at: k), backlog: sc.settings.backlog, workers: workerCount)
                    } else {
                        (fds, bound) = try openListener(address, backlog: sc.settings.backlog, workers: workerCount)
                    }
                    // One socket per worker; inherited ones beyond that go round the workers.
                    for (i, fd) in fds.enumerated() {
                        sockets[i % workerCount].append(WorkerListener(fd: fd, service: UInt16(index), id: nextID, route: route))
                    }
                    listeners.append(RunningListener(configured: address, bound: bound, id: nextID))
                    nextID += 1
                }
                opened.append(listeners)
            }
            // Never proxy to a listener of our own (a loop); checked against the bound ports.
            let allBound = opened.flatMap { $0.map(\.bound) }
            let local = Sys.interfaceAddresses()
            for (index, sc) in serviceConfigs.enumerated() {
                let (backends, loops) = SelfLoop.partition(sc.backends, listen: allBound, local: local)
                looped += loops
                let pool = BackendPool(backends, headroom: Self.headroom(for: sc, in: configuration), balancing: sc.settings.balancing)
                let admission = Admission(sc.settings.admission, fdLimit: settings.fdLimit, fdReserve: settings.fdReserve)
                let service = Service(name: sc.name, index: index, pool: pool, admission: admission, workerCount: workerCount)
                running.append(RunningService(service: service, config: sc, listeners: opened[index]))
            }
        } catch {
            closeAll()
            throw error
        }

        var shared: [WorkerShared] = []
        var boots: [WorkerBoot] = []
        let perWorker = running.map { ($0.service, ServiceRunSettings($0.config.settings, workerBufferSize: settings.bufferSize)) }
        do throws(SystemError) {
            for w in 0..<workerCount {
                let s = try WorkerShared(index: w, accessLogCapacity: configuration.accessLog?.bufferPerWorker ?? 0)
                shared.append(s)
                let worker = try Worker<LinuxKernel>(shared: s, services: perWorker, log: log, settings: settings, listeners: sockets[w])
                boots.append(WorkerBoot(worker))
            }
        } catch {
            // Built workers own their listeners and close them as they go; the rest are still ours.
            let built = boots.count
            boots.removeAll()
            closeAll(from: built)
            throw error
        }
        let runState = RunState(configuration: configuration, services: running, serviceNames: running.map(\.service.name), nextListenerID: nextID,
                                everyService: running.map(\.service))
        let balancer = LoadBalancer(log: log, workers: shared, settings: settings, state: runState)
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
        if !looped.isEmpty {
            log.log("left out \(Plural.count(looped.count, "backend")) that would loop back to lb's own listener: "
                + looped.prefix(10).map(\.description).joined(separator: ", ") + (looped.count > 10 ? ", ..." : ""))
        }
        return balancer
    }

    /// Slots a service's pool keeps for backends added at run time (admin API, reloads). The one
    /// service flags describe keeps the pool's usual 16,384; a config file's services keep as many as
    /// they start with, at least 1,024, so a file of many small services does not reserve ~1.3 MiB of
    /// backend table each. A reload that outgrows it is refused for the backends that do not fit (one
    /// line each) and takes a restart.
    static func headroom(for service: ServiceConfiguration, in configuration: Configuration) -> Int {
        configuration.services.isEmpty ? 16_384 : max(1024, service.backends.count)
    }

    /// One SO_REUSEPORT listener per worker on `address`; returns them and the bound address (port 0
    /// resolved by the first). On error, closes what it opened and throws.
    static func openListener(_ address: SocketAddress, backlog: Int32, workers: Int) throws(SystemError) -> ([Int32], SocketAddress) {
        // SO_REUSEPORT would let this join another process's listening group unnoticed.
        try Sockets.requireUnused(address)
        var fds: [Int32] = []
        var bound = address
        do throws(SystemError) {
            for _ in 0..<workers {
                var a = address
                if address.port == 0 && !fds.isEmpty { a = bound }
                let fd = try Sockets.listen(on: a, backlog: backlog, reusePort: true, proxied: true)
                fds.append(fd)
                if fds.count == 1 && address.port == 0 { bound.port = try Sys.localAddress(of: fd).port }
            }
        } catch {
            for fd in fds { Sys.close(fd) }
            throw error
        }
        return (fds, bound)
    }

    /// Serves an address on sockets handed over by the previous process: all of them (closing one would
    /// reset the connections in its queue), plus fresh SO_REUSEPORT ones if there are more workers now.
    static func adopt(_ listener: Takeover.InheritedListener, backlog: Int32, workers: Int) throws(SystemError) -> ([Int32], SocketAddress) {
        var fds = listener.fds
        do throws(SystemError) {
            while fds.count < workers {
                // No `requireUnused` here: the address is ours, held by the sockets just handed over.
                fds.append(try Sockets.listen(on: listener.bound, backlog: backlog, reusePort: true, proxied: true))
            }
        } catch {
            for fd in fds { Sys.close(fd) }
            throw error
        }
        return (fds, listener.bound)
    }

    private init(log: EventLog, workers: [WorkerShared], settings: WorkerSettings, state: RunState) {
        self.log = log
        self.workers = workers
        self.workerSettings = settings
        self.state = Mutex(state)
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
    public func markDown(_ address: SocketAddress, service name: String? = nil) -> Result<Bool, PoolError> {
        let found: (Service, HealthSettings, Bool)? = state.withLock { st in
            guard let r = name.map({ n in st.services.first { $0.service.name == n } }) ?? st.services.first else { return nil }
            return (r.service, r.config.settings.health, st.services.count == 1 && r.service.name == "default")
        }
        guard let (service, health, plain) = found else { return .failure(.unknown(address)) }
        let result = service.pool.markDown(address, rise: health.rise, fall: health.fall)
        if case .success(true) = result {
            log.backendChanged(address, "down", plain ? "marked down by hand" : "marked down by hand, service \(service.name)",
                               service: service.name)
        }
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

    /// Every service started since the process began, by index (removed ones included).
    var everyService: [Service] { state.withLock { $0.everyService } }

    /// Totals over all workers and services (removed services included).
    public var counters: WorkerCounters { metrics.counters }

    /// Per worker, in worker order: its process counters plus its rows of every service.
    public var workerCounters: [WorkerCounters] {
        let services = everyService
        return workers.map { w in
            services.reduce(w.counters) { $0 + MetricsSnapshot.counters(row: $1.rowTotals(worker: w.index)) }
        }
    }

    public var workerCount: Int { workers.count }

    /// Registers what `reopenLogs()` runs (the access-log writer registers itself when it starts).
    public func addLogReopener(_ reopen: @escaping @Sendable () -> Void) {
        logReopeners.withLock { $0.append(reopen) }
    }

    /// Reopens every log file registered (SIGUSR1, after logrotate moved them). Returns at once; the
    /// writers reopen before their next batch. Safe from any thread.
    public func reopenLogs() {
        for reopen in logReopeners.withLock({ $0 }) { reopen() }
    }

    /// True once a drain or stop began (the admin API's `/healthz` answers 503 from then on).
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Counters, close reasons, connect failure causes and histograms, summed over workers and every
    /// service (removed ones included; `Service.metrics` gives one service's). Reads only the workers'
    /// own cells: a scrape never pauses or slows a worker.
    public var metrics: MetricsSnapshot { MetricsSnapshot.sum(workers, services: everyService) }

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
    private var worker: Worker<LinuxKernel>?

    init(_ worker: consuming Worker<LinuxKernel>) { self.worker = consume worker }

    func take() -> Worker<LinuxKernel>? { worker.take() }
}
