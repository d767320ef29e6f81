/// One service as one worker serves it: the shared service (pool, counters, admission), its settings
/// in loop units, the worker's handle on its pool's balancing, its share of the health checks, and its
/// queue of pairs waiting for a backend place. Lives in the
/// worker's service table at the service's index; owned by the worker thread.
struct WorkerService: ~Copyable {
    let service: Service
    let pool: BackendPool
    let admission: Admission
    /// This worker's counters for the service (its row of the service's cells).
    let cells: ServiceCells
    var settings: ServiceRunSettings
    var view: Balancer
    var walk: ProbeWalk
    /// Pairs waiting for a backend place (slot index | generation << 32), oldest first from
    /// `queueHead`: this service's FIFO on this worker (HAProxy's per-backend queue).
    var queue: [UInt64] = []
    var queueHead = 0
    /// Accepting on this service's listeners paused at `--max-conns` (resumed when a place frees).
    var pausedAtLimit = false
    /// Pairs of this service open on this worker.
    var activePairs = 0
    /// The next `source` address of this service to bind (see Worker+Source.swift); kept across a
    /// reload that changes the list (taken modulo its length).
    var sourceCursor = 0
    /// Removed by a reload: its listeners are closed, its walk stops, and its pairs still open at
    /// `retireDeadline` (monotonic ns) are closed.
    var retired = false
    var retireDeadline: UInt64 = 0

    init(service: Service, settings: ServiceRunSettings, workerIndex: Int, now: UInt64) {
        self.service = service
        view = Balancer(pool: service.pool, seed: UInt64(workerIndex) &+ 1, panicThreshold: settings.panicThreshold)
        pool = service.pool
        admission = service.admission
        cells = service.cells(worker: workerIndex)
        self.settings = settings
        walk = ProbeWalk(settings: settings, workerIndex: workerIndex, backendCapacity: service.pool.table.capacity, now: now)
    }
}

/// A listening socket of a worker and the service it accepts for.
struct WorkerListener {
    var fd: Int32
    /// The service owning the socket. With a `route`, its pairs belong to no service until their
    /// ClientHello names one, and its max-conns does not pause this listener.
    var service: UInt16
    /// Names the listener to the control side (a reload closes listeners by id).
    var id: UInt32
    /// Set when the listener reads TLS server names (shared by services, or one listing `server_names`).
    var route: ListenerRoute? = nil

    /// Whether it is polled now: a listener with a route is not paused by one service's max-conns.
    func watched(in services: UnsafeMutablePointer<WorkerService>) -> Bool {
        fd >= 0 && (route != nil || !services[Int(service)].pausedAtLimit)
    }
}
