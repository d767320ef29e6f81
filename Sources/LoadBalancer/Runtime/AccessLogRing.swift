import Synchronization

/// One closed pair, as the access log reports it. Plain data, copied into a ring by the worker; the
/// writer thread formats it (the worker never builds text).
public struct AccessRecord: Sendable {
    /// Monotonic ns at accept and at close (`MonotonicClock`); the writer converts to wall time.
    public var acceptedAt: UInt64 = 0
    public var closedAt: UInt64 = 0
    /// Monotonic ns at connect (0: never connected).
    public var connectedAt: UInt64 = 0
    public var client = SocketAddress()
    /// The backend of the last attempt; family 0 when none was tried.
    public var backend = SocketAddress()
    /// Index into `LoadBalancer.listenAddresses`.
    public var listener: UInt16 = 0
    /// The pair's service: its index, a name in `LoadBalancer.serviceNamesByIndex`.
    public var service: UInt16 = 0
    public var retries: UInt8 = 0
    public var reason: CloseReason = .none
    /// Client to backend, backend to client.
    public var bytesUp = 0
    public var bytesDown = 0

    public init() {}

    public var hasBackend: Bool { backend.family != 0 }
    /// Seconds from accept to connected, or nil when no connect completed.
    public var connectSeconds: Double? { connectedAt == 0 ? nil : Double(connectedAt &- acceptedAt) / 1e9 }
    public var durationSeconds: Double { Double(closedAt &- acceptedAt) / 1e9 }
}

/// A single-producer, single-consumer ring of access records: the worker pushes (never blocks: when
/// the ring is full the record is dropped and counted), the writer thread pops in batches.
public final class AccessLogRing: Sendable {
    public let capacity: Int
    private let mask: Int
    /// nonisolated(unsafe): a slot is written only by the producer before it publishes `head`
    /// (release), and read only by the consumer after it sees `head` (acquire) and before it moves
    /// `tail` past the slot (release), which the producer reads (acquire) before reusing it.
    nonisolated(unsafe) private let slots: UnsafeMutablePointer<AccessRecord>
    /// Written by the worker on every push.
    private let head = Atomic<Int>(0)
    /// 128 bytes apart: the writer's `tail` stores do not evict the worker's `head` line.
    private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// Written by the writer thread once per batch.
    private let tail = Atomic<Int>(0)

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int) {
        var c = 1
        while c < max(capacity, 2) { c <<= 1 }
        self.capacity = c
        mask = c - 1
        slots = .allocate(capacity: c)
        slots.initialize(repeating: AccessRecord(), count: c)
    }

    deinit { slots.deallocate() }

    /// Producer side (one worker thread). False when full: the caller counts the drop.
    @inline(__always)
    func push(_ record: AccessRecord) -> Bool {
        let h = head.load(ordering: .relaxed)
        if h &- tail.load(ordering: .acquiring) >= capacity { return false }
        slots[h & mask] = record
        head.store(h &+ 1, ordering: .releasing)
        return true
    }

    /// Consumer side (one writer thread): hands each waiting record to `body`, oldest first, and
    /// returns how many. At most `limit` per call.
    public func drain(limit: Int = .max, _ body: (borrowing AccessRecord) -> Void) -> Int {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        let n = min(h &- t, limit)
        for i in 0..<n { body(slots[(t &+ i) & mask]) }
        tail.store(t &+ n, ordering: .releasing)
        return n
    }
}
