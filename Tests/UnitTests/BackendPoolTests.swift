@testable import LoadBalancer
import Testing

@Suite struct BackendPoolTests {
    func specs(_ ports: ClosedRange<UInt16>) -> [BackendSpec] {
        ports.map { BackendSpec(address: SocketAddress(host: "127.0.0.1", port: $0)!) }
    }

    func picks(_ view: borrowing RoundRobinView, _ pool: BackendPool, _ n: Int) -> [UInt16] {
        (0..<n).map { _ in pool.address(of: view.pick(from: pool)!).port }
    }

    @Test func roundRobinInOrder() {
        let pool = BackendPool(specs(1...3))
        var view = RoundRobinView()
        view.rebuild(from: pool)
        #expect(picks(view, pool, 6) == [1, 2, 3, 1, 2, 3])
    }

    @Test func skipsDownBackendsAndTheirReturn() {
        let pool = BackendPool(specs(1...4))
        var view = RoundRobinView()
        view.rebuild(from: pool)
        let id2 = pool.id(of: SocketAddress(host: "127.0.0.1", port: 2)!)!
        #expect(pool.apply(.connectFailed(.refused), to: id2, rise: 2, fall: 3).0 == .wentDown)
        // Even before the view rebuilds, the down backend is skipped.
        let stale = picks(view, pool, 8)
        #expect(!stale.contains(2))
        let changed1 = view.refresh(from: pool)
        #expect(changed1)
        #expect(Set(picks(view, pool, 6)) == [1, 3, 4])
        #expect(pool.downBackends == 1)
        _ = pool.apply(.probeSucceeded, to: id2, rise: 2, fall: 3)
        #expect(pool.apply(.probeSucceeded, to: id2, rise: 2, fall: 3).0 == .wentUp)
        let changed2 = view.refresh(from: pool)
        #expect(changed2)
        #expect(Set(picks(view, pool, 8)) == [1, 2, 3, 4])
        #expect(pool.downBackends == 0)
    }

    @Test func panicModeUsesEveryActiveBackendWhenTooFewAreUp() throws {
        let pool = BackendPool(specs(1...4))
        var view = RoundRobinView(panicThreshold: 50)
        view.rebuild(from: pool)
        func down(_ port: UInt16) { _ = pool.apply(.connectFailed(.refused), to: pool.id(of: SocketAddress(host: "127.0.0.1", port: port)!)!, rise: 2, fall: 3) }
        down(1)
        _ = view.refresh(from: pool)
        #expect(!view.panicking && Set(picks(view, pool, 8)) == [2, 3, 4])  // 75% up: above the threshold
        down(2)
        _ = view.refresh(from: pool)
        #expect(view.panicking && Set(picks(view, pool, 8)) == [1, 2, 3, 4])  // 50% up: at it, so all of them
        _ = try pool.drain(SocketAddress(host: "127.0.0.1", port: 4)!).get()
        _ = view.refresh(from: pool)
        #expect(Set(picks(view, pool, 8)) == [1, 2, 3])  // drained stays out, panic or not
    }

    @Test func defaultPanicStartsOnlyWhenNoneIsUp() {
        let pool = BackendPool(specs(1...3))
        var view = RoundRobinView()
        view.rebuild(from: pool)
        for id in view.members.dropLast() { _ = pool.apply(.connectFailed(.refused), to: id, rise: 2, fall: 3) }
        _ = view.refresh(from: pool)
        #expect(!view.panicking && Set(picks(view, pool, 6)) == [3])
        _ = pool.apply(.connectFailed(.refused), to: view.members[2], rise: 2, fall: 3)
        _ = view.refresh(from: pool)
        #expect(view.panicking && Set(picks(view, pool, 6)) == [1, 2, 3])
    }

    @Test func allDownPicksNothingWithPanicOff() {
        let pool = BackendPool(specs(1...2))
        var view = RoundRobinView(panicThreshold: nil)
        view.rebuild(from: pool)
        for id in view.members { _ = pool.apply(.connectFailed(.refused), to: id, rise: 2, fall: 3) }
        #expect(view.pick(from: pool) == nil)
        _ = view.refresh(from: pool)
        let count = view.availableCount
        let none = view.pick(from: pool) == nil
        #expect(count == 0 && none)
    }

