import LoadBalancer
import TestVectors
import Testing

/// SNI extraction from real ClientHellos (ClientHelloVectors.swift, made by OpenSSL) and from
/// hand-built ones for each refusal.
@Suite struct ClientHelloTests {
    static func sni(_ bytes: [UInt8], ended: Bool = false) -> (ClientHelloParse, String?) {
        var name = [UInt8](repeating: 0, count: ClientHello.maxNameLength)
        let r = bytes.withUnsafeBytes { b in name.withUnsafeMutableBytes { ClientHello.serverName(in: b, into: $0, ended: ended) } }
        if case .ok(let n) = r { return (r, String(decoding: name.prefix(n), as: UTF8.self)) }
        return (r, nil)
    }

    @Test(arguments: ClientHelloVectors.all)
    func realClientHellos(vector: ClientHelloVectors.Vector) {
        let bytes = vector.bytes
        let (result, name) = Self.sni(bytes)
        if let expected = vector.serverName {
            #expect(name == expected, "\(result)")
        } else {
            #expect(result == .noSNI)
        }
    }

    /// Split over reads at every byte: each prefix before the name's end asks for more, and the answer
    /// never changes once it is known. (Prefixes are what the preamble passes after each read.)
    @Test(arguments: ClientHelloVectors.all)
    func everySplit(vector: ClientHelloVectors.Vector) {
        let bytes = vector.bytes
        let (whole, _) = Self.sni(bytes)
        var decided = false
        for n in 0...bytes.count {
            let (r, _) = Self.sni(Array(bytes.prefix(n)))
            if r == .needMore {
                #expect(!decided, "needMore after an answer at \(n)")
                let (ended, _) = Self.sni(Array(bytes.prefix(n)), ended: true)
                #expect(ended == .invalid(.truncated))
            } else {
                decided = true
                #expect(r == whole, "at \(n)")
            }
        }
        #expect(decided)
    }

    // MARK: hand-built

    /// A minimal ClientHello: `extensions` nil leaves the extensions block out (allowed in TLS 1.2).
    static func hello(
        extensions: [(UInt16, [UInt8])]?, rawExtensions: [UInt8]? = nil, sessionID: Int = 32, suites: Int = 4, compressions: Int = 1
    ) -> [UInt8] {
        var body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 0xAB, count: 32)
        body += [UInt8(truncatingIfNeeded: sessionID)] + [UInt8](repeating: 1, count: max(0, min(sessionID, 40)))
        body += [UInt8(suites >> 8), UInt8(suites & 0xFF)] + [UInt8](repeating: 0x13, count: max(0, suites))
        body += [UInt8(compressions)] + [UInt8](repeating: 0, count: compressions)
        if let extensions {
            var raw: [UInt8] = []
            for (t, d) in extensions { raw += [UInt8(t >> 8), UInt8(t & 0xFF), UInt8(d.count >> 8), UInt8(d.count & 0xFF)] + d }
            body += [UInt8(raw.count >> 8), UInt8(raw.count & 0xFF)] + raw
        }
        if let rawExtensions { body += rawExtensions }
        let hs: [UInt8] = [1, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        return record(hs)
    }

    static func record(_ fragment: [UInt8], type: UInt8 = 0x16) -> [UInt8] {
        [type, 0x03, 0x01, UInt8(fragment.count >> 8), UInt8(fragment.count & 0xFF)] + fragment
    }

    static func serverName(_ name: String, type: UInt8 = 0) -> [UInt8] {
        let n = Array(name.utf8)
        let entry: [UInt8] = [type, UInt8(n.count >> 8), UInt8(n.count & 0xFF)] + n
        return [UInt8(entry.count >> 8), UInt8(entry.count & 0xFF)] + entry
    }

    @Test func anyOrderAndGrease() {
        let exts: [(UInt16, [UInt8])] = [(0x1A1A, []), (10, [0, 2, 0, 29]), (0x2A2A, [0]), (0, Self.serverName("X.Example.COM")), (0xFAFA, [])]
        #expect(Self.sni(Self.hello(extensions: exts)).1 == "x.example.com")
        #expect(Self.sni(Self.hello(extensions: [(0, Self.serverName("a"))])).1 == "a")
        #expect(Self.sni(Self.hello(extensions: [(0, Self.serverName(String(repeating: "a", count: 255)))])).1?.count == 255)
        #expect(Self.sni(Self.hello(extensions: nil)).0 == .noSNI)
        #expect(Self.sni(Self.hello(extensions: [])).0 == .noSNI)
        #expect(Self.sni(Self.hello(extensions: [(10, [0, 2, 0, 29])], sessionID: 0)).0 == .noSNI)
    }

    @Test func notTLS() {
        #expect(Self.sni(Array("GET / HTTP/1.1\r\n".utf8)).0 == .notTLS)
        #expect(Self.sni([0x80, 0x2E, 0x01]).0 == .notTLS)  // SSLv2-style hello
        #expect(Self.sni([0x16, 0x02]).0 == .notTLS)
        #expect(Self.sni([0x16]).0 == .needMore)
        #expect(Self.sni([]).0 == .needMore)
        #expect(Self.sni([], ended: true).0 == .invalid(.truncated))
    }

