import CShim
import LoadBalancer
import Testing

/// Weights are accepted but plain round robin does not use them: the operator is told so at start.
@Suite struct WeightNoticeTests {
    init() { _ = lb_ignore_sigpipe() }

    static let notice = "backend weights are kept and reported, but round robin treats every backend alike"

    @Test func weightsOtherThanOneAreNoticedAtStart() throws {
        let a = TestServer(handler: TestServer.http(port: 1)), b = TestServer(handler: TestServer.http(port: 2))
        defer { a.stop(); b.stop() }
        try withBalancer(backends: [a.address, b.address], configure: { $0.backends[1].weight = 3 }) { lb, address in
            #expect(lb.log.recent.filter { $0 == Self.notice }.count == 1)
            #expect(lb.pool.info(b.address)?.weight == 3)
            // Round robin all the same: each backend answers every other request.
            let answers = (0..<6).map { _ in backendHeader(httpGet(address).text) }
            #expect(answers.filter { $0 == "1" }.count == 3 && answers.filter { $0 == "2" }.count == 3)
        }
    }

    @Test func equalWeightsSayNothing() throws {
        let a = TestServer(handler: TestServer.http(port: 1))
        defer { a.stop() }
        try withBalancer(backends: [a.address]) { lb, _ in
            #expect(!lb.log.recent.contains(Self.notice))
        }
    }
}
