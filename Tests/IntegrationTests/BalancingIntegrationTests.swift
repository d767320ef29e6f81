import CShim
import Glibc
import LoadBalancer
import Synchronization
import Testing

/// A backend that answers every connection with one byte, its tag, and closes: one thread, no
/// per-connection thread, so thousands of connections stay cheap.
final class TagServer: Sendable {
    let address: SocketAddress
    private let fd: Int32
    private let thread: Mutex<OSThread?> = Mutex(nil)
    let served = Atomic<Int>(0)

    init(tag: UInt8) {
        var address = SocketAddress(host: "127.0.0.1", port: 0)!
        let lfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        precondition(address.withSockaddr { bind(lfd, $0, $1) } == 0 && listen(lfd, 1024) == 0)
        _ = address.withMutableSockaddr { getsockname(lfd, $0, $1) }
        self.address = address
        fd = lfd
        thread.withLock { $0 = OSThread.start { [self] in
            var byte = tag
            while true {
                let c = accept(lfd, nil, nil)
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                _ = send(c, &byte, 1, Int32(MSG_NOSIGNAL))
                self.served.add(1, ordering: .relaxed)
                close(c)
            }
        } }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        if let t = thread.withLock({ $0.take() }) { t.join() }
        close(fd)
    }
}

/// One connection from `source` (a 127.0.0.0/8 address, or the default): the tag byte it was given,
/// nil when it was refused or reset.
func fetchTag(_ address: SocketAddress, from source: SocketAddress? = nil) -> UInt8? {
    let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    TestSocket.setTimeouts(fd, seconds: 10)
    if let source, source.withSockaddr({ bind(fd, $0, $1) }) != 0 { return nil }
    guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else { return nil }
    let (bytes, end) = TestSocket.readAll(fd, limit: 16)
    return end == .eof && bytes.count == 1 ? bytes[0] : nil
}

func loopbackSource(_ i: Int) -> SocketAddress {
    SocketAddress(ipv4: (127, UInt8(1 + i / 62_500 % 200), UInt8(i / 250 % 250), UInt8(1 + i % 250)), port: 0)
}

@Suite struct BalancingIntegrationTests {
    init() { _ = lb_ignore_sigpipe() }

    /// A 1:2:3 pool serves 1/6, 2/6 and 3/6 of 6,000 connections, within 5%, over two workers. (Maglev
    /// gives each backend its weighted share of table slots exactly, see `BalancingTests`; over 6,000
    /// random client addresses its shares carry sampling noise of about 3%, too much for a 5% bound
    /// that must never fail, so the addresses vary in `aClientAddressSticks` instead.)
    @Test(arguments: [BalanceAlgorithm.roundRobin])
    func weightedPoolServesItsShares(_ algorithm: BalanceAlgorithm) throws {
        let servers = (1...3).map { TagServer(tag: UInt8($0)) }
        defer { for s in servers { s.stop() } }
        try withBalancer(backends: servers.map(\.address), configure: { c in
            c.balancing.algorithm = algorithm
            for i in 0..<3 { c.backends[i].weight = i + 1 }
        }) { lb, address in
            var counts = [0, 0, 0, 0]
            for i in 0..<6000 {
                let tag = fetchTag(address, from: loopbackSource(i))
                counts[Int(tag ?? 0)] += 1
            }
            #expect(counts[0] == 0, "\(counts[0]) connections got no backend")
            for w in 1...3 {
                let expected = 1000.0 * Double(w)
                #expect(abs(Double(counts[w]) - expected) <= expected * 0.05, "\(algorithm): \(counts)")
            }
        }
    }

    /// Maglev and source-hash send one client address to one backend, every time.
    @Test(arguments: [BalanceAlgorithm.maglev, .sourceHash])
    func aClientAddressSticks(_ algorithm: BalanceAlgorithm) throws {
        let servers = (1...4).map { TagServer(tag: UInt8($0)) }
        defer { for s in servers { s.stop() } }
        try withBalancer(backends: servers.map(\.address), configure: { $0.balancing.algorithm = algorithm }) { _, address in
            var seen = Set<UInt8>()
            for client in 0..<40 {
                let tags = (0..<5).map { _ in fetchTag(address, from: loopbackSource(client * 977)) }
                #expect(tags.allSatisfy { $0 != nil && $0 == tags[0] }, "client \(client): \(tags)")
                if let t = tags[0] { seen.insert(t) }
            }
            #expect(seen.count == 4)  // and the clients spread over every backend
        }
    }

    @Test func allowAndDenyForIPv4AndIPv6() throws {
        let server = TagServer(tag: 7)
        defer { server.stop() }
        try withBalancer(backends: [server.address], configure: { c in
            c.listen = [SocketAddress(host: "127.0.0.1", port: 0)!, SocketAddress(host: "::1", port: 0)!]
            c.admission.allow = [try! CIDR.parse("127.0.0.0/8").get(), try! CIDR.parse("::1/128").get()]
            c.admission.deny = [try! CIDR.parse("127.0.0.66/32").get()]
        }) { lb, v4 in
            let v6 = lb.listenAddresses[1]
            #expect(fetchTag(v4, from: SocketAddress(host: "127.0.0.65", port: 0)!) == 7)
            #expect(fetchTag(v6) == 7)
            #expect(fetchTag(v4, from: SocketAddress(host: "127.0.0.66", port: 0)!) == nil)
            #expect(eventually { lb.counters[.refused] == 1 })
            #expect(server.served.load(ordering: .relaxed) == 2)
        }
        try withBalancer(backends: [server.address], configure: { c in
            c.listen = [SocketAddress(host: "::1", port: 0)!]
            c.admission.deny = [try! CIDR.parse("::1/128").get()]
        }) { lb, v6 in
            #expect(fetchTag(v6) == nil)
            #expect(eventually { lb.counters[.refused] == 1 })
        }
    }

