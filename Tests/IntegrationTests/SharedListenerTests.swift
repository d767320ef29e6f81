import CShim
import Glibc
import LoadBalancer
import TestVectors
import Testing

/// Several services on one listen address, told apart by the TLS server name, over real sockets with
/// ClientHellos OpenSSL made (`ClientHelloVectors`): each pair reaches the service its name picks
/// (exact, then the longest wildcard, then the `*` default), with the ClientHello as the backend's
/// first bytes, and counts on that service only.
@Suite struct SharedListenerIntegrationTests {
    init() { _ = lb_ignore_sigpipe() }

    static func vector(_ name: String) -> [UInt8] { ClientHelloVectors.all.first { $0.name == name }!.bytes }

    /// A loopback port nothing holds right now (bound to port 0, read, closed): a shared address needs
    /// a fixed port.
    static func freePort() throws -> UInt16 {
        let fd = try Sockets.bind(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        defer { Sys.close(fd) }
        return try Sys.localAddress(of: fd).port
    }

    /// One config file: `a` serves a.example.com, `b` *.b.example, `c` (when `withDefault`) the rest.
    static func config(port: UInt16, backends: [SocketAddress], withDefault: Bool, extra: String = "") throws -> Configuration {
        let names = [#"["a.example.com"]"#, #"["*.b.example"]"#, #"["*"]"#]
        let services = (0..<(withDefault ? 3 : 2)).map { i in
            #"{"name": "\#(["a", "b", "c"][i])", "listen": ["127.0.0.1:\#(port)"], "backends": ["\#(backends[i])"], "server_names": \#(names[i])\#(i == 0 ? extra : "")}"#
        }
        var c = try ConfigFile.parse(#"{"workers": 2, "quiet": true, "services": [\#(services.joined(separator: ", "))]}"#, file: "sni.json")
        c.configFile = nil
        return c
    }

    @Test func threeServicesOnOneAddressByExactWildcardAndDefault() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        let port = try Self.freePort()
        let lb = try LoadBalancer.start(try Self.config(port: port, backends: backends.map(\.address), withDefault: true), log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        #expect(lb.listenAddresses.count == 1)  // one socket (per worker) for the three
        #expect(lb.listenAddresses(of: "c") == [SocketAddress(host: "127.0.0.1", port: port)!])
        let address = lb.listenAddresses[0]
        // (vector, backend): exact, wildcard, a name nobody lists and no name at all go to the default.
        for (name, target) in [("tls13", 0), ("grease", 0), ("tls12", 1), ("alpn", 2), ("noSNI", 2), ("threeRecords", 0)] {
            let hello = Self.vector(name)
            let before = backends[target].log.items.withLock { $0.count }
            let (_, answer, _) = PreambleTests.exchange(address, hello + Array("after".utf8))
            #expect(answer == "done", "\(name)")
            #expect(eventually { backends[target].log.items.withLock { $0.count } == before + 1 }, "\(name)")
            let same = backends[target].log.items.withLock { $0.last } == hello + Array("after".utf8)
            #expect(same, "\(name)")
        }
        #expect(backends.map { $0.log.items.withLock { $0.count } } == [3, 1, 2])
        // Each pair counted on the service it went to, and only there.
        #expect(eventually { lb.counters[.activePairs] == 0 })
        #expect(["a", "b", "c"].map { lb.service(named: $0)!.counters[.accepted] } == [3, 1, 2])
        #expect(["a", "b", "c"].map { lb.service(named: $0)!.counters[.activePairs] } == [0, 0, 0])
        #expect(lb.counters[.serverNameRefused] == 0 && lb.counters[.preambleRejected] == 0)
    }

    /// The ClientHello in three writes, each read by lb before the next is sent.
    @Test func splitClientHelloIsRoutedWhole() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        var config = try Self.config(port: try Self.freePort(), backends: backends.map(\.address), withDefault: true)
        config.workers = 1
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let hello = Self.vector("tls12")  // shop.b.example: the wildcard service
        guard case .success(let fd) = TestSocket.connect(lb.listenAddresses[0]) else { Issue.record("connect"); return }
        defer { close(fd) }
        TestSocket.sendAll(fd, Array(hello[..<3]))
        #expect(eventually { lb.counters[.buffersInUse] == 1 })
        TestSocket.sendAll(fd, Array(hello[3..<100]))
        TestSocket.sendAll(fd, Array(hello[100...]))
        TestSocket.shutdownWrite(fd)
        #expect(String(decoding: TestSocket.readAll(fd).bytes, as: UTF8.self) == "done")
        #expect(eventually { backends[1].first != nil })
        let same = backends[1].first == hello
        #expect(same)
        #expect(lb.service(named: "b")!.counters[.accepted] == 1 && lb.service(named: "a")!.counters[.accepted] == 0)
    }

    /// No default: a name nobody lists, no name, and bytes that are not TLS are reset and counted; no
    /// service counts them and no backend sees them.
    @Test(arguments: [("alpn", "unknown"), ("noSNI", "unknown"), ("http", "bad")])
    func withoutDefaultUnknownNamesAreRefused(vector: String, kind: String) throws {
        let backends = (0..<2).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        let lb = try LoadBalancer.start(
            try Self.config(port: try Self.freePort(), backends: backends.map(\.address), withDefault: false), log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let bytes = vector == "http" ? Array("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n".utf8) : Self.vector(vector)
        let (_, answer, end) = PreambleTests.exchange(lb.listenAddresses[0], bytes)
        #expect(answer.isEmpty && end == .reset)
        #expect(eventually { lb.counters[kind == "unknown" ? .serverNameRefused : .preambleRejected] == 1 })
        #expect(eventually { lb.counters[.activePairs] == 0 && lb.counters[.buffersInUse] == 0 })
        #expect(lb.counters[.accepted] == 1)
        #expect(["a", "b"].map { lb.service(named: $0)!.counters[.accepted] } == [0, 0])
        #expect(backends.allSatisfy { $0.server.accepted.load(ordering: .relaxed) == 0 })
    }

    /// A routed pair takes a place in its service's max_conns (not in the listener owner's) and gives
    /// it back when it closes; a client routed to a full service is reset and counted as refused.
    @Test func routedPairsCountOnTheirServicesMaxConns() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        var config = try Self.config(port: try Self.freePort(), backends: backends.map(\.address), withDefault: true)
        config.services[1].settings.admission.maxConns = 1  // b
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let address = lb.listenAddresses[0]
        // One pair of b stays open (the backend reads to the client's EOF).
        guard case .success(let held) = TestSocket.connect(address) else { Issue.record("connect"); return }
        TestSocket.sendAll(held, Self.vector("tls12"))
        #expect(eventually { lb.service(named: "b")!.counters[.activePairs] == 1 })
        let (_, refused, end) = PreambleTests.exchange(address, Self.vector("tls12"))
        #expect(refused.isEmpty && end == .reset)
        #expect(eventually { lb.counters[.refused] == 1 })
        // The owner (a) and the default (c) are not limited by b's max_conns.
        #expect(PreambleTests.exchange(address, Self.vector("tls13")).answer == "done")
        #expect(PreambleTests.exchange(address, Self.vector("alpn")).answer == "done")
        TestSocket.shutdownWrite(held)
        #expect(String(decoding: TestSocket.readAll(held).bytes, as: UTF8.self) == "done")
        close(held)
        #expect(eventually { lb.service(named: "b")!.counters[.activePairs] == 0 })
        #expect(PreambleTests.exchange(address, Self.vector("tls12")).answer == "done")
        #expect(["a", "b", "c"].map { lb.service(named: $0)!.counters[.accepted] } == [1, 2, 1])
    }

    /// A reload that removes the service owning the shared socket keeps the socket: the next service
    /// listing the address takes it over, with the new routes.
    @Test func theSharedSocketSurvivesAReloadThatRemovesItsOwner() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        let port = try Self.freePort()
        let lb = try LoadBalancer.start(try Self.config(port: port, backends: backends.map(\.address), withDefault: true), log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let address = lb.listenAddresses[0]
        guard case .success(let held) = TestSocket.connect(address) else { Issue.record("connect"); return }
        defer { close(held) }
        var next = try Self.config(port: port, backends: backends.map(\.address), withDefault: true)
        next.services.removeFirst()  // a goes: a.example.com now goes to the default, c
        _ = try lb.reload(to: next)
        #expect(lb.listenAddresses == [address])
        // A client accepted before the reload (in the kernel's backlog or in its preamble) is served.
        TestSocket.sendAll(held, Self.vector("tls13"))
        TestSocket.shutdownWrite(held)
        #expect(String(decoding: TestSocket.readAll(held).bytes, as: UTF8.self) == "done")
        #expect(PreambleTests.exchange(address, Self.vector("grease")).answer == "done")
        #expect(PreambleTests.exchange(address, Self.vector("tls12")).answer == "done")
        #expect(backends.map { $0.log.items.withLock { $0.count } } == [0, 1, 2])
    }

    /// An upgrade hands the one shared socket over: the new process serves it with its routes.
    @Test func theSharedSocketIsHandedOverOnTakeover() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        let port = try Self.freePort()
        let config = try Self.config(port: port, backends: backends.map(\.address), withDefault: true)
        let old = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { old.stopNow(); old.wait() }
        let address = old.listenAddresses[0]
        let path = TakeoverTests.socketPath() + "-sni"
        defer { unlink(path) }
        let server = try TakeoverServer.start(path: path, balancer: old) {}
        defer { server.stop() }
        let session = try #require(try Takeover.request(from: path))
        #expect(session.listeners.map(\.bound) == [address] && session.listeners[0].service == "a")
        let new = try LoadBalancer.start(config, log: EventLog(echoToStderr: false), inherited: session.listeners)
        defer { new.stopNow(); new.wait() }
        try session.ready()
        old.beginDrain()
        #expect(eventually { old.isFinished })
        #expect(new.listenAddresses == [address])
        for (name, target) in [("tls13", 0), ("tls12", 1), ("noSNI", 2)] {
            #expect(PreambleTests.exchange(address, Self.vector(name)).answer == "done", "\(name)")
            #expect(eventually { backends[target].log.items.withLock { $0.count } == 1 }, "\(name)")
        }
        #expect(["a", "b", "c"].map { new.service(named: $0)!.counters[.accepted] } == [1, 1, 1])
    }

    /// With accept_proxy on every service of the address: the PROXY header first, then the
    /// ClientHello; the header's client is checked against the routed service's allow/deny, and the
    /// header that service sends on names it.
    @Test func proxyHeaderThenClientHelloOnASharedAddress() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        var config = try Self.config(port: try Self.freePort(), backends: backends.map(\.address), withDefault: true)
        for i in config.services.indices { config.services[i].settings.acceptProxy = true }
        config.services[0].settings.proxyProtocol = .v1
        config.services[1].settings.admission.deny = [try CIDR.parse("192.0.2.0/24").get()]
        try config.validate()
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let address = lb.listenAddresses[0]
        let header = Array("PROXY TCP4 192.0.2.9 192.0.2.1 5555 443\r\n".utf8)
        let hello = Self.vector("tls13")
        #expect(PreambleTests.exchange(address, header + hello).answer == "done")
        #expect(eventually { backends[0].first != nil })
        let same = backends[0].first == header + hello
        #expect(same)
        // b denies that client: reset, counted as refused, after b counted and released it.
        let (_, answer, end) = PreambleTests.exchange(address, header + Self.vector("tls12"))
        #expect(answer.isEmpty && end == .reset)
        #expect(eventually { lb.counters[.refused] == 1 && lb.service(named: "b")!.counters[.activePairs] == 0 })
        #expect(backends[1].server.accepted.load(ordering: .relaxed) == 0)
        // The default sends no header: the backend gets the ClientHello alone.
        #expect(PreambleTests.exchange(address, header + Self.vector("alpn")).answer == "done")
        #expect(eventually { backends[2].first != nil })
        let alone = backends[2].first == Self.vector("alpn")
        #expect(alone)
    }

