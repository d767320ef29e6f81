import Admin
import CShim
import Foundation
import Glibc
import LoadBalancer
import Synchronization
import Testing

/// The access log over real sockets: one line per closed pair, with the cause the lifecycle decided.
@Suite struct AccessLogTests {
    init() { _ = lb_ignore_sigpipe() }

    static func tempPath() -> String { "/tmp/lb-access-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log" }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// A balancer logging to a fresh file; `body` gets the balancer, its address, the path and the writer.
    func withLog(
        backends: [SocketAddress], format: AccessLogSettings.Format = .text, workers: Int = 2,
        configure: (inout Configuration) -> Void = { _ in },
        _ body: (LoadBalancer, SocketAddress, String, AccessLogWriter) throws -> Void
    ) throws {
        let path = Self.tempPath()
        defer { unlink(path); unlink(path + ".1") }
        try withBalancer(backends: backends, workers: workers, configure: { c in
            c.accessLog = AccessLogSettings(path: path, format: format)
            configure(&c)
        }) { lb, address in
            let writer = try AccessLogWriter.start(lb, lb.configuration.accessLog!)
            defer { writer.stop() }
            try body(lb, address, path, writer)
        }
    }

    /// The one line whose cause field is `cause`, once it is written.
    func line(_ path: String, cause: String) -> String? {
        var found: String?
        _ = eventually { found = Self.lines(path).first { $0.hasSuffix(" " + cause) }; return found != nil }
        return found
    }

    @Test func cleanClosesNameWhoEndedFirst() throws {
        let http = TestServer(handler: TestServer.http(port: 7))
        let echo = TestServer(handler: TestServer.echo)
        defer { http.stop(); echo.stop() }
        try withLog(backends: [http.address]) { lb, address, path, _ in
            #expect(httpGet(address).text.contains("200 OK"))  // Connection: close: the backend ends first
            let text = try #require(line(path, cause: "backend_closed"))
            let fields = text.split(separator: " ").map(String.init)
            #expect(fields.count == 12)
            #expect(fields[0].hasSuffix("Z") && fields[0].count == 24)
            #expect(fields[1].hasPrefix("127.0.0.1:") && fields[1] != "127.0.0.1:0")
            #expect(fields[2] == address.description)
            #expect(fields[3] == "default")
            #expect(fields[4] == http.address.description)
            #expect(fields[5].hasPrefix("connect_ms=") && fields[6].hasPrefix("duration_ms="))
            #expect(fields[7].hasPrefix("bytes_up=") && fields[7] != "bytes_up=0")
            #expect(fields[8].hasPrefix("bytes_down=") && fields[8] != "bytes_down=0")
            #expect(fields[9] == "retries=0" && fields[10] == "S-")
            _ = lb
        }
        try withLog(backends: [echo.address]) { _, address, path, _ in
            let c = try TestClient(address)
            c.send("ping")
            c.shutdownWrite()  // the client ends first; the echo answers and ends
            #expect(c.readToEnd().bytes == Array("ping".utf8))
            let text = try #require(line(path, cause: "client_closed"))
            #expect(text.contains(" bytes_up=4 bytes_down=4 ") && text.contains(" C- "))
        }
    }

    @Test func resetsAndTimeouts() throws {
        let echo = TestServer(handler: TestServer.echo)
        let resetting = TestServer { fd in
            _ = TestSocket.read(fd, until: "x")
            TestSocket.resetOnClose(fd)
        }
        let done = Atomic<Bool>(false)
        let silent = TestServer { fd in
            _ = TestSocket.readAll(fd)  // to the client's EOF, then hold the connection open
            _ = eventually(timeout: .seconds(10)) { done.load(ordering: .relaxed) }
        }
        defer { done.store(true, ordering: .relaxed); echo.stop(); resetting.stop(); silent.stop() }

        try withLog(backends: [echo.address]) { _, address, path, _ in
            let c = try TestClient(address)
            c.send("abc")
            #expect(c.read(count: 3).bytes == Array("abc".utf8))
            TestSocket.reset(c.fd)
            #expect(line(path, cause: "client_reset")?.contains(" CR ") == true)
        }
        try withLog(backends: [resetting.address]) { _, address, path, _ in
            let c = try TestClient(address)
            c.send("x")
            _ = c.readToEnd()
            #expect(line(path, cause: "backend_reset")?.contains(" SR ") == true)
        }
        try withLog(backends: [silent.address], configure: { $0.idleTimeout = .milliseconds(200) }) { _, address, path, _ in
            let c = try TestClient(address)
            c.send("hello")
            _ = c.readToEnd()
            #expect(line(path, cause: "idle_timeout")?.contains(" LI ") == true)
        }
        try withLog(backends: [silent.address], configure: { $0.finTimeout = .milliseconds(200) }) { _, address, path, _ in
            let c = try TestClient(address)
            c.send("hello")
            c.shutdownWrite()
            _ = c.readToEnd()
            #expect(line(path, cause: "fin_timeout")?.contains(" LF ") == true)
        }
    }

