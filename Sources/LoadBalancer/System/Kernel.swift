import CShim

/// Every system call a worker makes, as one seam: the worker is generic over it, so the same event
/// loop, pair lifecycle, forwarding, timers and probes run against Linux (`LinuxKernel`) or against a
/// simulated kernel driven by one seed (the `Simulation` target, see docs/simulation.md).
///
/// The requirements are static: the real kernel is a zero-size type whose calls inline to the `Sys`
/// wrappers, so a worker specialised for it is the code it was before the seam (no existential, no
/// witness table, no stored kernel). Each requirement has the contract of the `Sys` call it names:
/// EINTR retried, EAGAIN as `.wouldBlock`, any other failure a `SystemError` with errno and operation.
/// A simulated kernel runs its raw calls through the same `Sys.retrying`/`retryingIO`/`connecting`
/// loops, so that sorting is exercised too.
public protocol Kernel {
    // MARK: data path

    /// recv(2) into `buffer`: `.done(0)` is the end of the stream.
    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> IOResult
    /// send(2) with MSG_NOSIGNAL: `.done(n)` may be short (the socket buffer filled).
    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) -> IOResult
    /// splice(2), non-blocking, between a socket and a pipe (either way round).
    static func splice(from input: Int32, to output: Int32, count: Int) throws(SystemError) -> IOResult
    /// pipe2(O_NONBLOCK | O_CLOEXEC).
    static func pipe() throws(SystemError) -> (read: Int32, write: Int32)

    // MARK: sockets

    /// A non-blocking TCP socket of `family` (AF_INET or AF_INET6).
    static func socket(family: Int32) throws(SystemError) -> Int32
    /// accept4(2), non-blocking; `.wouldBlock` when the backlog is empty. `peer` receives the address.
    static func accept(_ fd: Int32, peer: UnsafeMutablePointer<SocketAddress>?) throws(SystemError) -> IOResult
    /// A non-blocking connect, or (called again) how the attempt stands: see `Sys.connect`.
    static func connect(_ fd: Int32, to address: SocketAddress) throws(SystemError) -> Sys.ConnectResult
    /// connect(AF_UNSPEC): drops the connection (a reset) so the socket can connect again.
    static func disconnect(_ fd: Int32) throws(SystemError)
    /// getsockopt(SO_ERROR): the pending error, 0 for none; reading it clears it.
    static func socketError(_ fd: Int32) throws(SystemError) -> Int32
    static func setNoDelay(_ fd: Int32) throws(SystemError)
    static func setUrgentInline(_ fd: Int32) throws(SystemError)
    /// SO_LINGER {1, 0}: the close that follows sends a reset.
    static func setLingerReset(_ fd: Int32) throws(SystemError)
    /// IP_BIND_ADDRESS_NO_PORT: a following `bind` takes an address but no port (`--source`).
    static func setBindAddressNoPort(_ fd: Int32) throws(SystemError)
    /// bind(2) to a local `address` (a `--source` address): EADDRNOTAVAIL when it is not local.
    static func bind(_ fd: Int32, to address: SocketAddress) throws(SystemError)
    /// fcntl(F_DUPFD_CLOEXEC): a second fd for the same socket (listeners handed to a takeover).
    static func duplicate(_ fd: Int32) throws(SystemError) -> Int32
    /// getsockname(2): the local address of a socket (the address a client reached, a PROXY header's
    /// destination, or a backend connection's source).
    static func localAddress(of fd: Int32) throws(SystemError) -> SocketAddress
    /// shutdown(SHUT_WR); ENOTCONN is not an error (the peer is gone).
    static func shutdownWrite(_ fd: Int32) throws(SystemError)
    /// close(2), never retried.
    static func close(_ fd: Int32)

    // MARK: epoll, eventfd, clock

    static func epollCreate() throws(SystemError) -> Int32
    /// epoll_ctl(2): `op` is `LB_EPOLL_CTL_ADD`, `_DEL` or `_MOD`; `data` is the 64-bit cookie.
    static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(SystemError)
    /// epoll_wait(2) into `events` (the kernel's `struct epoll_event` layout, `LB_EPOLL_EVENT_SIZE`
    /// bytes each). EINTR returns 0 events: the caller recomputes its timeout.
    static func epollWait(_ epfd: Int32, _ events: UnsafeMutableRawPointer, _ max: Int32, timeoutMs: Int32) throws(SystemError) -> Int
    /// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
    static func eventFD() throws(SystemError) -> Int32
    /// Adds one to an eventfd counter (a full counter is already a wake-up).
    static func signalEventFD(_ fd: Int32)
    /// Reads and resets an eventfd counter; 0 when nothing was signalled.
    @discardableResult static func drainEventFD(_ fd: Int32) -> UInt64
    /// Monotonic nanoseconds.
    static func now() -> UInt64

    // MARK: test-only

    /// Faults planted in the worker to prove the simulation finds them: always empty for Linux, where
    /// every `contains` on it folds to `false` at compile time.
    static var plantedFaults: PlantedFaults { get }
}

