import LoadBalancer

/// Once a second (the admin server's tick), a sample of the totals; rates are the differences. Keeps
/// the last `capacity` seconds for the dashboard's charts, and the per-backend connection totals of
/// the last sample for the heat map's per-backend rates. Owned by the admin server's thread (under a lock
/// for the handler, which runs on the same thread).
struct StatsHistory {
    struct Sample {
        var time: UInt64 = 0
        var accepted = 0
        var bytesUp = 0
        var bytesDown = 0
        var active = 0
        var badGateways = 0
        var connectFailures = 0
        var resets = 0
        var timeouts = 0
    }

    /// Per-second rates between two samples (the newest entry of each series in `series`).
    struct Rates {
        var connections = 0.0
        var bytesUp = 0.0
        var bytesDown = 0.0
        var badGateways = 0.0
        var connectFailures = 0.0
        var resets = 0.0
        var timeouts = 0.0
    }

    let capacity: Int
    private(set) var rates: [Rates] = []
    private(set) var active: [Int] = []
    private var last: Sample?
    /// Per backend (pool order): connections total at the last sample, and connections per second.
    private(set) var backendTotals: [SocketAddress: Int] = [:]
    private(set) var backendRates: [SocketAddress: Double] = [:]

    init(capacity: Int = 600) { self.capacity = capacity }

    static func sample(_ m: MetricsSnapshot, now: UInt64) -> Sample {
        let c = m.counters
        var s = Sample()
        s.time = now
        s.accepted = c[.accepted]
        s.bytesUp = c[.bytesUp]
        s.bytesDown = c[.bytesDown]
        s.active = c[.activePairs]
        s.badGateways = c[.badGateways]
        s.connectFailures = m.connectFailures.values.reduce(0, +)
        s.resets = (m.closes[.clientReset] ?? 0) + (m.closes[.backendReset] ?? 0)
        s.timeouts = (m.closes[.idleTimeout] ?? 0) + (m.closes[.finTimeout] ?? 0)
        return s
    }

    /// Adds a sample; the first one only sets the baseline.
    mutating func record(_ s: Sample, backends: [BackendInfo]) {
        defer { last = s }
        let seconds = last.map { Double(s.time &- $0.time) / 1e9 } ?? 0
        var totals: [SocketAddress: Int] = [:]
        totals.reserveCapacity(backends.count)
        var perBackend: [SocketAddress: Double] = [:]
        perBackend.reserveCapacity(backends.count)
        for b in backends {
            totals[b.address] = b.totalConnections
            if seconds > 0, let before = backendTotals[b.address], b.totalConnections > before {
                perBackend[b.address] = Double(b.totalConnections - before) / seconds
            }
        }
        backendTotals = totals
        backendRates = perBackend
        guard let last, seconds > 0 else { return }
        func rate(_ a: Int, _ b: Int) -> Double { Double(max(a - b, 0)) / seconds }
        var r = Rates()
        r.connections = rate(s.accepted, last.accepted)
        r.bytesUp = rate(s.bytesUp, last.bytesUp)
        r.bytesDown = rate(s.bytesDown, last.bytesDown)
        r.badGateways = rate(s.badGateways, last.badGateways)
        r.connectFailures = rate(s.connectFailures, last.connectFailures)
        r.resets = rate(s.resets, last.resets)
        r.timeouts = rate(s.timeouts, last.timeouts)
        rates.append(r)
        active.append(s.active)
        if rates.count > capacity {
            rates.removeFirst(rates.count - capacity)
            active.removeFirst(active.count - capacity)
        }
    }
}
