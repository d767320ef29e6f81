/// One service as one worker serves it: the shared service (pool, counters), its settings in loop
/// units, the worker's round-robin view of its pool and its share of the health checks. Lives in the
/// worker's service table at the service's index; owned by the worker thread.
struct WorkerService: ~Copyable {
    let service: Service
    let pool: BackendPool
    var settings: ServiceRunSettings
    var view: RoundRobinView
    var walk: ProbeWalk
    /// Pairs of this service open on this worker.
    var activePairs = 0
    /// Removed by a reload: its listeners are closed, its walk stops, and its pairs still open at
    /// `retireDeadline` (monotonic ns) are closed.
    var retired = false
    var retireDeadline: UInt64 = 0

    init(service: Service, settings: ServiceRunSettings, workerIndex: Int, now: UInt64) {
        self.service = service
        view = RoundRobinView(panicThreshold: settings.panicThreshold)
        pool = service.pool
        self.settings = settings
        walk = ProbeWalk(settings: settings, workerIndex: workerIndex, backendCapacity: service.pool.table.capacity, now: now)
    }
}

/// A listening socket of a worker and the service it accepts for.
struct WorkerListener {
    var fd: Int32
    var service: UInt16
    /// Names the listener to the control side (a reload closes listeners by id).
    var id: UInt32
}
