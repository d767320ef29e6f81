import CShim
import Glibc
import LoadBalancer
import Synchronization
import TestVectors
import Testing

/// The PROXY protocol over real loopback sockets: the exact bytes a backend receives, headers accepted
/// from clients (and passed on in the other version), refusals, timeouts and health checks.
@Suite struct PreambleTests {
    init() { _ = lb_ignore_sigpipe() }

    /// A backend that records everything a connection sends until its EOF, then answers "done" and closes.
    final class RecordingBackend: Sendable {
        final class Log: Sendable { let items = Mutex<[[UInt8]]>([]) }
        let log = Log()
        let server: TestServer

        init(v6: Bool = false) {
            let log = self.log
            server = TestServer(v6: v6) { fd in
                let (bytes, _) = TestSocket.readAll(fd, limit: 1 << 24)
                log.items.withLock { $0.append(bytes) }
                TestSocket.sendAll(fd, "done")
            }
        }

        var address: SocketAddress { server.address }
        func stop() { server.stop() }
        var first: [UInt8]? { log.items.withLock { $0.first } }
    }

    static func localAddress(_ fd: Int32) -> SocketAddress {
        var a = SocketAddress()
        _ = a.withMutableSockaddr { getsockname(fd, $0, $1) }
        return a
    }

    /// Connects, sends `bytes`, shuts the write side and reads the answer to its end.
    static func exchange(_ address: SocketAddress, _ bytes: [UInt8]) -> (client: SocketAddress, answer: String, end: StreamEnd) {
        guard case .success(let fd) = TestSocket.connect(address) else { return (SocketAddress(), "", .reset) }
        defer { close(fd) }
        let me = localAddress(fd)
        TestSocket.sendAll(fd, bytes)
        TestSocket.shutdownWrite(fd)
        let (answer, end) = TestSocket.readAll(fd)
        return (me, String(decoding: answer, as: UTF8.self), end)
    }

    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    // MARK: sending

