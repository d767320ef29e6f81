/// How a service chooses a backend for a new pair (`--balance`). README.md says when to pick which.
public enum BalanceAlgorithm: String, Sendable, CaseIterable {
    /// Smooth weighted round robin (nginx): weight-proportional, no bursts; plain rotation for equal weights.
    case roundRobin = "round-robin"
    /// Fewest active pairs relative to weight, counted across workers; ties in rotation.
    case leastConn = "least-conn"
    /// Power of two random choices on active pairs / weight (Mitzenmacher 2001).
    case p2c
    /// Maglev consistent hashing of the client's address (Eisenbud et al., NSDI 2016).
    case maglev
    /// The client's address hashed modulo the member count: moves nearly every client when the pool changes.
    case sourceHash = "source-hash"

    /// Whether the pick follows the client's address (a retry still avoids the backend that failed).
    public var hashesSource: Bool { self == .maglev || self == .sourceHash }
}

/// One service's balancing settings: the algorithm and how backends are limited and ramped.
public struct BalancingSettings: Sendable, Equatable {
    public var algorithm: BalanceAlgorithm = .roundRobin
    /// A backend that comes up or is added ramps from a small share to its full weight over this long
    /// (`--slow-start`; zero: off). Applies to round-robin, least-conn and p2c; hashing algorithms keep
    /// clients where they hash.
    public var slowStart: Duration = .zero
    /// Active pairs a backend may hold (`--backend-max-conns`); 0: no limit. A backend's own
    /// `BackendSpec.maxConnections` wins over this.
    public var backendMaxConns = 0

    public init() {}
}
