import CShim
import Glibc
import LoadBalancer
import Synchronization
import Testing

/// The proxy core over real loopback sockets, with the balancer running in-process.
@Suite struct ProxyTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test func singleRequest() throws {
        let backend = TestServer(handler: TestServer.http(port: 1))
        defer { backend.stop() }
        try withBalancer(backends: [backend.address]) { lb, address in
            let (text, end) = httpGet(address)
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(backendHeader(text) == "1")
            #expect(text.hasSuffix("backend 1\n"))
            #expect(end == .eof)
            #expect(eventually { lb.counters[.closedPairs] == 1 && lb.counters[.activePairs] == 0 })
        }
    }

    @Test func ipv6ListenerAndBackend() throws {
        let backend = TestServer(v6: true, handler: TestServer.http(port: 6))
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.listen = [SocketAddress(host: "::1", port: 0)!] }) { _, address in
            #expect(address.isIPv6)
            let (text, _) = httpGet(address)
            #expect(backendHeader(text) == "6")
        }
    }

    /// With splice on, streams that keep filling the buffer move to pipes part-way; off, every byte goes
    /// through the scratch buffer. Both must deliver every byte, in order.
    @Test(arguments: [true, false])
    func echoesMebibytesBothWaysOnManyPairs(splice: Bool) throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        let pairs = 12, size = 3 << 20
        try withBalancer(backends: [backend.address], configure: { $0.bufferSize = 16384; $0.splice = splice }) { lb, address in
            let mismatches = Atomic<Int>(0)
            let threads = (0..<pairs).map { i in
                OSThread.start {
                    guard case .success(let fd) = TestSocket.connect(address) else { mismatches.add(1, ordering: .relaxed); return }
                    defer { close(fd) }
                    var gen = SplitMix64(seed: UInt64(i + 1))  // seeded, so a failure reproduces
                    let payload = gen.bytes(size)
                    let writer = OSThread.start {
                        TestSocket.sendAll(fd, payload)
                        TestSocket.shutdownWrite(fd)  // half-close: the echo must still come back whole
                    }
                    let (echoed, end) = TestSocket.readAll(fd)
                    writer.join()
                    if echoed != payload || end != .eof { mismatches.add(1, ordering: .relaxed) }
                }
            }
            for t in threads { t.join() }
            #expect(mismatches.load(ordering: .relaxed) == 0)
            #expect(eventually { lb.counters[.activePairs] == 0 })
            let c = lb.counters
            #expect(c[.bytesUp] == pairs * size && c[.bytesDown] == pairs * size)
            let info = try #require(lb.pool.info(backend.address))
            #expect(info.bytesToBackend == pairs * size && info.bytesFromBackend == pairs * size)
            #expect(c[.buffersInUse] == 0 && c[.pipesInUse] == 0)
            #expect(splice ? c[.spliceSwitches] > 0 : c[.spliceSwitches] == 0)
        }
    }

    @Test func halfCloseLetsTheReplyFinish() throws {
        // The backend reads until the client's EOF, then answers: only works if EOF became shutdown(SHUT_WR).
        let backend = TestServer { fd in
            let (request, _) = TestSocket.readAll(fd)
            _ = TestSocket.sendAll(fd, "got \(request.count) bytes\n" + String(repeating: "x", count: 200_000))
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address]) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, [UInt8](repeating: 7, count: 100_000))
            TestSocket.shutdownWrite(fd)
            let (reply, end) = TestSocket.readAll(fd)
            #expect(end == .eof)
            #expect(String(decoding: reply.prefix(20), as: UTF8.self).hasPrefix("got 100000 bytes\n"))
            #expect(reply.count == "got 100000 bytes\n".utf8.count + 200_000)
            #expect(eventually { lb.counters[.activePairs] == 0 })
        }
    }

    @Test func refusedBackendIsSkippedAndMarkedDown() throws {
        let good = TestServer(handler: TestServer.http(port: 2))
        defer { good.stop() }
        let refusing = TestSocket.RefusingPort()
        defer { refusing.close() }
        let dead = refusing.address
        try withBalancer(backends: [dead, good.address], configure: { $0.health.interval = .seconds(60) }) { lb, address in
            for _ in 0..<10 {
                let (text, _) = httpGet(address)
                #expect(backendHeader(text) == "2")
            }
            let info = lb.pool.info(dead)
            #expect(info?.isUp == false)
            #expect(info?.failedConnects == 1)  // marked down at once, then skipped
            #expect(lb.log.recent.contains("backend \(dead) down: connect failed: connection refused (1 in a row)"))
        }
    }

    @Test func allBackendsDownGives502() throws {
        let refusing = [TestSocket.RefusingPort(), TestSocket.RefusingPort(v6: true)]
        defer { for r in refusing { r.close() } }
        let dead = refusing.map(\.address)
        try withBalancer(backends: dead, configure: { $0.retries = 3 }) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let (bytes, end) = TestSocket.readAll(fd)
            #expect(bytes == BadGateway.response)
            #expect(end == .eof)
            #expect(lb.counters[.badGateways] == 1)
            #expect(lb.pool.all().allSatisfy { !$0.isUp })
            // Now nothing is up: the next client is answered at once, without trying.
            let (again, _) = httpGet(address)
            #expect(Array(again.utf8) == BadGateway.response)
        }
    }

    @Test func noBackendCloseModeJustCloses() throws {
        let refusing = TestSocket.RefusingPort()
        defer { refusing.close() }
        try withBalancer(backends: [refusing.address], configure: { $0.onNoBackend = .close }) { _, address in
            let (text, end) = httpGet(address)
            #expect(text.isEmpty)
            #expect(end == .eof)
        }
    }

    @Test func backendResetMidStreamClosesClientPromptly() throws {
        let backend = TestServer { fd in
            _ = TestSocket.read(fd, until: "\r\n\r\n")
            _ = TestSocket.sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
            TestSocket.resetOnClose(fd)
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.idleTimeout = .seconds(120) }) { lb, address in
            let start = MonotonicClock.now()
            let (text, end) = httpGet(address)
            #expect(text.hasSuffix("partial"))
            #expect(end == .reset)  // passed on as a reset: a truncated stream must not look complete
            #expect(end != .timeout)
            #expect(MonotonicClock.now() - start < 30_000_000_000)  // long before the 120s idle timeout
            #expect(eventually { lb.counters[.activePairs] == 0 })
        }
    }

    @Test func idleTimeoutCutsThePairAndChecksTheSilentBackend() throws {
        let backend = TestServer { fd in _ = TestSocket.readAll(fd) }  // reads, never answers
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.idleTimeout = .milliseconds(300) }) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "GET / HTTP/1.1\r\n\r\n")
            let (bytes, end) = TestSocket.readAll(fd)
            #expect(bytes.isEmpty && end == .reset)  // cut: the answer may have been on its way
            // The silence asked for a health check (TCP: the backend accepts), which found it healthy.
            #expect(eventually { lb.counters[.probesStarted] == 1 && backend.accepted.load(ordering: .relaxed) == 2 })
            #expect(lb.pool.info(backend.address)?.failStreak == 0)
            #expect(lb.pool.info(backend.address)?.isUp == true)
        }
    }

    @Test func slowReaderKeepsMemoryBounded() throws {
        let total = 48 << 20
        let written = Atomic<Int>(0)
        let blocked = Atomic<Bool>(false)
        let backend = TestServer { fd in
            _ = TestSocket.read(fd, exactly: 2)
            TestSocket.setTimeouts(fd, seconds: 1)
            let chunk = [UInt8](repeating: 0x5A, count: 65536)
            while written.load(ordering: .relaxed) < total {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { written.add(n, ordering: .relaxed); continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    blocked.store(true, ordering: .relaxed)  // the proxy stopped reading us
                    TestSocket.setTimeouts(fd, seconds: 30)
                    continue
                }
                return
            }
            TestSocket.shutdownWrite(fd)
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address, timeoutSeconds: 30) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "go")
            #expect(eventually(timeout: .seconds(30)) { blocked.load(ordering: .relaxed) })
            // Only kernel socket buffers and at most one pooled buffer per direction hold the backlog.
            #expect(written.load(ordering: .relaxed) < total / 2)
            #expect(lb.counters[.buffersInUse] <= 2)
            // Then read it all: nothing lost.
            let (bytes, end) = TestSocket.readAll(fd)
            #expect(bytes.count == written.load(ordering: .relaxed) && end == .eof)
            #expect(bytes.allSatisfy { $0 == 0x5A })
        }
    }

    /// A client that stops reading and then vanishes: the bytes held for it (a pooled buffer, or a pipe
    /// once the stream went to splice) must go back to the pools when the pair closes.
    @Test(arguments: [true, false])
    func closingAPairWithBytesInFlightReturnsItsBuffers(splice: Bool) throws {
        let backend = TestServer { fd in
            _ = TestSocket.read(fd, exactly: 2)
            let chunk = [UInt8](repeating: 7, count: 65536)
            while TestSocket.sendAll(fd, chunk) {}
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1, configure: { $0.splice = splice }) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            TestSocket.sendAll(fd, "go")
            // The client reads nothing: lb ends up holding bytes it cannot deliver.
            #expect(eventually { lb.counters[.buffersInUse] + lb.counters[.pipesInUse] > 0 })
            TestSocket.reset(fd)
            #expect(eventually { lb.counters[.activePairs] == 0 })
            #expect(eventually { lb.counters[.buffersInUse] == 0 && lb.counters[.pipesInUse] == 0 })
        }
    }

        @Test func drainOnShutdownLetsOpenPairsFinish() throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.drainTimeout = .seconds(30) }) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "before")
            #expect(TestSocket.read(fd, exactly: 6) == Array("before".utf8))
            lb.beginDrain()
            // New clients are refused once the listeners are closed...
            // (connectErrno closes any socket it connects: a worker still listening might accept it,
            // and the drain would then wait for that pair too.)
            #expect(eventually { connectErrno(address) == ECONNREFUSED })
            // ...while the open pair keeps working and ends normally.
            TestSocket.sendAll(fd, "after")
            #expect(TestSocket.read(fd, exactly: 5) == Array("after".utf8))
            #expect(!lb.isFinished)
            TestSocket.shutdownWrite(fd)
            #expect(TestSocket.readAll(fd).end == .eof)
            #expect(lb.wait(timeout: .seconds(20)))  // finished on its own, long before the 30s drain timeout
        }
    }

    @Test func drainTimeoutClosesStragglers() throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.drainTimeout = .milliseconds(300) }) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "hi")
            #expect(TestSocket.read(fd, exactly: 2) == Array("hi".utf8))
            lb.beginDrain()
            #expect(TestSocket.readAll(fd).end == .reset)  // cut by the drain deadline: a reset, not a clean end
            #expect(lb.wait(timeout: .seconds(20)))
        }
    }

    @Test func noSocketLeftOpenAfterPairsClose() throws {
        let good = TestServer(handler: TestServer.http(port: 3))
        let resetter = TestServer { fd in _ = TestSocket.read(fd, exactly: 4); TestSocket.resetOnClose(fd) }
        defer { good.stop(); resetter.stop() }
        let refusing = TestSocket.RefusingPort()
        defer { refusing.close() }
        let backends = [good.address, resetter.address, refusing.address]
        try withBalancer(backends: backends, configure: { $0.health.interval = .seconds(60) }) { lb, address in
            let threads = (0..<8).map { _ in
                OSThread.start {
                    for _ in 0..<25 { _ = httpGet(address) }
                    // A client that vanishes mid-request.
                    if case .success(let fd) = TestSocket.connect(address) {
                        TestSocket.sendAll(fd, "GET")
                        TestSocket.reset(fd)
                    }
                }
            }
            for t in threads { t.join() }
            #expect(eventually { lb.counters[.activePairs] == 0 })
            // A client reset while still in the accept queue may never be accepted at all.
            #expect((8 * 25...8 * 26).contains(lb.counters[.accepted]))
            let leftovers = openSockets(balancer: address, backends: backends)
            #expect(leftovers.isEmpty, "sockets still open: \(leftovers); lb \(address.port), good \(good.port), resetter \(resetter.port), refusing \(refusing.address.port); \(lb.counters)")
            #expect(lb.pool.all().allSatisfy { $0.activeConnections == 0 })
            #expect(lb.counters[.buffersInUse] == 0 && lb.counters[.pipesInUse] == 0)
        }
    }

    @Test func bothSidesOfAPairHaveNoDelay() throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        try withBalancer(backends: [backend.address]) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "ping")
            #expect(TestSocket.read(fd, exactly: 4) == Array("ping".utf8))
            // The balancer runs in this process: its two sockets of the pair are ours to inspect.
            let sockets = OpenSocket.ownedByThisProcess().filter { $0.state == "ESTABLISHED" }
            let accepted = sockets.filter { $0.isLocal(address) }
            let outgoing = sockets.filter { $0.isRemote(backend.address) }
            #expect(accepted.count == 1 && outgoing.count == 1, "accepted \(accepted), outgoing \(outgoing)")
            for s in accepted + outgoing {
                var on: Int32 = 0
                var len = socklen_t(4)
                getsockopt(s.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, &len)
                #expect(on == 1, "\(s)")
            }
        }
    }

    @Test func bindFailureIsAClearError() throws {
        let taken = TestServer(handler: TestServer.echo)
        defer { taken.stop() }
        var config = Configuration()
        config.listen = [taken.address]
        config.backends = [BackendSpec(address: taken.address)]
        config.workers = 1
        #expect(throws: SystemError(errno: EADDRINUSE, operation: "bind \(taken.address)")) {
            _ = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        }
    }
}
