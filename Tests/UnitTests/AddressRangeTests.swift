import LoadBalancer
import Testing

@Suite struct AddressRangeTests {
    static func a(_ host: String) -> SocketAddress { SocketAddress(host: host, port: 1234)! }

    @Test(arguments: [
        ("10.0.0.0/8", "10.255.1.2", true), ("10.0.0.0/8", "11.0.0.1", false),
        ("192.168.1.7", "192.168.1.7", true), ("192.168.1.7", "192.168.1.8", false),
        ("0.0.0.0/0", "8.8.8.8", true), ("0.0.0.0/0", "::1", false),
        ("127.0.0.0/8", "::ffff:127.0.0.9", true),  // IPv4-mapped counts as IPv4
        ("::1/128", "::1", true), ("::1", "::2", false),
        ("fd00::/8", "fdff::1", true), ("fd00::/8", "fe00::1", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true), ("2001:db8::/32", "2001:db9::", false),
        ("2001:db8:0:0:8000::/65", "2001:db8::8000:0:0:1", true), ("2001:db8:0:0:8000::/65", "2001:db8::7fff:0:0:1", false),
        ("::/0", "1.2.3.4", false), ("::/0", "abcd::", true),
        ("[::1]/128", "::1", true),
    ] as [(String, String, Bool)])
    func contains(range: String, address: String, expected: Bool) throws {
        let r = try AddressRange.parse(range).get()
        #expect(r.contains(Self.a(address)) == expected)
    }

    @Test(arguments: ["", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/x", "10.0.0.1/8", "fd00::1/8",
                      "localhost", "host.example", "10.0.0.0/8/9", "1.2.3.4/ 8"])
    func refused(text: String) {
        #expect(throws: ParseFailure.self) { try AddressRange.parse(text).get() }
    }

    @Test func loopbackDefault() throws {
        #expect(AddressRange.loopback.map(\.description) == ["127.0.0.0/8", "::1/128"])
        #expect(AddressRange.loopback.containsAddress(Self.a("127.1.2.3")))
        #expect(AddressRange.loopback.containsAddress(Self.a("::1")))
        #expect(!AddressRange.loopback.containsAddress(Self.a("10.0.0.1")))
        #expect(try AddressRange.parse("fd00::/8").get().description == "fd00::/8")
    }
}
