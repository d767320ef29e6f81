import Glibc
import LoadBalancer

/// Polls `condition` until it holds or `timeout` passes: the tests' only way to wait. Returns whether
/// it held, so the caller's `#expect` fails (instead of hanging) when it never does.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicClock.now() + timeout.nanoseconds
    var delay: UInt32 = 500
    while true {
        if condition() { return true }
        if MonotonicClock.now() >= deadline { return false }
        usleep(delay)
        delay = min(delay * 2, 20_000)
    }
}

extension OSThread {
    /// Starts `body` on its own thread for a test's second party (a sender while the test reads, a
    /// server's accept loop); `join()` waits for it. A test cannot go on without it, so a failure to
    /// start one stops the run.
    static func start(_ body: @escaping @Sendable () -> Void) -> OSThread {
        do {
            return try spawn(body)
        } catch {
            preconditionFailure("\(error)")
        }
    }
}

/// A seeded byte stream (SplitMix64), so failures reproduce.
struct SeededBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var v = next()
            for _ in 0..<8 where i < count { out[i] = UInt8(truncatingIfNeeded: v); v >>= 8; i += 1 }
        }
        return out
    }
}

/// Milliseconds since an arbitrary start, for measuring (never for synchronising).
func monotonicMilliseconds() -> UInt64 { MonotonicClock.now() / 1_000_000 }
