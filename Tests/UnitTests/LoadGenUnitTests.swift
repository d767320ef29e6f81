import CShim
import Foundation  // tests only: JSONSerialization checks the hand-written JSON
import LoadBalancer
@testable import LoadGen
import Testing

@Suite("LoadGen histogram")
struct LoadGenHistogramTests {
    init() { lb_ignore_sigpipe() }

    /// The exact value at percentile p of sorted values, with the histogram's rank rule.
    func exact(_ sorted: [UInt64], _ p: Double) -> UInt64 {
        let rank = max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
        return sorted[rank - 1]
    }

    func check(_ values: [UInt64]) {
        var h = LatencyHistogram()
        for v in values { h.record(v) }
        let sorted = values.sorted()
        #expect(h.count == UInt64(values.count))
        #expect(h.max == sorted.last!)
        #expect(h.min == sorted.first!)
        for p in [1.0, 50, 90, 99, 99.9] {
            let want = Double(exact(sorted, p))
            let got = Double(h.percentile(p))
            #expect(abs(got - want) <= max(1, want / 128), "p\(p): got \(got), want \(want)")
        }
        #expect(h.percentile(100) == sorted.last!)
    }

    @Test func uniformMicroseconds() {
        check((1...100_000).map { UInt64($0) * 1000 })
    }

    @Test func skewedLongTail() {
        var rng = SplitMix64(seed: 42)
        // Roughly log-uniform from 1 µs to ~1 s: every octave is exercised.
        check((0..<200_000).map { _ in
            let octave = rng.next() % 20
            return (UInt64(1000) << octave) + rng.next() % (UInt64(1000) << octave)
        })
    }

    @Test func smallValuesAreExact() {
        var h = LatencyHistogram()
        for v in 0..<128 { h.record(UInt64(v)) }
        #expect(h.percentile(50) == 63)
        #expect(h.percentile(100) == 127)
    }

    @Test func bucketsCoverTheirRange() {
        for v: UInt64 in [0, 1, 127, 128, 129, 255, 256, 1000, 123_456_789, 1 << 40, UInt64.max] {
            let (low, width) = LatencyHistogram.range(of: LatencyHistogram.index(of: v))
            #expect(v >= low && v - low < width, "\(v)")
        }
        #expect(LatencyHistogram.index(of: .max) == LatencyHistogram.bucketCount - 1)
    }

    @Test func mergeEqualsRecordingEverything() {
        var a = LatencyHistogram(), b = LatencyHistogram(), all = LatencyHistogram()
        for v in 1...5000 {
            let ns = UInt64(v * v)
            if v % 3 == 0 { a.record(ns) } else { b.record(ns) }
            all.record(ns)
        }
        var merged = a
        merged.merge(b)
        #expect(merged == all)
        merged.merge(LatencyHistogram())
        #expect(merged == all)
    }

    @Test func emptyIsZero() {
        let h = LatencyHistogram()
        #expect(h.percentile(99) == 0)
        #expect(h.count == 0)
        #expect(h.mean == 0)
    }
}

@Suite("LoadGen HTTP response parser")
struct LoadGenParserTests {
    init() { lb_ignore_sigpipe() }

    struct Result: Equatable {
        var complete = false
        var invalid = false
        var status = 0
        var backend = ""
        var closes = false
        var consumed = 0
    }

