import CShim
import FakeBackends
import Glibc
import LoadBalancer
import LoadGen
import Synchronization
import Testing

/// Reloads of a running balancer: services, listeners and backends come and go while traffic flows,
/// and no open pair is cut.
@Suite struct ReloadTests {
    init() { _ = lb_ignore_sigpipe() }

    static func service(_ name: String, listen: [SocketAddress], _ backends: [SocketAddress], _ configure: (inout ServiceSettings) -> Void = { _ in }) -> ServiceConfiguration {
        var settings = ServiceSettings(Configuration())
        configure(&settings)
        return ServiceConfiguration(name: name, listen: listen, backends: backends.map { BackendSpec(address: $0) }, settings: settings)
    }

    static func config(_ services: [ServiceConfiguration]) -> Configuration {
        var c = Configuration()
        c.workers = 2
        c.logBackendChanges = false
        c.drainTimeout = .seconds(30)
        c.services = services
        return c
    }

    static let anyPort = SocketAddress(host: "127.0.0.1", port: 0)!

    /// A free loopback port (bound, then released), for configurations that must name their port: a
    /// reload keeps or drops listeners by their configured address.
    static func reservedPort() -> SocketAddress {
        let probe = TestServer(handler: { _ in })
        let address = probe.address
        probe.stop()
        return address
    }

