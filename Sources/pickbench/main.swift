import LoadBalancer

// ns per pick for each algorithm, 10 and 10,000 backends, 10% down. See ci/pick-bench.
let picks = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1_000_000 : 1_000_000
print("algorithm     backends  weights   ns/pick")
for algorithm in BalanceAlgorithm.allCases {
    for backends in [10, 10_000] {
        for weighted in [false, true] {
            // least-conn reads every member: fewer picks keep the 10,000-backend run short.
            let n = algorithm == .leastConn && backends > 100 ? max(picks / 100, 1000) : picks
            let r = PickBenchmark.run(algorithm, backends: backends, downFraction: 0.1, weighted: weighted, picks: n)
            let name = algorithm.rawValue.padding(13)
            print("\(name) \(String(backends).padding(9)) \((weighted ? "1,2,3" : "equal").padding(9)) \(String(format2(r.nanosecondsPerPick)))\(r.misses > 0 ? "  (\(r.misses) misses)" : "")")
        }
    }
}

func format2(_ x: Double) -> String {
    let scaled = Int((x * 10).rounded())
    return "\(scaled / 10).\(scaled % 10)"
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
