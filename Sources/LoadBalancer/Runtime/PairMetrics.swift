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

/// Where each extra per-worker cell lives in `WorkerShared.extra`: close reasons, connect failure
/// causes, then the two histograms (buckets, then a sum in nanoseconds).
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

extension WorkerShared {
    @inline(__always)
    private func bumpExtra(_ index: Int, by n: Int = 1) {
        let cell = extra + index
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inline(__always)
    func countClose(_ reason: CloseReason) { bumpExtra(MetricLayout.closeBase + Int(reason.rawValue)) }

    @inline(__always)
    func countConnectFailure(_ failure: ConnectFailure) {
        bumpExtra(MetricLayout.failureBase + min(Int(failure.rawValue), MetricLayout.failureCount - 1))
    }

    @inline(__always)
    func observeConnect(nanoseconds: UInt64) {
        bumpExtra(MetricLayout.connectBase + MetricBuckets.bucket(nanoseconds, MetricBuckets.connectNanos))
        bumpExtra(MetricLayout.connectBase + MetricLayout.connectCells - 1, by: Int(truncatingIfNeeded: nanoseconds))
    }

    @inline(__always)
    func observeDuration(nanoseconds: UInt64) {
        bumpExtra(MetricLayout.durationBase + MetricBuckets.bucket(nanoseconds, MetricBuckets.durationNanos))
        bumpExtra(MetricLayout.durationBase + MetricLayout.durationCells - 1, by: Int(truncatingIfNeeded: nanoseconds))
    }

    func loadExtra(_ index: Int) -> Int { extra[index].load(ordering: .relaxed) }
}

extension MetricsSnapshot {
    /// Sums the workers' cells (relaxed loads: each is exact, the set is not one instant, as with any scrape).
    static func sum(_ workers: [WorkerShared]) -> MetricsSnapshot {
        var totals = [Int](repeating: 0, count: MetricLayout.total)
        var counters = WorkerCounters()
        for w in workers {
            counters = counters + w.counters
            for i in 0..<MetricLayout.total { totals[i] += w.loadExtra(i) }
        }
        var closes: [CloseReason: Int] = [:]
        for r in CloseReason.allCases where r != .none { closes[r] = totals[MetricLayout.closeBase + Int(r.rawValue)] }
        var failures: [ConnectFailure: Int] = [:]
        for f in [ConnectFailure.refused, .reset, .timeout, .unreachable, .other, .local] {
            failures[f] = totals[MetricLayout.failureBase + Int(f.rawValue)]
        }
        func histogram(_ base: Int, _ cells: Int, _ bounds: [Double]) -> HistogramSnapshot {
            HistogramSnapshot(bounds: bounds, counts: Array(totals[base..<(base + cells - 1)]), sum: Double(totals[base + cells - 1]) / 1e9)
        }
        return MetricsSnapshot(
            counters: counters, closes: closes, connectFailures: failures,
            connectTime: histogram(MetricLayout.connectBase, MetricLayout.connectCells, MetricBuckets.connectSeconds),
            pairDuration: histogram(MetricLayout.durationBase, MetricLayout.durationCells, MetricBuckets.durationSeconds))
    }
}
