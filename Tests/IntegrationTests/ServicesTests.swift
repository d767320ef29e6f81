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
        #expect(lb.log.recent.contains { $0.hasPrefix("backend \(gone.address) down: ") && $0.hasSuffix(", service checked") })
    }
}

/// Config files through the `lb` executable: --check, bad files, and a file with two services.
@Suite struct ConfigFileExecutableTests {
    init() { _ = lb_ignore_sigpipe() }

    /// Writes `text` to a fresh file under /tmp and returns its path (removed by the caller).
    static func tempFile(_ text: String) -> String {
        var template = Array("/tmp/lb-test-XXXXXX.json".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 5) }
        precondition(fd >= 0, "mkstemps")
        let bytes = Array(text.utf8)
        precondition(bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) } == bytes.count, "write")
        close(fd)
        return String(cString: template)
    }

    @Test func checkValidatesWithoutBindingAndBadFilesExitTwoWithOneLine() throws {
        let path = try #require(LbExecutableTests.binary, "the lb executable is not built next to the tests")
        // A port already bound elsewhere: --check must not try to bind it.
        let busy = TestServer(handler: { _ in })
        defer { busy.stop() }
        let good = Self.tempFile("""
            {"services": [{"name": "web", "listen": ["\(busy.address)"], "backends": ["127.0.0.1:9000-9009"]},
                          {"name": "db", "listen": ["127.0.0.1:0"], "backends": ["127.0.0.1:5432"]}]}
            """)
        defer { unlink(good) }
        let check = try Subprocess(path, ["--config", good, "--check"])
        #expect(check.waitForExit() == 0)
        #expect(check.stderr.isEmpty)

        let bad = Self.tempFile(#"{"services": [{"name": "web", "listen": ["127.0.0.1:99999"], "backends": []}]}"#)
        defer { unlink(bad) }
        for extra in [["--check"], []] {
            let lb = try Subprocess(path, ["--config", bad] + extra)
            #expect(lb.waitForExit() == 2)
            #expect(lb.stderr == "lb: \(bad): services[0].listen[0]: port out of range\n")
        }
    }

    @Test func aFileWithTwoServicesServesBoth() throws {
        let path = try #require(LbExecutableTests.binary, "the lb executable is not built next to the tests")
        let one = TestServer(handler: TestServer.http(port: 1)), two = TestServer(handler: TestServer.http(port: 2))
        defer { one.stop(); two.stop() }
        let file = Self.tempFile("""
            {"workers": 1, "drain_timeout": "1s",
             "services": [{"name": "web", "listen": ["127.0.0.1:0"], "backends": ["\(one.address)"]},
                          {"name": "api", "listen": ["127.0.0.1:0"], "backends": ["\(two.address)"]}]}
            """)
        defer { unlink(file) }
        let lb = try Subprocess(path, ["--config", file])  // its deinit kills it should a check fail
        try #require(eventually { lb.stderr.contains("lb: listening on ") }, "no start-up line: \(lb.stderr)")
        let addresses = try #require(Self.listeners(in: lb.stderr))
        #expect(addresses.map(\.name) == ["web", "api"])
        #expect(lb.stderr.contains(" with 1 worker, 2 services, 2 backends"))
        #expect(backendHeader(httpGet(addresses[0].address).text) == "1")
        #expect(backendHeader(httpGet(addresses[1].address).text) == "2")
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
    }
}

extension ConfigFileExecutableTests {
    /// The listeners of a start-up line `lb: listening on 127.0.0.1:X (web), 127.0.0.1:Y (api) with ...`.
    static func listeners(in stderr: String) -> [(address: SocketAddress, name: String)]? {
        guard let stamped = stderr.split(separator: "\n").first(where: { $0.contains("lb: listening on ") }),
              let line = stamped.split(separator: "lb: listening on ", maxSplits: 1).last,
              let list = line.split(separator: " with ").first else { return nil }
        var out: [(SocketAddress, String)] = []
        for item in list.split(separator: ", ") {
            let parts = item.split(separator: " ")
            guard parts.count == 2, case .success(let a) = ValueParsers.listenAddress(String(parts[0])) else { return nil }
            out.append((a, String(parts[1].dropFirst().dropLast())))
        }
        return out
    }
}

/// Signals sent to the `lb` executable: none of the habitual ones kills a serving lb.
@Suite struct SignalExecutableTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test func hangupAndUserSignalsNeverKillAServingBalancer() throws {
        let backend = TestServer(handler: TestServer.http(port: 80))
        defer { backend.stop() }
        let path = try #require(LbExecutableTests.binary, "the lb executable is not built next to the tests")
        let lb = try Subprocess(path, ["--listen", "127.0.0.1:0", "--backend", backend.address.description, "--workers", "1"])
        let address = try #require(eventually { lb.stderr.contains("lb: listening on ") } ? ConfigFileExecutableTests.firstListener(lb.stderr) : nil)
        for (signal, line) in [
            (SIGHUP, "lb: SIGHUP: no config file to reload (started with flags only); nothing changed"),
            (SIGUSR1, "lb: SIGUSR1: no access log to reopen; nothing changed"),
            (SIGUSR2, "lb: SIGUSR2: ignored; nothing changed"),
        ] {
            lb.signal(signal)
            #expect(eventually { lb.stderr.contains(line) }, "\(lb.stderr)")
            #expect(backendHeader(httpGet(address).text) == "80")
        }
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
    }

    @Test func hangupReloadsTheConfigFile() throws {
        let one = TestServer(handler: TestServer.http(port: 1)), two = TestServer(handler: TestServer.http(port: 2))
        defer { one.stop(); two.stop() }
        let path = try #require(LbExecutableTests.binary, "the lb executable is not built next to the tests")
        let file = ConfigFileExecutableTests.tempFile(#"{"workers": 1, "listen": ["127.0.0.1:0"], "backends": ["\#(one.address)"]}"#)
        defer { unlink(file) }
        let lb = try Subprocess(path, ["--config", file, "--retries", "1"])
        let address = try #require(eventually { lb.stderr.contains("lb: listening on ") } ? ConfigFileExecutableTests.firstListener(lb.stderr) : nil)
        #expect(backendHeader(httpGet(address).text) == "1")
        let fd = open(file, O_WRONLY | O_TRUNC)
        let text = #"{"workers": 1, "listen": ["127.0.0.1:0"], "backends": ["\#(one.address)", "\#(two.address)"]}"#
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        close(fd)
        lb.signal(SIGHUP)
        #expect(eventually { lb.stderr.contains("lb: reload: default: +1 -0 backends\n") }, "\(lb.stderr)")
        var seen = Set<String>()
        for _ in 0..<4 { seen.insert(backendHeader(httpGet(address).text) ?? "none") }
        #expect(seen == ["1", "2"])
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
    }
}

extension ConfigFileExecutableTests {
    /// The first address of the start-up line.
    static func firstListener(_ stderr: String) -> SocketAddress? {
        guard let stamped = stderr.split(separator: "\n").first(where: { $0.contains("lb: listening on ") }),
              let line = stamped.split(separator: "lb: listening on ", maxSplits: 1).last else { return nil }
        let text = line.prefix { $0 != " " && $0 != "," }
        return try? ValueParsers.listenAddress(String(text)).get()
    }
}
