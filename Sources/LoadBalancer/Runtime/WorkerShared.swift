import Synchronization

/// What a worker counts: the one list the snapshot, the sums and `/metrics` all come from.
/// `buffersInUse` and `pipesInUse` are gauges (pooled buffers and pipes holding bytes in flight right
/// now); so is `queueLength`. The per-service ones (`isPerService`) live in each service's
/// `ServiceCells` rows; the rest in `WorkerShared`, for the process.
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
    /// Clients closed with a reset at accept: an allow/deny rule or `--max-conns-per-source`.
    case refused
    /// Pairs that waited for a backend place, and those whose wait ran out (`--queue-timeout`).
    case queued, queueTimeouts
    /// Pairs waiting right now.
    case queueLength

    /// Kept per service (the pair, probe or listener that counts it belongs to one; a pair that a
    /// listener routing by server name has not routed yet counts on no service, in the process's own
    /// row); the others are the process's own: accept pauses, splice switches, preambles and server
    /// names (refused before a service is known), pooled buffers and pipes, access-log drops.
    public var isPerService: Bool {
        switch self {
        case .accepted, .activePairs, .closedPairs, .badGateways, .connectFailures, .bytesUp, .bytesDown,
             .probesStarted, .probesFailed, .connectAttempts, .retries, .refused, .queued, .queueTimeouts, .queueLength:
            true
        case .acceptPauses, .spliceSwitches, .proxyUntrusted, .preambleRejected, .preambleTimeouts, .serverNameRefused,
             .buffersInUse, .pipesInUse, .accessLogDropped:
            false
        }
    }
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
    /// A reload's share for this worker: services to add, settings to change, services to retire,
    /// listeners to open and close.
    case reconfigure(WorkerReconfiguration)
    /// An upgrade: hand `export` a duplicate of each open listener (the worker keeps its own).
    case exportListeners(ListenerExport)
}

/// Collects the workers' duplicated listeners for a takeover; each worker delivers once.
final class ListenerExport: Sendable {
    /// By worker index: (listener id, duplicated fd).
    let delivered = Mutex<[Int: [(id: UInt32, fd: Int32)]]>([:])

    func deliver(worker: Int, _ listeners: [(id: UInt32, fd: Int32)]) {
        delivered.withLock { $0[worker] = listeners }
    }
}

/// What a reload asks of one worker. The listeners' fds are already open (bound by the reloading
/// thread); the worker takes ownership of them with the command.
struct WorkerReconfiguration: Sendable {
    /// New services, in index order, each at the index after the worker's last.
    var added: [(service: Service, settings: ServiceRunSettings)] = []
    /// Kept services whose settings changed.
    var changed: [(index: Int, settings: ServiceRunSettings)] = []
    /// Removed services: their pairs may finish until `deadline` (monotonic ns).
    var retired: [(index: Int, deadline: UInt64)] = []
    var openListeners: [WorkerListener] = []
    /// Listener ids to close (a removed address, or a removed service's).
    var closeListeners: [UInt32] = []
    /// Every listener kept or opened, with its owner and route as the new configuration has them
    /// (applied after `openListeners`): a shared address changes owner or routes without a new socket.
    var listenerRoles: [(id: UInt32, service: UInt16, route: ListenerRoute?)] = []

    var isEmpty: Bool {
        added.isEmpty && changed.isEmpty && retired.isEmpty && openListeners.isEmpty && closeListeners.isEmpty && listenerRoles.isEmpty
    }
}

/// The part of a worker other threads may touch. Rule: the queue under its lock; counters written by
/// the worker thread only (relaxed), read by anyone.
final class WorkerShared: Sendable {
    let index: Int
    let wakeFD: Int32
    private let queue = Mutex<[WorkerCommand]>([])
    let finished = Atomic<Bool>(false)

    /// A `ServiceCells` row of the process's own, written by the worker thread only: the process-only
    /// counters, and the pair counters of pairs no service has yet (`unrouted`). A pair of a service
    /// is counted in that service's row instead.
    /// nonisolated(unsafe): the pointer never changes after init, and every access to what it points
    /// at is atomic.
    nonisolated(unsafe) private let cells: UnsafeMutablePointer<Atomic<Int>>
    /// Closed pairs waiting for the access-log writer; nil while the access log is off.
    let accessLog: AccessLogRing?

    /// Whether `deinit` closes `wakeFD`: not when a simulated kernel made it (its fd numbers are not
    /// this process's).
    private let ownsWakeFD: Bool

    convenience init(index: Int, accessLogCapacity: Int = 0) throws(SystemError) {
        self.init(index: index, wakeFD: try Sys.eventFD(), ownsWakeFD: true, accessLogCapacity: accessLogCapacity)
    }

    init(index: Int, wakeFD: Int32, ownsWakeFD: Bool, accessLogCapacity: Int = 0) {
        self.index = index
        self.wakeFD = wakeFD
        self.ownsWakeFD = ownsWakeFD
        cells = CounterCells.allocate(ServiceCells.usedCells)
        accessLog = accessLogCapacity > 0 ? AccessLogRing(capacity: accessLogCapacity) : nil
    }

    deinit {
        if ownsWakeFD { Sys.close(wakeFD) }
        cells.deallocate()
    }

    func send(_ command: WorkerCommand) {
        enqueue(command)
        Sys.signalEventFD(wakeFD)
    }

    /// Queues a command without waking the worker (the caller signals `wakeFD` through its kernel).
    func enqueue(_ command: WorkerCommand) {
        queue.withLock { $0.append(command) }
    }

    func takeCommands() -> [WorkerCommand] {
        queue.withLock { q in
            let taken = q
            q.removeAll()
            return taken
        }
    }

    /// Single-writer increment: a plain load and store, no locked instruction. Process counters only:
    /// a per-service one goes to the pair's service (`WorkerService.cells`).
    @inline(__always)
    func bump(_ counter: WorkerCounter, by n: Int = 1) {
        assert(!counter.isPerService, "\(counter) is counted per service")
        let cell = cells + counter.rawValue
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inline(__always)
    func load(_ counter: WorkerCounter) -> Int { cells[counter.rawValue].load(ordering: .relaxed) }

    /// Single-writer store (gauges).
    @inline(__always)
    func set(_ counter: WorkerCounter, _ value: Int) { cells[counter.rawValue].store(value, ordering: .relaxed) }

    /// Where a pair on a listener that routes by server name is counted until it is routed (and
    /// for good, if it never is): no service's.
    var unrouted: ServiceCells { ServiceCells(base: cells) }

    /// This worker's own row (process counters, and pairs of no service), as `Service.rowTotals`.
    func rowTotals() -> [Int] { (0..<ServiceCells.usedCells).map { cells[$0].load(ordering: .relaxed) } }

    /// This worker's own counters: the process's, and those of pairs no service has.
    var counters: WorkerCounters { MetricsSnapshot.counters(row: rowTotals()) }
}
