import Synchronization

/// What a worker counts: the one list the snapshot, the sums and (later) `/metrics` all come from.
/// The last two are gauges (pooled buffers and pipes holding bytes in flight right now).
public enum WorkerCounter: Int, CaseIterable, Sendable {
    case accepted, activePairs, closedPairs, badGateways, connectFailures, bytesUp, bytesDown
    case acceptPauses, probesStarted, probesFailed
    /// Times a direction moved from copying to splice(2).
    case spliceSwitches
    /// Clients refused before reading a byte: `--accept-proxy` and the peer is not in `--accept-proxy-from`.
    case proxyUntrusted
    /// Preambles refused: a malformed, truncated or oversized PROXY header (or ClientHello).
    case preambleRejected
    /// Preambles not complete within `--preamble-timeout`.
    case preambleTimeouts
    /// TLS clients refused for their server name: none given, or one no service serves.
    case serverNameRefused
    case buffersInUse, pipesInUse
    /// Backend connect attempts started, and those that were retries after a failure.
    case connectAttempts, retries
    /// Access-log records dropped because the logger had not caught up (never the traffic).
    case accessLogDropped
}

/// A snapshot of counters (one worker's, or the sum over workers): `counters[.accepted]`.
public struct WorkerCounters: Sendable, Equatable, CustomStringConvertible {
    private var values = [Int](repeating: 0, count: WorkerCounter.allCases.count)

    public init() {}

    public subscript(_ counter: WorkerCounter) -> Int {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    public static func + (a: WorkerCounters, b: WorkerCounters) -> WorkerCounters {
        var sum = a
        for i in sum.values.indices { sum.values[i] += b.values[i] }
        return sum
    }

    public var description: String {
        WorkerCounter.allCases.map { "\($0): \(self[$0])" }.joined(separator: ", ")
    }
}

/// Commands other threads send a worker; delivered through `WorkerShared`'s queue and eventfd.
enum WorkerCommand: Sendable {
    /// Close the listeners; let pairs finish until `deadline` (monotonic ns), then close the rest and stop.
    case drain(deadline: UInt64)
    /// Close everything and stop now.
    case stop
}

/// The part of a worker other threads may touch. Rule: the queue under its lock; counters written by
/// the worker thread only (relaxed), read by anyone.
final class WorkerShared: Sendable {
    let index: Int
    let wakeFD: Int32
    private let queue = Mutex<[WorkerCommand]>([])
    let finished = Atomic<Bool>(false)

    /// One cell per `WorkerCounter`, written by the worker thread only.
    /// nonisolated(unsafe): the pointer never changes after init, and every access to what it points
    /// at is atomic.
    nonisolated(unsafe) private let cells: UnsafeMutablePointer<Atomic<Int>>
    /// Close reasons, connect failure causes and histograms (`MetricLayout`), same rule as `cells`.
    nonisolated(unsafe) let extra: UnsafeMutablePointer<Atomic<Int>>
    /// Closed pairs waiting for the access-log writer; nil while the access log is off.
    let accessLog: AccessLogRing?

    init(index: Int, accessLogCapacity: Int = 0) throws(SystemError) {
        self.index = index
        wakeFD = try Sys.eventFD()
        cells = .allocate(capacity: WorkerCounter.allCases.count)
        for i in 0..<WorkerCounter.allCases.count { (cells + i).initialize(to: Atomic(0)) }
        extra = .allocate(capacity: MetricLayout.total)
        for i in 0..<MetricLayout.total { (extra + i).initialize(to: Atomic(0)) }
        accessLog = accessLogCapacity > 0 ? AccessLogRing(capacity: accessLogCapacity) : nil
    }

    deinit {
        Sys.close(wakeFD)
        cells.deallocate()
        extra.deallocate()
    }

    func send(_ command: WorkerCommand) {
        queue.withLock { $0.append(command) }
        Sys.signalEventFD(wakeFD)
    }

    func takeCommands() -> [WorkerCommand] {
        queue.withLock { q in
            let taken = q
            q.removeAll()
            return taken
        }
    }

    /// Single-writer increment: a plain load and store, no locked instruction.
    @inline(__always)
    func bump(_ counter: WorkerCounter, by n: Int = 1) {
        let cell = cells + counter.rawValue
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inline(__always)
    func load(_ counter: WorkerCounter) -> Int { cells[counter.rawValue].load(ordering: .relaxed) }

    /// Single-writer store (gauges).
    @inline(__always)
    func set(_ counter: WorkerCounter, _ value: Int) { cells[counter.rawValue].store(value, ordering: .relaxed) }

    var counters: WorkerCounters {
        var snapshot = WorkerCounters()
        for counter in WorkerCounter.allCases { snapshot[counter] = load(counter) }
        return snapshot
    }
}