    @Test func connectFailedNoBackendAndDrain() throws {
        let refusing = TestSocket.RefusingPort()
        let live = TestServer(handler: TestServer.http(port: 3))
        let done = Atomic<Bool>(false)
        let holding = TestServer { _ in _ = eventually(timeout: .seconds(10)) { done.load(ordering: .relaxed) } }
        defer { refusing.close(); live.stop(); done.store(true, ordering: .relaxed); holding.stop() }

        try withLog(backends: [refusing.address], configure: { $0.retries = 0 }) { _, address, path, _ in
            #expect(httpGet(address).text.hasPrefix("HTTP/1.1 502"))
            let text = try #require(line(path, cause: "connect_failed"))
            #expect(text.contains(" - connect_ms=- ") && text.contains(" retries=0 SC "))
        }
        try withLog(backends: [live.address]) { lb, address, path, _ in
            _ = lb.pool.drain(live.address)
            #expect(eventually { httpGet(address).text.hasPrefix("HTTP/1.1 502") })
            #expect(line(path, cause: "no_backend")?.contains(" LN ") == true)
        }
        let path = Self.tempPath()
        defer { unlink(path) }
        var config = Configuration()
        config.listen = [SocketAddress(host: "127.0.0.1", port: 0)!]
        config.backends = [BackendSpec(address: holding.address)]
        config.workers = 1
        config.drainTimeout = .milliseconds(100)
        config.accessLog = AccessLogSettings(path: path)
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        let writer = try AccessLogWriter.start(lb, config.accessLog!)
        let c = try TestClient(lb.listenAddresses[0])
        c.send("waiting")
        #expect(eventually { lb.counters[.connectAttempts] == 1 && holding.accepted.load(ordering: .relaxed) == 1 })
        lb.shutdown()
        writer.stop()  // writes what the workers left before it stops
        #expect(Self.lines(path).last?.hasSuffix(" KD drain") == true)
    }

    @Test func jsonFormatAndReopen() throws {
        let http = TestServer(handler: TestServer.http(port: 5))
        defer { http.stop() }
        try withLog(backends: [http.address], format: .json) { _, address, path, writer in
            #expect(httpGet(address).text.contains("200 OK"))
            #expect(eventually { Self.lines(path).count == 1 })
            let o = try #require(try JSONSerialization.jsonObject(with: Data(Self.lines(path)[0].utf8)) as? [String: Any])
            #expect(o["cause"] as? String == "backend_closed" && o["termination"] as? String == "S-")
            #expect(o["backend"] as? String == http.address.description && o["service"] as? String == "default")
            for key in ["time", "client", "listener", "connect_ms", "duration_ms", "bytes_up", "bytes_down", "retries"] {
                #expect(o[key] != nil, "missing \(key)")
            }
            // logrotate: move the file, ask for a reopen, and the next line lands in a new file.
            #expect(rename(path, path + ".1") == 0)
            writer.reopen()
            #expect(eventually { FileManager.default.fileExists(atPath: path) })
            #expect(httpGet(address).text.contains("200 OK"))
            #expect(eventually { Self.lines(path).count == 1 })
            #expect(Self.lines(path + ".1").count == 1)
        }
    }

    @Test func aFullRingDropsAndCountsInsteadOfWaiting() throws {
        let http = TestServer(handler: TestServer.http(port: 6))
        defer { http.stop() }
        // No writer drains this ring of 2: the rest are dropped, counted, and traffic goes on.
        try withBalancer(backends: [http.address], workers: 1, configure: { c in
            c.accessLog = AccessLogSettings(path: "/dev/null", bufferPerWorker: 2)
        }) { lb, address in
            for _ in 0..<10 { #expect(httpGet(address).text.contains("200 OK")) }
            #expect(eventually { lb.counters[.closedPairs] == 10 })
            #expect(lb.counters[.accessLogDropped] == 8)
            #expect(lb.accessLogRings.count == 1)
        }
    }
}
