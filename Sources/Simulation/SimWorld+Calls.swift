import CShim
import Glibc
import LoadBalancer

/// The calls, in two layers: socket-level operations shared by the balancer and the peers (returning
/// a count, or -errno), and the fd-level calls `SimKernel` makes (returning -1 with `errno` set, as
/// the C shim's do, so `Sys`'s own retry loops sort the outcome).
extension SimWorld {
    // MARK: socket level

    /// tcp_recvmsg: queued bytes first; then a pending error (once); then 0 after the peer's FIN;
    /// else EAGAIN (ENOTCONN on a socket that never connected).
    func read(_ s: SimSocket, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        if s.state == .listening { return -Int(ENOTCONN) }
        if !s.rcv.isEmpty {
            let wasFull = s.rcv.free == 0
            let n = s.rcv.read(into: buffer, count)
            s.bytesRead += n
            s.lastActivity = clock
            // The window opened: the peer may send more.
            if let p = s.peer { transmit(p) }
            _ = wasFull
            return n
        }
        if s.finReceived { return 0 }
        if s.error != 0 {
            let e = s.error
            s.error = 0
            return -Int(e)
        }
        if s.receiveShutdown { return 0 }
        if s.state == .fresh || s.state == .closed { return -Int(ENOTCONN) }
        return -Int(EAGAIN)
    }

    /// tcp_sendmsg: EPIPE after our shutdown, the pending error after a reset, EAGAIN while
    /// connecting or full; otherwise what fits (possibly fewer, when short writes are injected).
    func write(_ s: SimSocket, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        if s.error != 0 {
            let e = s.error
            s.error = 0
            return -Int(e)
        }
        if s.sendShutdown { return -Int(EPIPE) }
        switch s.state {
        case .synSent: return -Int(EAGAIN)
        case .established: break
        default: return -Int(EPIPE)
        }
        if count == 0 { return 0 }
        var n = min(count, s.snd.free)
        if n == 0 {
            s.noSpace = true
            return -Int(EAGAIN)
        }
        if n > 1 && chance(faults.shortWrite) {
            n = uniform(1...(n - 1))
            inject("short write")
        }
        s.snd.append(buffer, n)
        if n < count { s.noSpace = true }
        s.bytesWritten += n
        s.lastActivity = clock
        transmit(s)
        return n
    }

    func shutdownWrite(_ s: SimSocket) -> Int {
        switch s.state {
        case .established:
            if !s.sendShutdown {
                s.sendShutdown = true
                s.finQueued = true
                transmit(s)
            }
            return 0
        case .synSent:
            // inet_shutdown on SYN_SENT disconnects the attempt.
            abort(s, notifyPeer: s.peer != nil)
            return 0
        default:
            s.sendShutdown = true
            return -Int(ENOTCONN)
        }
    }

    /// tcp_close: a reset when asked for (SO_LINGER 0) or when received bytes were never read;
    /// otherwise a FIN after what is queued, and the socket lives on (orphaned) to deliver it.
    func close(_ s: SimSocket) {
        s.watchers.removeAll()
        s.actor = nil
        s.fd = -1
        switch s.state {
        case .listening:
            s.dead = true
            for i in s.acceptHead..<s.acceptQueue.count {
                let child = s.acceptQueue[i]
                child.orphaned = true
                abort(child, notifyPeer: true)
            }
            s.acceptQueue.removeAll()
            s.acceptHead = 0
        case .established:
            s.orphaned = true
            if s.lingerReset || !s.rcv.isEmpty {
                abort(s, notifyPeer: true)
            } else if !s.sendShutdown {
                s.sendShutdown = true
                s.finQueued = true
                transmit(s)
            } else if s.finReceived && s.finSent {
                s.dead = true
            }
        case .synSent:
            s.orphaned = true
            abort(s, notifyPeer: s.peer != nil)
        case .fresh, .closed:
            s.orphaned = true
            s.dead = true
        }
    }

    /// A peer resets its connection (close with SO_LINGER 0).
    func resetClose(_ s: SimSocket) {
        s.lingerReset = true
        close(s)
    }

