import CShim

/// The one place the event loops read time. State machines and the timing wheel take `now` as an
/// argument instead, so tests drive them with a fake clock.
public enum MonotonicClock {
    @inline(__always)
    public static func now() -> UInt64 { lb_monotonic_ns() }
}

extension Duration {
    /// Whole nanoseconds (saturating), the unit the loops and wheels use.
    public var nanoseconds: UInt64 {
        let c = components
        if c.seconds < 0 { return 0 }
        let (s, o) = UInt64(c.seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if o { return .max }
        return s &+ UInt64(c.attoseconds / 1_000_000_000)
    }
}
