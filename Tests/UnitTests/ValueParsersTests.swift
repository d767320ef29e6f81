import LoadBalancer
import Testing

@Suite struct ValueParsersTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("2s", .seconds(2)), ("1m", .seconds(60)), ("1h", .seconds(3600)),
        ("1.5s", .milliseconds(1500)), ("500us", .microseconds(500)), ("0s", .zero),
    ])
    func durations(text: String, expected: Duration) throws {
        #expect(try ValueParsers.duration(text).get() == expected)
    }

    @Test(arguments: ["", "5", "s", "-1s", "1x", "ms", "1.2.3s", "abc", "1 s", "99999999999h"])
    func badDurations(text: String) {
        #expect(throws: ParseFailure.self) { try ValueParsers.duration(text).get() }
    }

    @Test func backendForms() throws {
        let one = try ValueParsers.backends("127.0.0.1:8000").get()
        #expect(one.map(\.description) == ["127.0.0.1:8000"])
        let v6 = try ValueParsers.backends("[::1]:13000").get()
        #expect(v6.map(\.description) == ["[::1]:13000"])
        #expect(v6[0].address.isIPv6)
        let range = try ValueParsers.backends("127.0.0.1:8000-8004").get()
        #expect(range.map { $0.address.port } == [8000, 8001, 8002, 8003, 8004])
        let weighted = try ValueParsers.backends("[::1]:9000-9001@5").get()
        #expect(weighted.map(\.weight) == [5, 5])
        #expect(weighted.map(\.description) == ["[::1]:9000@5", "[::1]:9001@5"])
        let localhost = try ValueParsers.backends("localhost:80").get()
        #expect(localhost[0].address.description == "127.0.0.1:80")
    }

    @Test(arguments: [
        ("1.2.3.4:99999", "port out of range"),
        ("1.2.3.4:0", "port out of range"),
        ("1.2.3.4", "expected HOST:PORT"),
        ("1.2.3.4:", "bad port ''"),
        ("1.2.3.4:80-70", "port range runs backwards"),
        ("1.2.3.4:80@0", "weight must be between 1 and 1000"),
        ("1.2.3.4:80@x", "bad weight 'x'"),
        ("::1:80", "IPv6 addresses need brackets: [V6]:PORT"),
        ("[::1:80", "missing ']' after IPv6 address"),
        ("example.com:80", "bad address 'example.com' (numeric IPv4/IPv6 or localhost)"),
        ("300.1.1.1:80", "bad address '300.1.1.1' (numeric IPv4/IPv6 or localhost)"),
        (":80", "missing host"),
    ])
    func badBackends(text: String, reason: String) {
        #expect(throws: ParseFailure(reason)) { try ValueParsers.backends(text).get() }
    }

    @Test func listenAddresses() throws {
        #expect(try ValueParsers.listenAddress("0.0.0.0:8080").get().description == "0.0.0.0:8080")
        #expect(try ValueParsers.listenAddress(":8080").get().description == "0.0.0.0:8080")
        #expect(try ValueParsers.listenAddress("[::1]:0").get().description == "[::1]:0")
        #expect(throws: ParseFailure("port out of range")) { try ValueParsers.listenAddress("127.0.0.1:70000").get() }
    }

    @Test func sizes() throws {
        #expect(try ValueParsers.byteSize("16k", in: 1024...(1 << 24)).get() == 16384)
        #expect(try ValueParsers.byteSize("1m", in: 1024...(1 << 24)).get() == 1 << 20)
        #expect(try ValueParsers.byteSize("4096", in: 1024...(1 << 24)).get() == 4096)
        #expect(throws: ParseFailure.self) { try ValueParsers.byteSize("12", in: 1024...(1 << 24)).get() }
        #expect(throws: ParseFailure.self) { try ValueParsers.byteSize("lots", in: 1024...(1 << 24)).get() }
    }

    @Test func socketAddresses() {
        #expect(SocketAddress(host: "127.0.0.1", port: 1)!.isLoopback)
        #expect(SocketAddress(host: "127.9.8.7", port: 1)!.isLoopback)
        #expect(SocketAddress(host: "::1", port: 1)!.isLoopback)
        #expect(!SocketAddress(host: "10.0.0.1", port: 1)!.isLoopback)
        #expect(SocketAddress(host: "::1", port: 5) == SocketAddress(host: "0:0::1", port: 5))
        #expect(SocketAddress(host: "127.0.0.1", port: 5) == SocketAddress(ipv4: (127, 0, 0, 1), port: 5))
        #expect(SocketAddress(host: "127.0.0.1", port: 5) != SocketAddress(host: "127.0.0.2", port: 5))
        #expect(SocketAddress(host: "127.0.0.1", port: 5) != SocketAddress(host: "127.0.0.1", port: 6))
        #expect(SocketAddress(host: "::1", port: 5) != SocketAddress(host: "::2", port: 5))
        #expect(SocketAddress(host: "::1", port: 5) != SocketAddress(host: "127.0.0.1", port: 5))
        let set: Set = [SocketAddress(host: "::1", port: 5)!, SocketAddress(host: "0::1", port: 5)!, SocketAddress(host: "::2", port: 5)!]
        #expect(set.count == 2)
        #expect(SocketAddress(host: "nope", port: 5) == nil)
    }
}
