import Glibc
import LoadBalancer

/// The simulated kernel as the worker sees it: `Kernel`'s static calls, each made on the world that
/// the calling thread is running (`SimWorld.run(_:)` sets it). Every raw call goes through `Sys`'s own
/// retry loops, so EINTR retries and EAGAIN sorting are the real code's.
public enum SimKernel: Kernel {
    @inline(__always)
    static var world: SimWorld {
        guard let w = SimWorld.current else { fatalError("SimKernel used outside SimWorld.run") }
        return w
    }

    public static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        let w = world
        return try Sys.retryingIO("recv") { w.sysRecv(fd, buffer, count) }
    }

    public static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) -> IOResult {
        let w = world
        return try Sys.retryingIO("send") { w.sysSend(fd, buffer, count) }
    }

    public static func splice(from input: Int32, to output: Int32, count: Int) throws(SystemError) -> IOResult {
        let w = world
        return try Sys.retryingIO("splice") { w.sysSplice(input, output, count) }
    }

    public static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        let w = world
        var fds: (Int32, Int32) = (-1, -1)
        _ = try Sys.retrying("pipe2") {
            guard let p = w.sysPipe() else { return -1 }
            fds = p
            return 0
        }
        return fds
    }

    public static func socket(family: Int32) throws(SystemError) -> Int32 {
        let w = world
        return Int32(try Sys.retrying("socket") { w.sysSocket(family: family) })
    }

    public static func accept(_ fd: Int32, peer: UnsafeMutablePointer<SocketAddress>?) throws(SystemError) -> IOResult {
        let w = world
        return try Sys.retryingIO("accept4") { w.sysAccept(fd, peer: peer) }
    }

    public static func connect(_ fd: Int32, to address: SocketAddress) throws(SystemError) -> Sys.ConnectResult {
        let w = world
        return try Sys.connecting { w.sysConnect(fd, address) }
    }

    public static func disconnect(_ fd: Int32) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("connect(AF_UNSPEC)") { Int(w.sysDisconnect(fd)) }
    }

    public static func socketError(_ fd: Int32) throws(SystemError) -> Int32 {
        let w = world
        return Int32(try Sys.retrying("getsockopt(SO_ERROR)") { Int(w.sysSocketError(fd)) })
    }

    public static func setNoDelay(_ fd: Int32) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("setsockopt(TCP_NODELAY)") { Int(w.sysSetOption(fd, lingerReset: false)) }
    }

    public static func setUrgentInline(_ fd: Int32) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("setsockopt(SO_OOBINLINE)") { Int(w.sysSetOption(fd, lingerReset: false)) }
    }

    public static func setLingerReset(_ fd: Int32) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("setsockopt(SO_LINGER)") { Int(w.sysSetOption(fd, lingerReset: true)) }
    }

    public static func setBindAddressNoPort(_ fd: Int32) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("setsockopt(IP_BIND_ADDRESS_NO_PORT)") { Int(w.sysSetBindAddressNoPort(fd)) }
    }

    public static func bind(_ fd: Int32, to address: SocketAddress) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("bind") { Int(w.sysBind(fd, address)) }
    }

    public static func duplicate(_ fd: Int32) throws(SystemError) -> Int32 {
        let w = world
        return Int32(try Sys.retrying("fcntl(F_DUPFD_CLOEXEC)") { w.sysDuplicate(fd) })
    }

    public static func localAddress(of fd: Int32) throws(SystemError) -> SocketAddress {
        let w = world
        var address = SocketAddress()
        _ = try Sys.retrying("getsockname") {
            guard let a = w.sysLocalAddress(fd) else { return -1 }
            address = a
            return 0
        }
        return address
    }

    public static func shutdownWrite(_ fd: Int32) throws(SystemError) {
        let w = world
        try Sys.shuttingDown { w.sysShutdownWrite(fd) }
    }

    public static func close(_ fd: Int32) { world.sysClose(fd) }

    public static func epollCreate() throws(SystemError) -> Int32 {
        let w = world
        return Int32(try Sys.retrying("epoll_create1") { Int(w.sysEpollCreate()) })
    }

    public static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        let w = world
        _ = try Sys.retrying("epoll_ctl") { Int(w.sysEpollControl(epfd, op, fd, events: events, data: data)) }
    }

    public static func epollWait(_ epfd: Int32, _ events: UnsafeMutableRawPointer, _ max: Int32, timeoutMs: Int32) throws(SystemError) -> Int {
        let w = world
        return try Sys.waiting { w.sysEpollWait(epfd, events, max, timeoutMs: timeoutMs) }
    }

    public static func eventFD() throws(SystemError) -> Int32 {
        let w = world
        return Int32(try Sys.retrying("eventfd") { Int(w.sysEventFD()) })
    }

    public static func signalEventFD(_ fd: Int32) { world.sysSignalEventFD(fd) }

    @discardableResult
    public static func drainEventFD(_ fd: Int32) -> UInt64 { world.sysDrainEventFD(fd) }

    public static func now() -> UInt64 { world.clock }

    public static var plantedFaults: PlantedFaults { world.planted }
}

extension SimWorld {
    /// The world the calling thread runs (nil outside `run`). Per thread, so seeds run in parallel.
    static var current: SimWorld? {
        guard let p = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<SimWorld>.fromOpaque(p).takeUnretainedValue()
    }

    /// Makes this world the one `SimKernel` calls on this thread while `body` runs.
    public func run<R>(_ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(Self.currentKey)
        pthread_setspecific(Self.currentKey, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(Self.currentKey, previous) }
        return try body()
    }

    static let currentKey: pthread_key_t = {
        // Created once (Swift runs a static initializer once, thread-safely).
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
}
