import LoadBalancer
import Testing

@Suite struct BalancingFlagsTests {
    func config(_ args: [String]) throws -> Configuration {
        guard case .run(let c, _) = try CommandLineParser.parse(args).get() else { throw ConfigError(flag: "", value: nil, reason: "not run") }
        return c
    }

    @Test func defaults() throws {
        let c = try config([])
        #expect(c.balancing.algorithm == .roundRobin && c.balancing.slowStart == .zero && c.balancing.backendMaxConns == 0)
        #expect(c.admission.maxConns == nil && c.admission.queueTimeout == .seconds(5))
        #expect(c.admission.allow.isEmpty && c.admission.deny.isEmpty && c.admission.maxConnsPerSource == 0)
    }

    @Test func everyFlag() throws {
        let c = try config([
            "--balance", "maglev", "--slow-start", "30s", "--max-conns", "100", "--backend-max-conns", "7",
            "--queue-timeout", "250ms", "--allow", "10.0.0.0/8", "--allow", "fd00::/8", "--deny", "10.1.2.3",
            "--max-conns-per-source", "4",
        ])
        #expect(c.balancing.algorithm == .maglev && c.balancing.slowStart == .seconds(30) && c.balancing.backendMaxConns == 7)
        #expect(c.admission.maxConns == 100 && c.admission.queueTimeout == .milliseconds(250))
        #expect(c.admission.allow.map(\.description) == ["10.0.0.0/8", "fd00::/8"])
        #expect(c.admission.deny.map(\.description) == ["10.1.2.3/32"] && c.admission.maxConnsPerSource == 4)
        for algorithm in BalanceAlgorithm.allCases {
            #expect(try config(["--balance", algorithm.rawValue]).balancing.algorithm == algorithm)
        }
    }

    @Test(arguments: [
        (["--balance", "random"], "--balance random: expected one of round-robin, least-conn, p2c, maglev, source-hash"),
        (["--slow-start", "5"], "--slow-start 5: expected a duration like 250ms, 2s or 1m"),
        (["--max-conns", "0"], "--max-conns 0: must be between 1 and 10000000"),
        (["--backend-max-conns", "-1"], "--backend-max-conns -1: must be between 0 and 10000000"),
        (["--allow", "10.0.0.1/8"], "--allow 10.0.0.1/8: host bits set past /8"),
        (["--deny", "::1/200"], "--deny ::1/200: bad prefix length (0-128)"),
        (["--deny", "somewhere"], "--deny somewhere: expected an address block like 10.0.0.0/8 or fd00::/8"),
        (["--max-conns-per-source", "x"], "--max-conns-per-source x: not a whole number"),
    ])
    func badFlags(args: [String], message: String) {
        switch CommandLineParser.parse(args) {
        case .failure(let error): #expect(error.description == message)
        case .success: Issue.record("accepted \(args)")
        }
    }
}
