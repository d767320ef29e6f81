/// The pick micro-benchmark behind `ci/pick-bench`: nanoseconds per pick for an algorithm over a pool
/// of `backends` with a fraction of them down. Public only so the `pickbench` executable can run it
/// in a release build; the pool is real (atomics, snapshot), no sockets.
public enum PickBenchmark {
    public struct Result: Sendable {
        public var nanosecondsPerPick: Double
        /// Picks that found no backend (must be 0 with any backend up).
        public var misses: Int
    }

    /// Weights cycle 1, 2, 3 when `weighted`, else all 1. Down backends are spread evenly. Each pick
    /// uses a different client key and is counted as started and ended, as the worker does.
    public static func run(_ algorithm: BalanceAlgorithm, backends: Int, downFraction: Double, weighted: Bool, picks: Int) -> Result {
        var settings = BalancingSettings()
        settings.algorithm = algorithm
        let specs = (0..<backends).map {
            BackendSpec(address: SocketAddress(ipv4: (10, UInt8($0 >> 16 & 0xFF), UInt8($0 >> 8 & 0xFF), UInt8($0 & 0xFF)), port: 80),
                        weight: weighted ? $0 % 3 + 1 : 1)
        }
        let pool = BackendPool(specs, headroom: 0, balancing: settings)
        let down = Int(Double(backends) * downFraction)
        if down > 0 {
            let step = Double(backends) / Double(down)
            for i in 0..<down { _ = pool.apply(.markedDown, to: BackendID(Int(Double(i) * step)), rise: 2, fall: 3) }
        }
        var balancer = Balancer(pool: pool, seed: 42)
        var misses = 0
        var key: UInt64 = 0x1234_5678
        let now = MonotonicClock.now()
        // Warm up, then time.
        for _ in 0..<min(picks, 10_000) { _ = balancer.pick(key: StableHash.mix(key), now: now); key &+= 1 }
        let start = MonotonicClock.now()
        for _ in 0..<picks {
            key &+= 1
            switch balancer.pick(key: StableHash.mix(key), now: now) {
            case .backend(let id):
                _ = balancer.connectionStarted(id)
                balancer.connectionEnded(id)
            case .none, .full: misses += 1
            }
        }
        let elapsed = MonotonicClock.now() - start
        return Result(nanosecondsPerPick: Double(elapsed) / Double(picks), misses: misses)
    }
}