    /// v1 and v2 for an IPv4 client, written out by hand from the spec (not with our encoder).
    @Test(arguments: [ProxyProtocolVersion.v1, .v2])
    func sendsHeaderForIPv4Client(version: ProxyProtocolVersion) throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.proxyProtocol = version }) { lb, address in
            let (client, answer, end) = Self.exchange(address, Array("hello".utf8))
            #expect(answer == "done" && end == .eof)
            #expect(eventually { backend.first != nil })
            let expected: [UInt8]
            switch version {
            case .v1:
                expected = Array("PROXY TCP4 127.0.0.1 127.0.0.1 \(client.port) \(address.port)\r\nhello".utf8)
            case .v2:
                expected = Self.signature + [0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 1, 127, 0, 0, 1]
                    + Self.be16(client.port) + Self.be16(address.port) + Array("hello".utf8)
            }
            #expect(backend.first == expected)
            #expect(eventually { lb.counters[.activePairs] == 0 })
        }
    }

    /// An IPv6 client of an IPv4 backend: the header carries the client's family.
    @Test(arguments: [ProxyProtocolVersion.v1, .v2])
    func sendsHeaderForIPv6Client(version: ProxyProtocolVersion) throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.proxyProtocol = version
            $0.listen = [SocketAddress(host: "::1", port: 0)!]
        }) { _, address in
            let (client, answer, _) = Self.exchange(address, Array("hi".utf8))
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            let expected: [UInt8]
            switch version {
            case .v1:
                expected = Array("PROXY TCP6 ::1 ::1 \(client.port) \(address.port)\r\nhi".utf8)
            case .v2:
                let loop6: [UInt8] = [UInt8](repeating: 0, count: 15) + [1]
                expected = Self.signature + [0x21, 0x21, 0x00, 0x24] + loop6 + loop6
                    + Self.be16(client.port) + Self.be16(address.port) + Array("hi".utf8)
            }
            #expect(backend.first == expected)
        }
    }

    /// A client that sends nothing and half-closes still gets its header sent, alone.
    @Test func headerAloneForSilentClient() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.proxyProtocol = .v1 }) { _, address in
            let (client, answer, _) = Self.exchange(address, [])
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            #expect(backend.first == Array("PROXY TCP4 127.0.0.1 127.0.0.1 \(client.port) \(address.port)\r\n".utf8))
        }
    }

    // MARK: accepting

    /// v1 in, v2 out: the addresses of the header received are the ones sent on.
    @Test func acceptV1SendV2() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.acceptProxy = true
            $0.proxyProtocol = .v2
        }) { lb, address in
            let (_, answer, _) = Self.exchange(address, Array("PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\nGET / HTTP/1.0\r\n\r\n".utf8))
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            let expected = Self.signature + [0x21, 0x11, 0x00, 0x0C, 203, 0, 113, 7, 198, 51, 100, 1] + Self.be16(40000) + Self.be16(443)
                + Array("GET / HTTP/1.0\r\n\r\n".utf8)
            #expect(backend.first == expected)
            #expect(lb.counters[.preambleRejected] == 0)
        }
    }

    /// v2 in (with TLVs), v1 out, over IPv6.
    @Test func acceptV2SendV1() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.acceptProxy = true
            $0.proxyProtocol = .v1
        }) { _, address in
            var body = [UInt8](repeating: 0, count: 36)
            body[0] = 0x20; body[1] = 0x01; body[2] = 0x0D; body[3] = 0xB8; body[15] = 0x07  // 2001:db8::7
            body[16] = 0x20; body[17] = 0x01; body[18] = 0x0D; body[19] = 0xB8; body[31] = 0x01  // 2001:db8::1
            body[32] = 0xA0; body[33] = 0x00; body[34] = 0x01; body[35] = 0xBB  // 40960 -> 443
            body += [0x05, 0x00, 0x04, 1, 2, 3, 4]  // a UNIQUE_ID TLV, skipped
            let header = Self.signature + [0x21, 0x21] + Self.be16(UInt16(body.count)) + body
            let (_, answer, _) = Self.exchange(address, header + Array("data".utf8))
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            #expect(backend.first.map { String(decoding: $0, as: UTF8.self) } == "PROXY TCP6 2001:db8::7 2001:db8::1 40960 443\r\ndata")
        }
    }

    /// Without sending, the header is taken off and only the client's bytes reach the backend, however
    /// many there are: more than the buffer (16 KiB) arrive with the header here.
    @Test func headerStrippedAndLargeEarlyData() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.acceptProxy = true }) { lb, address in
            var rng = SplitMix64(seed: 7)
            let payload = (0..<100_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let (_, answer, _) = Self.exchange(address, Array("PROXY UNKNOWN\r\n".utf8) + payload)
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            #expect(backend.first?.count == payload.count)
            let same = backend.first == payload
            #expect(same)
            #expect(eventually { lb.counters[.activePairs] == 0 && lb.counters[.buffersInUse] == 0 })
        }
    }

    /// Accepted and sent on, with 100 KB of early bytes: the header then every byte.
    @Test func acceptAndSendWithLargeEarlyData() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.acceptProxy = true
            $0.proxyProtocol = .v1
        }) { _, address in
            let payload = [UInt8](repeating: 0x61, count: 100_000)
            let (_, answer, _) = Self.exchange(address, Array("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n".utf8) + payload)
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            let expected = Array("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n".utf8) + payload
            #expect(backend.first?.count == expected.count)
            let same = backend.first == expected
            #expect(same)
        }
    }

    /// A peer outside `--accept-proxy-from` is reset before a byte is read, and counted.
    @Test func untrustedSourceRefused() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.acceptProxy = true
            $0.acceptProxyFrom = [try! AddressRange.parse("10.0.0.0/8").get()]
        }) { lb, address in
            // Only read: a send racing the reset would take its error, and the read would see an EOF.
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            let (bytes, end) = TestSocket.readAll(fd)
            #expect(bytes.isEmpty)
            #expect(end == .reset)
            #expect(eventually { lb.counters[.proxyUntrusted] == 1 })
            #expect(lb.counters[.accepted] == 0)
            #expect(backend.server.accepted.load(ordering: .relaxed) == 0)
        }
    }

    /// Under --accept-proxy the header's client is the client: --deny judges it (not the proxy's
    /// loopback peer), and maglev keys on it: one header source always reaches one backend, and
    /// different sources spread although every real peer is 127.0.0.1.
    @Test func theHeadersClientIsWhatAddressRulesAndMaglevSee() throws {
        let backends = (0..<4).map { _ in RecordingBackend() }
        defer { for b in backends { b.stop() } }
        try withBalancer(backends: backends.map(\.address), configure: {
            $0.acceptProxy = true
            $0.admission.deny = [try! CIDR.parse("10.0.0.0/8").get()]
            $0.balancing.algorithm = .maglev
        }) { lb, address in
            // A denied header source is reset and counted; the loopback peer alone would have passed.
            let (_, denied, deniedEnd) = Self.exchange(address, Array("PROXY TCP4 10.1.2.3 127.0.0.1 4000 80\r\nhi".utf8))
            #expect(denied.isEmpty && deniedEnd == .reset)
            #expect(eventually { lb.counters[.refused] == 1 })
            // Each of three header sources lands on one backend every time, whatever the real peer port.
            var seen: [String: Set<Int>] = [:]
            let sources = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "198.51.100.7", "198.51.100.8", "203.0.113.5", "203.0.113.9"]
            for round in 0..<4 {
                for source in sources {
                    let before = backends.map { $0.log.items.withLock { $0.count } }
                    let (_, answer, _) = Self.exchange(address, Array("PROXY TCP4 \(source) 127.0.0.1 \(4000 + round) 80\r\nhi".utf8))
                    #expect(answer == "done")
                    let after = backends.map { $0.log.items.withLock { $0.count } }
                    if let i = (0..<4).first(where: { after[$0] > before[$0] }) { seen[source, default: []].insert(i) }
                }
            }
            #expect(seen.count == sources.count && seen.values.allSatisfy { $0.count == 1 }, "\(seen)")
            // Keyed on the header's source (the real peer is 127.0.0.1 for all): they spread.
            #expect(Set(seen.values.flatMap { $0 }).count >= 2, "\(seen)")
        }
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n\r\n",  // no header at all
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  // LF alone
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",  // family mismatch
        "PROXY TCP4 1.2.3.4 5.6.7.8 1",  // truncated, then EOF
    ])
    func badHeaderReset(text: String) throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.acceptProxy = true }) { lb, address in
            let (_, answer, end) = Self.exchange(address, Array(text.utf8))
            #expect(answer.isEmpty)
            #expect(end == .reset)
            #expect(eventually { lb.counters[.preambleRejected] == 1 && lb.counters[.activePairs] == 0 })
            #expect(backend.server.accepted.load(ordering: .relaxed) == 0)
            #expect(lb.counters[.buffersInUse] == 0)
        }
    }

    /// A client that starts a header and stops is reset after the preamble timeout.
    @Test func slowClientTimesOut() throws {
        let backend = RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.acceptProxy = true
            $0.preambleTimeout = .milliseconds(200)
        }) { lb, address in
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "PROXY TCP4 ")
            let (bytes, end) = TestSocket.readAll(fd)  // bounded by the socket's 10 s receive timeout
            #expect(bytes.isEmpty)
            #expect(end == .reset)
            #expect(eventually { lb.counters[.preambleTimeouts] == 1 && lb.counters[.activePairs] == 0 })
            #expect(backend.server.accepted.load(ordering: .relaxed) == 0)
        }
    }

    // MARK: health checks

    /// HTTP checks start with the v2 LOCAL header (no addresses), or a v1 line of the probe's own
    /// addresses, then the request.
    @Test(arguments: [ProxyProtocolVersion.v1, .v2])
    func healthChecksSendHeader(version: ProxyProtocolVersion) throws {
        let log = RecordingBackend.Log()
        let backend = TestServer { fd in
            // Not until the first CR LF CR LF: the v2 signature starts with one.
            let head = TestSocket.read(fd, until: "Connection: close\r\n\r\n")
            log.items.withLock { $0.append(Array(head.utf8)) }
            TestSocket.sendAll(fd, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        }
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1, configure: {
            $0.proxyProtocol = version
            $0.health.mode = .http(path: "/health")
            $0.health.interval = .milliseconds(50)
        }) { _, _ in
            #expect(eventually { log.items.withLock { !$0.isEmpty } })
            let bytes = log.items.withLock { $0.first } ?? []
            let request = Array("GET /health HTTP/1.0\r\n".utf8)
            switch version {
            case .v2:
                #expect(Array(bytes.prefix(16)) == Self.signature + [0x20, 0x00, 0x00, 0x00])
                #expect(bytes.dropFirst(16).starts(with: request))
            case .v1:
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(text.hasPrefix("PROXY TCP4 127.0.0.1 127.0.0.1 "))
                #expect(text.contains(" \(backend.port)\r\nGET /health HTTP/1.0\r\n"))
            }
        }
    }
}

