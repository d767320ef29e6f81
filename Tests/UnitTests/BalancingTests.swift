@testable import LoadBalancer
import Testing

/// Exact properties of the balancing algorithms, without sockets: picks run against a real pool whose
/// health and active counts the tests set directly; time is passed in.
@Suite struct BalancingTests {
    static func address(_ i: Int) -> SocketAddress {
        SocketAddress(ipv4: (10, UInt8(i >> 16 & 0xFF), UInt8(i >> 8 & 0xFF), UInt8(i & 0xFF)), port: 80)
    }

    static func pool(_ weights: [Int], _ algorithm: BalanceAlgorithm, configure: (inout BalancingSettings) -> Void = { _ in }) -> BackendPool {
        var settings = BalancingSettings()
        settings.algorithm = algorithm
        configure(&settings)
        return BackendPool(weights.enumerated().map { BackendSpec(address: address($0.offset), weight: $0.element) }, headroom: 16, balancing: settings)
    }

    /// Member index of each pick (the pools above give backend i the id i).
    static func picks(_ b: inout Balancer, _ n: Int, key: (Int) -> UInt64 = { _ in 0 }, now: UInt64 = 1) -> [Int] {
        (0..<n).map { i in
            guard case .backend(let id) = b.pick(key: key(i), now: now) else { return -1 }
            return Int(id)
        }
    }

    static func down(_ pool: BackendPool, _ id: Int) {
        _ = pool.apply(.markedDown, to: BackendID(id), rise: 2, fall: 3)
    }

    // MARK: smooth weighted round robin

    @Test func smoothWeightedSequenceIsNginxs() {
        // nginx's own example (ngx_http_upstream_round_robin.c): weights 5, 1, 1 give a a b a c a a.
        #expect(SmoothWeightedSequence.build([0, 1, 2], weights: [5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0])
        // 1:2:3: the weight-3 backend gets 3 of every 6, never twice running.
        #expect(SmoothWeightedSequence.build([0, 1, 2], weights: [1, 2, 3]) == [2, 1, 0, 2, 1, 2])
        // Equal weights: plain rotation. Common factors do not lengthen the period.
        #expect(SmoothWeightedSequence.build([4, 5, 6], weights: [7, 7, 7]) == [4, 5, 6])
        #expect(SmoothWeightedSequence.build([0, 1], weights: [20, 40]) == [1, 0, 1])
    }

    @Test func roundRobinPicksFollowTheSequenceAcrossWorkers() {
        let pool = Self.pool([1, 2, 3], .roundRobin)
        var a = Balancer(pool: pool, seed: 1), b = Balancer(pool: pool, seed: 2)
        var seen: [Int] = []
        for i in 0..<12 { seen += i % 2 == 0 ? Self.picks(&a, 1) : Self.picks(&b, 1) }
        #expect(seen == [2, 1, 0, 2, 1, 2, 2, 1, 0, 2, 1, 2])
    }

    @Test func largePoolsKeepExactProportions() {
        // 3,000 backends of weights 1-3: past the exact budget, so the earliest-deadline order is used.
        let weights = (0..<3000).map { Int32($0 % 3 + 1) }
        let seq = SmoothWeightedSequence.build((0..<3000).map { BackendID($0) }, weights: weights)
        #expect(seq.count == 6000)
        var counts = [Int](repeating: 0, count: 3000)
        for id in seq { counts[Int(id)] += 1 }
        #expect(counts.enumerated().allSatisfy { $0.element == Int(weights[$0.offset]) })
        // Smooth: a weight-3 backend's turns are spread over the period, not bunched.
        let turns = seq.enumerated().filter { $0.element == 2 }.map(\.offset)
        #expect(turns.count == 3 && turns[1] - turns[0] > 1000 && turns[2] - turns[1] > 1000)
    }

    @Test func roundRobinSkipsDownAndDrainingWithoutRebuilding() throws {
        let pool = Self.pool([1, 1, 1, 1], .roundRobin)
        var b = Balancer(pool: pool, seed: 1)
        let version = b.seenVersion
        Self.down(pool, 1)
        try pool.drain(Self.address(2)).get()
        let rebuilt = b.refresh()
        #expect(!rebuilt && b.seenVersion == version)
        #expect(Set(Self.picks(&b, 40)) == [0, 3])
    }

    // MARK: least-conn