    @Test func addDrainRemoveAtRunTime() throws {
        let pool = BackendPool(specs(1...2))
        var view = RoundRobinView()
        view.rebuild(from: pool)
        let three = SocketAddress(host: "127.0.0.1", port: 3)!
        _ = try pool.add(BackendSpec(address: three)).get()
        #expect(throws: PoolError.duplicate(three)) { try pool.add(BackendSpec(address: three)).get() }
        let changed3 = view.refresh(from: pool)
        #expect(changed3)
        #expect(Set(picks(view, pool, 6)) == [1, 2, 3])
        try pool.drain(SocketAddress(host: "127.0.0.1", port: 1)!).get()
        _ = view.refresh(from: pool)
        #expect(Set(picks(view, pool, 6)) == [2, 3])
        #expect(pool.info(SocketAddress(host: "127.0.0.1", port: 1)!)?.admin == .draining)
        try pool.undrain(SocketAddress(host: "127.0.0.1", port: 1)!).get()
        _ = view.refresh(from: pool)
        #expect(Set(picks(view, pool, 6)) == [1, 2, 3])
        try pool.drain(SocketAddress(host: "127.0.0.1", port: 1)!).get()
        _ = view.refresh(from: pool)
        try pool.remove(three).get()
        _ = view.refresh(from: pool)
        #expect(Set(picks(view, pool, 4)) == [2])
        #expect(pool.count == 2)
        #expect(throws: PoolError.unknown(three)) { try pool.remove(three).get() }
    }

    @Test func markDownByHandUntilProbesBringItBack() throws {
        let pool = BackendPool(specs(1...2))
        var view = RoundRobinView()
        view.rebuild(from: pool)
        let one = SocketAddress(host: "127.0.0.1", port: 1)!
        #expect(try pool.markDown(one).get() == true)
        #expect(try pool.markDown(one).get() == false)  // already down
        let changed = view.refresh(from: pool)
        #expect(changed)
        #expect(Set(picks(view, pool, 4)) == [2])
        let id = try #require(pool.id(of: one))
        _ = pool.apply(.probeSucceeded, to: id, rise: 2, fall: 3)
        #expect(pool.apply(.probeSucceeded, to: id, rise: 2, fall: 3).0 == .wentUp)
        #expect(throws: PoolError.unknown(SocketAddress(host: "127.0.0.1", port: 9)!)) {
            try pool.markDown(SocketAddress(host: "127.0.0.1", port: 9)!).get()
        }
    }

    @Test func healthChangesAfterRemovalDoNotSkewTheDownCount() throws {
        let pool = BackendPool(specs(1...2))
        let one = SocketAddress(host: "127.0.0.1", port: 1)!
        let id = try #require(pool.id(of: one))
        _ = pool.apply(.connectFailed(.refused), to: id, rise: 1, fall: 1)
        #expect(pool.downBackends == 1)
        try pool.remove(one).get()
        #expect(pool.downBackends == 0)
        // A probe that was in flight when it was removed comes back good.
        _ = pool.apply(.probeSucceeded, to: id, rise: 1, fall: 1)
        #expect(pool.downBackends == 0)
        let two = try #require(pool.id(of: SocketAddress(host: "127.0.0.1", port: 2)!))
        _ = pool.apply(.connectFailed(.refused), to: two, rise: 1, fall: 1)
        #expect(pool.downBackends == 1)
    }

    @Test func aRemovalRacingAHealthChangeCannotUncountTwice() throws {
        let pool = BackendPool(specs(1...2))
        let one = SocketAddress(host: "127.0.0.1", port: 1)!
        let id = try #require(pool.id(of: one))
        // The health word flips (a worker's CAS) but the worker has not settled the count yet when the
        // backend is removed: the removal must not take off a count that was never added.
        _ = pool.table.apply(.connectFailed(.refused), to: id, rise: 1, fall: 1)
        try pool.remove(one).get()
        #expect(pool.downBackends == 0)
    }

    @Test func aRemovedSlotIsNotReusedAtOnce() throws {
        let pool = BackendPool(specs(1...1), headroom: 1)  // room for one backend added at run time
        let two = SocketAddress(host: "127.0.0.1", port: 2)!
        let id = try pool.add(BackendSpec(address: two)).get()
        try pool.remove(two).get()
        // Workers and probes may still hold the old id for a while: its slot waits out the grace.
        #expect(pool.add(BackendSpec(address: SocketAddress(host: "127.0.0.1", port: 3)!)) == .failure(.full(capacity: 2)))
        #expect(pool.info(id: id).admin == .removed)
    }

    @Test func sharedCounterSpreadsAcrossViews() {
        // Two workers' views share one counter: together they still go round in order.
        let pool = BackendPool(specs(1...4))
        var a = RoundRobinView(), b = RoundRobinView()
        a.rebuild(from: pool)
        b.rebuild(from: pool)
        var seen: [UInt16] = []
        for i in 0..<8 { seen.append(pool.address(of: (i % 2 == 0 ? a.pick(from: pool) : b.pick(from: pool))!).port) }
        #expect(seen == [1, 2, 3, 4, 1, 2, 3, 4])
    }
}
