import CShim
import FakeBackends
import Glibc
import LoadBalancer
import LoadGen
import Testing

/// What a new user meets in the first minutes: a backend that is lb itself, a busy port in the farm's
/// range, the faulty demo, the log lines.
@Suite struct FirstRunTests {
    init() { _ = lb_ignore_sigpipe() }

    /// A loopback port nothing holds right now (bound to port 0, read, closed).
    func freePort() throws -> UInt16 {
        let fd = try Sockets.bind(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        defer { Sys.close(fd) }
        return try Sys.localAddress(of: fd).port
    }

    /// lb's own listen address as a backend is left out, so one request is one connection, not a
    /// storm of lb connecting to itself.
    @Test func ownListenAddressIsLeftOutAndOneRequestIsOneConnection() throws {
        let backend = TestServer(handler: TestServer.http(port: 80))
        defer { backend.stop() }
        let port = try freePort()
        let me = SocketAddress(host: "127.0.0.1", port: port)!
        var config = Configuration()
        config.listen = [me]
        config.backends = [BackendSpec(address: me), BackendSpec(address: backend.address)]
        config.workers = 1
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait(timeout: .seconds(30)) }
        #expect(lb.pool.count == 1)
        #expect(lb.log.recent.contains("left out 1 backend that would loop back to lb's own listener: 127.0.0.1:\(port)"))
        for _ in 0..<3 { #expect(backendHeader(httpGet(me).text) == "80") }
        #expect(eventually { lb.counters[.activePairs] == 0 })
        #expect(lb.counters[.accepted] == 3)
    }

    @Test func onlyItselfAsBackendGivesA502NotALoop() throws {
        let port = try freePort()
        let me = SocketAddress(host: "127.0.0.1", port: port)!
        var config = Configuration()
        config.listen = [me]
        config.backends = [BackendSpec(address: me)]
        config.workers = 1
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait(timeout: .seconds(30)) }
        #expect(lb.pool.count == 0)
        #expect(httpGet(me).text.hasPrefix("HTTP/1.1 502 Bad Gateway"))
        #expect(lb.counters[.accepted] == 1)
    }

    @Test(.enabled(if: LbExecutableTests.binary != nil, "the lb executable is not built next to the tests"))
    func lbRefusesToStartAsItsOwnOnlyBackend() throws {
        let port = try freePort()
        let lb = try Subprocess(LbExecutableTests.binary!, ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(port)"])
        #expect(lb.waitForExit() == 2)
        #expect(lb.stderr == "lb: every --backend is lb's own listen address (127.0.0.1:\(port)): that would be a loop\n")
        // A wildcard listener covers every local address on its port (refused before anything binds).
        let wild = try Subprocess(LbExecutableTests.binary!, ["--listen", "0.0.0.0:\(port)", "--backend", "127.0.0.2:\(port)"])
        #expect(wild.waitForExit() == 2)
        #expect(wild.stderr.hasSuffix("that would be a loop\n"))
    }

    /// Every log line of a running lb starts with an RFC 3339 time stamp, and counts read naturally.
    @Test(.enabled(if: LbExecutableTests.binary != nil, "the lb executable is not built next to the tests"))
    func logLinesAreStampedAndCountsAgree() throws {
        let backend = TestServer(handler: TestServer.http(port: 80))
        defer { backend.stop() }
        let lb = try Subprocess(LbExecutableTests.binary!, ["--listen", "127.0.0.1:0", "--workers", "1", "--backend", backend.address.description])
        #expect(eventually { lb.stderr.contains("lb: listening on ") })
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
        let lines = lb.stderr.split(separator: "\n")
        #expect(lines.count >= 3)
        for line in lines {
            #expect(Self.isStamped(line), "\(line)")
        }
        #expect(lb.stderr.contains(" with 1 worker, 1 backend\n"))
        #expect(lb.stderr.contains("lb: stopped after 0 connections ("))
    }

    /// `2026-12-01T00:10:05.123Z lb: ...`
    static func isStamped(_ line: Substring) -> Bool {
        let b = Array(line.utf8)
        guard b.count > 25 else { return false }
        let shape = Array("dddd-dd-ddTdd:dd:dd.dddZ ".utf8)
        for (i, s) in shape.enumerated() {
            if s == UInt8(ascii: "d") ? !(b[i] >= 48 && b[i] <= 57) : b[i] != s { return false }
        }
        return line.dropFirst(25).hasPrefix("lb: ")
    }

    /// One busy port in a farm's range is skipped and named; asked to, the farm refuses instead.
    @Test func farmSkipsABusyPortAndSaysWhich() throws {
        let holder = TestServer(handler: TestServer.echo)
        defer { holder.stop() }
        let a = SocketAddress(host: "127.0.0.1", port: try freePort())!
        let b = SocketAddress(host: "127.0.0.1", port: try freePort())!
        var config = FarmConfiguration(addresses: [a, holder.address, b], loops: 1)
        config.skipBusyPorts = true
        let farm = try FakeBackendFarm.start(config)
        defer { farm.stop() }
        #expect(farm.skipped == [holder.address])
        #expect(farm.addresses == [a, b])
        let reply = httpGet(b).text
        #expect(backendHeader(reply) == "\(b.port)")
        #expect(FarmCommandLine.describe(farm.skipped) == holder.address.description)

        config.skipBusyPorts = false
        #expect(throws: SystemError.self) { _ = try FakeBackendFarm.start(FarmConfiguration(addresses: [holder.address], loops: 1)) }
    }

    /// `lb --demo` with faulty backends: its HTTP checks take them out, so loadgen's failures stop
    /// within a few intervals. Polled over a bounded window, each round bounded in count and time.
    @Test(.enabled(if: LbExecutableTests.binary != nil, "the lb executable is not built next to the tests"),
          arguments: ["reset", "mixed"])
    func faultyDemoReachesZeroErrors(fault: String) throws {
        let lb = try Subprocess(LbExecutableTests.binary!, [
            "--listen", "127.0.0.1:0", "--admin", "off", "--workers", "1", "--demo", "--demo-count", "10", "--fail-rate", "0.3", "--fault", fault,
        ])
        defer { lb.signal(SIGTERM); _ = lb.waitForExit() }
        try #require(eventually { lb.stderr.contains("lb: listening on ") }, "no start-up line: \(lb.stderr)")
        let line = lb.stderr.split(separator: "\n").first { $0.contains("lb: listening on ") }!
        let portText = line.split(separator: "lb: listening on 127.0.0.1:", maxSplits: 1)[1].prefix { $0.isNumber }
        let address = SocketAddress(host: "127.0.0.1", port: try #require(UInt16(portText)))!
        var config = LoadConfiguration(target: LoadTarget(address: address))
        config.requests = 100
        config.concurrency = 5
        config.threads = 1
        config.timeout = .seconds(3)
        var rounds: [Int] = []
        let clean = eventually(timeout: .seconds(30)) {
            guard let report = try? LoadGenerator.run(config) else { return false }
            rounds.append(report.failed)
            return report.failed == 0 && report.succeeded == 100
        }
        #expect(clean, "failures per round: \(rounds); lb said: \(lb.stderr)")
        // And it stays clean: the faulty backends are out, not lucky.
        if clean {
            let again = try LoadGenerator.run(config)
            #expect(again.failed == 0, "\(again.errors)")
        }
    }
}