    /// An address that moves from one service to another in one reload keeps its socket (no service
    /// reads names here: the same holds for any fixed-port address).
    @Test func anAddressMovingBetweenServicesKeepsItsSocket() throws {
        let one = TestServer(handler: TestServer.http(port: 1))
        let two = TestServer(handler: TestServer.http(port: 2))
        defer { one.stop(); two.stop() }
        let port = try Self.freePort()
        func config(_ name: String, _ backend: SocketAddress) throws -> Configuration {
            var c = try ConfigFile.parse(
                #"{"workers": 1, "quiet": true, "services": [{"name": "\#(name)", "listen": ["127.0.0.1:\#(port)"], "backends": ["\#(backend)"]}]}"#,
                file: "move.json")
            c.configFile = nil
            return c
        }
        let lb = try LoadBalancer.start(try config("x", one.address), log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let address = lb.listenAddresses[0]
        #expect(backendHeader(httpGet(address).text) == "1")
        // Before, this reload failed: the new service bound the address its old one still held.
        let change = try lb.reload(to: try config("y", two.address))
        #expect(change.summary == "+1 service (y), -1 service (x)")
        #expect(lb.listenAddresses == [address])
        #expect(backendHeader(httpGet(address).text) == "2")
    }

    /// A drain closes the listener at once; a client already in its preamble is still routed.
    @Test func aClientInItsPreambleIsRoutedDuringADrain() throws {
        let backends = (0..<3).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        var config = try Self.config(port: try Self.freePort(), backends: backends.map(\.address), withDefault: true)
        config.workers = 1
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let hello = Self.vector("tls12")
        guard case .success(let fd) = TestSocket.connect(lb.listenAddresses[0]) else { Issue.record("connect"); return }
        defer { close(fd) }
        TestSocket.sendAll(fd, Array(hello[..<3]))
        #expect(eventually { lb.counters[.buffersInUse] == 1 })
        lb.beginDrain()
        TestSocket.sendAll(fd, Array(hello[3...]))
        TestSocket.shutdownWrite(fd)
        #expect(String(decoding: TestSocket.readAll(fd).bytes, as: UTF8.self) == "done")
        #expect(eventually { backends[1].first != nil })
        #expect(lb.service(named: "b")!.counters[.accepted] == 1)
    }
}
