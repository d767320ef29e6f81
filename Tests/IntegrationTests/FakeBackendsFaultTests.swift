import CShim
import FakeBackends
import Glibc
import LoadBalancer
import Testing

/// Each fault kind does what it says, over real loopback sockets.
@Suite struct FakeBackendsFaultTests {
    init() { lb_ignore_sigpipe() }

    /// A one-backend farm whose backend has `fault`.
    func farm(_ fault: FaultKind, mode: BackendMode = .http, delay: Duration = .milliseconds(200),
              flap: Duration = .seconds(1)) throws -> FakeBackendFarm {
        var config = FarmConfiguration(ephemeral: 1, mode: mode)
        config.failRate = 1
        config.fault = fault
        config.delay = delay
        config.flapPeriod = flap
        let farm = try FakeBackendFarm.start(config)
        #expect(farm.faulty.map(\.fault) == [fault])
        return farm
    }

    @Test func refuseHasNoListener() throws {
        let farm = try farm(.refuse)
        defer { farm.stop() }
        #expect(farm.addresses[0].port != 0)
        #expect(connectErrno(farm.addresses[0]) == ECONNREFUSED)
    }

    @Test func closeAcceptsThenClosesWithoutData() throws {
        let farm = try farm(.close)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        client.send("GET / HTTP/1.1\r\n\r\n")
        let (bytes, end) = client.readToEnd()
        #expect(bytes.isEmpty)
        // The close may race our request: FIN (EOF) or, if our bytes arrived after, a reset.
        #expect(end == .eof || end == .error(ECONNRESET))
        #expect(eventually { farm.counters(farm.addresses[0]).faultsHit == 1 })
    }

    @Test func closeWithoutSendingGivesPlainEOF() throws {
        let farm = try farm(.close)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        let (bytes, end) = client.readToEnd()
        #expect(bytes.isEmpty)  // a close without a byte
        #expect(end == .eof)
    }

    @Test func resetAcceptsThenResets() throws {
        let farm = try farm(.reset)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        let (bytes, end) = client.readToEnd()
        #expect(bytes.isEmpty)
        #expect(end == .error(ECONNRESET))
    }

    @Test func hangAcceptsAndSaysNothing() throws {
        let farm = try farm(.hang)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        client.send("GET / HTTP/1.1\r\n\r\n")
        client.setReceiveTimeout(.milliseconds(300))
        #expect(client.readOnce() == .timeout)  // connection still open, nothing said
        #expect(client.send("more"))
        #expect(farm.counters(farm.addresses[0]).connections == 1)
        #expect(farm.counters(farm.addresses[0]).bytesIn == 0)
        // Killing the backend drops even a hung connection.
        farm.kill(farm.addresses[0])
        client.setReceiveTimeout(.seconds(5))
        #expect(client.readOnce() == .error(ECONNRESET))
    }

    @Test func slowAnswersAfterTheDelay() throws {
        let farm = try farm(.slow, delay: .milliseconds(300))
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        for _ in 0..<2 {  // every response is delayed, not just the first
            let started = monotonicMilliseconds()
            client.send("GET / HTTP/1.1\r\n\r\n")
            let response = try #require(client.readHTTPResponse())
            #expect(monotonicMilliseconds() - started >= 300)
            #expect(response.body == "backend \(farm.addresses[0].port)\n")
        }
    }

    @Test func dripSendsTheWholeAnswerBitByBit() throws {
        let farm = try farm(.drip)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        client.send("GET / HTTP/1.1\r\n\r\n")
        var reads = 0
        var got: [UInt8] = []
        let expected = FakeResponses.ok(port: farm.addresses[0].port, keepAlive: true)
        while got.count < expected.count {
            guard case .data(let d) = client.readOnce() else { break }
            got += d
            reads += 1
        }
        #expect(got == expected)
        // It came in pieces, not in one write. (How many depends on when this thread gets to read.)
        #expect(reads > 1)
    }

    @Test func dieMidSendsPartThenResets() throws {
        let farm = try farm(.dieMid)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        client.send("GET / HTTP/1.1\r\n\r\n")
        let (bytes, end) = client.readToEnd()
        let expected = FakeResponses.ok(port: farm.addresses[0].port, keepAlive: true)
        #expect(!bytes.isEmpty)
        #expect(bytes.count < expected.count)
        #expect(Array(expected.prefix(bytes.count)) == bytes)
        #expect(end == .error(ECONNRESET))
    }

    @Test func dieMidSourceStreamsThenResets() throws {
        let farm = try farm(.dieMid, mode: .source)
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        let (bytes, end) = client.readToEnd()
        #expect(!bytes.isEmpty)
        #expect(end == .error(ECONNRESET))
    }

    @Test func flapAlternatesBetweenRefusingAndServing() throws {
        let farm = try farm(.flap, flap: .milliseconds(150))
        defer { farm.stop() }
        let address = farm.addresses[0]
        var sawRefused = false
        var sawServedAfterRefused = false
        #expect(eventually(timeout: .seconds(10)) {
            if connectErrno(address) == ECONNREFUSED {
                sawRefused = true
            } else if sawRefused, let client = try? TestClient(address) {
                client.send("GET / HTTP/1.1\r\n\r\n")
                sawServedAfterRefused = client.readHTTPResponse() != nil
            }
            return sawServedAfterRefused
        })
    }

    @Test func mixedResolvesToConcreteKindsRepeatably() throws {
        var config = FarmConfiguration(ephemeral: 40)
        config.failRate = 0.5
        config.fault = .mixed
        config.seed = 99
        let first = try FakeBackendFarm.start(config)
        let firstFaults = first.faulty
        first.stop()
        let second = try FakeBackendFarm.start(config)
        defer { second.stop() }
        #expect(firstFaults.count == 20)
        #expect(firstFaults.allSatisfy { $0.fault != .mixed })
        #expect(Set(firstFaults.map(\.fault)).count > 1)
        // Same seed, same choice (by position: ephemeral ports differ between runs).
        let positions = { (farm: FakeBackendFarm) in
            farm.faulty.map { f in (farm.addresses.firstIndex(of: f.address)!, f.fault.rawValue) }
        }
        #expect(positions(first).map(\.0) == positions(second).map(\.0))
        #expect(positions(first).map(\.1) == positions(second).map(\.1))
    }

    @Test func setFaultAtRunTimeAndHeal() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1))
        defer { farm.stop() }
        let address = farm.addresses[0]
        farm.setFault(address, .refuse)
        #expect(connectErrno(address) == ECONNREFUSED)
        #expect(farm.faulty.map(\.fault) == [.refuse])
        farm.setFault(address, .reset)
        #expect(try TestClient(address).readToEnd().end == .error(ECONNRESET))
        farm.setFault(address, nil)
        #expect(farm.faulty.isEmpty)
        let client = try TestClient(address)
        client.send("GET / HTTP/1.1\r\n\r\n")
        #expect(client.readHTTPResponse()?.head.hasPrefix("HTTP/1.1 200") == true)
    }
}
