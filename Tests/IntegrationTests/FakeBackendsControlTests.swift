import CShim
import FakeBackends
import Glibc
import LoadBalancer
import Testing

/// Killing, restarting and re-faulting backends at run time, through the library and the HTTP API.
@Suite struct FakeBackendsControlTests {
    init() { lb_ignore_sigpipe() }

    @Test func killResetsInFlightConnectionsAndRefusesNewOnes() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 3))
        defer { farm.stop() }
        let victim = farm.addresses[1]
        let client = try TestClient(victim)
        client.send("GET / HTTP/1.1\r\n\r\n")
        #expect(client.readHTTPResponse()?.body == "backend \(victim.port)\n")
        // A request half sent when the backend dies: the client sees a reset, not a clean close.
        client.send("GET / HTTP/1.1\r\nHost:")
        #expect(eventually { farm.counters(victim).bytesIn > 18 })
        farm.kill(victim)
        #expect(client.readOnce() == .error(ECONNRESET))
        #expect(connectErrno(victim) == ECONNREFUSED)
        // The others are untouched.
        let other = try TestClient(farm.addresses[2])
        other.send("GET / HTTP/1.1\r\n\r\n")
        #expect(other.readHTTPResponse()?.body == "backend \(farm.addresses[2].port)\n")

        try farm.restart(victim)
        let again = try TestClient(victim)
        again.send("GET / HTTP/1.1\r\n\r\n")
        #expect(again.readHTTPResponse()?.body == "backend \(victim.port)\n")
        #expect(farm.counters(victim).connections == 2)
    }

    @Test func restartKeepsASetFault() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1))
        defer { farm.stop() }
        let address = farm.addresses[0]
        farm.setFault(address, .reset)
        farm.kill(address)
        #expect(connectErrno(address) == ECONNREFUSED)
        try farm.restart(address)
        #expect(try TestClient(address).readToEnd().end == .error(ECONNRESET))
    }

    @Test func controlCallsAfterStopReturnPromptly() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 2))
        farm.stop()
        farm.stop()  // idempotent
        let started = monotonicMilliseconds()
        farm.kill(farm.addresses[0])
        farm.setFault(farm.addresses[1], .hang)
        try? farm.restart(farm.addresses[0])
        #expect(monotonicMilliseconds() - started < 5_000)
        // No refusal check on the farm's ports here: stop() freed them, and a parallel test may
        // already listen on one.
    }

    /// One request to the control API; returns the status code and body.
    func call(_ server: FarmControlServer, _ method: String, _ target: String) throws -> (status: Int, body: String) {
        let client = try TestClient(server.address)
        client.send("\(method) \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        let response = try #require(client.readHTTPResponse())
        let status = Int(response.head.split(separator: " ")[1]) ?? 0
        return (status, response.body)
    }

    @Test func httpAPIKillsRestartsFaultsAndReports() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 3))
        defer { farm.stop() }
        let server = try FarmControlServer.start(farm: farm, address: SocketAddress(host: "127.0.0.1", port: 0)!)
        defer { server.stop() }
        let target = farm.addresses[0]
        let port = target.port

        let served = try TestClient(target)
        served.send("GET / HTTP/1.1\r\n\r\n")
        #expect(served.readHTTPResponse()?.body == "backend \(port)\n")

        let killed = try call(server, "POST", "/backends/\(port)/kill")
        #expect(killed.status == 200)
        #expect(killed.body.contains(#""killed":true"#))
        #expect(served.readOnce() == .error(ECONNRESET))
        #expect(connectErrno(target) == ECONNREFUSED)

        #expect(try call(server, "POST", "/backends/\(port)/restart").status == 200)
        let back = try TestClient(target)
        back.send("GET /health HTTP/1.1\r\n\r\n")
        #expect(back.readHTTPResponse()?.head.hasPrefix("HTTP/1.1 200 OK") == true)

        let faulted = try call(server, "POST", "/backends/\(port)/fault?kind=refuse")
        #expect(faulted.status == 200)
        #expect(faulted.body.contains(#""fault":"refuse""#))
        #expect(connectErrno(target) == ECONNREFUSED)
        #expect(try call(server, "POST", "/backends/\(port)/fault?kind=none").status == 200)
        #expect(farm.faulty.isEmpty)
        #expect(connectErrno(target) == 0)

        #expect(try call(server, "POST", "/backends/\(port)/fault?kind=wobbly").status == 400)
        #expect(try call(server, "POST", "/backends/1/kill").status == 404)
        #expect(try call(server, "GET", "/nowhere").status == 404)
        #expect(try call(server, "GET", "/backends/\(port)/kill").status == 405)

        let stats = try call(server, "GET", "/stats")
        #expect(stats.status == 200)
        #expect(stats.body.hasPrefix(#"{"backends":3,"totals":{"connections":"#))
        #expect(stats.body.contains(#""address":"\#(target)","port":\#(port),"fault":null,"killed":false,"connections":"#))
        #expect(!stats.body.contains(#""port":\#(farm.addresses[2].port)"#))  // untouched backends are left out
    }
}
