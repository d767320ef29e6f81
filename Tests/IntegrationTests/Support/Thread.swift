import Glibc

/// A plain thread for a test's second party (a sender while the test reads), joined explicitly.
final class Thread: @unchecked Sendable {
    // Safe: `body` is read once by the new thread; `handle` only by the creating thread.
    private let body: () -> Void
    private var handle = pthread_t()

    init(_ body: @escaping () -> Void) {
        self.body = body
        let arg = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&handle, nil, { raw in
            let thread = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
            thread.body()
            return nil
        }, arg)
        precondition(rc == 0, "pthread_create failed")
    }

    func join() { pthread_join(handle, nil) }
}
