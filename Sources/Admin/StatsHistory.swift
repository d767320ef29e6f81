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
    /// Per backend: connections total at the last sample, and new connections per second averaged
    /// over about ten seconds (an exponential moving average). One second alone shows round robin's
    /// sweep: with fewer connections a second than backends, each gets 0 or 1.
    private(set) var backendTotals: [BackendKey: Int] = [:]
    /// Per service: its sample at the last tick, and its rates since the one before.
    private(set) var serviceSamples: [String: Sample] = [:]
    private(set) var serviceRates: [String: Rates] = [:]
    private(set) var backendRates: [BackendKey: Double] = [:]

    struct BackendKey: Hashable {
        var service: String
        var address: SocketAddress
    }
    static let rateSmoothing = 0.1

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

    /// Per-second rates from `before` to `s`, `seconds` apart (a counter that went back reads 0).
    static func rates(_ s: Sample, _ before: Sample, _ seconds: Double) -> Rates {
        func rate(_ a: Int, _ b: Int) -> Double { Double(max(a - b, 0)) / seconds }
        var r = Rates()
        r.connections = rate(s.accepted, before.accepted)
        r.bytesUp = rate(s.bytesUp, before.bytesUp)
        r.bytesDown = rate(s.bytesDown, before.bytesDown)
        r.badGateways = rate(s.badGateways, before.badGateways)
        r.connectFailures = rate(s.connectFailures, before.connectFailures)
        r.resets = rate(s.resets, before.resets)
        r.timeouts = rate(s.timeouts, before.timeouts)
        return r
    }

    /// Adds a sample (the process's; each service's is taken from `services`); the first one only
    /// sets the baseline.
    mutating func record(_ s: Sample, services: [ServiceView], backends: [ServiceBackend]) {
        defer { last = s }
        let seconds = last.map { Double(s.time &- $0.time) / 1e9 } ?? 0
        var samples: [String: Sample] = [:]
        var serviceRates: [String: Rates] = [:]
        for service in services {
            let sample = Self.sample(service.metrics, now: s.time)
            samples[service.name] = sample
            if seconds > 0, let before = serviceSamples[service.name] { serviceRates[service.name] = Self.rates(sample, before, seconds) }
        }
        serviceSamples = samples
        self.serviceRates = serviceRates
        var totals: [BackendKey: Int] = [:]
        totals.reserveCapacity(backends.count)
        var perBackend: [BackendKey: Double] = [:]
        perBackend.reserveCapacity(backends.count)
        for b in backends {
            let key = BackendKey(service: b.service, address: b.info.address)
            let total = b.info.totalConnections
            totals[key] = total
            guard seconds > 0, let before = backendTotals[key] else { continue }
            let now = Double(max(total - before, 0)) / seconds
            let smoothed = (backendRates[key] ?? now) * (1 - Self.rateSmoothing) + now * Self.rateSmoothing
            if smoothed >= 0.01 { perBackend[key] = smoothed }
        }
        backendTotals = totals
        backendRates = perBackend
        guard let last, seconds > 0 else { return }
        rates.append(Self.rates(s, last, seconds))
        active.append(s.active)
        if rates.count > capacity {
            rates.removeFirst(rates.count - capacity)
            active.removeFirst(active.count - capacity)
        }
    }
}
