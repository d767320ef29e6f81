import CShim
import Glibc
import LoadBalancer
import Synchronization
import Testing

/// Crashes and stalls under load: `kill -9` of lb (clients see an end, never a hang; a restarted lb on
/// the same address serves at once), and a backend stopped with SIGSTOP (timeouts and health checks
/// take it out, and bring it back after SIGCONT). Bounded: every read has a receive timeout.
@Suite struct CrashRestartTests {
    init() { _ = lb_ignore_sigpipe() }

    static let lb = Subprocess.product("lb")
    static let fakebackends = Subprocess.product("fakebackends")

    /// Starts the lb executable on `listen` and waits for its start-up line; returns it and the bound address.
    func startLB(listen: String, _ arguments: [String]) throws -> (Subprocess, SocketAddress) {
        let path = try #require(Self.lb, "the lb executable is not built next to the tests")
        let lb = try Subprocess(path, ["--listen", listen, "--quiet"] + arguments)
        try #require(eventually { lb.stderr.contains("lb: listening on ") }, "no start-up line: \(lb.stderr)")
        let line = lb.stderr.split(separator: "\n").first { $0.contains("lb: listening on ") }!
        let text = line.split(separator: "lb: listening on ", maxSplits: 1)[1].prefix { $0 != " " && $0 != "," }
        let port = try #require(UInt16(text.split(separator: ":").last ?? ""))
        return (lb, SocketAddress(host: "127.0.0.1", port: port)!)
    }

    /// How one load thread's connection ended once lb was killed.
    enum Ending: Equatable { case running, eof, reset, hang, other(Int32) }

    @Test func killNineUnderLoadEndsEveryClientAndARestartServesAtOnce() throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        let (first, address) = try startLB(listen: "127.0.0.1:0", ["--backend", backend.address.description, "--workers", "2"])
        let clients = 8
        let endings = Mutex<[Ending]>(Array(repeating: .running, count: clients))
        let exchanges = Atomic<Int>(0)
        var threads: [OSThread] = []
        for i in 0..<clients {
            threads.append(OSThread.start {
                guard let client = try? TestClient(address) else { endings.withLock { $0[i] = .other(-1) }; return }
                client.setReceiveTimeout(.seconds(5))
                let message = [UInt8](repeating: UInt8(65 + i), count: 4096)
                for _ in 0..<1_000_000 {  // bounded; ends at the kill
                    guard client.send(message) else { endings.withLock { $0[i] = .reset }; return }
                    let (got, end) = client.read(count: message.count)
                    switch end {
                    case nil:
                        if got != message { endings.withLock { $0[i] = .other(-2) }; return }
                        exchanges.add(1, ordering: .relaxed)
                    case .eof?: endings.withLock { $0[i] = .eof }; return
                    case .timeout?: endings.withLock { $0[i] = .hang }; return
                    case .error(let e)?: endings.withLock { $0[i] = e == ECONNRESET || e == EPIPE ? .reset : .other(e) }; return
                    case .data?: endings.withLock { $0[i] = .other(-3) }; return
                    }
                }
            })
        }
        // Under load: every client has had answers before the kill.
        #expect(eventually { exchanges.load(ordering: .relaxed) >= clients * 20 })
        first.signal(SIGKILL)
        #expect(first.waitForExit() == 128 + SIGKILL)
        for t in threads { t.join() }
        let seen = endings.withLock { $0 }
        #expect(!seen.contains(.hang) && !seen.contains(.running), "each client saw an end: \(seen)")
        #expect(seen.allSatisfy { $0 == .eof || $0 == .reset }, "\(seen)")

        // The same address again, at once: SO_REUSEADDR, and no state survives the crash.
        let (second, again) = try startLB(listen: address.description, ["--backend", backend.address.description, "--workers", "2"])
        #expect(again == address)
        do {
            let client = try TestClient(address)
            client.send("after the restart")
            let (got, end) = client.read(count: 17)
            #expect(end == nil && got == Array("after the restart".utf8))
        }  // closed here, so the drain below has nothing to wait for
        second.signal(SIGTERM)
        #expect(second.waitForExit() == 0)
    }

    @Test(.enabled(if: fakebackends != nil, "the fakebackends executable is not built next to the tests"))
    func aStoppedBackendIsTakenOutAndBroughtBack() throws {
        let healthy = TestServer(handler: TestServer.http(port: 80))
        defer { healthy.stop() }
        // A free port for the backend process we stop and continue (bind 0, read it, let it go).
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var any = SocketAddress(host: "127.0.0.1", port: 0)!
        _ = any.withSockaddr { bind(probe, $0, $1) }
        _ = any.withMutableSockaddr { getsockname(probe, $0, $1) }
        close(probe)
        let stoppedAddress = any
        let process = try Subprocess(try #require(Self.fakebackends), ["--host", "127.0.0.1", "--ports", "\(stoppedAddress.port)", "--mode", "http", "--loops", "1"])
        defer { process.signal(SIGCONT); process.signal(SIGTERM); _ = process.waitForExit() }
        try #require(eventually { backendHeader(httpGet(stoppedAddress).text) != nil }, "fakebackends did not start: \(process.stderr)")

        try withBalancer(backends: [stoppedAddress, healthy.address], workers: 1, configure: {
            $0.health.mode = .http(path: "/health")
            $0.health.interval = .milliseconds(100)
            $0.health.timeout = .milliseconds(200)
            $0.health.rise = 2
            $0.health.fall = 2
            $0.connectTimeout = .milliseconds(300)
            $0.idleTimeout = .milliseconds(500)
        }) { lb, address in
            #expect(eventually { lb.pool.info(stoppedAddress)?.isUp == true })
            // Load for the whole test, one connection per request, bounded in count and by a stop flag.
            let stop = Atomic<Bool>(false)
            let answered = Atomic<Int>(0)
            let loader = OSThread.start {
                for _ in 0..<100_000 where !stop.load(ordering: .relaxed) {
                    if backendHeader(httpGet(address).text) != nil { answered.add(1, ordering: .relaxed) }
                }
            }
            defer { stop.store(true, ordering: .relaxed); loader.join() }

            process.signal(SIGSTOP)  // the kernel still completes handshakes; nothing answers
            #expect(eventually { lb.pool.info(stoppedAddress)?.isUp == false }, "the stopped backend was never taken out")
            // While it is out, the healthy one answers every request.
            let before = answered.load(ordering: .relaxed)
            var servedByHealthy = 0
            for _ in 0..<20 where backendHeader(httpGet(address).text) == "80" { servedByHealthy += 1 }
            #expect(servedByHealthy == 20)
            #expect(eventually { answered.load(ordering: .relaxed) > before })

            process.signal(SIGCONT)
            #expect(eventually { lb.pool.info(stoppedAddress)?.isUp == true }, "the continued backend never came back")
            #expect(eventually { let h = backendHeader(httpGet(address).text); return h != nil && h != "80" }, "no answer from it after it came back")
        }
    }
}