    @Test func leastConnSendsNewPairsAwayFromLongConnections() {
        let pool = Self.pool([1, 1, 1], .leastConn)
        var b = Balancer(pool: pool, seed: 1)
        // Backend 0 holds 5 long connections.
        for _ in 0..<5 {
            let started = b.connectionStarted(0)
            #expect(started)
        }
        var got: [Int] = []
        for _ in 0..<10 {
            let pick = Self.picks(&b, 1)[0]
            got.append(pick)
            _ = b.connectionStarted(BackendID(pick))
        }
        // The other two fill up to 5 each before backend 0 gets any more, alternating (ties rotate).
        #expect(got.filter { $0 == 0 }.isEmpty)
        #expect(got.filter { $0 == 1 }.count == 5 && got.filter { $0 == 2 }.count == 5)
        // Once backend 1's pairs end, it is the least loaded.
        for _ in 0..<5 { b.connectionEnded(1) }
        #expect(Self.picks(&b, 1) == [1])
    }

    @Test func leastConnIsRelativeToWeight() {
        let pool = Self.pool([1, 3], .leastConn)
        var b = Balancer(pool: pool, seed: 1)
        var counts = [0, 0]
        for _ in 0..<40 {
            let pick = Self.picks(&b, 1)[0]
            counts[pick] += 1
            _ = b.connectionStarted(BackendID(pick))
        }
        #expect(counts == [10, 30])
    }

    @Test func tiesRotate() {
        let pool = Self.pool([1, 1, 1, 1], .leastConn)
        var b = Balancer(pool: pool, seed: 1)
        #expect(Self.picks(&b, 8) == [0, 1, 2, 3, 0, 1, 2, 3])
    }

    // MARK: p2c

    @Test func p2cNeverPicksADownBackend() {
        let pool = Self.pool([Int](repeating: 1, count: 10), .p2c)
        for id in [0, 3, 4, 9] { Self.down(pool, id) }
        var b = Balancer(pool: pool, seed: 7, panicThreshold: nil)
        let got = Self.picks(&b, 10_000)
        #expect(Set(got) == [1, 2, 5, 6, 7, 8])
        // All but one down: that one, every time; none up: nothing.
        for id in [1, 2, 5, 6, 7] { Self.down(pool, id) }
        #expect(Set(Self.picks(&b, 100)) == [8])
        Self.down(pool, 8)
        #expect(b.pick(key: 0, now: 1) == .none)
    }

    @Test func p2cPrefersTheLessLoadedOfTwo() {
        let pool = Self.pool([1, 1], .p2c)
        var b = Balancer(pool: pool, seed: 3)
        for _ in 0..<4 { _ = b.connectionStarted(0) }
        // Two members, both drawn: the idle one always wins.
        #expect(Set(Self.picks(&b, 100)) == [1])
    }

    // MARK: maglev

    @Test func maglevTableIsBalancedByWeight() {
        for weights in [[Int](repeating: 1, count: 100), (0..<60).map { $0 % 4 + 1 }] {
            let ids = (0..<weights.count).map { BackendID($0) }
            let table = MaglevTable.build(ids, weights: weights.map { Int32($0) }, keys: ids.map { Self.address(Int($0)) }, size: 65_537)
            #expect(table.count == 65_537 && !table.contains(-1))
            var slots = [Int](repeating: 0, count: weights.count)
            for id in table { slots[Int(id)] += 1 }
            let total = weights.reduce(0, +)
            for (i, w) in weights.enumerated() {
                let share = Double(65_537) * Double(w) / Double(total)
                #expect(abs(Double(slots[i]) - share) <= share * 0.01, "backend \(i): \(slots[i]) slots, share \(share)")
            }
        }
    }

    @Test func maglevTableSizes() {
        #expect(MaglevTable.size(forBackends: 10) == 65_537)
        #expect(MaglevTable.size(forBackends: 655) == 65_537)
        #expect(MaglevTable.size(forBackends: 1000) == 131_101)
        #expect(MaglevTable.size(forBackends: 10_000) == 1_000_003)
        #expect(MaglevTable.size(forBackends: 16_000) == 1_000_003)
    }

    /// Removing 1 of N backends moves about 1/N of the keys: its own, and only a sliver of the rest.
    @Test func maglevRemovalDisruptsLittle() throws {
        let n = 50
        let pool = Self.pool([Int](repeating: 1, count: n), .maglev)
        var b = Balancer(pool: pool, seed: 1)
        let keys = (0..<100_000).map { StableHash.mix(UInt64($0)) }
        let before = Self.picks(&b, keys.count, key: { keys[$0] })
        try pool.remove(Self.address(17)).get()
        let rebuilt = b.refresh()
        #expect(rebuilt)
        let after = Self.picks(&b, keys.count, key: { keys[$0] })
        let moved = (0..<keys.count).filter { before[$0] != after[$0] }
        let own = moved.filter { before[$0] == 17 }.count
        let others = moved.count - own
        #expect(own == before.filter { $0 == 17 }.count)  // every key of the removed backend moved
        #expect(Double(moved.count) / Double(keys.count) < 1.5 / Double(n))
        #expect(Double(others) / Double(keys.count) < 0.01, "\(others) keys of other backends moved")
    }

