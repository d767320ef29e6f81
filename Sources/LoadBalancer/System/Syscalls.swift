import CShim
import Glibc

/// The outcome of a non-blocking call: bytes (or a value) done, or "try again when epoll says so".
/// EAGAIN is a value here, not an error.
public enum IOResult: Equatable, Sendable {
    case done(Int)
    case wouldBlock
}

/// Every system call the project makes on fds goes through here, once (the start-up rlimit calls in
/// `FileLimit` and the stderr writer in `EventLog` are the exceptions): EINTR retries, EAGAIN becomes
/// `.wouldBlock`, anything else throws a `SystemError` carrying errno and the call's name.
/// Typed throws keep the error path allocation-free (no existential box), which matters because
/// resets and refusals are routine for a proxy.
public enum Sys {
    /// The retry loop every call shares, public so a simulated kernel runs the very same sorting of
    /// outcomes: `body` returns -1 with `errno` set on failure, as a libc call does.
    @inline(__always)
    public static func retrying(_ op: StaticString, _ body: () -> Int) throws(SystemError) -> Int {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            let err = Glibc.errno
            if err == EINTR { continue }
            throw SystemError(errno: err, operation: op.description)
        }
    }

    @inline(__always)
    public static func retryingIO(_ op: StaticString, _ body: () -> Int) throws(SystemError) -> IOResult {
        while true {
            let rc = body()
            if rc >= 0 { return .done(rc) }
            let err = Glibc.errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(errno: err, operation: op.description)
        }
    }

    // MARK: data path

    @inline(__always)
    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        try retryingIO("read") { lb_read(fd, buffer, count) }
    }

    /// read(2) for sockets, as recvfrom(2): cheaper in the kernel than read on the data path.
    @inline(__always)
    public static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        try retryingIO("recv") { lb_recv(fd, buffer, count) }
    }

    @inline(__always)
    public static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        // send with MSG_NOSIGNAL: a peer that went away must give EPIPE, never a SIGPIPE.
        try retryingIO("send") { lb_send(fd, buffer, count) }
    }

    @inline(__always)
    public static func splice(from input: Int32, to output: Int32, count: Int) throws(SystemError) -> IOResult {
        try retryingIO("splice") { lb_splice(input, output, count) }
    }

    // MARK: sockets

    public static func socket(family: Int32) throws(SystemError) -> Int32 {
        Int32(try retrying("socket") { Int(lb_socket(family)) })
    }

    /// Accepts one connection; `.wouldBlock` when the backlog is empty.
    @inline(__always)
    public static func accept(_ fd: Int32, peer: UnsafeMutablePointer<SocketAddress>?) throws(SystemError) -> IOResult {
        if let peer {
            return try retryingIO("accept4") {
                peer.pointee.withMutableSockaddr { sa, len in Int(lb_accept4(fd, sa, len)) }
            }
        }
        return try retryingIO("accept4") { Int(lb_accept4(fd, nil, nil)) }
    }

    public enum ConnectResult: Equatable, Sendable { case connected, inProgress }

    /// Starts a non-blocking connect. A refusal on loopback can come back at once, as a thrown error.
    /// Called again on the same socket it reports how the attempt stands (EISCONN is `.connected`,
    /// EALREADY `.inProgress`, a refusal throws).
    @inline(__always)
    public static func connect(_ fd: Int32, to address: SocketAddress) throws(SystemError) -> ConnectResult {
        try connecting { address.withSockaddr { sa, len in Glibc.connect(fd, sa, len) } }
    }

    /// connect(2)'s outcomes sorted, for any `body` that returns -1 with `errno` set (the real call, or
    /// a simulated kernel's).
    @inline(__always)
    public static func connecting(_ body: () -> Int32) throws(SystemError) -> ConnectResult {
        while true {
            let rc = body()
            if rc == 0 { return .connected }
            let err = Glibc.errno
            if err == EINTR { continue }
            if err == EINPROGRESS || err == EALREADY { return .inProgress }
            if err == EISCONN { return .connected }
            throw SystemError(errno: err, operation: "connect")
        }
    }

    public static func bind(_ fd: Int32, to address: SocketAddress) throws(SystemError) {
        _ = try retrying("bind") { Int(address.withSockaddr { sa, len in Glibc.bind(fd, sa, len) }) }
    }

    public static func listen(_ fd: Int32, backlog: Int32) throws(SystemError) {
        _ = try retrying("listen") { Int(Glibc.listen(fd, backlog)) }
    }

    /// Stops listening but keeps the port bound: connects are refused, a port-0 bind is never handed
    /// this port and connect's ephemeral ports skip it. (Only an explicit bind of this very port by
    /// another SO_REUSEADDR socket could share it; the bucket's reuse flag is fixed at bind time.)
    public static func unlisten(_ fd: Int32) throws(SystemError) {
        try disconnect(fd)  // connect(AF_UNSPEC) on a listener: the same call, named for what it does there
    }

    /// Drops a socket's connection (or failed attempt) so the same socket can connect again.
    public static func disconnect(_ fd: Int32) throws(SystemError) {
        _ = try retrying("connect(AF_UNSPEC)") { Int(lb_disconnect(fd)) }
    }

    public static func localAddress(of fd: Int32) throws(SystemError) -> SocketAddress {
        var address = SocketAddress()
        _ = try retrying("getsockname") {
            Int(address.withMutableSockaddr { sa, len in Glibc.getsockname(fd, sa, len) })
        }
        return address
    }

    /// The pending error of a socket (0 when none): only read on the failure path of a connect.
    public static func socketError(_ fd: Int32) throws(SystemError) -> Int32 {
        Int32(try retrying("getsockopt(SO_ERROR)") { Int(lb_socket_error(fd)) })
    }

    public static func setNoDelay(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(TCP_NODELAY)") { Int(lb_set_nodelay(fd)) }
    }

    /// SO_OOBINLINE: keeps a TCP urgent byte in the stream instead of skipping it on read.
    public static func setUrgentInline(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(SO_OOBINLINE)") { Int(lb_set_oobinline(fd)) }
    }

    public static func setReuseAddress(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(SO_REUSEADDR)") { Int(lb_set_reuseaddr(fd)) }
    }

    public static func setReusePort(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(SO_REUSEPORT)") { Int(lb_set_reuseport(fd)) }
    }

    public static func setV6Only(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(IPV6_V6ONLY)") { Int(lb_set_v6only(fd)) }
    }

    /// IP_BIND_ADDRESS_NO_PORT: a later `bind` fixes only the address; `connect` picks the port.
    public static func setBindAddressNoPort(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(IP_BIND_ADDRESS_NO_PORT)") { Int(lb_set_bind_address_no_port(fd)) }
    }

    public static func setLingerReset(_ fd: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(SO_LINGER)") { Int(lb_set_linger_reset(fd)) }
    }

    /// shutdown(SHUT_WR). ENOTCONN means the peer is already gone: nothing left to tell it.
    public static func shutdownWrite(_ fd: Int32) throws(SystemError) {
        try shuttingDown { lb_shutdown_write(fd) }
    }

    /// shutdown(2)'s outcomes sorted, for any `body` that returns -1 with `errno` set.
    @inline(__always)
    public static func shuttingDown(_ body: () -> Int32) throws(SystemError) {
        while true {
            if body() == 0 { return }
            let err = Glibc.errno
            if err == EINTR { continue }
            if err == ENOTCONN { return }
            throw SystemError(errno: err, operation: "shutdown")
        }
    }

    /// close is deliberately not retried on EINTR: on Linux the descriptor is released even then,
    /// and a retry could close a number another thread has just been given.
    @inline(__always)
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    // MARK: epoll, pipes, eventfd

    public static func epollCreate() throws(SystemError) -> Int32 {
        Int32(try retrying("epoll_create1") { Int(lb_epoll_create()) })
    }

    @inline(__always)
    public static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        _ = try retrying("epoll_ctl") { Int(lb_epoll_ctl(epfd, op, fd, events, data)) }
    }

    @inline(__always)
    public static func epollWait(_ epfd: Int32, _ events: UnsafeMutableRawPointer, _ max: Int32, timeoutMs: Int32) throws(SystemError) -> Int {
        try waiting { lb_epoll_wait(epfd, events, max, timeoutMs) }
    }

    /// epoll_wait(2)'s outcomes sorted, for any `body` that returns -1 with `errno` set.
    @inline(__always)
    public static func waiting(_ body: () -> Int32) throws(SystemError) -> Int {
        // EINTR here is not retried blindly: the caller recomputes its timeout, so return 0 events.
        let rc = body()
        if rc >= 0 { return Int(rc) }
        let err = Glibc.errno
        if err == EINTR { return 0 }
        throw SystemError(errno: err, operation: "epoll_wait")
    }

    public static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: (Int32, Int32) = (-1, -1)
        _ = try retrying("pipe2") {
            withUnsafeMutablePointer(to: &fds) { p in
                p.withMemoryRebound(to: Int32.self, capacity: 2) { Int(lb_pipe2($0)) }
            }
        }
        return (fds.0, fds.1)
    }

    public static func eventFD() throws(SystemError) -> Int32 {
        Int32(try retrying("eventfd") { Int(lb_eventfd()) })
    }

    /// Adds one to an eventfd counter, waking whoever polls it.
    /// Only EAGAIN (a counter at its maximum, already signalled) can refuse it; that is a wake-up too.
    public static func signalEventFD(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { raw in try? retryingIO("write(eventfd)") { Glibc.write(fd, raw.baseAddress, 8) } }
    }

    /// Resets an eventfd counter after a wake-up and returns what it held (0: nothing was signalled).
    @discardableResult
    public static func drainEventFD(_ fd: Int32) -> UInt64 {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { raw in try? retryingIO("read(eventfd)") { Glibc.read(fd, raw.baseAddress, 8) } }
        return value
    }
}
