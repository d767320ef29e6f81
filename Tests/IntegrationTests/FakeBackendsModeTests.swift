import CShim
import FakeBackends
import Glibc
import LoadBalancer
import Testing

/// Each mode of a healthy farm, over real loopback sockets.
@Suite struct FakeBackendsModeTests {
    init() { lb_ignore_sigpipe() }

    @Test func httpAnswersWithPortAndKeepsAlive() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 2))
        defer { farm.stop() }
        let address = farm.addresses[1]
        #expect(address.port != 0)
        let client = try TestClient(address)
        for path in ["/", "/health", "/x"] {
            client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(client.readHTTPResponse())
            #expect(response.head.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(response.head.contains("X-Backend: \(address.port)\r\n"))
            #expect(!response.head.contains("Connection: close"))
            #expect(response.body == "backend \(address.port)\n")
        }
        // A body with Content-Length is consumed, and the same connection still answers.
        client.send("POST /upload HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        #expect(client.readHTTPResponse()?.body == "backend \(address.port)\n")
        #expect(eventually { farm.counters(address).requests == 4 })
        #expect(farm.counters(address).connections == 1)
        #expect(farm.counters(farm.addresses[0]).connections == 0)
    }

    @Test func httpConnectionCloseIsHonoured() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1))
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        client.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        let (bytes, end) = client.readToEnd()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(text.contains("Connection: close\r\n"))
        #expect(text.hasSuffix("backend \(farm.addresses[0].port)\n"))
        #expect(end == .eof)
    }

    @Test func http10ClosesUnlessKeepAlive() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1))
        defer { farm.stop() }
        let port = farm.addresses[0].port
        let plain = try TestClient(farm.addresses[0])
        plain.send("GET / HTTP/1.0\r\n\r\n")
        let (bytes, end) = plain.readToEnd()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("\r\nConnection: close\r\n"))
        #expect(text.hasSuffix("\r\n\r\nbackend \(port)\n"))
        #expect(end == .eof)

        let kept = try TestClient(farm.addresses[0])
        kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        // An HTTP/1.0 client keeps the connection only if the answer says so (ab -k relies on it).
        #expect(kept.readHTTPResponse()?.head.contains("\r\nConnection: keep-alive\r\n") == true)
        kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let second = kept.readHTTPResponse()
        #expect(second?.head.hasPrefix("HTTP/1.1 200 OK\r\n") == true)
        #expect(second?.body == "backend \(port)\n")
    }

    @Test func httpMalformedRequestGets400AndClose() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1))
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        client.send("NOT HTTP AT ALL\r\n\r\n")
        let (bytes, end) = client.readToEnd()
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(end == .eof)
    }

    @Test func httpOverIPv6Loopback() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 2, host: "::1"))
        defer { farm.stop() }
        #expect(farm.addresses.allSatisfy { $0.isIPv6 && $0.port != 0 })
        let client = try TestClient(farm.addresses[0])
        client.send("GET /health HTTP/1.1\r\n\r\n")
        #expect(client.readHTTPResponse()?.head.hasPrefix("HTTP/1.1 200 OK") == true)
    }

    @Test func echoReturnsOneMebibyteExactly() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1, mode: .echo))
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        var payload = [UInt8](repeating: 0, count: 1 << 20)
        var rng = SplitMix64(seed: 7)
        for i in payload.indices { payload[i] = UInt8(truncatingIfNeeded: rng.next()) }
        // Send from another thread: the echo comes back while we are still sending.
        let sender = OSThread.start { [payload] in client.send(payload) }
        let (echoed, end) = client.read(count: payload.count)
        sender.join()
        #expect(end == nil)
        #expect(echoed == payload)
        #expect(eventually { farm.counters(farm.addresses[0]).bytesOut == UInt64(payload.count) })
        #expect(farm.counters(farm.addresses[0]).bytesIn == UInt64(payload.count))
    }

    @Test func sourceStreamsBytes() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1, mode: .source))
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        let (bytes, end) = client.read(count: 4 << 20)
        #expect(end == nil)
        #expect(bytes.count == 4 << 20)
        #expect(farm.counters(farm.addresses[0]).bytesOut >= UInt64(4 << 20))
    }

    @Test func sinkSwallowsBytes() throws {
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 1, mode: .sink))
        defer { farm.stop() }
        let client = try TestClient(farm.addresses[0])
        let payload = [UInt8](repeating: 42, count: 2 << 20)
        #expect(client.send(payload))
        #expect(eventually { farm.counters(farm.addresses[0]).bytesIn == UInt64(payload.count) })
        client.setReceiveTimeout(.milliseconds(100))
        #expect(client.readOnce() == .timeout)  // nothing ever comes back
        #expect(farm.counters(farm.addresses[0]).bytesOut == 0)
    }
}
