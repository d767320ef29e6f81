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

/// Milliseconds since an arbitrary start, for measuring (never for synchronising).
func monotonicMilliseconds() -> UInt64 { MonotonicClock.now() / 1_000_000 }

/// Lets `duration` of wall time pass while a test measures something over it (a process's CPU time,
/// say). A measurement window, never a way to wait for something to happen: that is `eventually`.
func observationWindow(_ duration: Duration) {
    let end = MonotonicClock.now() + duration.nanoseconds
    while MonotonicClock.now() < end { usleep(10_000) }
}