    func takeError(_ s: SimSocket) -> Int32 {
        let e = s.error
        s.error = 0
        return e
    }

    // MARK: peers' calls

    public enum ReadOutcome: Equatable {
        case bytes(Int)
        case end
        case error(Int32)
        case wouldBlock
    }

    public func peerRead(_ s: SimSocket, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> ReadOutcome {
        let r = read(s, buffer, count)
        if r > 0 { return .bytes(r) }
        if r == 0 { return .end }
        if r == -Int(EAGAIN) { return .wouldBlock }
        return .error(Int32(-r))
    }

    /// Bytes accepted, 0 for "full, wait", or -errno.
    public func peerWrite(_ s: SimSocket, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        let r = write(s, buffer, count)
        return r == -Int(EAGAIN) ? 0 : r
    }

    public func peerShutdown(_ s: SimSocket) { _ = shutdownWrite(s) }
    public func peerClose(_ s: SimSocket) { close(s) }
    public func peerReset(_ s: SimSocket) { resetClose(s) }

    public func peerAccept(_ l: SimSocket, actor: SimActor) -> SimSocket? {
        guard l.pendingAccepts > 0 else { return nil }
        let child = l.acceptQueue[l.acceptHead]
        l.acceptHead += 1
        if l.acceptHead == l.acceptQueue.count {
            l.acceptQueue.removeAll(keepingCapacity: true)
            l.acceptHead = 0
        }
        child.actor = actor
        return child
    }

    public func isWritable(_ s: SimSocket) -> Bool { s.state == .established && !s.sendShutdown && s.snd.free > 0 }
    public func isConnecting(_ s: SimSocket) -> Bool { s.state == .synSent }
    public func hasPendingError(_ s: SimSocket) -> Bool { s.error != 0 }
    public func queuedToRead(_ s: SimSocket) -> Int { s.rcv.count }

    // MARK: fds

    func allocateFD(_ file: SimFile) -> Int32 {
        var fd = 3
        while fd < files.count && files[fd] != nil { fd += 1 }
        if fd == files.count { files.append(file) } else { files[fd] = file }
        openFiles += 1
        return Int32(fd)
    }

    /// EMFILE past the limit, or injected; ENFILE injected.
    func fdRefused(_ op: StaticString) -> Int32? {
        if openFiles + 3 >= fdLimit { return EMFILE }
        if chance(faults.emfile) { inject("EMFILE"); return EMFILE }
        if chance(faults.enfile) { inject("ENFILE"); return ENFILE }
        return nil
    }

    func file(_ fd: Int32) -> SimFile? {
        guard fd >= 0, Int(fd) < files.count else { return nil }
        return files[Int(fd)]
    }

    func socketFile(_ fd: Int32) -> SimSocket? {
        if case .socket(let s)? = file(fd) { return s }
        return nil
    }

    @inline(__always)
    func fail(_ op: StaticString, _ fd: Int32, _ err: Int32) -> Int {
        record(op, fd, -1, err)
        Glibc.errno = err
        return -1
    }

    @inline(__always)
    func interrupted(_ op: StaticString, _ fd: Int32) -> Bool {
        guard chance(faults.eintr) else { return false }
        inject("EINTR")
        record(op, fd, -1, EINTR)
        Glibc.errno = EINTR
        return true
    }

    /// A call the worker must never make (a closed or unknown fd): the run fails, with the trace.
    func misuse(_ op: StaticString, _ fd: Int32) -> Int {
        if failure == nil { failure = "worker called \(op) on fd \(fd), which is not open (EBADF)" }
        return fail(op, fd, EBADF)
    }

    /// A listening socket for the balancer (what `Sockets.listen` makes on Linux).
    public func listenFD(_ address: SocketAddress, backlog: Int = 1024) -> Int32 {
        let l = listen(address, backlog: backlog, actor: nil)
        let fd = allocateFD(.socket(l))
        l.fd = fd
        return fd
    }

    public func sysRecv(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        if interrupted("recv", fd) { return -1 }
        guard let s = socketFile(fd) else { return misuse("recv", fd) }
        let r = read(s, buffer, count)
        if r < 0 { return fail("recv", fd, Int32(-r)) }
        record("recv", fd, r)
        return r
    }

    public func sysSend(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        if interrupted("send", fd) { return -1 }
        guard let s = socketFile(fd) else { return misuse("send", fd) }
        let r = write(s, buffer, count)
        if r < 0 { return fail("send", fd, Int32(-r)) }
        record("send", fd, r)
        return r
    }

    /// splice(2) between a socket and a pipe, SPLICE_F_NONBLOCK. Socket to pipe takes one pipe slot per
    /// queued segment and stops when the 16 slots are used (a short splice, not EAGAIN); EAGAIN only
    /// when the pipe was full already or the socket has nothing. Pipe to socket moves what fits.
    public func sysSplice(_ input: Int32, _ output: Int32, _ count: Int) -> Int {
        if interrupted("splice", input) { return -1 }
        switch (file(input), file(output)) {
        case (.socket(let s)?, .pipeWrite(let p)?):
            if !p.readOpen { return fail("splice", output, EPIPE) }
            if p.freeSlots == 0 { return fail("splice", input, EAGAIN) }
            if s.rcv.isEmpty {
                if s.finReceived { record("splice", input, 0); return 0 }
                if s.error != 0 { return fail("splice", input, takeError(s)) }
                if s.receiveShutdown { record("splice", input, 0); return 0 }
                if s.state == .fresh || s.state == .closed { return fail("splice", input, ENOTCONN) }
                return fail("splice", input, EAGAIN)
            }
            var moved = 0
            while moved < count && p.freeSlots > 0 && !s.rcv.isEmpty {
                let segment = s.rcv.bytesInFirstSegments(1, limit: min(count - moved, SimPipe.slotBytes))
                let n = s.rcv.move(to: &p.ring, segment)
                if n == 0 { break }
                moved += n
            }
            s.bytesRead += moved
            s.lastActivity = clock
            if let peer = s.peer { transmit(peer) }
            record("splice", input, moved)
            return moved
        case (.pipeRead(let p)?, .socket(let s)?):
            if p.ring.isEmpty {
                if !p.writeOpen { record("splice", input, 0); return 0 }
                return fail("splice", input, EAGAIN)
            }
            var scratch = [UInt8](repeating: 0, count: min(count, p.ring.count))
            let n = scratch.withUnsafeMutableBytes { raw -> Int in
                p.ring.peek(into: raw.baseAddress!, raw.count)
                return write(s, raw.baseAddress!, raw.count)
            }
            if n < 0 { return fail("splice", output, Int32(-n)) }
            p.ring.drop(n)
            record("splice", output, n)
            return n
        default:
            if failure == nil { failure = "splice between fds \(input) and \(output): not a socket and a pipe" }
            return fail("splice", input, EINVAL)
        }
    }

    public func sysPipe() -> (Int32, Int32)? {
        if let err = fdRefused("pipe2") { _ = fail("pipe2", -1, err); return nil }
        let p = SimPipe()
        let r = allocateFD(.pipeRead(p))
        let w = allocateFD(.pipeWrite(p))
        record("pipe2", r, Int(w))
        return (r, w)
    }

    public func sysSocket(family: Int32) -> Int {
        if let err = fdRefused("socket") { return fail("socket", -1, err) }
        let s = makeSocket(family: family)
        let fd = allocateFD(.socket(s))
        s.fd = fd
        record("socket", fd, 0)
        return Int(fd)
    }

    public func sysAccept(_ fd: Int32, peer: UnsafeMutablePointer<SocketAddress>?) -> Int {
        if interrupted("accept4", fd) { return -1 }
        guard let l = socketFile(fd) else { return misuse("accept4", fd) }
        guard l.state == .listening else { return fail("accept4", fd, EINVAL) }
        if l.pendingAccepts == 0 { return fail("accept4", fd, EAGAIN) }
        if let err = fdRefused("accept4") { return fail("accept4", fd, err) }
        let child = l.acceptQueue[l.acceptHead]
        l.acceptHead += 1
        if l.acceptHead == l.acceptQueue.count {
            l.acceptQueue.removeAll(keepingCapacity: true)
            l.acceptHead = 0
        }
        if chance(faults.acceptAborted) {
            inject("ECONNABORTED")
            child.orphaned = true
            abort(child, notifyPeer: true)
            return fail("accept4", fd, ECONNABORTED)
        }
        let cfd = allocateFD(.socket(child))
        child.fd = cfd
        peer?.pointee = child.remote
        record("accept4", fd, Int(cfd))
        return Int(cfd)
    }

    public func sysConnect(_ fd: Int32, _ address: SocketAddress) -> Int32 {
        if interrupted("connect", fd) { return -1 }
        guard let s = socketFile(fd) else { return Int32(misuse("connect", fd)) }
        switch s.state {
        case .synSent: return Int32(fail("connect", fd, EALREADY))
        case .established: return Int32(fail("connect", fd, EISCONN))
        case .listening: return Int32(fail("connect", fd, EISCONN))
        case .closed:
            if s.error != 0 {
                let e = takeError(s)
                s.state = .fresh
                return Int32(fail("connect", fd, e))
            }
            return Int32(fail("connect", fd, EISCONN))
        case .fresh:
            break
        }
        if chance(faults.eaddrnotavail) {
            inject("EADDRNOTAVAIL")
            return Int32(fail("connect", fd, EADDRNOTAVAIL))
        }
        s.sendShutdown = false
        s.receiveShutdown = false
        s.finReceived = false
        s.finQueued = false
        s.finSent = false
        startConnect(s, to: address)
        record("connect", fd, Int(address.port))
        return Int32(fail("connect", fd, EINPROGRESS))
    }

    public func sysDisconnect(_ fd: Int32) -> Int32 {
        guard let s = socketFile(fd) else { return Int32(misuse("connect(AF_UNSPEC)", fd)) }
        switch s.state {
        case .listening:
            s.state = .closed
        default:
            if s.peer != nil { abort(s, notifyPeer: true) }
            s.epoch += 1
            s.state = .fresh
            s.error = 0
            s.rcv.removeAll()
            s.sendShutdown = false
            s.receiveShutdown = false
            s.finReceived = false
            s.finQueued = false
            s.finSent = false
        }
        record("disconnect", fd, 0)
        return 0
    }

    public func sysSocketError(_ fd: Int32) -> Int32 {
        guard let s = socketFile(fd) else { return Int32(misuse("getsockopt", fd)) }
        let e = takeError(s)
        record("SO_ERROR", fd, Int(e))
        return e
    }

    /// setsockopt: only SO_LINGER {1, 0} changes what the simulation does.
    public func sysSetOption(_ fd: Int32, lingerReset: Bool) -> Int32 {
        guard let s = socketFile(fd) else { return Int32(misuse("setsockopt", fd)) }
        if lingerReset { s.lingerReset = true }
        return 0
    }

    /// IP_BIND_ADDRESS_NO_PORT: accepted on any socket (the port is picked at connect either way).
    public func sysSetBindAddressNoPort(_ fd: Int32) -> Int32 {
        guard socketFile(fd) != nil else { return Int32(misuse("setsockopt", fd)) }
        return 0
    }

    /// bind(2) of an unconnected socket to a source address: EADDRNOTAVAIL unless it is one of
    /// `localAddresses` (or when injected); the connect then keeps the address and picks the port.
    public func sysBind(_ fd: Int32, _ address: SocketAddress) -> Int32 {
        guard let s = socketFile(fd) else { return Int32(misuse("bind", fd)) }
        guard s.state == .fresh, !s.bound else { return Int32(fail("bind", fd, EINVAL)) }
        if chance(faults.eaddrnotavail) {
            inject("EADDRNOTAVAIL")
            return Int32(fail("bind", fd, EADDRNOTAVAIL))
        }
        var host = address
        host.port = 0
        guard localAddresses.contains(host) else { return Int32(fail("bind", fd, EADDRNOTAVAIL)) }
        s.local = address
        s.bound = true
        record("bind", fd, Int(address.ipv4Value & 0xff))
        return 0
    }

    /// getsockname(2): the address the socket is bound to (an accepted socket has its listener's).
    public func sysLocalAddress(_ fd: Int32) -> SocketAddress? {
        guard let s = socketFile(fd) else { _ = misuse("getsockname", fd); return nil }
        record("getsockname", fd, Int(s.local.port))
        return s.local
    }

    /// fcntl(F_DUPFD): a second fd for one file is not modelled (only a takeover asks for it, and the
    /// simulation runs none), so asking is a failure of the run, not a silent refusal.
    public func sysDuplicate(_ fd: Int32) -> Int {
        if failure == nil { failure = "worker duplicated fd \(fd): dup is not modelled" }
        return fail("fcntl(F_DUPFD_CLOEXEC)", fd, ENOSYS)
    }

    public func sysShutdownWrite(_ fd: Int32) -> Int32 {
        guard let s = socketFile(fd) else { return Int32(misuse("shutdown", fd)) }
        let r = shutdownWrite(s)
        if r < 0 { return Int32(fail("shutdown", fd, Int32(-r))) }
        record("shutdown", fd, 0)
        return 0
    }

    public func sysClose(_ fd: Int32) {
        guard let f = file(fd) else {
            if failure == nil { failure = "worker closed fd \(fd), which is not open (a double close)" }
            record("close", fd, -1, EBADF)
            return
        }
        files[Int(fd)] = nil
        openFiles -= 1
        record("close", fd, 0)
        // Closing an fd removes it from every epoll set watching it (it was never dup'ed).
        for case .epoll(let ep)? in files {
            if let item = ep.items.removeValue(forKey: fd) { item.removed = true }
        }
        switch f {
        case .socket(let s): close(s)
        case .pipeRead(let p):
            p.readOpen = false
            p.ring.removeAll()
            SimEpoll.wake(p.writeWatchers, key: EpollEvents.error)
        case .pipeWrite(let p):
            p.writeOpen = false
            SimEpoll.wake(p.readWatchers, key: EpollEvents.hangup)
        case .epoll(let ep):
            for (_, item) in ep.items { item.removed = true }
            ep.items.removeAll()
        case .eventFD(let e):
            e.watchers.removeAll()
        }
    }

    public func sysEpollCreate() -> Int32 {
        if let err = fdRefused("epoll_create1") { return Int32(fail("epoll_create1", -1, err)) }
        return allocateFD(.epoll(SimEpoll()))
    }

    public func sysEpollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) -> Int32 {
        guard case .epoll(let ep)? = file(epfd) else { return Int32(misuse("epoll_ctl", epfd)) }
        guard let f = file(fd) else { return Int32(misuse("epoll_ctl", fd)) }
        switch op {
        case Int32(LB_EPOLL_CTL_ADD):
            if ep.items[fd] != nil { return Int32(fail("epoll_ctl", fd, EEXIST)) }
            let target: SimEpoll.Target
            switch f {
            case .socket(let s): target = .socket(s)
            case .pipeRead(let p): target = .pipe(p, readEnd: true)
            case .pipeWrite(let p): target = .pipe(p, readEnd: false)
            case .eventFD(let e): target = .eventFD(e)
            case .epoll: return Int32(fail("epoll_ctl", fd, EINVAL))
            }
            let item = SimEpoll.Item(fd: fd, target: target, events: events, data: data, epoll: ep)
            ep.items[fd] = item
            switch f {
            case .socket(let s): s.watchers.append(item)
            case .pipeRead(let p): p.readWatchers.append(item)
            case .pipeWrite(let p): p.writeWatchers.append(item)
            case .eventFD(let e): e.watchers.append(item)
            case .epoll: break
            }
            // ep_insert polls the file at once: an fd ready when added is reported.
            if target.mask & (events | EpollEvents.error | EpollEvents.hangup) != 0 { ep.enqueue(item) }
            record("epoll_ctl ADD", fd, Int(events))
        case Int32(LB_EPOLL_CTL_MOD):
            guard let item = ep.items[fd] else { return Int32(fail("epoll_ctl", fd, ENOENT)) }
            item.events = events
            item.data = data
            if item.target.mask & (events | EpollEvents.error | EpollEvents.hangup) != 0 { ep.enqueue(item) }
            record("epoll_ctl MOD", fd, Int(events))
        case Int32(LB_EPOLL_CTL_DEL):
            guard let item = ep.items.removeValue(forKey: fd) else { return Int32(fail("epoll_ctl", fd, ENOENT)) }
            item.removed = true
            record("epoll_ctl DEL", fd, 0)
        default:
            return Int32(fail("epoll_ctl", fd, EINVAL))
        }
        return 0
    }