    @Test func perSourceLimit() throws {
        let server = TestServer(handler: TestServer.echo)
        defer { server.stop() }
        try withBalancer(backends: [server.address], configure: { $0.admission.maxConnsPerSource = 2 }) { lb, address in
            let a = SocketAddress(host: "127.0.0.5", port: 0)!, b = SocketAddress(host: "127.0.0.6", port: 0)!
            let held = try [a, a, b].map { try BoundClient(address, from: $0) }
            for c in held { #expect(c.echoes("x")) }
            let third = try BoundClient(address, from: a)
            #expect(!third.echoes("y"))  // reset at accept
            #expect(eventually { lb.counters[.refused] == 1 })
            held[0].close()
            #expect(eventually { lb.counters[.activePairs] == 2 })
            let again = try BoundClient(address, from: a)
            #expect(again.echoes("z"))
            for c in held.dropFirst() { c.close() }
            again.close()
            third.close()
        }
    }

    /// Every backend at its limit: pairs wait in order, then time out with the on-no-backend answer.
    @Test func theQueueServesInOrderAndTimesOut() throws {
        let server = TestServer(handler: TestServer.echo)
        defer { server.stop() }
        try withBalancer(backends: [server.address], workers: 1, configure: { c in
            c.balancing.backendMaxConns = 1
            c.admission.queueTimeout = .seconds(30)
        }) { lb, address in
            let a = try BoundClient(address)
            #expect(a.echoes("a"))
            let b = try BoundClient(address)
            #expect(b.send("b"))
            #expect(eventually { lb.counters[.queueLength] == 1 })
            let c = try BoundClient(address)
            #expect(c.send("c"))
            #expect(eventually { lb.counters[.queueLength] == 2 })
            a.close()
            #expect(b.read(1) == "b")  // first in, first served
            #expect(lb.counters[.queueLength] == 1 && server.accepted.load(ordering: .relaxed) == 2)
            b.close()
            #expect(c.read(1) == "c")
            #expect(eventually { lb.counters[.queueLength] == 0 })
            c.close()
            #expect(lb.counters[.queued] == 2 && lb.counters[.queueTimeouts] == 0)
        }
        try withBalancer(backends: [server.address], workers: 1, configure: { c in
            c.balancing.backendMaxConns = 1
            c.admission.queueTimeout = .milliseconds(100)
        }) { lb, address in
            let a = try BoundClient(address)
            #expect(a.echoes("a"))
            let start = MonotonicClock.now()
            let response = httpGet(address).text
            #expect(response.hasPrefix("HTTP/1.1 502"))
            #expect(MonotonicClock.now() - start >= 100_000_000)  // it waited its turn out first
            #expect(lb.counters[.queueTimeouts] == 1)
            a.close()
        }
    }

    /// A burst of 5,000 connects against --max-conns 50: never more than 50 pairs, no client accepted
    /// and closed; the rest wait in the backlog and are served as places free.
    @Test func maxConnsHoldsUnderABurst() throws {
        let server = TestServer(handler: TestServer.echo)
        defer { server.stop() }
        // One worker: one accept queue, served in order, so the first 50 connects are the ones served.
        try withBalancer(backends: [server.address], workers: 1, configure: { c in
            c.admission.maxConns = 50
            c.backlog = 8192
        }) { lb, address in
            var fds: [Int32] = []
            defer { for fd in fds { close(fd) } }
            for _ in 0..<5000 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else { break }
                fds.append(fd)
                _ = address.withSockaddr { connect(fd, $0, $1) }
            }
            #expect(fds.count == 5000)
            #expect(eventually { lb.counters[.activePairs] == 50 && server.accepted.load(ordering: .relaxed) == 50 })
            #expect(lb.counters[.accepted] == 50 && lb.counters[.activePairs] <= 50)
            // Nobody was closed on: every socket is still open (no EOF, no reset).
            var byte: UInt8 = 0
            let ended = fds.filter { recv($0, &byte, 1, Int32(MSG_DONTWAIT)) == 0 || (errno != EAGAIN && errno != ENOTCONN && errno != EINPROGRESS) }
            #expect(ended.isEmpty, "\(ended.count) clients closed")
            // Free 50 places: 50 more are accepted, and still no more than 50 at once.
            let accepted = lb.counters[.accepted]
            for fd in fds.prefix(50) { close(fd) }
            fds.removeFirst(50)
            #expect(eventually { lb.counters[.accepted] >= accepted + 50 && lb.counters[.activePairs] == 50 })
            #expect(lb.counters[.refused] == 0)
        }
    }
}

/// A blocking client bound to a chosen source address.
final class BoundClient {
    let fd: Int32
    init(_ address: SocketAddress, from source: SocketAddress? = nil) throws {
        fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        TestSocket.setTimeouts(fd, seconds: 10)
        if let source { precondition(source.withSockaddr { bind(fd, $0, $1) } == 0) }
        guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError(errno: e, operation: "connect")
        }
    }

    func send(_ text: String) -> Bool { TestSocket.sendAll(fd, text) }

    func read(_ count: Int) -> String {
        String(decoding: TestSocket.read(fd, count: count).bytes, as: UTF8.self)
    }

    func echoes(_ text: String) -> Bool { send(text) && read(text.utf8.count) == text }

    func close() { Glibc.close(fd) }
}
