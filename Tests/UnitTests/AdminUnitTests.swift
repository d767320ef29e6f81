@testable import Admin
import Foundation
import LoadBalancer
import Testing

/// The admin side's pure parts: token comparison, address decoding, access-log lines, close reasons.
@Suite struct AdminUnitTests {
    @Test func tokenNeedsTheExactBearerValue() {
        let token = AdminToken("s3cret-token")
        #expect(token.accepts(authorization: "Bearer s3cret-token"))
        #expect(token.accepts(authorization: "bearer s3cret-token"))
        #expect(!token.accepts(authorization: nil))
        #expect(!token.accepts(authorization: "Bearer s3cret-toke"))
        #expect(!token.accepts(authorization: "Bearer s3cret-token2"))
        #expect(!token.accepts(authorization: "Basic s3cret-token"))
        #expect(!token.accepts(authorization: "Bearer"))
        #expect(AdminToken.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!AdminToken.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!AdminToken.constantTimeEqual(Array("".utf8), Array("a".utf8)))
    }

    @Test func tokenFileIsTrimmedAndChecked() throws {
        let path = "/tmp/lb-token-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        try "  abc123\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AdminToken.load(from: path).accepts(authorization: "Bearer abc123"))
        try "\n \n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AdminError.self) { try AdminToken.load(from: path) }
        #expect(throws: AdminError.self) { try AdminToken.load(from: path + "-missing") }
    }

    @Test(arguments: [
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("127.0.0.1%3A8000", "127.0.0.1:8000"),
        ("[::1]:13000", "[::1]:13000"),
        ("%5B%3A%3A1%5D%3A13000", "[::1]:13000"),
        ("%5b::1%5d:13000", "[::1]:13000"),
    ])
    func backendAddressesDecode(raw: String, expected: String) throws {
        #expect(try AdminAPI.backendAddress(raw).get().description == expected)
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:0", ":8000", "%zz", "::1:80", "host:80", "127.0.0.1:70000"])
    func badBackendAddressesAreRefused(raw: String) {
        if case .success(let a) = AdminAPI.backendAddress(raw) { Issue.record("accepted \(a)") }
    }

    @Test func queryIsSplitAndDecoded() {
        let (path, query) = AdminAPI.split("/api/backends?service=a%20b&x")
        #expect(path == "/api/backends")
        #expect(query == ["service": "a b", "x": ""])
    }

    func record(_ reason: CloseReason) -> AccessRecord {
        var r = AccessRecord()
        r.acceptedAt = 1_000_000_000
        r.connectedAt = 1_000_412_000
        r.closedAt = 1_012_301_000
        r.client = SocketAddress(host: "127.0.0.1", port: 51234)!
        r.backend = SocketAddress(host: "::1", port: 13001)!
        r.bytesUp = 78
        r.bytesDown = 231
        r.retries = 1
        r.reason = reason
        return r
    }

    @Test func textLineHasEveryField() {
        var f = AccessLineFormatter(format: .text, listeners: [SocketAddress(host: "0.0.0.0", port: 8080)!])
        f.offset = 1_764_549_062_000_000_000 - 1_000_000_000  // wall time 2025-12-01T00:31:02Z at acceptedAt
        var out: [UInt8] = []
        f.append(record(.backendReset), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2025-12-01T00:31:02.012Z 127.0.0.1:51234 0.0.0.0:8080 default [::1]:13001 connect_ms=0.412 duration_ms=12.301 bytes_up=78 bytes_down=231 retries=1 SR backend_reset\n")
    }

    @Test func jsonLineParses() throws {
        var f = AccessLineFormatter(format: .json, listeners: [SocketAddress(host: "0.0.0.0", port: 8080)!])
        var r = record(.noBackend)
        r.backend = SocketAddress()
        r.connectedAt = 0
        var out: [UInt8] = []
        f.append(r, to: &out)
        #expect(out.last == 10)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(out.dropLast())) as? [String: Any])
        #expect(o["client"] as? String == "127.0.0.1:51234")
        #expect(o["listener"] as? String == "0.0.0.0:8080")
        #expect(o["service"] as? String == "default")
        #expect(o["backend"] is NSNull)
        #expect(o["connect_ms"] is NSNull)
        #expect(o["duration_ms"] as? Double == 12.301)
        #expect(o["bytes_up"] as? Int == 78 && o["bytes_down"] as? Int == 231 && o["retries"] as? Int == 1)
        #expect(o["termination"] as? String == "LN" && o["cause"] as? String == "no_backend")
        #expect((o["time"] as? String)?.hasSuffix("Z") == true)
    }

    @Test func quantileFromBuckets() {
        let h = HistogramSnapshot(bounds: [1, 2, 4], counts: [0, 10, 0, 0], sum: 15)
        #expect(AdminAPI.quantile(h, 0.5) == 1.5)
        #expect(AdminAPI.quantile(HistogramSnapshot(bounds: [1], counts: [0, 0], sum: 0), 0.5) == 0)
    }
}

/// Every way a pair ends names its reason once, from the lifecycle's own decision.
@Suite struct CloseReasonTests {
    var settings: PairSettings {
        var c = Configuration()
        c.retries = 1
        return PairSettings(c)
    }
    let s: UInt64 = 1_000_000_000

    func forwarding() -> PairLifecycle {
        var pair = PairLifecycle()
        _ = pair.accepted(now: 0, settings: settings)
        _ = pair.connected(now: 1, settings: settings)
        return pair
    }

    @Test func cleanClosesNameWhoEndedFirst() {
        var a = forwarding()
        _ = a.directionEnded(upstream: true, now: 2, settings: settings)
        _ = a.directionEnded(upstream: false, now: 3, settings: settings)
        #expect(a.closeReason == .clientClosed)
        var b = forwarding()
        _ = b.directionEnded(upstream: false, now: 2, settings: settings)
        #expect(b.closeReason == .none)
        _ = b.directionEnded(upstream: true, now: 3, settings: settings)
        #expect(b.closeReason == .backendClosed)
    }

    @Test func resetsNameTheSide() {
        var a = forwarding()
        _ = a.failed(.client)
        #expect(a.closeReason == .clientReset)
        var b = forwarding()
        _ = b.failed(.backend)
        _ = b.failed(.client)  // a second error after the close changes nothing
        #expect(b.closeReason == .backendReset)
    }

    @Test func timeouts() {
        var idle = forwarding()
        _ = idle.timerFired(now: 61 * s, lastActivity: 1, clientWaiting: false, settings: settings)
        #expect(idle.closeReason == .idleTimeout)
        var fin = forwarding()
        _ = fin.directionEnded(upstream: true, now: s, settings: settings)
        _ = fin.timerFired(now: 32 * s, lastActivity: s, clientWaiting: false, settings: settings)
        #expect(fin.closeReason == .finTimeout)
    }

    @Test func connectFailuresAndNoBackend() {
        var failed = PairLifecycle()
        _ = failed.accepted(now: 0, settings: settings)
        _ = failed.connectFailed(.refused, now: 1, settings: settings)
        _ = failed.connectFailed(.refused, now: 2, settings: settings)
        #expect(failed.closeReason == .connectFailed)
        _ = failed.failed(.client)  // the client resets after its 502: still a connect failure
        #expect(failed.closeReason == .connectFailed)
        var none = PairLifecycle()
        _ = none.accepted(now: 0, settings: settings)
        _ = none.noBackend(now: 1, settings: settings)
        #expect(none.closeReason == .noBackend)
        var local = PairLifecycle()
        _ = local.accepted(now: 0, settings: settings)
        _ = local.connectFailed(.local, now: 1, settings: settings)
        _ = local.connectFailed(.local, now: 2, settings: settings)
        #expect(local.closeReason == .limit)
        var drained = forwarding()
        _ = drained.drainExpired()
        #expect(drained.closeReason == .drain)
    }

    @Test func codesAreDistinct() {
        #expect(Set(CloseReason.allCases.map(\.code)).count == CloseReason.allCases.count)
        #expect(Set(CloseReason.allCases.map(\.name)).count == CloseReason.allCases.count)
    }
}
