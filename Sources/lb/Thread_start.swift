import Glibc

/// Runs `body` on a new detached thread (the executable's only use of a thread of its own).
func Thread_start(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box: @unchecked Sendable {
        // @unchecked: handed to exactly one thread, once.
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, Unmanaged.passRetained(Box(body)).toOpaque())
    if rc == 0 { pthread_detach(thread) }
    return rc == 0
}
