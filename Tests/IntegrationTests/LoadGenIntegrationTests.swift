import CShim
import Glibc
import LoadBalancer
import LoadGen
import Testing

@Suite("LoadGen against in-test servers")
struct LoadGenIntegrationTests {
    init() { lb_ignore_sigpipe() }

    func config(_ server: TestServer, requests: Int, concurrency: Int, _ change: (inout LoadConfiguration) -> Void = { _ in }) -> LoadConfiguration {
        var c = LoadConfiguration(target: server.target)
        c.requests = requests
        c.concurrency = concurrency
        c.threads = 2
        change(&c)
        return c
    }

    @Test func httpConnectionPerRequestCountsEveryRequestAndTheSpread() throws {
        let backends = ["a", "b", "c", "d"]
        try LoadGenTestServer.with(LoadGenTestServer.http(backends: backends)) { server in
            let report = try LoadGenerator.run(config(server, requests: 200, concurrency: 10))
            #expect(report.requested == 200)
            #expect(report.completed == 200)
            #expect(report.succeeded == 200)
            #expect(report.failed == 0)
            #expect(report.connections == 200)
            #expect(report.statusCodes == [200: 200])
            #expect(report.latency.count == 200)
            #expect(report.backends.values.reduce(0, +) == 200)
            // The server names backends round robin, so the spread is exact.
            #expect(report.backends == ["a": 50, "b": 50, "c": 50, "d": 50])
            #expect(report.bytesReceived > 200 * 5)
            #expect(report.bytesSent > 200 * 20)
            #expect(server.accepted.load(ordering: .relaxed) == 200)
        }
    }

    @Test func httpKeepAliveReusesEachConnection() throws {
        try LoadGenTestServer.with(LoadGenTestServer.http(backends: ["x", "y", "z"])) { server in
            let report = try LoadGenerator.run(config(server, requests: 300, concurrency: 6) { $0.keepAlive = true })
            #expect(report.completed == 300)
            #expect(report.succeeded == 300)
            #expect(report.connections == 6)
            #expect(report.backends == ["x": 100, "y": 100, "z": 100])
        }
    }

    @Test func chunkedResponsesAreReadCompletely() throws {
        try LoadGenTestServer.with(LoadGenTestServer.http(chunked: true)) { server in
            let report = try LoadGenerator.run(config(server, requests: 50, concurrency: 5) { $0.keepAlive = true })
            #expect(report.succeeded == 50)
            #expect(report.connections == 5)
        }
    }

    @Test func non2xxIsAStatusErrorWithItsCode() throws {
        try LoadGenTestServer.with(LoadGenTestServer.http(status: 500)) { server in
            let report = try LoadGenerator.run(config(server, requests: 50, concurrency: 5))
            #expect(report.completed == 50)
            #expect(report.succeeded == 0)
            #expect(report.errors == [.status: 50])
            #expect(report.statusCodes == [500: 50])
        }
    }

    @Test(arguments: [false, true])
    func echoRoundTripsCompareEveryByte(keepAlive: Bool) throws {
        try LoadGenTestServer.with(LoadGenTestServer.echo()) { server in
            let size = keepAlive ? 300_000 : 4096  // large enough that sending and reading overlap
            let report = try LoadGenerator.run(config(server, requests: 40, concurrency: 4) {
                $0.mode = .echo; $0.size = size; $0.keepAlive = keepAlive
            })
            #expect(report.succeeded == 40)
            #expect(report.errors.isEmpty)
            #expect(report.bytesSent == 40 * size)
            #expect(report.bytesReceived == 40 * size)
            // Keep-alive reuses connections: at most one per slot. (How many slots open one depends on
            // scheduling: a thread that starts late may find every request already claimed.)
            #expect(keepAlive ? (1...4).contains(report.connections) : report.connections == 40)
        }
    }