    /// epoll_wait: this is where virtual time passes. With nothing ready, the world runs (peers act,
    /// segments arrive) until something is ready or the timeout is reached; the clock jumps from
    /// event to event, never ticks.
    public func sysEpollWait(_ epfd: Int32, _ out: UnsafeMutableRawPointer, _ max: Int32, timeoutMs: Int32) -> Int32 {
        guard case .epoll(let ep)? = file(epfd) else { return Int32(misuse("epoll_wait", epfd)) }
        let deadline = timeoutMs < 0 ? UInt64.max : clock &+ UInt64(timeoutMs) &* 1_000_000
        if timeoutMs != 0 && chance(faults.epollEINTR) {
            inject("epoll EINTR")
            // A signal arrives while the worker sleeps: some time passes, but never past a readiness
            // (a real epoll_wait would have returned with it first).
            if timeoutMs > 0 {
                let until = clock + uniform(0, deadline - clock)
                while !ep.hasReady && runOne(until: until) {}
                if !ep.hasReady { clock = Swift.max(clock, until) }
            }
            return Int32(fail("epoll_wait", epfd, EINTR))
        }
        while failure == nil {
            if ep.hasReady {
                let n = ep.collect(into: out, max: Int(max), eventSize: Int(LB_EPOLL_EVENT_SIZE), dataOffset: Int(LB_EPOLL_DATA_OFFSET)) {
                    record("  event", $0, Int($1))
                }
                if n > 0 {
                    if chance(faults.stall) {
                        inject("stall")
                        settle(until: clock + uniform(1_000_000, 20_000_000))
                    }
                    record("epoll_wait", epfd, n)
                    return Int32(n)
                }
            }
            if !runOne(until: deadline) {
                if deadline == .max {
                    failure = "the worker waits forever (epoll_wait with no timeout) and nothing is left to happen"
                    return 0
                }
                clock = Swift.max(clock, deadline)
                record("epoll_wait", epfd, 0)
                return 0
            }
        }
        return 0
    }

