import CShim
import Glibc
import LoadBalancer
import Simulation
import Testing

/// The same small scripts, written once against `Kernel`, run on Linux (loopback) and on the simulated
/// kernel; what each observes (call results, readiness masks, errors) must be the same. The scripts
/// wait for readiness with epoll as the worker does, so on Linux they poll with a deadline and in the
/// simulation the world runs until the event.
protocol KernelUnderTest {
    associatedtype K: Kernel
    /// A listening socket and its address.
    mutating func listen() -> (fd: Int32, address: SocketAddress)
    /// An address nobody listens on (connects are refused).
    mutating func refusingAddress() -> SocketAddress
    mutating func cleanUp()
}

struct LinuxUnderTest: KernelUnderTest {
    typealias K = LinuxKernel
    var held: [Int32] = []

    mutating func listen() -> (fd: Int32, address: SocketAddress) {
        let fd = try! Sockets.listen(on: SocketAddress(ipv4: (127, 0, 0, 1), port: 0), backlog: 16, reusePort: false)
        held.append(fd)
        return (fd, try! Sys.localAddress(of: fd))
    }

    mutating func refusingAddress() -> SocketAddress {
        // Bound but not listening: the port stays ours, and a connect to it is refused.
        let fd = try! Sys.socket(family: AF_INET)
        try! Sys.bind(fd, to: SocketAddress(ipv4: (127, 0, 0, 1), port: 0))
        held.append(fd)
        return try! Sys.localAddress(of: fd)
    }

    mutating func cleanUp() { for fd in held { Sys.close(fd) } }
}

struct SimUnderTest: KernelUnderTest {
    typealias K = SimKernel
    let world: SimWorld
    var port: UInt16 = 7000

    mutating func listen() -> (fd: Int32, address: SocketAddress) {
        port += 1
        let address = SocketAddress(ipv4: (127, 0, 0, 1), port: port)
        return (world.listenFD(address, backlog: 16), address)
    }

    mutating func refusingAddress() -> SocketAddress { SocketAddress(ipv4: (127, 0, 0, 1), port: 9) }
    mutating func cleanUp() {}
}

/// The scripts. Each returns what it saw, one line per observation.
enum Scripts<E: KernelUnderTest> {
    typealias K = E.K
    static var all: Int32 { Int32(bitPattern: EpollEvents.input | EpollEvents.output | EpollEvents.readHangup | EpollEvents.edgeTriggered) }

    static func maskName(_ m: UInt32) -> String {
        var parts: [String] = []
        for (bit, name) in [
            (EpollEvents.input, "IN"), (EpollEvents.output, "OUT"), (EpollEvents.readHangup, "RDHUP"),
            (EpollEvents.hangup, "HUP"), (EpollEvents.error, "ERR"),
        ] where m & bit != 0 { parts.append(name) }
        return parts.isEmpty ? "-" : parts.joined(separator: "|")
    }

    /// Events already taken from epoll but not yet looked at, by tag (masks as last reported).
    final class Inbox {
        var pending: [UInt64: UInt32] = [:]
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64 * Int(LB_EPOLL_EVENT_SIZE), alignment: 8)
        deinit { buffer.deallocate() }

        func poll(_ ep: Int32, timeoutMs: Int32) {
            let n = (try? K.epollWait(ep, buffer, 64, timeoutMs: timeoutMs)) ?? 0
            for i in 0..<n {
                let e = event(buffer, i)
                pending[e.data] = e.mask
            }
        }

