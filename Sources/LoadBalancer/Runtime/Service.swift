import Synchronization

/// What a service counts, per worker, summed on read.
public enum ServiceCounter: Int, CaseIterable, Sendable {
    case accepted, activePairs, badGateways
}

/// A snapshot of one service's counters, summed over workers: `counters[.accepted]`.
public struct ServiceCounters: Sendable, Equatable, CustomStringConvertible {
    private var values = [Int](repeating: 0, count: ServiceCounter.allCases.count)

    public init() {}

    public subscript(_ counter: ServiceCounter) -> Int {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    public var description: String {
        ServiceCounter.allCases.map { "\($0): \(self[$0])" }.joined(separator: ", ")
    }
}

/// A running service: its name, its own backend pool (health and per-backend counters live there) and
/// its pair counters. Every worker serves every service; a pair carries its service's `index`, the
/// slot of the service in every worker's table. Indexes are never reused while the process runs: a
/// service a reload removed keeps its slot while its pairs drain.
public final class Service: Sendable {
    public let name: String
    let index: Int
    public let pool: BackendPool
    /// `--max-conns`, allow/deny and the per-source counts, shared by the workers.
    let admission: Admission
    private let workerCount: Int
    /// workerCount × ServiceCounter cells; each worker writes only its own row.
    /// nonisolated(unsafe): the pointer never changes after init, and every access to what it points
    /// at is atomic.
    nonisolated(unsafe) private let cells: UnsafeMutablePointer<Atomic<Int>>

    init(name: String, index: Int, pool: BackendPool, admission: Admission, workerCount: Int) {
        self.name = name
        self.index = index
        self.pool = pool
        self.admission = admission
        self.workerCount = workerCount
        let n = workerCount * ServiceCounter.allCases.count
        cells = .allocate(capacity: n)
        for i in 0..<n { (cells + i).initialize(to: Atomic(0)) }
    }

    deinit { cells.deallocate() }

    /// Single-writer increment by worker `worker`: a plain load and store, no locked instruction.
    @inline(__always)
    func bump(_ counter: ServiceCounter, worker: Int, by n: Int = 1) {
        let cell = cells + (worker &* ServiceCounter.allCases.count &+ counter.rawValue)
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// Totals over all workers.
    public var counters: ServiceCounters {
        var sum = ServiceCounters()
        for w in 0..<workerCount {
            for c in ServiceCounter.allCases {
                sum[c] += cells[w * ServiceCounter.allCases.count + c.rawValue].load(ordering: .relaxed)
            }
        }
        return sum
    }
}