    /// Feeds `text` in pieces of `step` bytes (then EOF if `eof`).
    func parse(_ text: String, step: Int = .max, eof: Bool = false) -> Result {
        let line = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 256)
        let backend = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 32)
        defer { line.deallocate(); backend.deallocate() }
        var p = HTTPResponseParser(line: line, backend: backend)
        var r = Result()
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + min(step, bytes.count))
            let (used, outcome) = bytes[offset..<end].withUnsafeBytes { p.feed($0) }
            r.consumed += used
            offset = end
            if outcome == .complete { r.complete = true; break }
            if outcome == .invalid { r.invalid = true; break }
        }
        if eof && !r.complete && !r.invalid { r.complete = p.endOfStream() }
        r.status = p.status
        r.backend = String(decoding: p.backend, as: UTF8.self)
        r.closes = p.closesConnection
        return r
    }

    @Test func contentLengthInEverySplit() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-backend:  127.0.0.1:8001 \r\n\r\nhello"
        for step in 1...text.utf8.count {
            let r = parse(text, step: step)
            #expect(r == Result(complete: true, status: 200, backend: "127.0.0.1:8001", closes: false, consumed: text.utf8.count), "step \(step)")
        }
    }

    @Test func bytesAfterTheResponseAreLeft() {
        let r = parse("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1")
        #expect(r.complete && r.status == 204 && r.consumed == 27)
    }

    @Test func chunkedWithExtensionsAndTrailers() {
        let text = "HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\n\r\na;x=y\r\n0123456789\r\n0\r\nT: 1\r\n\r\n"
        for step in [1, 3, 1000] {
            let r = parse(text, step: step)
            #expect(r.complete && r.status == 404 && r.consumed == text.utf8.count)
        }
    }

    @Test func bodyUntilCloseNeedsTheClose() {
        let text = "HTTP/1.0 200 OK\r\n\r\nsome body"
        #expect(parse(text).complete == false)
        let r = parse(text, eof: true)
        #expect(r.complete && r.closes)
    }

    @Test func earlyEndIsNotComplete() {
        #expect(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", eof: true).complete == false)
        #expect(parse("HTTP/1.1 200 OK\r\nContent-Le", eof: true).complete == false)
    }

    @Test func interimResponsesAreSkipped() {
        let r = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        #expect(r.complete && r.status == 201)
    }

    @Test func connectionCloseAndHTTP10() {
        #expect(parse("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").closes)
        #expect(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").closes)
        #expect(!parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").closes)
    }

    @Test(arguments: ["SSH-2.0-OpenSSH\r\n", "HTTP/1.1 2x0 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
    func garbageIsInvalid(text: String) {
        #expect(parse(text).invalid)
    }

    @Test func longBackendValuesAreTruncatedNotOverflowed() {
        let name = String(repeating: "n", count: 100)
        let r = parse("HTTP/1.1 200 OK\r\nX-Backend: \(name)\r\nContent-Length: 0\r\n\r\n")
        #expect(r.complete && r.backend == String(repeating: "n", count: 32))
    }
}

@Suite("LoadGen targets and command line")
struct LoadGenCommandLineTests {
    init() { lb_ignore_sigpipe() }

    @Test(arguments: [
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080", "/x", "127.0.0.1:8080"),
        ("http://127.0.0.1/", "127.0.0.1:80", "/", "127.0.0.1"),
        ("HTTP://localhost:81/a/b?c=d", "127.0.0.1:81", "/a/b?c=d", "localhost:81"),
        ("127.0.0.1:9000", "127.0.0.1:9000", "/", "127.0.0.1:9000"),
        ("[::1]:9000", "[::1]:9000", "/", "[::1]:9000"),
        ("http://[::1]:9001/p", "[::1]:9001", "/p", "[::1]:9001"),
    ])
    func goodTargets(text: String, address: String, path: String, host: String) throws {
        let t = try LoadTarget.parse(text).get()
        #expect(t.address.description == address)
        #expect(t.path == path)
        #expect(t.hostHeader == host)
    }

    @Test(arguments: ["", "127.0.0.1", "https://127.0.0.1:443/", "http://:80/", "::1:9000", "[::1]9000",
                      "127.0.0.1:0", "127.0.0.1:70000", "example.com:80", "127.0.0.1:80/path", "http://127.0.0.1:80/a b"])
    func badTargets(text: String) {
        #expect(throws: ParseFailure.self) { try LoadTarget.parse(text).get() }
    }

    @Test func defaultsAndEveryFlag() throws {
        guard case .run(let d, let json0, let allow0) = try LoadGenCommandLine.parse(["127.0.0.1:80"]).get() else {
            Issue.record("expected run"); return
        }
        #expect(d.mode == .http && d.requests == 1 && d.duration == nil && d.concurrency == 1 && d.threads == 1)
        #expect(!d.keepAlive && d.rate == nil && d.timeout == .seconds(5) && !json0 && !allow0)

        let args = ["-n", "1000", "-c", "100", "--duration=2s", "--threads", "2", "--mode", "echo", "--keepalive",
                    "--size", "16k", "--rate", "500.5", "--timeout", "250ms", "--json", "--allow-errors", "[::1]:7"]
        guard case .run(let c, let json, let allow) = try LoadGenCommandLine.parse(args).get() else {
            Issue.record("expected run"); return
        }
        #expect(c.requests == 1000 && c.concurrency == 100 && c.duration == .seconds(2) && c.threads == 2)
        #expect(c.mode == .echo && c.keepAlive && c.size == 16384 && c.rate == 500.5 && c.timeout == .milliseconds(250))
        #expect(json && allow && c.target.address.description == "[::1]:7")
    }

    @Test func durationAloneIsUnboundedInRequests() throws {
        guard case .run(let c, _, _) = try LoadGenCommandLine.parse(["--duration", "1s", "127.0.0.1:80"]).get() else {
            Issue.record("expected run"); return
        }
        #expect(c.requests == nil && c.duration == .seconds(1))
    }

    @Test func help() throws {
        guard case .help = try LoadGenCommandLine.parse(["-n", "5", "--help"]).get() else { Issue.record("expected help"); return }
    }

    @Test(arguments: [
        (["-c", "0", "x:1"], "-c 0: must be between 1 and 100000"),
        (["-n", "abc", "127.0.0.1:1"], "-n abc: not a whole number"),
        (["-n"], "-n: needs a value"),
        (["--mode", "udp", "127.0.0.1:1"], "--mode udp: expected http, echo or connect"),
        (["--duration", "5", "127.0.0.1:1"], "--duration 5: expected a duration like 250ms, 2s or 1m"),
        (["--timeout", "0s", "127.0.0.1:1"], "--timeout 0s: must be more than zero"),
        (["--rate", "-3", "127.0.0.1:1"], "--rate -3: expected requests per second, more than 0"),
        (["--size", "0", "--mode", "echo", "127.0.0.1:1"], "--size 0: must be between 1 and 67108864 bytes (1 to 64m)"),
        (["--size", "10", "127.0.0.1:1"], "--size: only applies with --mode echo"),
        (["--bogus", "127.0.0.1:1"], "--bogus: unknown flag (see --help)"),
        ([], "target: missing (see --help)"),
        (["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:2: only one target"),
        (["https://h:1/"], "target https://h:1/: only http:// targets are supported"),
    ])
    func badFlagsNameFlagAndValue(args: [String], message: String) {
        switch LoadGenCommandLine.parse(args) {
        case .success: Issue.record("accepted \(args)")
        case .failure(let e): #expect(e.description == message)
        }
    }
}

@Suite("LoadGen report")
struct LoadGenReportTests {
    init() { lb_ignore_sigpipe() }

    func sample() -> LoadReport {
        var r = LoadReport()
        r.target = "http://127.0.0.1:8080/"
        r.requested = 10; r.completed = 10; r.succeeded = 7
        r.errors = [.status: 2, .shortRead: 1]
        r.statusCodes = [200: 7, 503: 2]
        r.elapsed = .milliseconds(500)
        r.bytesSent = 1000; r.bytesReceived = 2000
        for v in 1...10 { r.latency.record(UInt64(v) * 1_000_000) }
        r.backends = ["b\"1\\": 3, "b2\n": 4]
        return r
    }

    @Test func jsonIsOneWellFormedObject() throws {
        let text = sample().json()
        #expect(!text.contains("\n"))
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let o = try #require(object)
        for key in ["target", "mode", "requested", "completed", "succeeded", "failed", "elapsed_s", "requests_per_s",
                    "bytes_sent", "bytes_received", "latency_us", "errors", "status_codes", "backends", "backend_spread"] {
            #expect(o[key] != nil, "missing \(key)")
        }
        #expect(o["requests_per_s"] as? Double == 20)
        let errors = try #require(o["errors"] as? [String: Int])
        #expect(errors["short-read"] == 1 && errors["status"] == 2 && errors["refused"] == 0)
        #expect(Set(errors.keys) == Set(LoadErrorKind.allCases.map(\.rawValue)))
        let latency = try #require(o["latency_us"] as? [String: Double])
        #expect(abs((latency["p50"] ?? 0) - 5000) <= 5000 / 128)  // bucketed, within 1/128
        #expect(latency["max"] == 10000)  // exact
        let backends = try #require(o["backends"] as? [String: [String: Double]])
        #expect(backends["b\"1\\"]?["count"] == 3 && backends["b2\n"]?["count"] == 4)
        #expect((o["status_codes"] as? [String: Int])?["503"] == 2)
    }

    @Test func emptyReportIsStillValidJSON() throws {
        let o = try JSONSerialization.jsonObject(with: Data(LoadReport().json().utf8)) as? [String: Any]
        #expect(o?["requests_per_s"] as? Double == 0)
    }

    @Test func textShowsRatesErrorsAndSpread() {
        let text = sample().text()
        #expect(text.contains("Requests per second:  20.0"))
        #expect(text.contains("status 2, short-read 1"))
        #expect(text.contains("spread: max 4, min 3"))
        #expect(text.contains("p50 5.0"))
    }

    /// 1,000 backends: the text stays about a screenful and names the extremes; JSON keeps them all.
    @Test func largePoolIsSummarisedInTextAndListedInJSON() throws {
        var r = sample()
        r.backends = [:]
        for i in 0..<1000 { r.backends["127.0.0.1:\(20000 + i)"] = 10 + i % 7 }
        r.backends["127.0.0.1:20500"] = 40
        r.backends["127.0.0.1:20600"] = 1
        let text = r.text()
        #expect(text.split(separator: "\n").count < 40)
        #expect(text.contains("Backends:             1000"))
        #expect(text.contains("most loaded:\n  127.0.0.1:20500 "))
        #expect(text.contains("least loaded:"))
        #expect(text.contains("  127.0.0.1:20600         1         0.0%\n  (990 more; --json lists every backend)\n"))
        #expect(text.hasSuffix("spread: max 40, min 1, max/min 40.000\n"))
        #expect(text.contains("share per backend: min 0.008%, median 0.100%, max 0.307% (responses: 1, 13, 40)"))
        let o = try JSONSerialization.jsonObject(with: Data(r.json().utf8)) as? [String: Any]
        #expect((o?["backends"] as? [String: Any])?.count == 1000)
        // Twenty backends or fewer are still listed one by one.
        #expect(!sample().text().contains("most loaded"))
    }

    @Test func fixedFormatting() {
        #expect(fixed(1.5, 3) == "1.500")
        #expect(fixed(0.0005, 3) == "0.001")
        #expect(fixed(-2.25, 1) == "-2.3")
        #expect(fixed(12345.678, 0) == "12346")
    }
}
