import Synchronization

/// Histogram buckets for connect time and pair duration, in seconds (Prometheus' `le` bounds).
public enum MetricBuckets {
    /// Accept to backend connected (retries included).
    public static let connectSeconds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Accept to close.
    public static let durationSeconds: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600]

    static let connectNanos: [UInt64] = connectSeconds.map { UInt64($0 * 1e9) }
    static let durationNanos: [UInt64] = durationSeconds.map { UInt64($0 * 1e9) }

    /// The bucket an observation falls in: the first bound it does not exceed, or `bounds.count`.
    @inline(__always)
    static func bucket(_ value: UInt64, _ bounds: [UInt64]) -> Int {
        var i = 0
        while i < bounds.count && value > bounds[i] { i += 1 }
        return i
    }
}

/// A histogram summed over workers: `counts[i]` observations in bucket i alone (one more entry than
/// `bounds`, for those above the last bound); `sum` in seconds.
public struct HistogramSnapshot: Sendable, Equatable {
    public let bounds: [Double]
    public var counts: [Int]
    public var sum: Double
    public var count: Int { counts.reduce(0, +) }

    public init(bounds: [Double], counts: [Int], sum: Double) {
        self.bounds = bounds
        self.counts = counts
        self.sum = sum
    }
}

/// Everything the workers count, summed: what `/metrics` and `/api/stats` render.
public struct MetricsSnapshot: Sendable {
    public var counters: WorkerCounters
    /// Closed pairs by reason (`.none` unused).
    public var closes: [CloseReason: Int]
    /// Failed connect attempts by cause (`.local` ones blame no backend).
    public var connectFailures: [ConnectFailure: Int]
    public var connectTime: HistogramSnapshot
    public var pairDuration: HistogramSnapshot
}

/// Where each histogram and cause cell lives after a `ServiceCells` row's counters: close reasons,
/// connect failure causes, then the two histograms (buckets, then a sum in nanoseconds).
enum MetricLayout {
    static let closeBase = 0
    static let failureBase = closeBase + CloseReason.allCases.count
    static let failureCount = 6
    static let connectBase = failureBase + failureCount
    static let connectCells = MetricBuckets.connectSeconds.count + 2
    static let durationBase = connectBase + connectCells
    static let durationCells = MetricBuckets.durationSeconds.count + 2
    static let total = durationBase + durationCells
}

/// One worker's counters for one service: a row of cells written by that worker only. The first
/// `WorkerCounter.allCases.count` cells are indexed by `WorkerCounter` (only the per-service ones are
/// used), then `MetricLayout`'s. Each event is one plain relaxed load and store to a line only this
/// worker writes, as for the process's own counters in `WorkerShared`.
struct ServiceCells {
    let base: UnsafeMutablePointer<Atomic<Int>>

    static let extraBase = WorkerCounter.allCases.count
    static let usedCells = extraBase + MetricLayout.total
    /// Rows are padded to whole 128-byte blocks (the adjacent-line prefetch included), so two workers'
    /// rows never share a line.
    static let rowCells = (usedCells * MemoryLayout<Atomic<Int>>.stride + 127) / 128 * 128 / MemoryLayout<Atomic<Int>>.stride

    @inline(__always)
    private func add(_ index: Int, _ n: Int) {
        let cell = base + index
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// Single-writer increment of a per-service counter.
    @inline(__always)
    func bump(_ counter: WorkerCounter, by n: Int = 1) { add(counter.rawValue, n) }

    @inline(__always)
    func countClose(_ reason: CloseReason) { add(Self.extraBase + MetricLayout.closeBase + Int(reason.rawValue), 1) }

    @inline(__always)
    func countConnectFailure(_ failure: ConnectFailure) {
        add(Self.extraBase + MetricLayout.failureBase + min(Int(failure.rawValue), MetricLayout.failureCount - 1), 1)
    }

    @inline(__always)
    func observeConnect(nanoseconds: UInt64) {
        let base = Self.extraBase + MetricLayout.connectBase
        add(base + MetricBuckets.bucket(nanoseconds, MetricBuckets.connectNanos), 1)
        add(base + MetricLayout.connectCells - 1, Int(truncatingIfNeeded: nanoseconds))
    }

    @inline(__always)
    func observeDuration(nanoseconds: UInt64) {
        let base = Self.extraBase + MetricLayout.durationBase
        add(base + MetricBuckets.bucket(nanoseconds, MetricBuckets.durationNanos), 1)
        add(base + MetricLayout.durationCells - 1, Int(truncatingIfNeeded: nanoseconds))
    }
}

/// Cells on their own cache lines: zeroed, 128-byte aligned and padded.
enum CounterCells {
    static func allocate(_ count: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        let stride = MemoryLayout<Atomic<Int>>.stride
        let bytes = max((count * stride + 127) / 128 * 128, 128)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128)
        let cells = raw.bindMemory(to: Atomic<Int>.self, capacity: bytes / stride)
        for i in 0..<(bytes / stride) { (cells + i).initialize(to: Atomic(0)) }
        return cells
    }
}

extension MetricsSnapshot {
    /// The counters of a `ServiceCells` row (or a sum of rows).
    static func counters(row: [Int]) -> WorkerCounters {
        var counters = WorkerCounters()
        for c in WorkerCounter.allCases { counters[c] = row[c.rawValue] }
        return counters
    }

    /// A snapshot from a `ServiceCells` row, or a sum of rows.
    init(row: [Int]) {
        let extra = ServiceCells.extraBase
        var closes: [CloseReason: Int] = [:]
        for r in CloseReason.allCases where r != .none { closes[r] = row[extra + MetricLayout.closeBase + Int(r.rawValue)] }
        var failures: [ConnectFailure: Int] = [:]
        for f in [ConnectFailure.refused, .reset, .timeout, .unreachable, .other, .local] {
            failures[f] = row[extra + MetricLayout.failureBase + Int(f.rawValue)]
        }
        func histogram(_ base: Int, _ cells: Int, _ bounds: [Double]) -> HistogramSnapshot {
            let b = extra + base
            return HistogramSnapshot(bounds: bounds, counts: Array(row[b..<(b + cells - 1)]), sum: Double(row[b + cells - 1]) / 1e9)
        }
        self.init(
            counters: Self.counters(row: row), closes: closes, connectFailures: failures,
            connectTime: histogram(MetricLayout.connectBase, MetricLayout.connectCells, MetricBuckets.connectSeconds),
            pairDuration: histogram(MetricLayout.durationBase, MetricLayout.durationCells, MetricBuckets.durationSeconds))
    }

    /// The process: each worker's own row (process counters, pairs of no service) plus every
    /// service's rows (removed services included: their counts stay in the totals). Reads only cells;
    /// takes no lock a worker waits on.
    static func sum(_ workers: [WorkerShared], services: [Service]) -> MetricsSnapshot {
        var row = [Int](repeating: 0, count: ServiceCells.usedCells)
        for t in workers.map({ $0.rowTotals() }) + services.map({ $0.rowTotals() }) {
            for i in row.indices { row[i] += t[i] }
        }
        return MetricsSnapshot(row: row)
    }
}