    @Test(arguments: [
        // Not a ClientHello: a ServerHello(2).
        (record([2, 0, 0, 40] + [UInt8](repeating: 0, count: 40)), ClientHelloError.notClientHello),
        // Empty record, oversized record, a record of another major version.
        ([0x16, 0x03, 0x01, 0x00, 0x00], .badRecord),
        ([0x16, 0x03, 0x01, 0x40, 0x01], .badRecord),
        // Handshake length too small for the fixed fields.
        (record([1, 0, 0, 10] + [UInt8](repeating: 0, count: 10)), .badLength),
        // Handshake length over 16 KiB.
        (record([1, 0, 0x40, 0x01] + [UInt8](repeating: 0, count: 40)), .tooLarge),
        // Bad session id length, odd or empty cipher suites, no compression method.
        (hello(extensions: nil, sessionID: 33), .badLength),
        (hello(extensions: nil, suites: 3), .badLength),
        (hello(extensions: nil, suites: 0), .badLength),
        (hello(extensions: nil, compressions: 0), .badLength),
        // server_name: other name type, empty name, two names, a bad character, list length off.
        (hello(extensions: [(0, serverName("a.com", type: 1))]), .badServerName),
        (hello(extensions: [(0, serverName(""))]), .badServerName),
        (hello(extensions: [(0, serverName("a.com") + [0, 0, 1, 0x62])]), .badServerName),
        (hello(extensions: [(0, serverName("a b.com"))]), .badServerName),
        (hello(extensions: [(0, serverName("a\u{0}b"))]), .badServerName),
        (hello(extensions: [(0, [0, 9, 0, 0, 5] + Array("a.com".utf8))]), .badServerName),
        (hello(extensions: [(0, [0, 3, 0, 0, 0])]), .badServerName),
        (hello(extensions: [(0, serverName(String(repeating: "a", count: 256)))]), .badServerName),
    ] as [([UInt8], ClientHelloError)])
    func refusals(bytes: [UInt8], error: ClientHelloError) {
        #expect(Self.sni(bytes).0 == .invalid(error))
    }

    @Test func lengthsMustAgree() {
        // The extensions block must end exactly where the handshake message does.
        var bytes = Self.hello(extensions: [(10, [0, 2, 0, 29])])
        let extLenAt = bytes.count - 8 - 2
        bytes[extLenAt + 1] &+= 1
        #expect(Self.sni(bytes).0 == .invalid(.badLength))
        bytes[extLenAt + 1] &-= 2
        #expect(Self.sni(bytes).0 == .invalid(.badLength))
        // An extension running past the block.
        var bytes2 = Self.hello(extensions: [(10, [0, 2, 0, 29])])
        bytes2[bytes2.count - 5] = 9
        #expect(Self.sni(bytes2).0 == .invalid(.badLength))
        // Trailing bytes too few for an extension header.
        #expect(Self.sni(Self.hello(extensions: nil, rawExtensions: [0, 3, 0, 10, 0])).0 == .invalid(.badLength))
    }

    @Test func records() {
        let hs = Array(Self.hello(extensions: [(0, Self.serverName("a.example"))]).dropFirst(5))
        // One byte per record: still found.
        #expect(Self.sni(hs.flatMap { Self.record([$0]) }).1 == "a.example")
        // Another record type in the middle of the handshake.
        let mixed = Self.record(Array(hs.prefix(10))) + Self.record([1], type: 0x14) + Self.record(Array(hs.dropFirst(10)))
        #expect(Self.sni(mixed).0 == .invalid(.badRecord))
        let badVersion = Self.record(Array(hs.prefix(10))) + [0x16, 0x02, 0x01, 0, 1, 0]
        #expect(Self.sni(badVersion).0 == .invalid(.badRecord))
    }

    @Test func sizeCap() {
        // A handshake announced longer than the cap is refused from its header.
        #expect(Self.sni([0x16, 0x03, 0x01, 0x00, 0x04, 1, 0, 0x40, 0x01]).0 == .invalid(.tooLarge))
        // One within the cap, but cut into 2-byte records so that the name lies past 16 KiB of input.
        let hs = Array(Self.hello(extensions: [(21, [UInt8](repeating: 0, count: 4_800)), (0, Self.serverName("a.b"))]).dropFirst(5))
        var bytes: [UInt8] = []
        var at = 0
        while at < hs.count {
            bytes += Self.record(Array(hs[at..<min(at + 2, hs.count)]))
            at += 2
        }
        #expect(bytes.count > ClientHello.maxBytes)
        #expect(Self.sni(Array(bytes.prefix(ClientHello.maxBytes))).0 == .invalid(.tooLarge))
        #expect(Self.sni(Array(bytes.prefix(ClientHello.maxBytes - 1))).0 == .needMore)
        #expect(Self.sni(bytes).1 == "a.b")  // the parser itself has no trouble with it
        // The name buffer must hold the longest name.
        var small = [UInt8](repeating: 0, count: 10)
        let r = Self.hello(extensions: [(0, Self.serverName("a"))]).withUnsafeBytes { b in small.withUnsafeMutableBytes { ClientHello.serverName(in: b, into: $0) } }
        #expect(r == .invalid(.badServerName))
    }
}
