import Glibc

/// A POSIX thread running one closure: the balancer's workers, the farm's loops, the load generator's
/// workers, and the tests' second parties all start this way. A plain pthread rather than Dispatch, so
/// each event loop owns one named thread for its whole life.
///
/// Join or detach each thread exactly once (copies share the one handle).
public struct OSThread: Sendable {
    // Sendable without @unchecked: the only state is the pthread_t, a plain integer on Linux; pthread_join
    // and pthread_detach may be called from any thread. The closure crosses to the new thread in `Body`,
    // which is Sendable because the closure is.
    private let handle: pthread_t

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Starts `body` on a new thread. The thread holds `body` (and what it captures) until `body` returns.
    public static func spawn(_ body: @escaping @Sendable () -> Void) throws(SystemError) -> OSThread {
        let arg = Unmanaged.passRetained(Body(body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, arg)
        if rc != 0 {
            Unmanaged<Body>.fromOpaque(arg).release()
            throw SystemError(errno: rc, operation: "pthread_create")
        }
        return OSThread(handle: handle)
    }

    /// Waits for the thread to finish.
    public func join() { pthread_join(handle, nil) }

    /// Lets the thread finish on its own; it can no longer be joined.
    public func detach() { pthread_detach(handle) }
}