    @Test func reloadsUnderLoadAddAndRemoveServicesListenersAndBackendsWithZeroFailures() throws {
        FileLimit.raiseToHard()
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 4))
        defer { farm.stop() }
        let b = farm.addresses
        let web = Self.reservedPort(), old = Self.reservedPort(), api = Self.reservedPort(), web2 = Self.reservedPort()
        var config = Self.config([Self.service("web", listen: [web], [b[0], b[1]]), Self.service("old", listen: [old], [b[0]])])
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let webService = try #require(lb.service(named: "web"))

        let report = Mutex<LoadReport?>(nil)
        let loader = OSThread.start {
            let r = try? load(web, requests: 6000, concurrency: 8, timeout: .seconds(20))
            report.withLock { $0 = r }
        }
        func reload(after accepted: Int, _ change: (inout Configuration) -> Void) throws -> String {
            #expect(eventually { webService.counters[.accepted] >= accepted })
            change(&config)
            return try lb.reload(to: config).summary
        }
        // While the load runs: a backend swapped, a service added; then one removed and a listener
        // added; then new settings.
        #expect(try reload(after: 500) {
            $0.services[0].backends = [b[1], b[2]].map { BackendSpec(address: $0) }
            $0.services.append(Self.service("api", listen: [api], [b[3]]))
        } == "+1 service (api), web: +1 -1 backends")
        #expect(try reload(after: 1500) {
            $0.services.removeAll { $0.name == "old" }
            $0.services[0].listen.append(web2)
        } == "-1 service (old), web: +1 -0 listeners")
        #expect(try reload(after: 2500) { $0.services[0].settings.idleTimeout = .seconds(5) } == "web: settings")
        loader.join()
        let r = try #require(report.withLock { $0 })
        #expect(r.completed == 6000)
        #expect(r.failed == 0, "\(r.errors)")
        #expect(webService.counters[.accepted] >= 6000)

        // The result: api serves, old's listener is closed, web serves on both listeners from its
        // new pool only.
        #expect(backendHeader(httpGet(api).text) == "\(b[3].port)")
        #expect(eventually { if case .failure = TestSocket.connect(old, timeoutSeconds: 1) { return true }; return false })
        for address in [web, web2, web, web2] {
            let header = backendHeader(httpGet(address).text)
            #expect(header == "\(b[1].port)" || header == "\(b[2].port)")
        }
        #expect(lb.services.map(\.name) == ["web", "api"])
        #expect(lb.listenAddresses(of: "web") == [web, web2])
        #expect(webService.pool.info(b[0]) == nil)
        #expect(webService.pool.all().map(\.address) == [b[1], b[2]])
    }

    @Test func openPairsAreNeverCutByAReload() throws {
        let echo = TestServer(handler: TestServer.echo), spare = TestServer(handler: TestServer.echo)
        defer { echo.stop(); spare.stop() }
        var config = Self.config([
            Self.service("keep", listen: [Self.anyPort], [echo.address]),
            Self.service("gone", listen: [Self.anyPort], [echo.address]),
        ])
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        var pairs: [Int32] = []
        defer { for fd in pairs { close(fd) } }
        for address in [lb.listenAddresses(of: "keep")[0], lb.listenAddresses(of: "gone")[0]] {
            let fd = try TestSocket.connect(address).get()
            pairs.append(fd)
            #expect(TestSocket.sendAll(fd, "before"))
            #expect(TestSocket.read(fd, exactly: 6) == Array("before".utf8))
        }
        // The pool of "keep" loses the backend its pair uses, its settings change, and "gone" goes.
        config.services = [Self.service("keep", listen: config.services[0].listen, [spare.address]) { $0.idleTimeout = .seconds(30) }]
        _ = try lb.reload(to: config)
        for fd in pairs {
            #expect(TestSocket.sendAll(fd, "after"))
            #expect(TestSocket.read(fd, exactly: 5) == Array("after".utf8))
        }
        #expect(lb.counters[.activePairs] == 2)
        let keep = try #require(lb.service(named: "keep"))
        #expect(keep.pool.all().map(\.address) == [spare.address])
    }

    @Test func keptBackendsKeepTheirHealthAndCountersAndARemovedServiceDrainsForDrainTimeout() throws {
        let one = TestServer(handler: TestServer.http(port: 1)), two = TestServer(handler: TestServer.http(port: 2))
        let echo = TestServer(handler: TestServer.echo)
        defer { one.stop(); two.stop(); echo.stop() }
        var config = Self.config([
            Self.service("web", listen: [Self.anyPort], [one.address, two.address]),
            Self.service("gone", listen: [Self.anyPort], [echo.address]),
        ])
        config.drainTimeout = .milliseconds(300)
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let web = try #require(lb.service(named: "web"))
        let address = lb.listenAddresses(of: "web")[0]
        for _ in 0..<4 { _ = httpGet(address) }
        #expect(lb.markDown(two.address, service: "web") == .success(true))
        let before = try #require(web.pool.info(one.address))
        let pair = try TestSocket.connect(lb.listenAddresses(of: "gone")[0]).get()
        defer { close(pair) }
        #expect(TestSocket.sendAll(pair, "hi") && TestSocket.read(pair, exactly: 2) == Array("hi".utf8))

        config.services = [Self.service("web", listen: [Self.anyPort], [one.address, two.address]) { $0.retries = 1 }]
        #expect(try lb.reload(to: config).summary == "-1 service (gone), web: settings")
        // The same pool object, the same backends: health and counters carried over.
        #expect(lb.service(named: "web") === web)
        #expect(web.pool.info(two.address)?.isUp == false)
        #expect(web.pool.info(one.address)?.totalConnections == before.totalConnections)
        #expect(backendHeader(httpGet(address).text) == "1")
        // The removed service's open pair may finish until drain_timeout, then it is closed.
        #expect(eventually(timeout: .seconds(5)) { TestSocket.readAll(pair).end == .eof })
        #expect(eventually { lb.counters[.activePairs] == 0 })
    }

    @Test func aKeptBackendTakesANewWeightAtOnceAndKeepsItsCounters() throws {
        let one = TestServer(handler: TestServer.http(port: 1)), two = TestServer(handler: TestServer.http(port: 2))
        defer { one.stop(); two.stop() }
        var config = Self.config([Self.service("web", listen: [Self.anyPort], [one.address, two.address])])
        config.workers = 1
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let web = try #require(lb.service(named: "web"))
        let address = lb.listenAddresses(of: "web")[0]
        for _ in 0..<4 { _ = httpGet(address) }
        let before = try #require(web.pool.info(two.address))

        var heavier = Self.service("web", listen: [Self.anyPort], [one.address, two.address])
        heavier.backends[1].weight = 3
        config.services = [heavier]
        #expect(try lb.reload(to: config).summary == "web: 1 reweighted")
        #expect(web.pool.info(two.address)?.weight == 3)
        #expect(web.pool.info(two.address)?.totalConnections == before.totalConnections)
        // Smooth weighted round robin over 1:3: exactly 3 of every 4 picks go to the heavier one.
        var counts: [String: Int] = [:]
        for _ in 0..<40 { counts[backendHeader(httpGet(address).text) ?? "none", default: 0] += 1 }
        #expect(counts == ["1": 10, "2": 30])
    }

    @Test func aReloadThatCannotBindChangesNothing() throws {
        let backend = TestServer(handler: TestServer.http(port: 7))
        defer { backend.stop() }
        let taken = TestServer(handler: { _ in })  // bound without SO_REUSEPORT: lb cannot share it
        defer { taken.stop() }
        var config = Self.config([Self.service("web", listen: [Self.anyPort], [backend.address])])
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let before = lb.configuration
        config.services.append(Self.service("api", listen: [Self.anyPort], [backend.address]))
        config.services.append(Self.service("clash", listen: [taken.address], [backend.address]))
        config.services[0].backends = []
        #expect(throws: SystemError.self) { try lb.reload(to: config) }
        #expect(lb.configuration == before)
        #expect(lb.services.map(\.name) == ["web"])
        #expect(lb.service(named: "web")?.pool.count == 1)
        #expect(backendHeader(httpGet(lb.listenAddresses[0]).text) == "7")
    }

    @Test func theSignalControllerReloadsTheFileAndKeepsTheOldConfigurationOnABadOne() throws {
        let one = TestServer(handler: TestServer.http(port: 1)), two = TestServer(handler: TestServer.http(port: 2))
        defer { one.stop(); two.stop() }
        let file = ConfigFileExecutableTests.tempFile(#"{"workers": 1, "listen": ["127.0.0.1:0"], "backends": ["\#(one.address)"]}"#)
        defer { unlink(file) }
        let config = try ConfigFile.load(file)
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let states = Mutex<[String]>([])
        let controller = SignalController(balancer: lb, reloadSource: { () throws(ConfigError) in try ConfigFile.load(file) }, notify: { s in
            states.withLock { $0.append(s) }
        })
        func rewrite(_ text: String) {
            let fd = open(file, O_WRONLY | O_TRUNC)
            _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            close(fd)
        }
        rewrite(#"{"workers": 1, "listen": ["127.0.0.1:0"], "backends": ["\#(two.address)"]}"#)
        #expect(controller.handle(SIGHUP) == .keepServing)
        #expect(lb.log.recent.last == "reload: default: +1 -1 backends")
        #expect(backendHeader(httpGet(lb.listenAddresses[0]).text) == "2")
        #expect(states.withLock { $0.count == 2 && $0[0].hasPrefix("RELOADING=1\nMONOTONIC_USEC=") && $0[1] == "READY=1" })

        rewrite(#"{"workers": 1, "listen": ["127.0.0.1:0"], "backends": ["\#(one.address)"], "retries": "x"}"#)
        #expect(controller.handle(SIGHUP) == .keepServing)
        #expect(lb.log.recent.last == "reload failed, the running configuration is kept: \(file): retries: expected a whole number, got a string")
        #expect(backendHeader(httpGet(lb.listenAddresses[0]).text) == "2")

        #expect(controller.handle(SIGUSR1) == .keepServing)
        #expect(controller.handle(SIGUSR2) == .keepServing)
        #expect(lb.log.recent.suffix(2) == ["SIGUSR1: no access log to reopen; nothing changed", "SIGUSR2: ignored; nothing changed"])
        #expect(backendHeader(httpGet(lb.listenAddresses[0]).text) == "2")

        #expect(controller.handle(SIGTERM) == .draining)
        #expect(states.withLock { $0.last == "STOPPING=1" })
        #expect(controller.handle(SIGHUP) == .keepServing)
        #expect(lb.log.recent.last == "SIGHUP: draining, nothing reloaded")
        #expect(controller.handle(SIGINT) == .stopNow)
    }

    @Test func withoutAConfigFileHangupChangesNothing() throws {
        let backend = TestServer(handler: TestServer.http(port: 3))
        defer { backend.stop() }
        try withBalancer(backends: [backend.address]) { lb, address in
            let controller = SignalController(balancer: lb, reloadSource: nil)
            let before = lb.configuration
            #expect(controller.handle(SIGHUP) == .keepServing)
            #expect(lb.log.recent.last == "SIGHUP: no config file to reload (started with flags only); nothing changed")
            #expect(lb.configuration == before)
            #expect(backendHeader(httpGet(address).text) == "3")
        }
    }
}
