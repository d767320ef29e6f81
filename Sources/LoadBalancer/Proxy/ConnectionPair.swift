/// One direction of a pair: bytes read from a source socket, not yet accepted by the destination.
/// Usually empty: bytes are read into the worker's scratch buffer and written straight on; only a short
/// write's leftover is copied into a pooled buffer (or, for bulk streams, left in a pooled pipe).
struct Direction {
    var buffer: UnsafeMutableRawPointer? = nil
    var start: Int32 = 0
    var end: Int32 = 0
    var pipeRead: Int32 = -1
    var pipeWrite: Int32 = -1
    /// Bytes sitting in the pipe.
    var piped: Int32 = 0
    /// The source reported data we have not read yet (an edge seen while we could not read).
    var readable = false
    /// The source shut its write side (EPOLLRDHUP): a short read then means the stream has ended.
    var sourceHup = false
    /// The source reported an error (EPOLLERR): read on to collect it, so a reset is passed on as one.
    var sourceError = false
    /// EOF read from the source.
    var sourceEOF = false
    /// shutdown(SHUT_WR) sent to the destination.
    var shutdownSent = false
    /// The source reported urgent data (EPOLLPRI). A read stops at the urgent mark, so until a read
    /// says EAGAIN a short one proves nothing, and splice (which cannot pass the mark) is not used.
    var urgent = false
    /// Consecutive full reads: a stream that keeps filling the buffer is moved to splice.
    var fullReads: UInt8 = 0

    @inline(__always) var hasPending: Bool { end > start || piped > 0 }
}

/// A client connection and its backend connection: plain data in a worker's pair table, indexed by slot
/// (no class, so no retain/release or exclusivity checks on the hot path).
struct ConnectionPair {
    var clientFD: Int32 = -1
    var backendFD: Int32 = -1
    /// Bumped each time the slot is reused; epoll events carry it so a stale event is dropped.
    var generation: UInt32 = 0
    var nextFree: Int32 = -1
    var backend: BackendID = -1
    /// The pair's service: its index in the worker's service table (settings, pool, counters).
    var service: UInt16 = 0
    /// The backend the last connect attempt went to: a retry avoids it.
    var lastBackend: BackendID = -1
    /// The client's address hashed (`StableHash.sourceKey`): the key of the hashing algorithms.
    var sourceKey: UInt64 = 0
    var inUse = false
    /// Waiting in the worker's queue for a backend place.
    var queued = false
    /// Counted in the admission's per-source counts.
    var sourceCounted = false
    /// The last bytes moved went client to backend: the client is waiting for an answer.
    var clientWaiting = false
    var lifecycle = PairLifecycle()
    /// What the preamble still waits for (`PreambleNeeds` bits); 0 for pairs that need none.
    var preamble: UInt8 = 0
    var lastActivity: UInt64 = 0
    /// Monotonic ns at accept and when the backend connect completed (0: not yet): histograms and the access log.
    var acceptedAt: UInt64 = 0
    var connectedAt: UInt64 = 0
    /// Which of the worker's listeners accepted it (index into the configured addresses).
    var listener: UInt16 = 0
    /// Accepted on a listener that routes by server name (its id) and not yet routed: the pair belongs
    /// to no service yet (`service` is the listener's owner, for its buffer size only), and nothing
    /// is counted on one. 0: routed, or never needed routing.
    var routeID: UInt32 = 0
    var bytesUp: Int = 0
    var bytesDown: Int = 0
    /// client to backend
    var up = Direction()
    /// backend to client
    var down = Direction()
}

/// What an epoll event's 64-bit cookie points at: kind in the low 3 bits, slot index above, and the
/// slot's generation in the high 32 bits.
enum EventTag {
    static let client: UInt64 = 0
    static let backend: UInt64 = 1
    static let listener: UInt64 = 2
    static let wakeup: UInt64 = 3
    static let probe: UInt64 = 4

    @inline(__always)
    static func make(_ kind: UInt64, index: Int32, generation: UInt32) -> UInt64 {
        kind | UInt64(UInt32(bitPattern: index)) << 3 | UInt64(generation) << 32
    }

    @inline(__always) static func kind(_ tag: UInt64) -> UInt64 { tag & 7 }
    @inline(__always) static func index(_ tag: UInt64) -> Int32 { Int32(truncatingIfNeeded: (tag >> 3) & 0x1FFF_FFFF) }
    @inline(__always) static func generation(_ tag: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: tag >> 32) }
}
