import FakeBackends
import LoadBalancer
import OperatorHTTP
import Testing

/// The pure parts of FakeBackends: HTTP request parsing, fault selection, the command line.
@Suite struct FakeBackendsHTTPParserTests {
    func parse(_ chunks: [String]) throws -> [HTTPRequestHead] {
        var parser = HTTPRequestParser()
        var heads: [HTTPRequestHead] = []
        for chunk in chunks {
            let bytes = Array(chunk.utf8)
            try bytes.withUnsafeBytes { raw in
                try parser.feed(raw) { heads.append($0) }
            }
        }
        return heads
    }

    @Test func requestSplitAcrossReads() throws {
        let heads = try parse(["GE", "T /a HTTP/1.1\r", "\nHost: x\r\n", "\r", "\n"])
        #expect(heads == [HTTPRequestHead(method: "GET", target: "/a", keepAlive: true, contentLength: 0, headers: [HTTPHeader("host", "x")])])
    }

    @Test func pipelinedRequestsWithBodies() throws {
        let heads = try parse(["POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /q HTTP/1.1\r\nConnection: close\r\n\r\n"])
        #expect(heads.map(\.target) == ["/p", "/q"])
        #expect(heads.map(\.keepAlive) == [true, false])
        #expect(heads[0].contentLength == 3)
    }

    @Test func bodyCompletesTheRequestOnlyWhenAllArrived() throws {
        var parser = HTTPRequestParser()
        var count = 0
        for chunk in ["PUT / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", "c"] {
            try Array(chunk.utf8).withUnsafeBytes { raw in try parser.feed(raw) { _ in count += 1 } }
        }
        #expect(count == 0)
        try Array("d".utf8).withUnsafeBytes { raw in try parser.feed(raw) { _ in count += 1 } }
        #expect(count == 1)
        #expect(parser.isIdle)
    }

    @Test(arguments: [
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET / HTTP/1.1\r\n\r\n", true),
        ("GET / HTTP/1.1\r\nconnection: Keep-Alive, Close\r\n\r\n", false),
    ])
    func keepAliveRules(request: String, keepAlive: Bool) throws {
        #expect(try parse([request]).first?.keepAlive == keepAlive)
    }

    @Test(arguments: [
        "GET /\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ])
    func malformedRequestsAreRefused(request: String) {
        #expect(throws: HTTPRequestParser.Failure.self) { try parse([request]) }
    }

    @Test func oversizedHeadIsRefused() {
        let huge = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: HTTPRequestParser.maxHeadBytes) + "\r\n\r\n"
        #expect(throws: HTTPRequestParser.Failure.headTooLarge) { try parse([huge]) }
    }

    @Test func responseNamesThePort() {
        let text = String(decoding: FakeResponses.ok(port: 8123, keepAlive: false), as: UTF8.self)
        #expect(text == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nX-Backend: 8123\r\nConnection: close\r\n\r\nbackend 8123\n")
    }
}

@Suite struct FakeBackendsFaultPlanTests {
    @Test(arguments: [(10, 0.1), (5_000, 0.1), (10_000, 0.25), (7, 0.5), (3, 0.0), (4, 1.0), (1, 0.4)])
    func exactlyRoundedCountIsFaulty(count: Int, rate: Double) {
        let plan = FaultPlan.choose(count: count, failRate: rate, fault: .hang, seed: 42)
        #expect(plan.compactMap { $0 }.count == Int((Double(count) * rate).rounded()))
        #expect(plan.allSatisfy { $0 == nil || $0 == .hang })
    }

    @Test func sameSeedSameChoiceOtherSeedOtherChoice() {
        let a = FaultPlan.choose(count: 1_000, failRate: 0.1, fault: .mixed, seed: 7)
        let b = FaultPlan.choose(count: 1_000, failRate: 0.1, fault: .mixed, seed: 7)
        let c = FaultPlan.choose(count: 1_000, failRate: 0.1, fault: .mixed, seed: 8)
        #expect(a == b)
        #expect(a != c)
    }

    @Test func mixedUsesEveryConcreteKind() {
        let plan = FaultPlan.choose(count: 1_000, failRate: 0.5, fault: .mixed, seed: 3).compactMap { $0 }
        #expect(Set(plan) == Set(FaultKind.concrete))
        #expect(!plan.contains(.mixed))
    }

    @Test func splitMix64KnownSequence() {
        // Reference values of SplitMix64 seeded with 0 (from the published C implementation).
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}

@Suite struct FakeBackendsCommandLineTests {
    func options(_ args: [String]) throws -> FarmOptions {
        switch FarmCommandLine.parse(args) {
        case .success(.run(let o)): return o
        case .success(.help): Issue.record("unexpected help"); throw ConfigError(flag: "", value: nil, reason: "")
        case .failure(let e): Issue.record("unexpected error \(e)"); throw e
        }
    }

