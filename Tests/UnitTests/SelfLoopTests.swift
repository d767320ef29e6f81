import LoadBalancer
import Testing

/// `SelfLoop`: which backends are lb's own listeners (a loop), as the kernel would route a connect.
@Suite struct SelfLoopTests {
    func a(_ text: String) -> SocketAddress { try! ValueParsers.listenAddress(text).get() }
    func specs(_ texts: [String]) -> [BackendSpec] { texts.map { BackendSpec(address: a($0)) } }
    let interfaces = [SocketAddress(host: "10.1.2.3", port: 0)!, SocketAddress(host: "fd00::5", port: 0)!]

    func looped(_ backends: [String], listen: [String]) -> [String] {
        SelfLoop.partition(specs(backends), listen: listen.map(a), local: interfaces).looped.map(\.description)
    }

    @Test func exactListenAddressIsALoop() {
        #expect(looped(["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.2:8080"], listen: ["127.0.0.1:8080"]) == ["127.0.0.1:8080"])
        #expect(looped(["[::1]:9000", "127.0.0.1:9000"], listen: ["[::1]:9000"]) == ["[::1]:9000"])
    }

    @Test func ipv4WildcardMatchesEveryLocalIPv4AddressOnItsPort() {
        let backends = ["127.0.0.1:8080", "127.9.9.9:8080", "0.0.0.0:8080", "10.1.2.3:8080", "[::ffff:127.0.0.1]:8080",
                        "10.9.9.9:8080", "[::1]:8080", "127.0.0.1:8081"]
        #expect(looped(backends, listen: ["0.0.0.0:8080"])
            == ["127.0.0.1:8080", "127.9.9.9:8080", "0.0.0.0:8080", "10.1.2.3:8080", "[::ffff:127.0.0.1]:8080"])
    }

    @Test func ipv6WildcardIsV6OnlyAsLbBindsIt() {
        #expect(looped(["[::1]:8080", "[fd00::5]:8080", "[::]:8080", "127.0.0.1:8080", "[fd00::6]:8080"], listen: ["[::]:8080"])
            == ["[::1]:8080", "[fd00::5]:8080", "[::]:8080"])
    }

    @Test func theDefaultsDoNotLoop() {
        let c = Configuration()
        #expect(SelfLoop.partition(c.backends, listen: c.listen, local: interfaces).looped.isEmpty)
        // Nor does the default pool touch the admin port to come, or the kernel's ephemeral range.
        #expect(c.backends.allSatisfy { $0.address.port != 8080 && $0.address.port != 9090 && $0.address.port < 32768 })
    }

    @Test func keptBackendsKeepTheirOrder() {
        let r = SelfLoop.partition(specs(["127.0.0.1:3", "127.0.0.1:1", "127.0.0.1:2"]), listen: [a("127.0.0.1:1")], local: [])
        #expect(r.kept.map(\.description) == ["127.0.0.1:3", "127.0.0.1:2"])
    }
}
