import CShim
import FakeBackends
import Glibc
import LoadBalancer
import LoadGen
import Synchronization
import Testing

/// Upgrades through `--takeover-socket`: each new `lb` process takes the listening sockets of the
/// running one, which drains and exits, while new connections keep arriving.
@Suite struct UpgradeTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test func fiveUpgradesInARowUnderLoadDropNoConnection() throws {
        let path = try #require(LbExecutableTests.binary, "the lb executable is not built next to the tests")
        FileLimit.raiseToHard()
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 2))
        defer { farm.stop() }
        let socketPath = "/tmp/lb-takeover-\(getpid())-\(MonotonicClock.now() % 1_000_000).sock"
        defer { unlink(socketPath) }
        // Port 0: the first process picks the port; each successor inherits the bound sockets.
        let arguments = ["--listen", "127.0.0.1:0", "--workers", "2", "--drain-timeout", "5s", "--takeover-socket", socketPath]
            + farm.addresses.flatMap { ["--backend", $0.description] }
        var processes = [try Subprocess(path, arguments)]
        let address = try #require(
            eventually { processes[0].stderr.contains("lb: listening on ") } ? ConfigFileExecutableTests.firstListener(processes[0].stderr) : nil,
            "no start-up line: \(processes[0].stderr)")

        // Open loop, a new connection per request: 1,000 a second for 8 seconds (the upgrades take 2-3).
        var load = LoadConfiguration(target: LoadTarget(address: address, path: "/"))
        load.rate = 1000
        load.requests = 8_000
        load.concurrency = 64
        load.threads = 1
        load.timeout = .seconds(5)
        let report = Mutex<LoadReport?>(nil)
        let loadConfig = load
        let loader = OSThread.start {
            let r = try? LoadGenerator.run(loadConfig)
            report.withLock { $0 = r }
        }
        var upgrades = 0
        for _ in 0..<5 {
            let old = processes.last!
            let new = try Subprocess(path, arguments)
            processes.append(new)
            #expect(eventually { new.stderr.contains("lb: took over 2 listening sockets") }, "\(new.stderr)")
            #expect(old.waitForExit() == 0)
            #expect(old.stderr.contains("lb: takeover: listening sockets handed to the new lb; draining"))
            #expect(eventually { new.stderr.contains("lb: listening on \(address) ") })
            upgrades += 1
            observationWindow(.milliseconds(200))  // let the new process serve a while before the next upgrade
        }
        // The load overlapped all five upgrades: it was still running after the last.
        #expect(report.withLock { $0 == nil })
        loader.join()
        #expect(upgrades == 5)
        let r = try #require(report.withLock { $0 })
        #expect(r.completed == 8_000)
        #expect(r.failed == 0, "\(r.errors)")
        let last = processes.last!
        #expect(backendHeader(httpGet(address).text) != nil)
        last.signal(SIGTERM)
        #expect(last.waitForExit() == 0)
    }
}

/// The hand-over in-process: both sides of `Takeover` without spawning processes.
@Suite struct TakeoverTests {
    init() { _ = lb_ignore_sigpipe() }

    static func socketPath() -> String { "/tmp/lb-takeover-\(getpid())-\(MonotonicClock.now() % 1_000_000_000).sock" }

    @Test func nothingServingAtThePathMeansStartFresh() throws {
        let path = Self.socketPath()
        #expect(try Takeover.request(from: path) == nil)  // no file
        let stale = try Sys.unixListen(path)
        close(stale)  // a file left behind, nobody listening
        defer { unlink(path) }
        #expect(try Takeover.request(from: path) == nil)
    }

    /// A path naming a file that is not a socket (a mistyped `--takeover-socket lb.json`) is never
    /// replaced: the server refuses with ENOTSOCK, and the file keeps its bytes.
    @Test func aFileThatIsNotASocketIsNeverReplaced() throws {
        let backend = TestServer(handler: TestServer.http(port: 9))
        defer { backend.stop() }
        let path = Self.socketPath()
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        #expect(fd >= 0)
        #expect(write(fd, "{}", 2) == 2)
        close(fd)
        defer { unlink(path) }
        #expect(Sys.namesNonSocket(path))
        try withBalancer(backends: [backend.address]) { old, _ in
            #expect(throws: SystemError(errno: ENOTSOCK, operation: "replace \(path)")) {
                try TakeoverServer.start(path: path, balancer: old) {}
            }
        }
        var st = stat()
        #expect(lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_size == 2)
    }

    @Test func aNewBalancerServesOnTheHandedOverSocketsAndTheOldOneKeepsServingIfItGivesUp() throws {
        let backend = TestServer(handler: TestServer.http(port: 9))
        defer { backend.stop() }
        let path = Self.socketPath()
        defer { unlink(path) }
        try withBalancer(backends: [backend.address]) { old, address in
            let handedOver = Atomic<Int>(0)
            let server = try TakeoverServer.start(path: path, balancer: old) { handedOver.add(1, ordering: .relaxed) }
            defer { server.stop() }

            // A new process that gives up before "ready": the old one keeps its listeners.
            let first = try #require(try Takeover.request(from: path))
            #expect(first.listeners.count == 1)
            #expect(first.listeners[0].bound == address && first.listeners[0].service == "default")
            #expect(first.listeners[0].fds.count == 2)  // one per old worker
            for fd in first.listeners[0].fds { close(fd) }
            first.abandon()
            #expect(eventually { old.log.recent.contains("takeover: the new lb went away before it was ready; still serving") })
            #expect(handedOver.load(ordering: .relaxed) == 0)
            #expect(backendHeader(httpGet(address).text) == "9")

            // One that goes through: it serves on the same port, and the old one is told.
            let second = try #require(try Takeover.request(from: path))
            var config = Configuration()
            config.listen = [SocketAddress(host: "127.0.0.1", port: 0)!]
            config.backends = [BackendSpec(address: backend.address)]
            config.workers = 1  // fewer workers than sockets handed over: the extra one is served too
            config.logBackendChanges = false
            let new = try LoadBalancer.start(config, log: EventLog(echoToStderr: false), inherited: second.listeners)
            defer { new.stopNow(); new.wait() }
            try second.ready()
            #expect(new.listenAddresses == [address])
            #expect(eventually { handedOver.load(ordering: .relaxed) == 1 })
            old.beginDrain()
            #expect(eventually { old.isFinished })
            for _ in 0..<4 { #expect(backendHeader(httpGet(address).text) == "9") }
            #expect(new.counters[.accepted] == 4)
        }
    }
}
