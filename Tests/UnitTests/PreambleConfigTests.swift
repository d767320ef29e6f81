import LoadBalancer
import Testing

/// The preamble's flags and its lifecycle state, without sockets.
@Suite struct PreambleConfigTests {
    func run(_ args: [String]) throws -> Configuration {
        guard case .run(let c, _) = try CommandLineParser.parse(args).get() else {
            throw ConfigError(flag: "", value: nil, reason: "not run")
        }
        return c
    }

    @Test func defaults() throws {
        let c = try run([])
        #expect(c.proxyProtocol == nil)
        #expect(!c.acceptProxy)
        #expect(c.acceptProxyFrom == AddressRange.loopback)
        #expect(c.preambleTimeout == .seconds(3))
        #expect(c.serverNames.isEmpty)
    }

    @Test func serverNames() throws {
        #expect(try run(["--server-name", "A.Example.com", "--server-name=*.b.example"]).serverNames == ["a.example.com", "*.b.example"])
    }

    @Test func flags() throws {
        let c = try run(["--proxy-protocol", "v2", "--accept-proxy", "--accept-proxy-from", "10.0.0.0/8",
                         "--accept-proxy-from=fd00::/8", "--preamble-timeout", "500ms"])
        #expect(c.proxyProtocol == .v2)
        #expect(c.acceptProxy)
        #expect(c.acceptProxyFrom.map(\.description) == ["10.0.0.0/8", "fd00::/8"])
        #expect(c.preambleTimeout == .milliseconds(500))
        #expect(try run(["--proxy-protocol=v1"]).proxyProtocol == .v1)
        #expect(CommandLineParser.usage.contains("--accept-proxy-from CIDR"))
    }

    @Test(arguments: [
        (["--proxy-protocol", "v3"], "--proxy-protocol v3: expected v1 or v2"),
        (["--proxy-protocol"], "--proxy-protocol: needs a value"),
        (["--accept-proxy", "--accept-proxy-from", "10.0.0.1/8"], "--accept-proxy-from 10.0.0.1/8: host bits set after the /8 prefix"),
        (["--accept-proxy", "--accept-proxy-from", "10.0.0.0/40"], "--accept-proxy-from 10.0.0.0/40: prefix length must be between 0 and 32"),
        (["--accept-proxy", "--accept-proxy-from", "example.com"],
         "--accept-proxy-from example.com: bad address 'example.com' (expected numeric IPv4 or IPv6, like 10.0.0.0/8 or fd00::/8)"),
        (["--accept-proxy-from", "10.0.0.0/8"], "--accept-proxy-from: only applies with --accept-proxy"),
        (["--preamble-timeout", "0s"], "--preamble-timeout 0s: must be more than zero"),
        (["--server-name", "a..b"], "--server-name a..b: server name 'a..b': expected a DNS name like a.example.com or *.example.com"),
        (["--server-name", "*x"], "--server-name *x: server name '*x': expected a DNS name like a.example.com or *.example.com"),
        (["--server-name", "a.com", "--server-name", "A.COM"], "--server-name: server name 'a.com' listed twice"),
        (["--preamble-timeout", "3"], "--preamble-timeout 3: expected a duration like 250ms, 2s or 1m"),
    ])
    func badFlags(args: [String], message: String) {
        switch CommandLineParser.parse(args) {
        case .failure(let error): #expect(error.description == message)
        case .success: Issue.record("accepted \(args)")
        }
    }

    // MARK: lifecycle

    var settings: PairSettings {
        var c = Configuration()
        c.connectTimeout = .seconds(1)
        return PairSettings(c)
    }

    @Test func preambleThenConnect() {
        var pair = PairLifecycle()
        #expect(pair.acceptedAwaitingPreamble(now: 10, timeout: 3_000) == PairActions(.armTimer, deadline: 3_010))
        #expect(pair.phase == .preamble)
        // Nothing else moves it on: no connect result or stream end applies yet.
        #expect(pair.connected(now: 20, settings: settings) == PairActions())
        #expect(pair.directionEnded(upstream: true, now: 20, settings: settings) == PairActions())
        #expect(pair.preambleDone(now: 100, settings: settings) == PairActions([.connect, .armTimer], deadline: 100 + 1_000_000_000))
        #expect(pair.phase == .connecting)
        #expect(pair.preambleDone(now: 200, settings: settings) == PairActions())
    }

    @Test func preambleTimeoutAndRefusal() {
        var slow = PairLifecycle()
        _ = slow.acceptedAwaitingPreamble(now: 0, timeout: 5)
        #expect(slow.timerFired(now: 5, lastActivity: 0, clientWaiting: false, settings: settings) == PairActions(.abort))
        #expect(slow.phase == .closed)
        #expect(slow.closeReason == .preambleTimeout)
        var bad = PairLifecycle()
        _ = bad.acceptedAwaitingPreamble(now: 0, timeout: 5)
        #expect(bad.preambleRejected() == PairActions(.abort))
        #expect(bad.closeReason == .badPreamble)
        #expect(bad.preambleDone(now: 1, settings: settings) == PairActions())
        #expect(bad.preambleRejected() == PairActions())
        var reset = PairLifecycle()
        _ = reset.acceptedAwaitingPreamble(now: 0, timeout: 5)
        #expect(reset.failed(.client) == PairActions(.abort))
        #expect(reset.closeReason == .clientReset)
        var drained = PairLifecycle()
        _ = drained.acceptedAwaitingPreamble(now: 0, timeout: 5)
        #expect(drained.drainExpired() == PairActions(.abort))
        #expect(drained.closeReason == .drain)
    }
}