    public func sysEventFD() -> Int32 {
        if let err = fdRefused("eventfd") { return Int32(fail("eventfd", -1, err)) }
        return allocateFD(.eventFD(SimEventFD()))
    }

    public func sysSignalEventFD(_ fd: Int32) {
        guard case .eventFD(let e)? = file(fd) else { _ = misuse("write(eventfd)", fd); return }
        if e.counter < UInt64.max - 1 { e.counter += 1 }
        SimEpoll.wake(e.watchers, key: EpollEvents.input)
    }

    public func sysDrainEventFD(_ fd: Int32) -> UInt64 {
        guard case .eventFD(let e)? = file(fd) else { _ = misuse("read(eventfd)", fd); return 0 }
        let v = e.counter
        e.counter = 0
        if v > 0 { SimEpoll.wake(e.watchers, key: EpollEvents.output) }
        return v
    }

    /// Open fds of the balancer (a leak check at the end of a run).
    public var openFDs: [Int32] {
        var list: [Int32] = []
        for (i, f) in files.enumerated() where f != nil { list.append(Int32(i)) }
        return list
    }

    public func describeFD(_ fd: Int32) -> String {
        switch file(fd) {
        case .socket(let s)?: return "socket \(s.state) local \(s.local) remote \(s.remote)"
        case .pipeRead?: return "pipe (read end)"
        case .pipeWrite?: return "pipe (write end)"
        case .epoll?: return "epoll"
        case .eventFD?: return "eventfd"
        case nil: return "closed"
        }
    }
}
