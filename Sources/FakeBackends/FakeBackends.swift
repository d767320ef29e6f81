import LoadBalancer

/// What a healthy fake backend does with a connection.
public enum BackendMode: String, Sendable, CaseIterable {
    /// HTTP/1.1 with keep-alive: every request gets `200 OK`, `X-Backend: <port>` and `backend <port>\n`.
    case http
    /// Every byte returned as is.
    case echo
    /// Streams bytes out until the client goes away; input is read and dropped.
    case source
    /// Swallows every byte; never writes.
    case sink
}

/// How a faulty backend misbehaves. `mixed` is only a request: it resolves, per backend, to one of the others.
public enum FaultKind: String, Sendable, CaseIterable {
    /// No listener: connect gets ECONNREFUSED.
    case refuse
    /// Accept, then close (FIN) without a byte.
    case close
    /// Accept, then RST.
    case reset
    /// Accept, never read or write (the connection is dropped only when the client closes, or on kill/stop).
    case hang
    /// Each response delayed by `FarmConfiguration.delay`.
    case slow
    /// Each response sent one byte per `FarmConfiguration.dripInterval`.
    case drip
    /// Part of the response, then RST.
    case dieMid = "die-mid"
    /// Alternately refuse and serve, every `FarmConfiguration.flapPeriod` (serving first).
    case flap
    /// A seeded mix of all the others.
    case mixed

    /// The kinds a backend can actually have (everything but `mixed`).
    public static let concrete: [FaultKind] = allCases.filter { $0 != .mixed }
}

/// Per-backend traffic counters. `faultsHit` counts connections that met the backend's fault
/// (refusals are not seen: nothing is listening).
public struct BackendCounters: Sendable, Equatable {
    public var connections: UInt64 = 0
    public var requests: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var faultsHit: UInt64 = 0

    public init() {}

    public var isZero: Bool { self == BackendCounters() }

    public static func + (a: BackendCounters, b: BackendCounters) -> BackendCounters {
        var sum = a
        sum.connections &+= b.connections
        sum.requests &+= b.requests
        sum.bytesIn &+= b.bytesIn
        sum.bytesOut &+= b.bytesOut
        sum.faultsHit &+= b.faultsHit
        return sum
    }
}

/// Everything a farm runs with. Port 0 in `addresses` means "pick a free port" (tests use it).
public struct FarmConfiguration: Sendable {
    /// The default pool's size: 127.0.0.1:20000-24999 then [::1]:25000-29999.
    public static let defaultPoolSize = 10_000
    /// Listen backlog per backend: small, to keep kernel memory low across thousands of listeners.
    public static let backlog: Int32 = 128

    public var addresses: [SocketAddress]
    public var mode: BackendMode = .http
    /// Fraction of backends that are faulty; exactly `round(count * failRate)` are.
    public var failRate: Double = 0
    public var fault: FaultKind = .mixed
    public var seed: UInt64 = 1
    /// How long a `slow` backend holds each response.
    public var delay: Duration = .milliseconds(200)
    /// How long a `flap` backend stays in each state.
    public var flapPeriod: Duration = .seconds(1)
    /// Time between two bytes of a `drip` backend (rounded up to the loop's 10 ms timer tick).
    public var dripInterval: Duration = .milliseconds(10)
    /// Event loop threads serving all listeners.
    public var loops: Int = 2
    /// Leave out an explicit port that another socket holds (EADDRINUSE) instead of failing: the
    /// `fakebackends` command does, so one busy port in a range of thousands does not stop the farm.
    public var skipBusyPorts = false

    public init(
        addresses: [SocketAddress], mode: BackendMode = .http, failRate: Double = 0, fault: FaultKind = .mixed,
        seed: UInt64 = 1, delay: Duration = .milliseconds(200), flapPeriod: Duration = .seconds(1), loops: Int = 2
    ) {
        self.addresses = addresses
        self.mode = mode
        self.failRate = failRate
        self.fault = fault
        self.seed = seed
        self.delay = delay
        self.flapPeriod = flapPeriod
        self.loops = loops
    }

    /// `count` backends on free ports of `host` (numeric, e.g. `127.0.0.1` or `::1`).
    public init(ephemeral count: Int, host: String = "127.0.0.1", mode: BackendMode = .http) {
        let any = SocketAddress(host: host, port: 0) ?? SocketAddress(ipv4: (127, 0, 0, 1), port: 0)
        self.init(addresses: Array(repeating: any, count: count), mode: mode)
    }

    /// The first `count` backends of the default pool's layout (what `lb` balances over by default).
    public init(defaultPool count: Int = FarmConfiguration.defaultPoolSize, mode: BackendMode = .http) {
        self.init(addresses: Configuration.defaultPool.prefix(count).map(\.address), mode: mode)
    }
}