        func take(_ tag: UInt64) -> UInt32? { pending.removeValue(forKey: tag) }
    }

    /// Waits (up to `timeoutMs` in all) until an event for `tag` has all of `want`; returns the last
    /// mask seen for it (0 if none came).
    static func waitFor(_ ep: Int32, _ inbox: Inbox, tag: UInt64, want: UInt32, timeoutMs: Int32 = 2000) -> UInt32 {
        var last: UInt32 = 0
        let deadline = K.now() + UInt64(timeoutMs) * 1_000_000
        while true {
            if let m = inbox.take(tag) { last = m }
            if last & want == want && last != 0 { return last }
            let now = K.now()
            if now >= deadline { return last }
            inbox.poll(ep, timeoutMs: Int32((deadline - now + 999_999) / 1_000_000))
        }
    }

    /// Whether an event for `tag` comes within `timeoutMs` (a bounded check that nothing comes): 0 or 1.
    static func eventsWithin(_ ep: Int32, _ inbox: Inbox, tag: UInt64, timeoutMs: Int32) -> Int {
        let deadline = K.now() + UInt64(timeoutMs) * 1_000_000
        while true {
            if inbox.take(tag) != nil { return 1 }
            let now = K.now()
            if now >= deadline { return 0 }
            inbox.poll(ep, timeoutMs: Int32((deadline - now + 999_999) / 1_000_000))
        }
    }

    static func event(_ buffer: UnsafeMutableRawPointer, _ i: Int) -> (mask: UInt32, data: UInt64) {
        let p = buffer + i * Int(LB_EPOLL_EVENT_SIZE)
        return (p.loadUnaligned(as: UInt32.self), p.loadUnaligned(fromByteOffset: Int(LB_EPOLL_DATA_OFFSET), as: UInt64.self))
    }

    static func describe(_ r: Result<IOResult, SystemError>) -> String {
        switch r {
        case .success(.done(let n)): return "done(\(n))"
        case .success(.wouldBlock): return "EAGAIN"
        case .failure(let e): return "errno \(e.errno)"
        }
    }

    static func recv(_ fd: Int32, _ n: Int = 65536) -> Result<IOResult, SystemError> {
        let buf = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 8)
        defer { buf.deallocate() }
        do { return .success(try K.receive(fd, buf, n)) } catch { return .failure(error) }
    }

    static func send(_ fd: Int32, _ n: Int) -> Result<IOResult, SystemError> {
        let buf = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 8)
        defer { buf.deallocate() }
        buf.initializeMemory(as: UInt8.self, repeating: 7, count: n)
        do { return .success(try K.write(fd, buf, n)) } catch { return .failure(error) }
    }

    /// Reads until `total` bytes came (waiting for readiness between reads) or the stream stops;
    /// returns the bytes read and the first non-data outcome.
    static func readAll(_ fd: Int32, ep: Int32, _ inbox: Inbox, tag: UInt64, total: Int) -> (Int, String) {
        var got = 0
        var idle = 0
        while idle < 10 {
            switch recv(fd) {
            case .success(.done(0)): return (got, "EOF")
            case .success(.done(let n)): got += n; idle = 0
            case .success(.wouldBlock):
                if got >= total { return (got, "EAGAIN") }
                idle += 1
                _ = waitFor(ep, inbox, tag: tag, want: EpollEvents.input, timeoutMs: 200)
            case .failure(let e): return (got, "errno \(e.errno)")
            }
        }
        return (got, "gave up")
    }

    /// Sends `total` bytes, waiting for EPOLLOUT when the socket is full.
    static func sendAll(_ fd: Int32, ep: Int32, _ inbox: Inbox, tag: UInt64, total: Int) -> Int {
        var sent = 0
        var idle = 0
        while sent < total && idle < 10 {
            if case .success(.done(let n)) = send(fd, total - sent), n > 0 {
                sent += n
                idle = 0
            } else {
                idle += 1
                _ = waitFor(ep, inbox, tag: tag, want: EpollEvents.output, timeoutMs: 200)
            }
        }
        return sent
    }

    /// A connected pair: `a` made by connect (the balancer's backend side), `b` accepted (the peer).
    static func connectedPair(_ env: inout E, ep: Int32, _ inbox: Inbox) -> (a: Int32, b: Int32, listener: Int32) {
        let (l, address) = env.listen()
        let a = try! K.socket(family: AF_INET)
        _ = try! K.connect(a, to: address)
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), a, events: UInt32(bitPattern: all), data: 1)
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), l, events: EpollEvents.input, data: 9)
        _ = waitFor(ep, inbox, tag: 9, want: EpollEvents.input)
        var b: Int32 = -1
        if case .done(let fd)? = try? K.accept(l, peer: nil) { b = Int32(fd) }
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), b, events: UInt32(bitPattern: all), data: 2)
        _ = waitFor(ep, inbox, tag: 1, want: EpollEvents.output)
        return (a, b, l)
    }

    static func refusedConnect(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let fd = try! K.socket(family: AF_INET)
        do {
            let r = try K.connect(fd, to: env.refusingAddress())
            out.append("connect: \(r == .inProgress ? "in progress" : "connected")")
            try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), fd, events: UInt32(bitPattern: all), data: 1)
            out.append("mask \(maskName(waitFor(ep, inbox, tag: 1, want: EpollEvents.error)))")
            out.append("SO_ERROR \((try? K.socketError(fd)) ?? -1)")
        } catch {
            // Loopback may refuse inside the call; the simulation never does (Linux's non-blocking
            // connect says EINPROGRESS): normalise so both read the same.
            out.append("connect: in progress")
            out.append("mask ERR|HUP|IN|OUT|RDHUP (refused at once)")
            out.append("SO_ERROR \(error.errno)")
        }
        out.append("SO_ERROR again \((try? K.socketError(fd)) ?? -1)")
        K.close(fd)
        K.close(ep)
        return out
    }

    static func dataThenFin(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (a, b, l) = connectedPair(&env, ep: ep, inbox)
        out.append("accepted \(b >= 0)")
        out.append("send \(describe(send(b, 100)))")
        try! K.shutdownWrite(b)
        out.append("mask \(maskName(waitFor(ep, inbox, tag: 1, want: EpollEvents.readHangup)))")
        let (n, end) = readAll(a, ep: ep, inbox, tag: 1, total: 100)
        out.append("read \(n) then \(end)")
        out.append("recv again \(describe(recv(a)))")
        out.append("events after EOF \(eventsWithin(ep, inbox, tag: 1, timeoutMs: 30))")
        // Half-close: the other direction still flows.
        out.append("send back \(describe(send(a, 10)))")
        out.append("peer mask \(maskName(waitFor(ep, inbox, tag: 2, want: EpollEvents.input)))")
        let (m, _) = readAll(b, ep: ep, inbox, tag: 2, total: 10)
        out.append("peer read \(m)")
        for fd in [a, b, l, ep] { K.close(fd) }
        return out
    }

    static func dataThenReset(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (a, b, l) = connectedPair(&env, ep: ep, inbox)
        out.append("send \(describe(send(b, 100)))")
        try! K.setLingerReset(b)
        K.close(b)
        out.append("mask \(maskName(waitFor(ep, inbox, tag: 1, want: EpollEvents.error)))")
        out.append("recv \(describe(recv(a)))")
        out.append("recv \(describe(recv(a)))")
        out.append("recv \(describe(recv(a)))")
        out.append("send \(describe(send(a, 10)))")
        for fd in [a, l, ep] { K.close(fd) }
        return out
    }

    static func finThenReset(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (a, b, l) = connectedPair(&env, ep: ep, inbox)
        _ = send(b, 10)
        try! K.shutdownWrite(b)
        _ = waitFor(ep, inbox, tag: 1, want: EpollEvents.readHangup)
        let (n, end) = readAll(a, ep: ep, inbox, tag: 1, total: 10)
        out.append("read \(n) then \(end)")
        try! K.setLingerReset(b)
        K.close(b)
        out.append("mask \(maskName(waitFor(ep, inbox, tag: 1, want: EpollEvents.error)))")
        out.append("recv \(describe(recv(a)))")
        out.append("SO_ERROR \((try? K.socketError(a)) ?? -1)")
        out.append("send \(describe(send(a, 10)))")
        for fd in [a, l, ep] { K.close(fd) }
        return out
    }

    static func closeWithUnreadData(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (a, b, l) = connectedPair(&env, ep: ep, inbox)
        out.append("send \(describe(send(a, 10)))")
        out.append("peer mask \(maskName(waitFor(ep, inbox, tag: 2, want: EpollEvents.input)))")
        K.close(b)  // 10 bytes unread: a reset, not a FIN
        out.append("mask \(maskName(waitFor(ep, inbox, tag: 1, want: EpollEvents.error)))")
        out.append("recv \(describe(recv(a)))")
        for fd in [a, l, ep] { K.close(fd) }
        return out
    }

    static func backpressure(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (a, b, l) = connectedPair(&env, ep: ep, inbox)
        _ = eventsWithin(ep, inbox, tag: 1, timeoutMs: 10)
        var sent = 0
        var full = false
        // Full means EAGAIN and no EPOLLOUT to follow (segments still in flight may free space first).
        for _ in 0..<10_000 {
            if case .success(.done(let n)) = send(a, 65536) { sent += n; continue }
            if eventsWithin(ep, inbox, tag: 1, timeoutMs: 50) == 0 { full = true; break }
        }
        out.append("filled \(full) after some bytes \(sent > 0)")
        out.append("OUT events while the peer reads nothing: \(eventsWithin(ep, inbox, tag: 1, timeoutMs: 50))")
        let (got, _) = readAll(b, ep: ep, inbox, tag: 2, total: sent)
        out.append("peer read all \(got == sent)")
        out.append("then mask \(maskName(waitFor(ep, inbox, tag: 1, want: EpollEvents.output)))")
        for fd in [a, b, l, ep] { K.close(fd) }
        return out
    }

    static func spliceThroughPipe(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (a, b, l) = connectedPair(&env, ep: ep, inbox)
        let (c, d, l2) = connectedPair(&env, ep: ep, inbox)
        let pipe = try! K.pipe()
        out.append("splice empty \((try? K.splice(from: a, to: pipe.write, count: 65536)).map { "\($0)" } ?? "error")")
        out.append("sent \(sendAll(b, ep: ep, inbox, tag: 2, total: 3000))")
        K.close(b)
        var moved = 0
        var delivered = 0
        var rounds = 0
        var sawEnd = false
        while !sawEnd && rounds < 200 {
            rounds += 1
            switch try? K.splice(from: a, to: pipe.write, count: 65536) {
            case .done(0)?: sawEnd = true
            case .done(let n)?: moved += n
            case .wouldBlock?: _ = waitFor(ep, inbox, tag: 1, want: EpollEvents.input, timeoutMs: 200)
            case nil: sawEnd = true
            }
            while case .done(let n)? = try? K.splice(from: pipe.read, to: c, count: 65536), n > 0 { delivered += n }
        }
        // What the pipe still holds goes once `c` has room again (a small send buffer fills first).
        rounds = 0
        while delivered < moved && rounds < 200 {
            rounds += 1
            if case .done(let n)? = try? K.splice(from: pipe.read, to: c, count: 65536), n > 0 {
                delivered += n
            } else {
                _ = waitFor(ep, inbox, tag: 1, want: EpollEvents.output, timeoutMs: 200)
            }
        }
        out.append("spliced \(moved) delivered \(delivered) end \(sawEnd)")
        let (got, _) = readAll(d, ep: ep, inbox, tag: 2, total: 3000)
        out.append("far side read \(got)")
        for fd in [a, c, d, l, l2, pipe.read, pipe.write, ep] { K.close(fd) }
        return out
    }

    static func listenerIsLevelTriggered(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let (l, address) = env.listen()
        let x = try! K.socket(family: AF_INET), y = try! K.socket(family: AF_INET)
        _ = try? K.connect(x, to: address)
        _ = try? K.connect(y, to: address)
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), x, events: UInt32(bitPattern: all), data: 1)
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), y, events: UInt32(bitPattern: all), data: 2)
        _ = waitFor(ep, inbox, tag: 1, want: EpollEvents.output)
        _ = waitFor(ep, inbox, tag: 2, want: EpollEvents.output)
        // Added once both wait in its backlog: ep_insert reports a listener that is ready already.
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), l, events: EpollEvents.input, data: 9)
        var accepted: [Int32] = []
        for round in 0..<2 {
            out.append("round \(round) listener ready \(eventsWithin(ep, inbox, tag: 9, timeoutMs: 100) > 0)")
            if case .done(let fd)? = try? K.accept(l, peer: nil) { accepted.append(Int32(fd)) }
        }
        out.append("third accept \((try? K.accept(l, peer: nil)) == .wouldBlock ? "EAGAIN" : "something")")
        out.append("listener ready when empty \(eventsWithin(ep, inbox, tag: 9, timeoutMs: 30) > 0)")
        for fd in accepted + [x, y, l, ep] { K.close(fd) }
        return out
    }

    static func eventFD(_ env: inout E) -> [String] {
        var out: [String] = []
        let ep = try! K.epollCreate()
        let inbox = Inbox()
        let e = try! K.eventFD()
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), e, events: EpollEvents.input | EpollEvents.edgeTriggered, data: 5)
        out.append("idle events \(eventsWithin(ep, inbox, tag: 5, timeoutMs: 10))")
        K.signalEventFD(e)
        K.signalEventFD(e)
        out.append("events \(eventsWithin(ep, inbox, tag: 5, timeoutMs: 100))")
        out.append("drained \(K.drainEventFD(e))")
        out.append("drained again \(K.drainEventFD(e))")
        out.append("events after \(eventsWithin(ep, inbox, tag: 5, timeoutMs: 10))")
        K.close(e)
        K.close(ep)
        return out
    }

    static var scripts: [(String, (inout E) -> [String])] { [
        ("refusedConnect", refusedConnect), ("dataThenFin", dataThenFin), ("dataThenReset", dataThenReset),
        ("finThenReset", finThenReset), ("closeWithUnreadData", closeWithUnreadData), ("backpressure", backpressure),
        ("spliceThroughPipe", spliceThroughPipe), ("listenerIsLevelTriggered", listenerIsLevelTriggered), ("eventFD", eventFD),
    ] }
}

@Suite struct SimKernelDifferentialTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    static var names: [String] { Scripts<LinuxUnderTest>.scripts.map(\.0) }

    @Test(arguments: names)
    func sameAsLinux(_ name: String) {
        var linux = LinuxUnderTest()
        let onLinux = Scripts<LinuxUnderTest>.scripts.first { $0.0 == name }!.1(&linux)
        linux.cleanUp()
        // Several seeds: segment sizes, delays and buffer sizes differ, what is observed must not.
        for seed: UInt64 in 1...20 {
            let world = SimWorld(seed: seed)
            var sim = SimUnderTest(world: world)
            let inSimulation = world.run { Scripts<SimUnderTest>.scripts.first { $0.0 == name }!.1(&sim) }
            #expect(inSimulation == onLinux, "seed \(seed)")
            #expect(world.failure == nil, "\(world.failure ?? "")")
            #expect(world.openFDs.isEmpty, "left open: \(world.openFDs)")
            world.tearDown()
        }
    }
}
