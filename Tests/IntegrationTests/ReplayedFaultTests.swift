import CShim
import Glibc
import LoadBalancer
import Synchronization
import Testing

/// Faults that operators of other TCP proxies reported, replayed against lb over loopback. Each test
/// failed on the code before its fix.
@Suite struct ReplayedFaultTests {
    init() { _ = lb_ignore_sigpipe() }

    // MARK: splice: only EAGAIN says a source is drained

    /// A bulk stream moves to splice; then many small segments fill the pipe's slots long before its
    /// bytes, so a splice comes back short with the socket still holding data. Taking that for "drained"
    /// left megabytes in lb's socket until the backend happened to send one more byte. The small
    /// segments are sent with sendfile from different pages (as a server sends many small files), so
    /// the receiving kernel cannot merge them into one fragment.
    @Test func smallSegmentsAfterABulkStreamAreAllDelivered() throws {
        var gen = SplitMix64(seed: 16)
        let bulk = 4 << 20, pieces = 4_000, page = 4096
        let file = try TemporaryFile(gen.bytes(bulk + pieces * page))
        let sizes = (0..<pieces).map { _ in 1 + Int(gen.next() % 300) }
        var expected = Array(file.bytes[0..<bulk])
        for (i, size) in sizes.enumerated() { expected += file.bytes[(bulk + i * page)..<(bulk + i * page + size)] }
        let wroteAll = Atomic<Bool>(false)
        let backend = TestServer { fd in
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            guard file.send(to: fd, offset: 0, count: bulk) else { return }
            for (i, size) in sizes.enumerated() {
                guard file.send(to: fd, offset: bulk + i * page, count: size) else { return }
            }
            wroteAll.store(true, ordering: .releasing)
            _ = TestSocket.readAll(fd)  // waits, without closing, until the client has gone
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1) { lb, address in
            let client = try TestClient(address)
            // Not reading yet: the backend's segments pile up in lb's sockets and pipe.
            _ = eventually(timeout: .seconds(3)) { wroteAll.load(ordering: .acquiring) }
            client.setReceiveTimeout(.seconds(5))
            let (got, end) = client.read(count: expected.count)
            #expect(end == nil, "stalled after \(got.count) of \(expected.count) bytes")
            let intact = got == expected  // not inside #expect: it would print megabytes on a failure
            #expect(intact)
            #expect(lb.counters[.spliceSwitches] > 0)
        }
    }

    /// nginx serves files with sendfile(2): page-sized fragments, which is what filled a pipe's slots
    /// with fewer bytes than asked for. Both directions, the sender never closing.
    @Test(arguments: [false, true])
    func sendfileStreamsArriveWhole(upstream: Bool) throws {
        var gen = SplitMix64(seed: upstream ? 2 : 1)
        let payload = gen.bytes(12 << 20)
        let file = try TemporaryFile(payload)
        let backendGot = Mutex<[UInt8]>([])
        let backend = TestServer { fd in
            if upstream {
                let (bytes, _) = TestSocket.read(fd, count: payload.count)
                backendGot.withLock { $0 = bytes }
                TestSocket.sendAll(fd, "ok")
            } else {
                guard file.sendAll(to: fd) else { return }
            }
            _ = TestSocket.readAll(fd)
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1) { lb, address in
            let client = try TestClient(address)
            client.setReceiveTimeout(.seconds(5))
            if upstream {
                #expect(file.sendAll(to: client.fd))
                let (answer, _) = client.read(count: 2)
                #expect(answer == Array("ok".utf8))
                let intact = backendGot.withLock { $0 } == payload
                #expect(intact)
            } else {
                let (got, end) = client.read(count: payload.count)
                #expect(end == nil, "stalled after \(got.count) of \(payload.count) bytes")
                let intact = got == payload
                #expect(intact)
            }
            #expect(lb.counters[.spliceSwitches] > 0)
        }
    }

    // MARK: urgent data: a read stops at the urgent mark

