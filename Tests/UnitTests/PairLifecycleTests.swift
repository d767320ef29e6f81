import Glibc
import LoadBalancer
import Testing

@Suite struct PairLifecycleTests {
    var settings: PairSettings {
        var c = Configuration()
        c.connectTimeout = .seconds(1)
        c.idleTimeout = .seconds(60)
        c.finTimeout = .seconds(30)
        c.retries = 2
        return PairSettings(c)
    }
    let s: UInt64 = 1_000_000_000

    @Test func happyPathWithHalfClose() {
        var pair = PairLifecycle()
        #expect(pair.accepted(now: 0, settings: settings) == PairActions([.connect, .armTimer], deadline: 1 * s))
        #expect(pair.connected(now: s / 2, settings: settings) == PairActions([.startForwarding, .armTimer], deadline: s / 2 + 60 * s))
        #expect(pair.phase == .forwarding)
        // The client shuts its write side: the fin timeout (30s) bounds the rest.
        #expect(pair.directionEnded(upstream: true, now: 2 * s, settings: settings) == PairActions(.armTimer, deadline: 32 * s))
        #expect(pair.isHalfClosed)
        // The other direction keeps flowing; when it ends too, the pair closes.
        #expect(pair.directionEnded(upstream: false, now: 3 * s, settings: settings) == PairActions(.close))
        #expect(pair.phase == .closed)
    }

