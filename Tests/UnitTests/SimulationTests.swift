import Dispatch
import Glibc
import LoadBalancer
import Simulation
import Synchronization
import Testing

/// The real worker against the simulated kernel, one scenario per seed (docs/simulation.md).
/// `LB_SIM_SEED=N` runs that one seed with its trace; `LB_SIM_SEEDS=N` changes how many run.
@Suite struct SimulationTests {
    static func env(_ name: String) -> UInt64? { getenv(name).flatMap { UInt64(String(cString: $0)) } }
    static var seedCount: Int { Int(env("LB_SIM_SEEDS") ?? 10_000) }
    static var firstSeed: UInt64 { env("LB_SIM_FIRST") ?? 1 }

    /// Runs `count` seeds from `first` on every core; returns the failed runs' reports (at most 3).
    static func sweep(first: UInt64, count: Int, planted: PlantedFaults = [], stopAtFirst: Bool = false) -> (failures: [String], firstFailing: UInt64?) {
        let next = Atomic<Int>(0)
        let totals = Mutex<(failed: Int, clients: Int, completed: Int, resets: Int, badGateways: Int, bytes: Int, queued: Int, pauses: Int)>((0, 0, 0, 0, 0, 0, 0, 0))
        let started = MonotonicClock.now()
        let found = Mutex<(reports: [String], first: UInt64?)>(([], nil))
        let threads = max(1, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                if stopAtFirst, let f = found.withLock({ $0.first }), f < first + UInt64(i) { return }
                let seed = first + UInt64(i)
                let run = SimulationRun(seed: seed, planted: planted)
                let ok = run.execute()
                totals.withLock {
                    $0.failed += ok ? 0 : 1
                    $0.clients += run.clients.count
                    $0.completed += run.stats.completed
                    $0.resets += run.stats.resets
                    $0.badGateways += run.stats.badGateways
                    $0.bytes += run.stats.bytes
                    $0.queued += run.stats.queued
                    $0.pauses += run.stats.acceptPauses
                }
                if !ok {
                    let report = run.report
                    found.withLock {
                        if $0.reports.count < 3 { $0.reports.append(report) }
                        if $0.first == nil || seed < $0.first! { $0.first = seed }
                    }
                }
            }
        }
        let seconds = Double(MonotonicClock.now() - started) / 1e9
        let t = totals.withLock { $0 }
        print("simulation: seeds \(first)...\(first + UInt64(count) - 1) on \(threads) threads in \((seconds * 10).rounded() / 10) s: \(t.failed) failed; \(t.clients) connections (\(t.completed) whole streams, \(t.resets) resets, \(t.badGateways) 502s, \(t.queued) queued, \(t.pauses) accept pauses, \(t.bytes / 1_000_000) MB checked)")
        return found.withLock { ($0.reports, $0.first) }
    }

    @Test func seeds() {
        if let one = getenv("LB_SIM_SEED").flatMap({ UInt64(String(cString: $0)) }) {
            let run = SimulationRun(seed: one)
            let ok = run.execute()
            print(run.report)
            #expect(ok, "seed \(one)")
            return
        }
        let (reports, _) = Self.sweep(first: Self.firstSeed, count: Self.seedCount)
        for r in reports { Issue.record(Comment(rawValue: r)) }
    }

    /// Each planted fault (a real-world proxy bug, switched on through `SimKernel.plantedFaults`) must
    /// be caught within a small part of the CI seed budget; the seeds it took are printed.
    @Test(arguments: PlantedFaults.all.map(\.name))
    func findsPlantedFault(_ name: String) {
        let fault = PlantedFaults.all.first { $0.name == name }!.fault
        let budget = 500
        for seed in UInt64(1)...UInt64(budget) {
            let run = SimulationRun(seed: seed, planted: fault)
            if !run.execute() {
                print("planted fault \(name): found by seed \(seed) (\(seed) seeds): \(run.failures.first ?? run.world.failure ?? "")")
                return
            }
        }
        Issue.record("planted fault \(name) not found in \(budget) seeds")
    }
}