    @Test func corruptedEchoIsAMismatch() throws {
        try LoadGenTestServer.with(LoadGenTestServer.echo(corrupt: true)) { server in
            let report = try LoadGenerator.run(config(server, requests: 30, concurrency: 3) { $0.mode = .echo; $0.size = 512 })
            #expect(report.completed == 30)
            #expect(report.errors == [.mismatch: 30])
        }
    }

    @Test func earlyCloseIsAShortRead() throws {
        try LoadGenTestServer.with(LoadGenTestServer.closeEarly) { server in
            let report = try LoadGenerator.run(config(server, requests: 30, concurrency: 3))
            #expect(report.completed == 30)
            #expect(report.errors == [.shortRead: 30])
        }
    }

    @Test func resetIsAReset() throws {
        try LoadGenTestServer.with(LoadGenTestServer.reset) { server in
            let report = try LoadGenerator.run(config(server, requests: 20, concurrency: 2))
            #expect(report.completed == 20)
            #expect(report.errors == [.reset: 20])
        }
    }

    @Test func aHungServerGivesTimeoutsAndTheRunEnds() throws {
        try LoadGenTestServer.with(LoadGenTestServer.hang) { server in
            let report = try LoadGenerator.run(config(server, requests: 6, concurrency: 3) { $0.timeout = .milliseconds(150) })
            #expect(report.completed == 6)
            #expect(report.errors == [.timeout: 6])
            #expect(report.latency.min >= 150_000_000)  // a timeout never fires early
        }
    }

    @Test func aClosedPortGivesRefusals() throws {
        let refusing = TestSocket.RefusingPort()
        defer { refusing.close() }
        var c = LoadConfiguration(target: LoadTarget(address: refusing.address))
        c.requests = 500
        c.concurrency = 20
        c.threads = 2
        let report = try LoadGenerator.run(c)
        #expect(report.completed == 500)
        #expect(report.errors == [.refused: 500])
    }

    @Test func connectModeCountsConnections() throws {
        try LoadGenTestServer.with(LoadGenTestServer.hang) { server in
            let report = try LoadGenerator.run(config(server, requests: 100, concurrency: 5) { $0.mode = .connect })
            #expect(report.completed == 100)
            #expect(report.succeeded == 100)
            #expect(report.connections == 100)
            #expect(report.bytesSent == 0)
        }
    }

    @Test func durationBoundsAnUnboundedRun() throws {
        try LoadGenTestServer.with(LoadGenTestServer.http()) { server in
            let report = try LoadGenerator.run(config(server, requests: 1, concurrency: 4) {
                $0.requests = nil; $0.duration = .milliseconds(200); $0.keepAlive = true
            })
            #expect(report.completed > 0)
            #expect(report.failed == 0)
            #expect(report.requested >= report.completed)
            #expect(report.requested - report.completed <= 4)  // at most one cut off per connection
            #expect(report.elapsed >= .milliseconds(200))
        }
    }

    @Test func openLoopRateKeepsToTheSchedule() throws {
        try LoadGenTestServer.with(LoadGenTestServer.http()) { server in
            let report = try LoadGenerator.run(config(server, requests: 40, concurrency: 4) { $0.rate = 200; $0.keepAlive = true })
            #expect(report.completed == 40)
            #expect(report.succeeded == 40)
            // 20 starts per thread, 10 ms apart: the last cannot start before 190 ms.
            #expect(report.elapsed >= .milliseconds(190))
        }
    }

    @Test func ipv6TargetsWork() throws {
        let fd = try Sockets.listen(on: SocketAddress(host: "::1", port: 0)!, backlog: 16, reusePort: false)
        defer { Sys.close(fd) }
        let port = try Sys.localAddress(of: fd).port
        guard case .success(let target) = LoadTarget.parse("[::1]:\(port)") else { Issue.record("parse"); return }
        var c = LoadConfiguration(target: target)
        c.mode = .connect
        c.requests = 10
        let report = try LoadGenerator.run(c)  // the kernel completes handshakes into the backlog
        #expect(report.succeeded == 10)
    }
}
