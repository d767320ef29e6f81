import LoadBalancer
import TestVectors
import Testing

/// A bounded random-input loop over both preamble parsers: mutations of valid inputs (headers and the
/// real ClientHellos) plus pure noise. `ci/fuzz proxy-header` and `ci/fuzz clienthello` run the same
/// checks under libFuzzer for millions of inputs; this keeps a cheap share of it in every `swift test`.
@Suite struct PreambleFuzzTests {
    @Test func proxyHeaders() {
        var rng = SplitMix64(seed: 0x5052_4F58_59)
        var failures = 0
        for i in 0..<20_000 {
            let input: [UInt8]
            if i % 10 == 0 {
                input = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = PreambleFuzzing.mutate(PreambleFuzzing.proxySeeds[i % PreambleFuzzing.proxySeeds.count]) { rng.next() }
            }
            if let problem = input.withUnsafeBytes({ PreambleFuzzing.checkProxy($0) }) {
                failures += 1
                if failures <= 5 { Issue.record("\(problem) for \(input)") }
            }
        }
        #expect(failures == 0)
    }

    @Test func clientHellos() {
        var rng = SplitMix64(seed: 0x1603_01)
        let seeds = ClientHelloVectors.all.map(\.bytes)
        var failures = 0
        for i in 0..<20_000 {
            let input: [UInt8]
            if i % 10 == 0 {
                input = [0x16, 0x03] + (0..<Int(rng.next() % 600)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = PreambleFuzzing.mutate(seeds[i % seeds.count]) { rng.next() }
            }
            if let problem = input.withUnsafeBytes({ PreambleFuzzing.checkClientHello($0) }) {
                failures += 1
                if failures <= 5 { Issue.record("\(problem) for \(input.count) bytes") }
            }
        }
        #expect(failures == 0)
    }
}