/// TLS server names over real sockets, with ClientHellos OpenSSL made: the listener serves only the
/// names it lists, and the ClientHello reaches the backend unchanged, as its first bytes.
@Suite struct ServerNameTests {
    init() { _ = lb_ignore_sigpipe() }

    static func vector(_ name: String) -> [UInt8] { ClientHelloVectors.all.first { $0.name == name }!.bytes }

    @Test func listedNamesPassUnchanged() throws {
        let backend = PreambleTests.RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.serverNames = ["a.example.com", "*.b.example", "api.example.org"]
        }) { lb, address in
            for name in ["tls13", "tls12", "grease", "paddedSNILast", "threeRecords", "alpn"] {
                let hello = Self.vector(name)
                let before = backend.log.items.withLock { $0.count }
                let (_, answer, _) = PreambleTests.exchange(address, hello + Array("after".utf8))
                #expect(answer == "done", "\(name)")
                #expect(eventually { backend.log.items.withLock { $0.count } == before + 1 })
                let got = backend.log.items.withLock { $0.last }
                let same = got == hello + Array("after".utf8)
                #expect(same, "\(name): \(got?.count ?? -1) bytes")
            }
            #expect(lb.counters[.serverNameRefused] == 0 && lb.counters[.preambleRejected] == 0)
        }
    }

    /// The ClientHello in three writes, each read by lb before the next is sent (its buffer is taken
    /// on the first read: the gauge says when).
    @Test func splitClientHello() throws {
        let backend = PreambleTests.RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], workers: 1, configure: { $0.serverNames = ["a.example.com"] }) { lb, address in
            let hello = Self.vector("tls13")
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, Array(hello[..<3]))
            #expect(eventually { lb.counters[.buffersInUse] == 1 })
            TestSocket.sendAll(fd, Array(hello[3..<200]))
            TestSocket.sendAll(fd, Array(hello[200...]))
            TestSocket.shutdownWrite(fd)
            #expect(String(decoding: TestSocket.readAll(fd).bytes, as: UTF8.self) == "done")
            #expect(eventually { backend.first != nil })
            let same = backend.first == hello
            #expect(same)
        }
    }

    @Test(arguments: [
        ("noSNI", "unknown"), ("tls12", "unknown"),  // no name; a name not listed
        ("http", "bad"), ("truncated", "bad"),
    ])
    func refused(vector: String, kind: String) throws {
        let backend = PreambleTests.RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: { $0.serverNames = ["a.example.com", "*.example.org"] }) { lb, address in
            let bytes: [UInt8]
            switch vector {
            case "http": bytes = Array("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n".utf8)
            case "truncated": bytes = Array(Self.vector("tls13").prefix(60))  // ends inside the session id, before the name
            default: bytes = Self.vector(vector)
            }
            let (_, answer, end) = PreambleTests.exchange(address, bytes)
            #expect(answer.isEmpty && end == .reset)
            if kind == "unknown" {
                #expect(eventually { lb.counters[.serverNameRefused] == 1 })
            } else {
                #expect(eventually { lb.counters[.preambleRejected] == 1 })
            }
            #expect(eventually { lb.counters[.activePairs] == 0 && lb.counters[.buffersInUse] == 0 })
            #expect(backend.server.accepted.load(ordering: .relaxed) == 0)
        }
    }

    /// PROXY header, then ClientHello, then the header sent on: all three preamble parts together.
    @Test func proxyThenClientHelloThenSend() throws {
        let backend = PreambleTests.RecordingBackend()
        defer { backend.stop() }
        try withBalancer(backends: [backend.address], configure: {
            $0.serverNames = ["*.example.com"]
            $0.acceptProxy = true
            $0.proxyProtocol = .v1
        }) { _, address in
            let hello = Self.vector("grease")
            let (_, answer, _) = PreambleTests.exchange(address, Array("PROXY TCP4 192.0.2.9 192.0.2.1 5555 443\r\n".utf8) + hello)
            #expect(answer == "done")
            #expect(eventually { backend.first != nil })
            let same = backend.first == Array("PROXY TCP4 192.0.2.9 192.0.2.1 5555 443\r\n".utf8) + hello
            #expect(same)
        }
    }
}