    func error(_ args: [String]) -> String? {
        if case .failure(let e) = FarmCommandLine.parse(args) { return e.description }
        return nil
    }

    @Test func defaultsOpenTheWholeDefaultPool() throws {
        let o = try options([])
        #expect(o.farm.addresses.count == 10_000)
        #expect(o.farm.addresses.first == SocketAddress(host: "127.0.0.1", port: 8000))
        #expect(o.farm.addresses[4_999] == SocketAddress(host: "127.0.0.1", port: 12999))
        #expect(o.farm.addresses[5_000] == SocketAddress(host: "::1", port: 13000))
        #expect(o.farm.addresses.last == SocketAddress(host: "::1", port: 17999))
        #expect(o.farm.mode == .http && o.farm.failRate == 0 && o.farm.loops == 2)
        #expect(FarmCommandLine.describe(o.farm.addresses) == "127.0.0.1:8000-12999, [::1]:13000-17999")
    }

    @Test func everyFlag() throws {
        let o = try options([
            "--count", "5", "--host", "::1", "--ports=9000-9009", "--mode", "echo", "--fail-rate", "0.4", "--fault", "die-mid",
            "--seed", "9", "--delay", "1.5s", "--flap", "250ms", "--loops", "3", "--faulty-file", "/tmp/f", "--control", "127.0.0.1:7000",
        ])
        #expect(o.farm.addresses.map(\.description) == (9000...9004).map { "[::1]:\($0)" })
        #expect(o.farm.mode == .echo)
        #expect(o.farm.failRate == 0.4)
        #expect(o.farm.fault == .dieMid)
        #expect(o.farm.seed == 9)
        #expect(o.farm.delay == .milliseconds(1500))
        #expect(o.farm.flapPeriod == .milliseconds(250))
        #expect(o.farm.loops == 3)
        #expect(o.faultyFile == "/tmp/f")
        #expect(o.control == SocketAddress(host: "127.0.0.1", port: 7000))
    }

    @Test func countTakesTheFirstOfTheLayout() throws {
        #expect(try options(["--count", "5000"]).farm.addresses.last == SocketAddress(host: "127.0.0.1", port: 12999))
        #expect(try options(["--count", "5001"]).farm.addresses.last == SocketAddress(host: "::1", port: 13000))
        #expect(try options(["--ports", "20000-20002"]).farm.addresses.map(\.description) == ["127.0.0.1:20000", "127.0.0.1:20001", "127.0.0.1:20002"])
    }

    @Test func help() {
        if case .success(.help) = FarmCommandLine.parse(["--mode", "echo", "--help"]) {} else { Issue.record("expected help") }
    }

    @Test(arguments: [
        (["--fail-rate", "2"], "--fail-rate 2: expected a fraction between 0 and 1"),
        (["--fail-rate", "nan"], "--fail-rate nan: expected a fraction between 0 and 1"),
        (["--count", "0"], "--count 0: must be between 1 and 65535"),
        (["--count", "many"], "--count many: not a whole number"),
        (["--count", "10001"], "--count 10001: the default layout has 10000 ports (use --host and --ports for others)"),
        (["--count", "11", "--ports", "9000-9009"], "--count 11: more than the 10 ports of --ports 9000-9009"),
        (["--host", "::1"], "--host ::1: needs --ports LO-HI"),
        (["--host", "example.com", "--ports", "1-2"], "--host example.com: expected a numeric IPv4 or IPv6 address"),
        (["--ports", "9009-9000"], "--ports 9009-9000: port range runs backwards"),
        (["--ports", "9000-70000"], "--ports 9000-70000: port out of range"),
        (["--mode", "ftp"], "--mode ftp: expected http, echo, source or sink"),
        (["--fault", "explode"], "--fault explode: expected one of refuse, close, reset, hang, slow, drip, die-mid, flap, mixed"),
        (["--seed", "-1"], "--seed -1: not a whole number"),
        (["--delay", "5"], "--delay 5: expected a duration like 250ms, 2s or 1m"),
        (["--flap", "1ms"], "--flap 1ms: must be at least 10ms"),
        (["--loops", "0"], "--loops 0: must be between 1 and 64"),
        (["--control", "0.0.0.0:7000"], "--control 0.0.0.0:7000: the control API listens on loopback only (127.0.0.1:PORT or [::1]:PORT)"),
        (["--control", "127.0.0.1"], "--control 127.0.0.1: expected HOST:PORT"),
        (["--mode"], "--mode: needs a value"),
        (["--wat"], "--wat: unknown flag (see --help)"),
        (["stray"], "stray: unexpected argument (see --help)"),
    ])
    func badFlagsGiveOneLineNamingTheFlag(args: [String], message: String) {
        let got = error(args)
        #expect(got == message)
        #expect(got?.contains("\n") == false)
    }
}