    /// `GET`, one urgent byte, then the rest: a read stops at the urgent mark, and that short read,
    /// with the peer's FIN already in, was taken for the end of the stream (silent truncation); without
    /// the FIN, the rest waited for an edge that never came. Every byte must arrive, in order, inline.
    @Test(arguments: [(true, true), (true, false), (false, true), (false, false)])
    func bytesAfterAnUrgentByteArrive(upstream: Bool, hangUp: Bool) throws {
        let head = Array("GET".utf8), urgent = UInt8(ascii: "!"), rest = Array("/ HTTP/1.0\r\n\r\n".utf8)
        let expected = head + [urgent] + rest
        @Sendable func sendWithUrgentByte(_ fd: Int32) {
            TestSocket.sendAll(fd, head)
            var byte = urgent
            _ = send(fd, &byte, 1, Int32(MSG_OOB) | Int32(MSG_NOSIGNAL))
            TestSocket.sendAll(fd, rest)
            if hangUp { TestSocket.shutdownWrite(fd) }
        }
        if upstream {
            // The backend's connect is slow (its accept queue is full until the client has sent
            // everything), so all of it, FIN included, waits in lb's socket before lb reads.
            let backend = try SlowAcceptListener()
            try withBalancer(backends: [backend.address], workers: 1, configure: { $0.connectTimeout = .seconds(10) }) { _, address in
                let client = try TestClient(address)
                sendWithUrgentByte(client.fd)
                #expect(eventually { backend.hasPendingSYN() })
                let fd = try #require(backend.admitAndAccept())
                defer { close(fd) }
                TestSocket.setReceiveTimeout(fd, .seconds(15))
                let (got, end) = TestSocket.read(fd, count: expected.count)
                #expect(end == nil && got == expected, "backend got \(String(decoding: got, as: UTF8.self).debugDescription)")
                if hangUp { #expect(TestSocket.readOnce(fd) == .eof) }
            }
        } else {
            let backend = TestServer { fd in
                sendWithUrgentByte(fd)
                _ = TestSocket.readAll(fd)
            }
            defer { backend.stop() }
            try withBalancer(backends: [backend.address], workers: 1) { _, address in
                let client = try TestClient(address)
                client.setReceiveTimeout(.seconds(5))
                let (got, end) = client.read(count: expected.count)
                #expect(end == nil && got == expected, "client got \(String(decoding: got, as: UTF8.self).debugDescription)")
                if hangUp { #expect(client.readOnce() == .eof) }
            }
        }
    }

    // MARK: timeouts: inactivity, and a reset when lb cuts a stream

    /// The FIN timeout bounds how long a half-closed pair may sit idle, not how long it may live: a
    /// download that keeps flowing after the client half-closed is never cut.
    @Test func aDownloadAfterTheClientHalfClosesIsNotCut() throws {
        let chunk = [UInt8](repeating: 0x5A, count: 16 * 1024), chunks = 16
        let backend = TestServer { fd in
            _ = TestSocket.readAll(fd)  // the request, up to the client's FIN
            for _ in 0..<chunks {
                guard TestSocket.sendAll(fd, chunk) else { return }
                usleep(60_000)  // a slow producer: the pacing is the scenario, not a wait for anything
            }
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.finTimeout = .milliseconds(300) }) { _, address in
            let client = try TestClient(address)
            client.send("GET /big HTTP/1.0\r\n\r\n")
            client.shutdownWrite()
            let (got, end) = client.readToEnd()
            #expect(got.count == chunk.count * chunks)
            #expect(end == .eof)
        }
    }

    enum Cut: String, CaseIterable { case idle, fin, drain }

    /// When lb itself ends a pair whose streams may be unfinished (a timeout, a drain running out), both
    /// peers get a reset: a FIN would let either take a cut stream for a complete one.
    @Test(arguments: Cut.allCases)
    func aPairLbCutsEndsWithAResetBothWays(cut: Cut) throws {
        let backendSaw = Mutex<ReadOutcome?>(nil)
        let backend = TestServer { fd in
            TestSocket.setReceiveTimeout(fd, .seconds(10))
            var outcome = TestSocket.readOnce(fd)
            while case .data = outcome { outcome = TestSocket.readOnce(fd) }
            if outcome == .eof {
                // The client's FIN came through first (the FIN-timeout case). A reset after it shows as
                // a socket error (EPIPE in CLOSE_WAIT), not through recv, which keeps returning 0.
                var p = pollfd(fd: fd, events: Int16(POLLERR), revents: 0)
                if poll(&p, 1, 10_000) == 1 && p.revents & Int16(POLLERR) != 0 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    outcome = .error(err == EPIPE ? ECONNRESET : err)
                }
            }
            backendSaw.withLock { $0 = outcome }
        }
        defer { backend.stop() }
        let lb = try LoadBalancer.start(
            {
                var c = Configuration()
                c.listen = [SocketAddress(host: "127.0.0.1", port: 0)!]
                c.backends = [BackendSpec(address: backend.address)]
                c.workers = 1
                c.logBackendChanges = false
                c.idleTimeout = cut == .idle ? .milliseconds(200) : .seconds(60)
                c.finTimeout = cut == .fin ? .milliseconds(200) : .seconds(60)
                c.drainTimeout = .milliseconds(200)
                c.health.mode = .downOnly
                return c
            }(), log: EventLog(echoToStderr: false))
        defer {
            lb.stopNow()
            lb.wait(timeout: .seconds(30))
        }
        let client = try TestClient(lb.listenAddresses[0])
        client.send("hello")
        if cut == .fin { client.shutdownWrite() }
        #expect(eventually { backend.accepted.load(ordering: .relaxed) == 1 })
        if cut == .drain {
            #expect(eventually { lb.counters[.activePairs] == 1 })
            lb.beginDrain()
        }
        #expect(client.readOnce() == .error(ECONNRESET))
        #expect(eventually { backendSaw.withLock { $0 } != nil })
        #expect(backendSaw.withLock { $0 } == .error(ECONNRESET))
    }

