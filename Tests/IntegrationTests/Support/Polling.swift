import CShim
import Glibc

/// Polls `condition` until it holds or `timeout` passes; true when it held. Tests wait on state this
/// way instead of sleeping for a guessed time.
func eventually(timeout: Duration = .seconds(5), every interval: Duration = .milliseconds(5), _ condition: () -> Bool) -> Bool {
    let deadline = lb_monotonic_ns() + UInt64(timeout.components.seconds) * 1_000_000_000
        + UInt64(timeout.components.attoseconds / 1_000_000_000)
    while true {
        if condition() { return true }
        if lb_monotonic_ns() >= deadline { return false }
        let ns = Int(interval.components.attoseconds / 1_000_000_000) + Int(interval.components.seconds) * 1_000_000_000
        var ts = timespec(tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000)
        nanosleep(&ts, nil)
    }
}

/// Milliseconds since an arbitrary start, for measuring (never for synchronising).
func monotonicMilliseconds() -> UInt64 { lb_monotonic_ns() / 1_000_000 }
