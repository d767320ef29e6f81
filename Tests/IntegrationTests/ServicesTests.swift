import CShim
import Glibc
import LoadBalancer
import Testing

/// Several services in one balancer: each with its own listeners, pool, health and settings, served
/// by every worker.
@Suite struct ServicesTests {
    init() { _ = lb_ignore_sigpipe() }

    static func service(_ name: String, backends: [SocketAddress], _ configure: (inout ServiceSettings) -> Void = { _ in }) -> ServiceConfiguration {
        var settings = ServiceSettings(Configuration())
        configure(&settings)
        return ServiceConfiguration(
            name: name, listen: [SocketAddress(host: "127.0.0.1", port: 0)!], backends: backends.map { BackendSpec(address: $0) },
            settings: settings)
    }

    static func start(_ services: [ServiceConfiguration], workers: Int = 2) throws -> LoadBalancer {
        var config = Configuration()
        config.workers = workers
        config.logBackendChanges = false
        config.services = services
        try config.validate()
        return try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
    }

    @Test func twoServicesEachServeTheirOwnPoolAndASharedAddressIsTwoBackends() throws {
        let one = TestServer(handler: TestServer.http(port: 1))
        let two = TestServer(handler: TestServer.http(port: 2))
        let shared = TestServer(handler: TestServer.http(port: 3))
        defer { one.stop(); two.stop(); shared.stop() }
        let lb = try Self.start([
            Self.service("web", backends: [one.address, shared.address]),
            Self.service("api", backends: [two.address, shared.address]),
        ])
        defer { lb.stopNow(); lb.wait() }
        let web = try #require(lb.service(named: "web")), api = try #require(lb.service(named: "api"))
        let webAddress = lb.listenAddresses(of: "web")[0], apiAddress = lb.listenAddresses(of: "api")[0]
        #expect(webAddress != apiAddress)
        #expect(lb.listenAddresses == [webAddress, apiAddress])
        var webSeen = Set<String>(), apiSeen = Set<String>()
        for _ in 0..<6 {
            webSeen.insert(backendHeader(httpGet(webAddress).text) ?? "none")
            apiSeen.insert(backendHeader(httpGet(apiAddress).text) ?? "none")
        }
        #expect(webSeen == ["1", "3"])
        #expect(apiSeen == ["2", "3"])
        // The shared address is a backend of each pool, with its own counters.
        let webShared = try #require(web.pool.info(shared.address)), apiShared = try #require(api.pool.info(shared.address))
        #expect(webShared.totalConnections == 3 && apiShared.totalConnections == 3)
        #expect(eventually { web.counters[.accepted] == 6 && api.counters[.accepted] == 6 })
        #expect(eventually { web.counters[.activePairs] == 0 && api.counters[.activePairs] == 0 })
        // Health too: marking it down in one service leaves it up in the other.
        #expect(lb.markDown(shared.address, service: "web") == .success(true))
        #expect(web.pool.info(shared.address)?.isUp == false)
        #expect(api.pool.info(shared.address)?.isUp == true)
        for _ in 0..<4 { #expect(backendHeader(httpGet(webAddress).text) == "1") }
    }

    @Test func eachServiceFollowsItsOwnSettings() throws {
        let lb = try Self.start([
            Self.service("gateway", backends: []),
            Self.service("closer", backends: []) { $0.onNoBackend = .close },
        ])
        defer { lb.stopNow(); lb.wait() }
        let gateway = lb.listenAddresses(of: "gateway")[0], closer = lb.listenAddresses(of: "closer")[0]
        #expect(httpGet(gateway).text.hasPrefix("HTTP/1.1 502 Bad Gateway"))
        let (text, end) = httpGet(closer)
        #expect(text.isEmpty && end == .eof)
        #expect(eventually { lb.service(named: "gateway")?.counters[.badGateways] == 1 })
        #expect(lb.service(named: "closer")?.counters[.badGateways] == 0)
        #expect(lb.counters[.badGateways] == 1)
    }

    @Test func healthChecksRunPerServiceWithTheirOwnMode() throws {
        let up = TestServer(handler: TestServer.http(port: 1))
        defer { up.stop() }
        let gone = TestSocket.RefusingPort()
        defer { gone.close() }
        let lb = try Self.start([
            // Probes every backend: the refusing one goes down without any traffic.
            Self.service("checked", backends: [up.address, gone.address]) {
                $0.health.mode = .all; $0.health.interval = .milliseconds(50); $0.health.fall = 1
            },
            // Probes only backends already down: nothing marks the refusing one down here.
            Self.service("unchecked", backends: [up.address, gone.address]),
        ])
        defer { lb.stopNow(); lb.wait() }
        let checked = try #require(lb.service(named: "checked")), unchecked = try #require(lb.service(named: "unchecked"))
        #expect(eventually { checked.pool.info(gone.address)?.isUp == false })
        #expect(unchecked.pool.info(gone.address)?.isUp == true)
        #expect(unchecked.pool.downBackends == 0)
        #expect(lb.log.recent.contains { $0.hasPrefix("backend checked/\(gone.address) down") })
    }
}
