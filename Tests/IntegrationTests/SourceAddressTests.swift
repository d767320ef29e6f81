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
}