    /// A down backend's keys spread over the rest; nobody else's key moves, and nothing is rebuilt.
    @Test func maglevDownBackendMovesOnlyItsKeys() {
        let pool = Self.pool([Int](repeating: 1, count: 20), .maglev)
        var b = Balancer(pool: pool, seed: 1)
        let keys = (0..<20_000).map { StableHash.mix(UInt64($0) &* 7) }
        let before = Self.picks(&b, keys.count, key: { keys[$0] })
        Self.down(pool, 5)
        let rebuilt = b.refresh()
        #expect(!rebuilt)
        let after = Self.picks(&b, keys.count, key: { keys[$0] })
        for i in 0..<keys.count where before[i] != 5 { #expect(after[i] == before[i]) }
        let spread = Set((0..<keys.count).filter { before[$0] == 5 }.map { after[$0] })
        #expect(!spread.contains(5) && spread.count >= 10)
    }

    /// Panic mode (every backend down): hashing still sends each client to its own backend.
    @Test func maglevInPanicKeepsClientsInPlace() {
        let pool = Self.pool([Int](repeating: 1, count: 8), .maglev)
        var b = Balancer(pool: pool, seed: 1)
        let keys = (0..<2000).map { StableHash.mix(UInt64($0) &+ 99) }
        let before = Self.picks(&b, keys.count, key: { keys[$0] })
        for id in 0..<8 { Self.down(pool, id) }
        let panicking = b.isPanicking
        #expect(panicking)
        #expect(Self.picks(&b, keys.count, key: { keys[$0] }) == before)
    }

    /// The table depends on the backend list only: a golden checksum, computed once, holds in every
    /// process (a per-process seed, such as Swift's `Hasher`, would break it), and pools built in
    /// another order of ids agree on addresses.
    @Test func maglevAgreesAcrossProcesses() throws {
        let addresses = (0..<10).map { SocketAddress(host: "192.0.2.\($0 + 1)", port: 8080)! }
        let ids = (0..<10).map { BackendID($0) }
        let table = MaglevTable.build(ids, weights: [Int32](repeating: 1, count: 10), keys: addresses, size: 65_537)
        var checksum: UInt64 = 0
        for (slot, id) in table.enumerated() { checksum = StableHash.mix(checksum ^ UInt64(slot) << 8 ^ UInt64(id)) }
        #expect(checksum == Self.goldenMaglevChecksum, "checksum \(checksum)")
        // Another pool: the same backends listed after one that was removed again, so every id differs.
        var settings = BalancingSettings()
        settings.algorithm = .maglev
        let extra = SocketAddress(host: "198.51.100.1", port: 1)!
        let other = BackendPool([BackendSpec(address: extra)] + addresses.map { BackendSpec(address: $0) }, balancing: settings)
        try other.remove(extra).get()
        let first = BackendPool(addresses.map { BackendSpec(address: $0) }, balancing: settings)
        var a = Balancer(pool: first, seed: 1), c = Balancer(pool: other, seed: 99)
        for k in 0..<2000 {
            let key = StableHash.sourceKey(SocketAddress(host: "203.0.113.\(k % 250)", port: UInt16(k))!) &+ UInt64(k / 250)
            guard case .backend(let x) = a.pick(key: key, now: 1), case .backend(let y) = c.pick(key: key, now: 1) else {
                Issue.record("no pick")
                return
            }
            #expect(first.address(of: x) == other.address(of: y))
        }
    }

    static let goldenMaglevChecksum: UInt64 = 760_913_453_160_221_798

    // MARK: source hash and keys

    @Test func sourceHashFollowsTheAddressAndMovesMostKeysOnChange() throws {
        let pool = Self.pool([Int](repeating: 1, count: 10), .sourceHash)
        var b = Balancer(pool: pool, seed: 1)
        let keys = (0..<10_000).map { StableHash.mix(UInt64($0)) }
        let before = Self.picks(&b, keys.count, key: { keys[$0] })
        #expect(before == Self.picks(&b, keys.count, key: { keys[$0] }))
        try pool.remove(Self.address(9)).get()
        b.refresh()
        let after = Self.picks(&b, keys.count, key: { keys[$0] })
        let moved = (0..<keys.count).filter { before[$0] != after[$0] }.count
        #expect(moved > keys.count * 8 / 10)  // what Maglev avoids
    }

    @Test func sourceKeyIgnoresPortAndMapsV4InV6() {
        let a = StableHash.sourceKey(SocketAddress(host: "10.1.2.3", port: 1)!)
        #expect(a == StableHash.sourceKey(SocketAddress(host: "10.1.2.3", port: 2)!))
        #expect(a == StableHash.sourceKey(SocketAddress(host: "::ffff:10.1.2.3", port: 3)!))
        #expect(a != StableHash.sourceKey(SocketAddress(host: "10.1.2.4", port: 1)!))
        #expect(StableHash.sourceKey(SocketAddress(host: "::1", port: 1)!) != StableHash.sourceKey(SocketAddress(host: "::2", port: 1)!))
    }

    @Test func retriesAvoidTheBackendThatFailed() {
        for algorithm in BalanceAlgorithm.allCases {
            let pool = Self.pool([1, 1, 1], algorithm)
            var b = Balancer(pool: pool, seed: 1)
            for k in 0..<50 {
                let key = StableHash.mix(UInt64(k))
                guard case .backend(let first) = b.pick(key: key, now: 1) else { Issue.record("\(algorithm)"); return }
                #expect(b.pick(key: key, avoid: first, now: 1) != .backend(first), "\(algorithm)")
            }
            // The avoided backend is still used when it is the only one left.
            Self.down(pool, 0)
            Self.down(pool, 1)
            #expect(b.pick(key: 1, avoid: 2, now: 1) == .backend(2), "\(algorithm)")
        }
    }

    // MARK: slow start

    @Test func slowStartRamp() {
        let s: UInt64 = 1_000_000_000
        #expect(SlowStart.permille(since: 0, now: 5 * s, duration: 10 * s) == 1000)  // up since start-up
        #expect(SlowStart.permille(since: s, now: s, duration: 10 * s) == SlowStart.floor)
        #expect(SlowStart.permille(since: s, now: 2 * s, duration: 10 * s) == 100)
        #expect(SlowStart.permille(since: s, now: 6 * s, duration: 10 * s) == 500)
        #expect(SlowStart.permille(since: s, now: 11 * s, duration: 10 * s) == 1000)
        #expect(SlowStart.permille(since: s, now: 2 * s, duration: 0) == 1000)
    }

    @Test(arguments: [BalanceAlgorithm.roundRobin, .p2c, .leastConn])
    func aBackendThatComesUpRamps(_ algorithm: BalanceAlgorithm) throws {
        let pool = Self.pool([1, 1, 1, 1], algorithm) { $0.slowStart = .seconds(10) }
        var b = Balancer(pool: pool, seed: 5)
        Self.down(pool, 3)
        _ = pool.apply(.probeSucceeded, to: 3, rise: 1, fall: 3)
        let since = pool.table.upSince[3].load(ordering: .relaxed)
        #expect(since > 0)
        func share(at now: UInt64) -> Double {
            var counts = [Int](repeating: 0, count: 4)
            for _ in 0..<4000 {
                guard case .backend(let id) = b.pick(key: 0, now: now) else { return -1 }
                counts[Int(id)] += 1
                // Keep the counts as connections so least-conn and p2c see the load.
                _ = b.connectionStarted(id)
            }
            for id in 0..<4 { pool.table.activeConnections[id].store(0, ordering: .relaxed) }
            return Double(counts[3]) / 4000
        }
        let early = share(at: since + 1_000_000_000)  // 10% of its weight
        let half = share(at: since + 5_000_000_000)
        let done = share(at: since + 11_000_000_000)
        #expect(early < 0.06, "\(algorithm) early \(early)")
        #expect(half > early && half < done, "\(algorithm) half \(half)")
        #expect(abs(done - 0.25) < 0.03, "\(algorithm) done \(done)")
    }

    // MARK: limits

    @Test func aFullBackendIsSkippedAndAllFullIsFull() {
        let pool = Self.pool([1, 1], .roundRobin) { $0.backendMaxConns = 2 }
        var b = Balancer(pool: pool, seed: 1, panicThreshold: nil)
        #expect(b.connectionStarted(0) && b.connectionStarted(0))
        let third = b.connectionStarted(0)
        #expect(!third)  // a third would pass the limit: refused, not counted
        #expect(pool.info(id: 0).activeConnections == 2)
        #expect(Set(Self.picks(&b, 10)) == [1])
        #expect(b.connectionStarted(1) && b.connectionStarted(1))
        #expect(b.pick(key: 0, now: 1) == .full)
        b.connectionEnded(0)
        #expect(Self.picks(&b, 1) == [0])
        Self.down(pool, 0)
        Self.down(pool, 1)
        #expect(b.pick(key: 0, now: 1) == .none)
    }

    @Test func perBackendLimitWinsOverTheServiceDefault() {
        var settings = BalancingSettings()
        settings.backendMaxConns = 5
        let pool = BackendPool([BackendSpec(address: Self.address(0), maxConnections: 1), BackendSpec(address: Self.address(1))], balancing: settings)
        #expect(pool.table.maxConns[0] == 1 && pool.table.maxConns[1] == 5)
    }
}