    @Test func retriesThenBadGateway() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        let first = pair.connectFailed(.refused, now: 10, settings: settings)
        #expect(first == PairActions([.markBackendFailed, .discardBackend, .connect, .armTimer], deadline: 10 + s, failure: .refused))
        let second = pair.connectFailed(.reset, now: 20, settings: settings)
        #expect(second.contains(.connect) && second.failure == .reset)
        let last = pair.connectFailed(.timeout, now: 30, settings: settings)
        #expect(last == PairActions([.markBackendFailed, .discardBackend, .sendBadGateway, .lingerClient, .armTimer], deadline: 30 + settings.lingerTimeout, failure: .timeout))
        #expect(pair.attempts == 3)
        #expect(pair.phase == .lingering)
        // The client finishes sending: close cleanly.
        #expect(pair.directionEnded(upstream: true, now: 40, settings: settings) == PairActions(.close))
    }

    @Test func aLocalFailureRetriesWithoutBlamingTheBackend() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        #expect(ConnectFailure(errno: EADDRNOTAVAIL) == .local && !ConnectFailure.local.blamesBackend)
        let actions = pair.connectFailed(.local, now: 10, settings: settings)
        #expect(actions == PairActions([.discardBackend, .connect, .armTimer], deadline: 10 + s, failure: .local))
        #expect(ConnectFailure(errno: ECONNREFUSED).blamesBackend)
    }

    @Test func noBackendCloseMode() {
        var c = settings
        c.onNoBackend = .close
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: c)
        #expect(pair.noBackend(now: 1, settings: c) == PairActions([.lingerClient, .armTimer], deadline: 1 + c.lingerTimeout))
        #expect(pair.directionEnded(upstream: true, now: 2, settings: c) == PairActions(.close))
    }

    @Test func connectTimeoutCountsAsFailure() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        let actions = pair.timerFired(now: s, lastActivity: 0, clientWaiting: false, settings: settings)
        #expect(actions.contains(.markBackendFailed) && actions.failure == .timeout && actions.contains(.connect))
    }

    @Test func idleTimeoutIsLazyAndReportsSilentBackend() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        // Traffic at 50s moved the idle deadline: the timer re-arms instead of closing.
        #expect(pair.timerFired(now: 60 * s, lastActivity: 50 * s, clientWaiting: false, settings: settings) == PairActions(.armTimer, deadline: 110 * s))
        // Idle, and the client's request was the last thing moved: the backend went silent. The pair
        // is cut with a reset (its streams may be unfinished).
        #expect(pair.timerFired(now: 110 * s, lastActivity: 50 * s, clientWaiting: true, settings: settings) == PairActions([.abort, .reportSilentBackend]))
    }

    @Test func idleWithoutWaitingClientBlamesNobody() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        #expect(pair.timerFired(now: 60 * s, lastActivity: 0, clientWaiting: false, settings: settings) == PairActions(.abort))
    }

    @Test func finTimeoutIsAnInactivityTimeoutOnAHalfClosedPair() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        _ = pair.directionEnded(upstream: false, now: 10 * s, settings: settings)
        // Bytes still flow upstream 30 s after the half-close: the pair lives on (the FIN timeout runs
        // from the last byte, not from the FIN).
        #expect(pair.timerFired(now: 40 * s, lastActivity: 39 * s, clientWaiting: false, settings: settings) == PairActions(.armTimer, deadline: 69 * s))
        // Silent for the FIN timeout: cut, with a reset.
        #expect(pair.timerFired(now: 69 * s, lastActivity: 39 * s, clientWaiting: false, settings: settings) == PairActions(.abort))
    }

    @Test func finTimeoutRunsFromTheHalfCloseWhenThatCameLast() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        _ = pair.directionEnded(upstream: true, now: 10 * s, settings: settings)
        #expect(pair.timerFired(now: 20 * s, lastActivity: 5 * s, clientWaiting: false, settings: settings) == PairActions(.armTimer, deadline: 40 * s))
        #expect(pair.timerFired(now: 40 * s, lastActivity: 5 * s, clientWaiting: false, settings: settings) == PairActions(.abort))
    }

    /// Found by the simulation (seed 403): a FIN seen long after the last byte armed the timer at
    /// now + min(fin, idle), which pushed the idle deadline back by the quiet time before the FIN.
    @Test func aLateHalfCloseDoesNotPushTheIdleDeadlineBack() {
        var c = Configuration()
        c.idleTimeout = .seconds(10)
        c.finTimeout = .seconds(30)
        let settings = PairSettings(c)
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        // Last byte at 1 s, the FIN at 9 s: the idle deadline stays at 11 s.
        #expect(pair.directionEnded(upstream: true, now: 9 * s, lastActivity: 1 * s, settings: settings) == PairActions(.armTimer, deadline: 11 * s))
        #expect(pair.timerFired(now: 11 * s, lastActivity: 1 * s, clientWaiting: false, settings: settings) == PairActions(.abort))
        // A short FIN timeout still wins when it comes first.
        var d = c
        d.finTimeout = .seconds(1)
        var other = PairLifecycle()
        _ = other.accepted(now: 0, settings: PairSettings(d))
        _ = other.connected(now: 0, settings: PairSettings(d))
        #expect(other.directionEnded(upstream: true, now: 9 * s, lastActivity: 1 * s, settings: PairSettings(d)) == PairActions(.armTimer, deadline: 10 * s))
    }

    @Test func drainExpiryCutsLiveStreamsButNotAFinishedAnswer() {
        var forwarding = PairLifecycle()
        _ = forwarding.accepted(now: 0, settings: settings)
        _ = forwarding.connected(now: 0, settings: settings)
        #expect(forwarding.drainExpired() == PairActions(.abort))
        var connecting = PairLifecycle()
        _ = connecting.accepted(now: 0, settings: settings)
        #expect(connecting.drainExpired() == PairActions(.abort))
        var lingering = PairLifecycle()
        _ = lingering.accepted(now: 0, settings: settings)
        _ = lingering.noBackend(now: 0, settings: settings)
        #expect(lingering.drainExpired() == PairActions(.close))
        #expect(lingering.drainExpired() == PairActions())
    }

    @Test func errorsAbortOnce() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        #expect(pair.failed(.backend) == PairActions(.abort))
        #expect(pair.closeReason == .backendReset)
        #expect(pair.failed(.client) == PairActions())
        #expect(pair.timerFired(now: 100 * s, lastActivity: 0, clientWaiting: true, settings: settings) == PairActions())
    }

    @Test func lateConnectEventsAreIgnored() {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 0, settings: settings)
        #expect(pair.connected(now: 1, settings: settings) == PairActions())
        #expect(pair.connectFailed(.refused, now: 1, settings: settings) == PairActions())
    }

    @Test func badGatewayBytes() {
        let text = String(decoding: BadGateway.response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(text.contains("\r\nConnection: close\r\n"))
        #expect(text.contains("\r\nContent-Length: \(BadGateway.body.utf8.count)\r\n"))
        #expect(text.hasSuffix("\r\n\r\n" + BadGateway.body))
    }
}