/// Real-world proxy bugs the worker can be told to commit, one bit each, so the simulation can show it
/// finds them. Only a simulated kernel ever returns a non-empty set.
public struct PlantedFaults: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// A short write's leftover is dropped instead of kept.
    public static let dropLeftover = PlantedFaults(rawValue: 1 << 0)
    /// The source is read while the destination still holds a leftover (which is overwritten).
    public static let readPastLeftover = PlantedFaults(rawValue: 1 << 1)
    /// A reset or error on one side closes the other side with a FIN, not a reset.
    public static let swallowReset = PlantedFaults(rawValue: 1 << 2)
    /// The first half-close closes the whole pair.
    public static let closeOnHalfClose = PlantedFaults(rawValue: 1 << 3)
    /// Closing a pair cancels the timer of the next slot instead of its own.
    public static let cancelWrongTimer = PlantedFaults(rawValue: 1 << 4)
    /// A local failure (out of fds for the backend socket) is counted against the backend.
    public static let blameLocalFailure = PlantedFaults(rawValue: 1 << 5)

    /// A closed pair's place under its service's `max_conns` is not given back (the count leaks, and
    /// the service's listeners end up paused for good).
    public static let leakAdmission = PlantedFaults(rawValue: 1 << 6)
    /// A pair leaving its backend does not give back its place under `backend_max_conns` (the backend
    /// looks busier than it is, and at its limit looks full for good).
    public static let leakBackendPlace = PlantedFaults(rawValue: 1 << 7)

    public static let all: [(name: String, fault: PlantedFaults)] = [
        ("dropLeftover", .dropLeftover), ("readPastLeftover", .readPastLeftover), ("swallowReset", .swallowReset),
        ("closeOnHalfClose", .closeOnHalfClose), ("cancelWrongTimer", .cancelWrongTimer),
        ("blameLocalFailure", .blameLocalFailure), ("leakAdmission", .leakAdmission), ("leakBackendPlace", .leakBackendPlace),
    ]
}

/// The Linux kernel: zero-size, every call inlined into today's `Sys` wrapper.
public enum LinuxKernel: Kernel {
    @inline(__always)
    public static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        try Sys.receive(fd, buffer, count)
    }

    @inline(__always)
    public static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        try Sys.write(fd, buffer, count)
    }

    @inline(__always)
    public static func splice(from input: Int32, to output: Int32, count: Int) throws(SystemError) -> IOResult {
        try Sys.splice(from: input, to: output, count: count)
    }

    @inline(__always)
    public static func pipe() throws(SystemError) -> (read: Int32, write: Int32) { try Sys.pipe() }

    @inline(__always)
    public static func socket(family: Int32) throws(SystemError) -> Int32 { try Sys.socket(family: family) }

    @inline(__always)
    public static func accept(_ fd: Int32, peer: UnsafeMutablePointer<SocketAddress>?) throws(SystemError) -> IOResult {
        try Sys.accept(fd, peer: peer)
    }

    @inline(__always)
    public static func connect(_ fd: Int32, to address: SocketAddress) throws(SystemError) -> Sys.ConnectResult {
        try Sys.connect(fd, to: address)
    }

    @inline(__always)
    public static func disconnect(_ fd: Int32) throws(SystemError) { try Sys.disconnect(fd) }

    @inline(__always)
    public static func socketError(_ fd: Int32) throws(SystemError) -> Int32 { try Sys.socketError(fd) }

    @inline(__always)
    public static func setNoDelay(_ fd: Int32) throws(SystemError) { try Sys.setNoDelay(fd) }

    @inline(__always)
    public static func setUrgentInline(_ fd: Int32) throws(SystemError) { try Sys.setUrgentInline(fd) }

    @inline(__always)
    public static func setLingerReset(_ fd: Int32) throws(SystemError) { try Sys.setLingerReset(fd) }

    @inline(__always)
    public static func setBindAddressNoPort(_ fd: Int32) throws(SystemError) { try Sys.setBindAddressNoPort(fd) }

    @inline(__always)
    public static func bind(_ fd: Int32, to address: SocketAddress) throws(SystemError) { try Sys.bind(fd, to: address) }

    @inline(__always)
    public static func duplicate(_ fd: Int32) throws(SystemError) -> Int32 { try Sys.duplicate(fd) }

    @inline(__always)
    public static func localAddress(of fd: Int32) throws(SystemError) -> SocketAddress { try Sys.localAddress(of: fd) }

    @inline(__always)
    public static func shutdownWrite(_ fd: Int32) throws(SystemError) { try Sys.shutdownWrite(fd) }

    @inline(__always)
    public static func close(_ fd: Int32) { Sys.close(fd) }

    @inline(__always)
    public static func epollCreate() throws(SystemError) -> Int32 { try Sys.epollCreate() }

    @inline(__always)
    public static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        try Sys.epollControl(epfd, op, fd, events: events, data: data)
    }

    @inline(__always)
    public static func epollWait(_ epfd: Int32, _ events: UnsafeMutableRawPointer, _ max: Int32, timeoutMs: Int32) throws(SystemError) -> Int {
        try Sys.epollWait(epfd, events, max, timeoutMs: timeoutMs)
    }

    @inline(__always)
    public static func eventFD() throws(SystemError) -> Int32 { try Sys.eventFD() }

    @inline(__always)
    public static func signalEventFD(_ fd: Int32) { Sys.signalEventFD(fd) }

    @inline(__always) @discardableResult
    public static func drainEventFD(_ fd: Int32) -> UInt64 { Sys.drainEventFD(fd) }

    @inline(__always)
    public static func now() -> UInt64 { MonotonicClock.now() }

    @inline(__always)
    public static var plantedFaults: PlantedFaults { [] }
}