    // MARK: health: a short outage, and a silent protocol

    /// The only backend restarts in a blink: clients are served as soon as it listens again, not after
    /// health checks have passed `rise` times (with every backend down, lb tries them all: panic mode).
    @Test func theOnlyBackendIsUsedAgainAsSoonAsItIsBack() throws {
        var backend = TestServer(handler: TestServer.http(port: 1))
        let port = backend.port
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1) { lb, address in
            #expect(backendHeader(httpGet(address).text) == "1")
            backend.stop()
            #expect(httpGet(address).text.hasPrefix("HTTP/1.1 502 "))
            #expect(lb.pool.info(backend.address)?.isUp == false)
            backend = TestServer(port: port, handler: TestServer.http(port: 2))
            #expect(backendHeader(httpGet(address).text) == "2")
        }
    }

    /// With the panic threshold off, an all-down pool answers 502 without trying anyone.
    @Test func panicOffAnswersAtOnceWhenAllAreDown() throws {
        let dead = TestSocket.RefusingPort()
        defer { dead.close() }
        try withBalancer(backends: [dead.address], workers: 1, configure: { $0.panicThreshold = nil }) { lb, address in
            #expect(httpGet(address).text.hasPrefix("HTTP/1.1 502 "))
            #expect(lb.pool.info(dead.address)?.isUp == false)
            let failed = lb.pool.info(dead.address)?.failedConnects
            #expect(httpGet(address).text.hasPrefix("HTTP/1.1 502 "))
            #expect(lb.pool.info(dead.address)?.failedConnects == failed)  // not tried again
        }
    }

    /// A one-way protocol (a syslog sink: the backend only reads) idles out with the client waiting for
    /// an answer that never comes. That alone must not take a healthy backend out: lb checks it first.
    @Test(arguments: [true, false])
    func idleTimeoutsOnAOneWayProtocolKeepAHealthyBackend(checkOnIdle: Bool) throws {
        let lines = Mutex<[String]>([])
        let sink = TestServer { fd in
            var got: [UInt8] = []
            while case .data(let d) = TestSocket.readOnce(fd) { got += d }
            // lb's TCP health checks connect and leave without a byte: not a client.
            if !got.isEmpty { lines.withLock { $0.append(String(decoding: got, as: UTF8.self)) } }
        }
        defer { sink.stop() }
        try withBalancer(backends: [sink.address], workers: 1, configure: {
            $0.idleTimeout = .milliseconds(200)
            $0.checkOnIdle = checkOnIdle
        }) { lb, address in
            for i in 0..<7 {
                let client = try TestClient(address)
                client.send("<13>line \(i)\n")
                // lb closes the quiet pair at the idle timeout (with a reset: the stream may be unfinished).
                #expect(client.readOnce() == .error(ECONNRESET))
            }
            #expect(eventually { lines.withLock { $0.count } == 7 })
            #expect(Set(lines.withLock { $0 }) == Set((0..<7).map { "<13>line \($0)\n" }))
            #expect(lb.pool.info(sink.address)?.isUp == true)
            if checkOnIdle {
                #expect(eventually { lb.counters[.probesStarted] >= 1 })
            } else {
                #expect(lb.counters[.probesStarted] == 0)
            }
        }
    }

    // MARK: listeners: one lb per address

    /// SO_REUSEPORT lets any process of the same user join a listening group: a second lb must refuse
    /// the address instead of silently taking half the connections.
    @Test func aSecondBalancerOnTheSameAddressIsRefused() throws {
        let backend = TestServer(handler: TestServer.http(port: 1))
        defer { backend.stop() }
        try withBalancer(backends: [backend.address]) { _, address in
            var config = Configuration()
            config.listen = [address]
            config.backends = [BackendSpec(address: backend.address)]
            config.workers = 2
            #expect(throws: SystemError(errno: EADDRINUSE, operation: "bind \(address)")) {
                let second = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
                second.stopNow()
                second.wait()
            }
            // And a wildcard listener on the same port overlaps it just as a plain bind would.
            config.listen = [SocketAddress(host: "0.0.0.0", port: address.port)!]
            #expect(throws: SystemError(errno: EADDRINUSE, operation: "bind 0.0.0.0:\(address.port)")) {
                let second = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
                second.stopNow()
                second.wait()
            }
        }
    }
}

