import Glibc
import LoadBalancer
import Synchronization
import Testing

/// `--source`: backend connections bound to local addresses in turn (IP_BIND_ADDRESS_NO_PORT), and a
/// source that cannot be bound failing as our own, retried without blaming the backend. The port-
/// exhaustion demonstration (a shrunken ip_local_port_range in a network namespace) is ci/port-exhaustion.
@Suite struct SourceAddressTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func backendConnectionsComeFromEachSourceInTurn() throws {
        let peers = Mutex<[String]>([])
        let backend = TestServer { fd in
            var peer = SocketAddress()
            _ = peer.withMutableSockaddr { getpeername(fd, $0, $1) }
            peers.withLock { $0.append(peer.host) }
            TestServer.echo(fd)
        }
        defer { backend.stop() }
        let sources = try ValueParsers.sourceAddresses("127.0.0.2-127.0.0.5").get()
        try withBalancer(backends: [backend.address], workers: 1, configure: { $0.sources = sources }) { _, address in
            for i in 0..<8 {
                let client = try TestClient(address)
                let message = Array("hello \(i)".utf8)
                client.send(message)
                let (got, end) = client.read(count: message.count)
                #expect(end == nil && got == message)
            }
        }
        let seen = peers.withLock { $0 }
        #expect(seen.count == 8)
        // One worker takes them in turn: each address twice.
        #expect(Dictionary(grouping: seen, by: { $0 }).mapValues(\.count) == ["127.0.0.2": 2, "127.0.0.3": 2, "127.0.0.4": 2, "127.0.0.5": 2])
    }

    @Test func aSourceThatIsNotLocalFailsAsOursAndTheNextOneServes() throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        // 192.0.2.1 (TEST-NET-1) is on no interface here: bind says EADDRNOTAVAIL, a local failure.
        let sources = [SocketAddress(host: "192.0.2.1", port: 0)!, SocketAddress(host: "127.0.0.2", port: 0)!]
        try withBalancer(backends: [backend.address], workers: 1, configure: { $0.sources = sources; $0.retries = 1 }) { lb, address in
            for i in 0..<4 {
                let client = try TestClient(address)
                let message = Array("try \(i)".utf8)
                client.send(message)
                let (got, end) = client.read(count: message.count)
                #expect(end == nil && got == message, "connection \(i) through the second source")
            }
            #expect(lb.pool.info(backend.address)?.isUp == true)
            #expect(lb.metrics.connectFailures[.local, default: 0] >= 1)
            #expect(lb.metrics.connectFailures.filter { $0.key != .local }.values.reduce(0, +) == 0)
        }
    }

    /// `source` per service: two services in front of one backend bind their connections to their own
    /// addresses (the backend sees them as the peers), and a reload's new list applies to new pairs.
    @Test func eachServiceBindsItsOwnSourceAndAReloadChangesIt() throws {
        let peers = Mutex<[String]>([])
        let backend = TestServer { fd in
            var peer = SocketAddress()
            _ = peer.withMutableSockaddr { getpeername(fd, $0, $1) }
            peers.withLock { $0.append(peer.host) }
            TestServer.echo(fd)
        }
        defer { backend.stop() }
        func service(_ name: String, _ source: String) -> ServiceConfiguration {
            var settings = ServiceSettings(Configuration())
            settings.sources = [SocketAddress(host: source, port: 0)!]
            return ServiceConfiguration(
                name: name, listen: [SocketAddress(host: "127.0.0.1", port: 0)!], backends: [BackendSpec(address: backend.address)],
                settings: settings)
        }
        var config = Configuration()
        config.workers = 2
        config.logBackendChanges = false
        config.sources = [SocketAddress(host: "127.0.0.9", port: 0)!]  // the default both services override
        config.services = [service("one", "127.0.0.2"), service("two", "127.0.0.3")]
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let one = lb.listenAddresses(of: "one")[0], two = lb.listenAddresses(of: "two")[0]
        func echoThrough(_ address: SocketAddress) throws -> String? {
            let before = peers.withLock { $0.count }
            let client = try TestClient(address)
            client.send(Array("ping".utf8))
            let (got, end) = client.read(count: 4)
            guard end == nil, got == Array("ping".utf8) else { return nil }
            return peers.withLock { $0.count > before ? $0.last : nil }
        }
        for _ in 0..<4 {
            #expect(try echoThrough(one) == "127.0.0.2")
            #expect(try echoThrough(two) == "127.0.0.3")
        }
        config.services[1].settings.sources = [SocketAddress(host: "127.0.0.4", port: 0)!]
        #expect(try lb.reload(to: config).summary == "two: settings")
        // Each worker takes the new list when it applies the reload; poll until both have.
        var streak = 0
        let deadline = ContinuousClock.now + .seconds(5)
        while streak < 8 && ContinuousClock.now < deadline {
            streak = try echoThrough(two) == "127.0.0.4" ? streak + 1 : 0
        }
        #expect(streak == 8)
        #expect(try echoThrough(one) == "127.0.0.2")
    }
}
