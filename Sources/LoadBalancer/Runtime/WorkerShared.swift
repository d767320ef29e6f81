import Synchronization

/// Counters a worker publishes. Each worker writes only its own, so updates never contend; readers
/// (stats, tests, later /metrics) load them relaxed.
public struct WorkerCounters: Sendable, Equatable {
    public var accepted = 0
    public var activePairs = 0
    public var closedPairs = 0
    public var badGateways = 0
    public var connectFailures = 0
    public var bytesUp = 0
    public var bytesDown = 0
    public var acceptPauses = 0
    public var probesStarted = 0
    public var probesFailed = 0
    /// Times a direction moved from copying to splice(2).
    public var spliceSwitches = 0
    /// Gauges: pooled buffers and pipes holding bytes in flight right now.
    public var buffersInUse = 0
    public var pipesInUse = 0

    public static func + (a: WorkerCounters, b: WorkerCounters) -> WorkerCounters {
        var s = a
        s.accepted += b.accepted; s.activePairs += b.activePairs; s.closedPairs += b.closedPairs
        s.badGateways += b.badGateways; s.connectFailures += b.connectFailures
        s.bytesUp += b.bytesUp; s.bytesDown += b.bytesDown; s.acceptPauses += b.acceptPauses
        s.probesStarted += b.probesStarted; s.probesFailed += b.probesFailed; s.spliceSwitches += b.spliceSwitches
        s.buffersInUse += b.buffersInUse; s.pipesInUse += b.pipesInUse
        return s
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

    let accepted = Atomic<Int>(0)
    let activePairs = Atomic<Int>(0)
    let closedPairs = Atomic<Int>(0)
    let badGateways = Atomic<Int>(0)
    let connectFailures = Atomic<Int>(0)
    let bytesUp = Atomic<Int>(0)
    let bytesDown = Atomic<Int>(0)
    let acceptPauses = Atomic<Int>(0)
    let probesStarted = Atomic<Int>(0)
    let probesFailed = Atomic<Int>(0)
    let spliceSwitches = Atomic<Int>(0)
    let buffersInUse = Atomic<Int>(0)
    let pipesInUse = Atomic<Int>(0)

    init(index: Int) throws(SystemError) {
        self.index = index
        wakeFD = try Sys.eventFD()
    }

    deinit { Sys.close(wakeFD) }

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
    static func bump(_ a: borrowing Atomic<Int>, by n: Int = 1) {
        a.store(a.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    var counters: WorkerCounters {
        WorkerCounters(
            accepted: accepted.load(ordering: .relaxed), activePairs: activePairs.load(ordering: .relaxed),
            closedPairs: closedPairs.load(ordering: .relaxed), badGateways: badGateways.load(ordering: .relaxed),
            connectFailures: connectFailures.load(ordering: .relaxed), bytesUp: bytesUp.load(ordering: .relaxed),
            bytesDown: bytesDown.load(ordering: .relaxed), acceptPauses: acceptPauses.load(ordering: .relaxed),
            probesStarted: probesStarted.load(ordering: .relaxed), probesFailed: probesFailed.load(ordering: .relaxed),
            spliceSwitches: spliceSwitches.load(ordering: .relaxed),
            buffersInUse: buffersInUse.load(ordering: .relaxed), pipesInUse: pipesInUse.load(ordering: .relaxed))
    }
}