/// A listener whose accept queue is kept full by a filler connection, so a connect to it waits (its
/// SYN dropped) until `admitAndAccept` makes room and the connector's SYN is retransmitted (~1 s).
final class SlowAcceptListener: Sendable {
    let address: SocketAddress
    private let fd: Int32
    private let filler: Int32

    init() throws {
        var address = SocketAddress(host: "127.0.0.1", port: 0)!
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        precondition(address.withSockaddr { bind(fd, $0, $1) } == 0, "bind")
        precondition(listen(fd, 0) == 0, "listen")  // a backlog of 0 holds one connection
        TestSocket.setReceiveTimeout(fd, .seconds(10))  // bounds accept: a broken proxy fails, not hangs
        _ = address.withMutableSockaddr { getsockname(fd, $0, $1) }
        self.fd = fd
        self.address = address
        filler = try TestSocket.connect(address).get()
    }

    /// A connect is waiting for room: the listener has dropped at least one SYN.
    func hasPendingSYN() -> Bool {
        // The listener's drop counter is per namespace (ListenOverflows): read it before and after
        // would race with other tests, so ask the socket table instead: our listener has 1 queued.
        OpenSocket.ownedByThisProcess().contains { $0.isRemote(address) && $0.state == "SYN_SENT" }
    }

    /// Takes the filler out of the queue, then accepts the next connection (the retransmitted SYN's).
    func admitAndAccept() -> Int32? {
        let first = accept(fd, nil, nil)
        if first >= 0 { close(first) }
        let c = accept(fd, nil, nil)
        return c >= 0 ? c : nil
    }

    deinit {
        close(filler)
        close(fd)
    }
}

/// A file with known contents, unlinked at once, sent with sendfile(2) as nginx sends static files.
final class TemporaryFile: Sendable {
    private let fd: Int32
    let bytes: [UInt8]
    var count: Int { bytes.count }

    init(_ bytes: [UInt8]) throws {
        var template = Array("/tmp/lb-sendfile-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "mkstemp") }
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { close(fd); throw SystemError(errno: errno, operation: "write") }
        self.fd = fd
        self.bytes = bytes
    }

    /// The whole file to `socket` with sendfile (blocking socket); false when the peer went away.
    func sendAll(to socket: Int32) -> Bool { send(to: socket, offset: 0, count: count) }

    /// `count` bytes from `offset` to `socket` with sendfile; false when the peer went away.
    func send(to socket: Int32, offset start: Int, count: Int) -> Bool {
        var offset = off_t(start)
        let end = start + count
        while Int(offset) < end {
            let n = sendfile(socket, fd, &offset, end - Int(offset))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
        }
        return true
    }

    deinit { close(fd) }
}
