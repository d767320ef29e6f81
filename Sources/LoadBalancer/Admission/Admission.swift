import Synchronization

/// One service's admission state, shared by its workers: the pair count `--max-conns` limits, the
/// per-source counts, and the allow/deny lists. Checked once per accepted connection, never per byte.
final class Admission: Sendable {
    let settings: AdmissionSettings
    /// The effective `--max-conns`.
    let maxConns: Int
    let queueTimeout: UInt64
    /// Pairs admitted and not yet closed, across workers. A worker reserves a place before calling
    /// accept, so the limit is never overshot and never needs an accept-then-close.
    let active = Atomic<Int>(0)
    /// Open pairs per client address (by `StableHash.sourceKey`), only when `maxConnsPerSource` is set.
    private let perSource = Mutex<[UInt64: Int32]>([:])
    let checksAddress: Bool

    init(_ settings: AdmissionSettings, fdLimit: Int, fdReserve: Int) {
        self.settings = settings
        maxConns = settings.maxConns ?? Self.defaultMaxConns(fdLimit: fdLimit, fdReserve: fdReserve)
        queueTimeout = settings.queueTimeout.nanoseconds
        checksAddress = !settings.allow.isEmpty || !settings.deny.isEmpty || settings.maxConnsPerSource > 0
    }

    /// Two descriptors per pair, after the reserve kept for probes and backend sockets.
    static func defaultMaxConns(fdLimit: Int, fdReserve: Int) -> Int {
        max(1, (fdLimit - fdReserve) / 2)
    }

    /// Takes a place for a connection about to be accepted; false at the limit.
    @inline(__always)
    func reserve() -> Bool {
        if active.add(1, ordering: .relaxed).newValue <= maxConns { return true }
        active.subtract(1, ordering: .relaxed)
        return false
    }

    @inline(__always)
    func release() { active.subtract(1, ordering: .relaxed) }

    var hasRoom: Bool { active.load(ordering: .relaxed) < maxConns }

    /// Counts a connection from `key`; false (nothing counted) when that address is at its limit.
    func admitSource(_ key: UInt64) -> Bool {
        let limit = Int32(clamping: settings.maxConnsPerSource)
        return perSource.withLock { counts in
            let n = counts[key, default: 0]
            if n >= limit { return false }
            counts[key] = n + 1
            return true
        }
    }

    func releaseSource(_ key: UInt64) {
        perSource.withLock { counts in
            guard let n = counts[key] else { return }
            counts[key] = n > 1 ? n - 1 : nil
        }
    }

    /// Open pairs from `key` (for tests and, later, the admin API).
    func sourceCount(_ key: UInt64) -> Int { perSource.withLock { Int($0[key] ?? 0) } }
}
