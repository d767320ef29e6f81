/// One service's admission limits: who may connect and how many pairs it may hold.
public struct AdmissionSettings: Sendable, Equatable {
    /// Pairs the service holds at once (`--max-conns`); nil: derived from RLIMIT_NOFILE (half the
    /// descriptors left after the reserve, two per pair). At the limit accepting stops and clients
    /// wait in the kernel's listen backlog.
    public var maxConns: Int?
    /// How long a pair waits for a place when every backend is at its limit (`--queue-timeout`),
    /// before it gets the on-no-backend answer.
    public var queueTimeout: Duration = .seconds(5)
    /// `--allow CIDR`, repeatable: when any is given, only matching clients are served.
    public var allow: [CIDR] = []
    /// `--deny CIDR`, repeatable: matching clients are refused (a deny wins over an allow).
    public var deny: [CIDR] = []
    /// Pairs one client address may hold at once (`--max-conns-per-source`); 0: no limit.
    public var maxConnsPerSource = 0

    public init() {}

    /// Whether a client at `address` may connect at all (the allow and deny lists).
    public func permits(_ address: SocketAddress) -> Bool {
        if deny.contains(where: { $0.contains(address) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(address) }
    }
}
