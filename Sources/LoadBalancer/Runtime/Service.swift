import Synchronization

/// A snapshot of one service's counters, summed over workers: `counters[.accepted]`. Only the
/// counters a service keeps (`WorkerCounter.isPerService`) are set; the process's own read 0.
public typealias ServiceCounters = WorkerCounters

/// A running service: its name, its own backend pool (health and per-backend counters live there) and
/// its counters. Every worker serves every service; a pair carries its service's `index`, the slot of
/// the service in every worker's table. Indexes are never reused while the process runs: a service a
/// reload removed keeps its slot (and its counts) while its pairs drain, and after.
public final class Service: Sendable {
    public let name: String
    let index: Int
    public let pool: BackendPool
    /// `--max-conns`, allow/deny and the per-source counts, shared by the workers.
    let admission: Admission
    private let workerCount: Int
    /// One `ServiceCells` row per worker, each on its own cache lines; a worker writes only its row.
    /// Allocated with the service, before any worker sees it: a reload that adds a service hands each
    /// worker a row that already exists, so counting needs no lock and no table that grows.
    /// nonisolated(unsafe): the pointer never changes after init, and every access to what it points
    /// at is atomic.
    nonisolated(unsafe) private let cells: UnsafeMutablePointer<Atomic<Int>>

    init(name: String, index: Int, pool: BackendPool, admission: Admission, workerCount: Int) {
        self.name = name
        self.index = index
        self.pool = pool
        self.admission = admission
        self.workerCount = workerCount
        cells = CounterCells.allocate(workerCount * ServiceCells.rowCells)
    }

    deinit { cells.deallocate() }

    /// Worker `worker`'s row: what that worker counts for this service.
    func cells(worker: Int) -> ServiceCells {
        precondition(worker >= 0 && worker < workerCount)
        return ServiceCells(base: cells + worker * ServiceCells.rowCells)
    }

    /// Sums of worker rows (relaxed loads: each cell is exact, the set is not one instant).
    func rowTotals(worker: Int? = nil) -> [Int] {
        var totals = [Int](repeating: 0, count: ServiceCells.usedCells)
        for w in worker.map({ [$0] }) ?? Array(0..<workerCount) {
            let row = cells + w * ServiceCells.rowCells
            for i in 0..<ServiceCells.usedCells { totals[i] += row[i].load(ordering: .relaxed) }
        }
        return totals
    }

    /// This service's counters, close causes, connect failures and histograms, summed over workers.
    public var metrics: MetricsSnapshot { MetricsSnapshot(row: rowTotals()) }

    /// This service's counters summed over workers (the process-only ones read 0).
    public var counters: WorkerCounters { MetricsSnapshot.counters(row: rowTotals()) }
}
