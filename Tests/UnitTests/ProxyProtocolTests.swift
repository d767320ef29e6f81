import LoadBalancer
import Testing

/// PROXY protocol v1/v2 parsing and encoding, against haproxy's doc/proxy-protocol.txt.
@Suite struct ProxyProtocolTests {
    static func parse(_ bytes: [UInt8]) -> ProxyHeaderParse { bytes.withUnsafeBytes { ProxyProtocol.parse($0) } }
    static func parse(_ text: String) -> ProxyHeaderParse { parse(Array(text.utf8)) }
    static func addr(_ host: String, _ port: UInt16) -> SocketAddress { SocketAddress(host: host, port: port)! }

    static func encode(_ v: ProxyProtocolVersion, _ s: SocketAddress, _ d: SocketAddress) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ProxyProtocol.maxEncodedLength)
        let n = out.withUnsafeMutableBytes { ProxyProtocol.encode(v, source: s, destination: d, into: $0) }
        return Array(out.prefix(n))
    }

    static let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    // MARK: v1

    @Test func specExampleV1() {
        // Section 2.1's example, followed by the request it precedes.
        let text = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
        let header = ProxyHeader(version: .v1, source: Self.addr("192.168.0.1", 56324), destination: Self.addr("192.168.0.11", 443))
        #expect(Self.parse(text) == .ok(header, consumed: 47))
    }

    @Test(arguments: [
        ("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", "255.255.255.255", 65535, "255.255.255.255", 65535),
        ("PROXY TCP4 0.0.0.0 10.1.2.3 0 80\r\n", "0.0.0.0", 0, "10.1.2.3", 80),
        ("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        ("PROXY TCP6 ::1 ::1 1 2\r\n", "::1", 1, "::1", 2),
        ("PROXY TCP6 2001:DB8::1 :: 1234 443\r\n", "2001:db8::1", 1234, "::", 443),
        ("PROXY TCP6 1:2:3:4:5:6:7:: 0001:0:0:0:0:0:0:8 5 6\r\n", "1:2:3:4:5:6:7:0", 5, "1::8", 6),
    ] as [(String, String, UInt16, String, UInt16)])
    func v1Valid(text: String, src: String, sport: UInt16, dst: String, dport: UInt16) {
        let expected = ProxyHeader(version: .v1, source: Self.addr(src, sport), destination: Self.addr(dst, dport))
        #expect(Self.parse(text) == .ok(expected, consumed: text.utf8.count))
    }

    @Test func v1Unknown() {
        // Short form, and the long form whose rest "must be ignored".
        #expect(Self.parse("PROXY UNKNOWN\r\n") == .ok(ProxyHeader(version: .v1), consumed: 15))
        let worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
        #expect(worst.utf8.count == 107)
        #expect(Self.parse(worst) == .ok(ProxyHeader(version: .v1), consumed: 107))
        #expect(Self.parse("PROXY UNKNOWN garbage here\r\nrest") == .ok(ProxyHeader(version: .v1), consumed: 28))
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\n", ProxyHeaderError.notProxyProtocol),
        ("PROXX TCP4", .notProxyProtocol),
        ("PROXYTCP4 1.2.3.4 1.2.3.4 1 2\r\n", .notProxyProtocol),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", .badLineEnding),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", .badLineEnding),
        ("PROXY TCP4 1.2.3.4\n1.2.3.4 1 2\r\n", .badLineEnding),
        ("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", .badProtocol),
        ("PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", .badProtocol),
        ("PROXY UNKNOWNX\r\n", .badProtocol),
        ("PROXY \r\n", .badProtocol),
        ("PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", .badSyntax),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", .badSyntax),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", .badSyntax),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", .badSyntax),
        ("PROXY TCP4\r\n", .badSyntax),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", .badPort),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n", .badPort),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n", .badPort),
        ("PROXY TCP4 1.2.3.4 1.2.3.4 1 999999\r\n", .badPort),
        ("PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n", .badAddress),
        ("PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", .badAddress),
        ("PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", .badAddress),
        ("PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n", .badAddress),
        ("PROXY TCP4 1..3.4 1.2.3.4 1 2\r\n", .badAddress),
        ("PROXY TCP4 ::1 1.2.3.4 1 2\r\n", .badAddress),
        ("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 1::2::3 ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 :1:2:3:4:5:6:7 ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 1: ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 12345:: ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 ::: ::1 1 2\r\n", .badAddress),
        ("PROXY TCP6 g:: ::1 1 2\r\n", .badAddress),
    ] as [(String, ProxyHeaderError)])
    func v1Invalid(text: String, error: ProxyHeaderError) {
        #expect(Self.parse(text) == .invalid(error))
    }

    @Test func v1LineLength() {
        // The CR LF must lie within the first 107 bytes.
        let long = "PROXY UNKNOWN " + String(repeating: "x", count: 91) + "\r\n"
        #expect(long.utf8.count == 107)
        #expect(Self.parse(long) == .ok(ProxyHeader(version: .v1), consumed: 107))
        let tooLong = "PROXY UNKNOWN " + String(repeating: "x", count: 92) + "\r\n"
        #expect(Self.parse(tooLong) == .invalid(.lineTooLong))
        #expect(Self.parse("PROXY UNKNOWN " + String(repeating: "x", count: 93)) == .invalid(.lineTooLong))
        #expect(Self.parse("PROXY UNKNOWN " + String(repeating: "x", count: 92) + "\r") == .invalid(.lineTooLong))
    }

    @Test func v1Partial() {
        let full = Array("PROXY TCP6 ::1 ::2 1 2\r\nabc".utf8)
        // Every strict prefix of the header asks for more; "ended" turns that into truncated.
        for n in 0..<24 {
            let prefix = Array(full.prefix(n))
            #expect(Self.parse(prefix) == .needMore, "prefix \(n)")
            #expect(prefix.withUnsafeBytes { ProxyProtocol.parse($0, ended: true) } == .invalid(.truncated))
        }
        guard case .ok(_, let consumed) = Self.parse(full) else { Issue.record("no header"); return }
        #expect(consumed == 24)
    }

    // MARK: v2

    static func v2(_ verCmd: UInt8, _ fam: UInt8, _ body: [UInt8]) -> [UInt8] {
        sig + [verCmd, fam, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    @Test func v2TCP4() {
        let body: [UInt8] = [192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB]
        let bytes = Self.v2(0x21, 0x11, body) + Array("GET".utf8)
        let expected = ProxyHeader(version: .v2, source: Self.addr("192.168.0.1", 56324), destination: Self.addr("192.168.0.11", 443))
        #expect(Self.parse(bytes) == .ok(expected, consumed: 28))
    }

    @Test func v2TCP6WithTLVs() {
        var body = [UInt8](repeating: 0, count: 36)
        body[15] = 1  // ::1
        body[16] = 0x20; body[17] = 0x01; body[18] = 0x0D; body[19] = 0xB8; body[31] = 2  // 2001:db8::2
        body[32] = 0x30; body[33] = 0x39; body[34] = 0x00; body[35] = 0x50
        // ALPN, AUTHORITY, NOOP (empty), a custom one: all skipped.
        body += [0x01, 0x00, 0x02] + Array("h2".utf8)
        body += [0x02, 0x00, 0x0B] + Array("example.com".utf8)
        body += [0x04, 0x00, 0x00]
        body += [0xE0, 0x00, 0x01, 0xFF]
        let expected = ProxyHeader(version: .v2, source: Self.addr("::1", 12345), destination: Self.addr("2001:db8::2", 80))
        let bytes = Self.v2(0x21, 0x21, body)
        #expect(Self.parse(bytes) == .ok(expected, consumed: bytes.count))
    }

    @Test func v2LocalAndFallbacks() {
        #expect(Self.parse(Self.v2(0x20, 0x00, [])) == .ok(ProxyHeader(version: .v2, isLocal: true), consumed: 16))
        // LOCAL with an address block: skipped by its length, addresses ignored.
        #expect(Self.parse(Self.v2(0x20, 0x11, [UInt8](repeating: 7, count: 12))) == .ok(ProxyHeader(version: .v2, isLocal: true), consumed: 28))
        // PROXY over UNSPEC, UDP or UNIX: valid, but no address a TCP proxy uses.
        #expect(Self.parse(Self.v2(0x21, 0x00, [1, 2, 3])) == .ok(ProxyHeader(version: .v2), consumed: 19))
        #expect(Self.parse(Self.v2(0x21, 0x12, [UInt8](repeating: 1, count: 12))) == .ok(ProxyHeader(version: .v2), consumed: 28))
        #expect(Self.parse(Self.v2(0x21, 0x22, [UInt8](repeating: 1, count: 36))) == .ok(ProxyHeader(version: .v2), consumed: 52))
        #expect(Self.parse(Self.v2(0x21, 0x31, [UInt8](repeating: 0, count: 216))) == .ok(ProxyHeader(version: .v2), consumed: 232))
        #expect(Self.parse(Self.v2(0x21, 0x32, [UInt8](repeating: 0, count: 216))) == .ok(ProxyHeader(version: .v2), consumed: 232))
    }

    @Test(arguments: [
        (v2(0x11, 0x11, [UInt8](repeating: 0, count: 12)), ProxyHeaderError.badVersion),
        (v2(0x31, 0x11, [UInt8](repeating: 0, count: 12)), .badVersion),
        (v2(0x22, 0x11, [UInt8](repeating: 0, count: 12)), .badCommand),
        (v2(0x2F, 0x11, [UInt8](repeating: 0, count: 12)), .badCommand),
        (v2(0x21, 0x13, [UInt8](repeating: 0, count: 12)), .badFamily),
        (v2(0x21, 0x41, [UInt8](repeating: 0, count: 12)), .badFamily),
        (v2(0x21, 0x01, []), .badFamily),
        (v2(0x21, 0x11, [UInt8](repeating: 0, count: 11)), .addressTooShort),
        (v2(0x21, 0x21, [UInt8](repeating: 0, count: 12)), .addressTooShort),
        (v2(0x21, 0x11, [UInt8](repeating: 0, count: 12) + [0x01, 0x00]), .badTLV),
        (v2(0x21, 0x11, [UInt8](repeating: 0, count: 12) + [0x01, 0x00, 0x02, 0x61]), .badTLV),
        (v2(0x21, 0x11, [UInt8](repeating: 0, count: 12) + [0x04, 0x00, 0x00, 0x01, 0xFF, 0xFF]), .badTLV),
        (sig.prefix(11) + [0x0B], .notProxyProtocol),
        ([0x0D, 0x0A, 0x0D, 0x0B], .notProxyProtocol),
    ] as [([UInt8], ProxyHeaderError)])
    func v2Invalid(bytes: [UInt8], error: ProxyHeaderError) {
        #expect(Self.parse(bytes) == .invalid(error))
    }

    @Test func v2Limits() {
        // Up to maxV2Length in all is fine (a NOOP TLV as padding); one byte more is refused from the
        // fixed 16 bytes alone, before the rest arrives.
        let pad = ProxyProtocol.maxV2Length - 16 - 12 - 3
        let atLimit = Self.v2(0x21, 0x11, [UInt8](repeating: 0, count: 12) + [0x04, UInt8(pad >> 8), UInt8(pad & 0xFF)] + [UInt8](repeating: 0, count: pad))
        #expect(atLimit.count == ProxyProtocol.maxV2Length)
        guard case .ok(_, let consumed) = Self.parse(atLimit) else { Issue.record("refused at the limit"); return }
        #expect(consumed == ProxyProtocol.maxV2Length)
        let over = ProxyProtocol.maxV2Length - 16 + 1
        #expect(Self.parse(Self.sig + [0x21, 0x11, UInt8(over >> 8), UInt8(over & 0xFF)]) == .invalid(.tooLong))
        #expect(Self.parse(Self.sig + [0x21, 0x11, 0xFF, 0xFF]) == .invalid(.tooLong))
    }

    @Test func v2Partial() {
        let full = Self.v2(0x21, 0x11, [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2])
        for n in 0..<full.count {
            #expect(Self.parse(Array(full.prefix(n))) == .needMore, "prefix \(n)")
        }
        #expect(Self.parse(full) == .ok(ProxyHeader(version: .v2, source: Self.addr("10.0.0.1", 1), destination: Self.addr("10.0.0.2", 2)), consumed: 28))
    }

    // MARK: encoding

    @Test func encodeV1() {
        #expect(String(decoding: Self.encode(.v1, Self.addr("192.168.0.1", 56324), Self.addr("192.168.0.11", 443)), as: UTF8.self)
            == "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
        #expect(String(decoding: Self.encode(.v1, Self.addr("::1", 5), Self.addr("2001:db8:0:0:1:0:0:1", 0)), as: UTF8.self)
            == "PROXY TCP6 ::1 2001:db8::1:0:0:1 5 0\r\n")
        let max = Self.encode(.v1, Self.addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), Self.addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535))
        #expect(max.count == 104)
        // Mixed families: the IPv4 side as IPv4-mapped IPv6, in hex groups.
        #expect(String(decoding: Self.encode(.v1, Self.addr("1.2.3.4", 1), Self.addr("::1", 2)), as: UTF8.self)
            == "PROXY TCP6 ::ffff:102:304 ::1 1 2\r\n")
    }

    @Test func encodeV2() {
        let v4 = Self.encode(.v2, Self.addr("192.168.0.1", 56324), Self.addr("192.168.0.11", 443))
        #expect(v4 == Self.v2(0x21, 0x11, [192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB]))
        let v6 = Self.encode(.v2, Self.addr("::1", 1), Self.addr("::2", 2))
        #expect(v6.count == 52)
        #expect(Array(v6.prefix(16)) == Self.sig + [0x21, 0x21, 0, 36])
        var local = [UInt8](repeating: 0, count: 16)
        #expect(local.withUnsafeMutableBytes { ProxyProtocol.encodeLocal(into: $0) } == 16)
        #expect(local == Self.sig + [0x20, 0x00, 0, 0])
        var small = [UInt8](repeating: 0, count: 15)
        #expect(small.withUnsafeMutableBytes { ProxyProtocol.encodeLocal(into: $0) } == 0)
        var short = [UInt8](repeating: 0, count: ProxyProtocol.maxEncodedLength - 1)
        #expect(short.withUnsafeMutableBytes { ProxyProtocol.encode(.v1, source: Self.addr("::1", 1), destination: Self.addr("::1", 1), into: $0) } == 0)
    }

    /// Encoding then parsing gives the addresses back, for both versions and many addresses.
    @Test func roundTrip() {
        var rng = SplitMix64(seed: 13)
        for i in 0..<2000 {
            let v6 = i % 2 == 1
            func random() -> SocketAddress {
                if !v6 { return SocketAddress(ipv4: UInt32(truncatingIfNeeded: rng.next()), port: UInt16(truncatingIfNeeded: rng.next())) }
                var w = SIMD8<UInt16>()
                // Zero runs of varied lengths, so `::` lands everywhere.
                let r = rng.next()
                for k in 0..<8 where (r >> UInt64(k)) & 1 == 1 { w[k] = UInt16(truncatingIfNeeded: rng.next() >> UInt64(k * 3)) }
                return SocketAddress(ipv6Words: w, port: UInt16(truncatingIfNeeded: rng.next()))
            }
            let s = random(), d = random()
            for version in [ProxyProtocolVersion.v1, .v2] {
                let bytes = Self.encode(version, s, d)
                #expect(Self.parse(bytes) == .ok(ProxyHeader(version: version, source: s, destination: d), consumed: bytes.count))
                if version == .v1 && v6 {
                    // The text agrees with inet_ntop's canonical form when there is no dotted tail.
                    let text = String(decoding: bytes, as: UTF8.self)
                    if !s.host.contains(".") { #expect(text.hasPrefix("PROXY TCP6 \(s.host) ")) }
                }
            }
        }
    }
}
