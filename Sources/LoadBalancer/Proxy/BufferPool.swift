/// Fixed-size byte buffers for bytes in flight, per worker (no locking). A pair holds one only while a
/// destination is full; an idle pair holds none. Buffers are malloc'd on first need and kept for
/// reuse, up to `keep` idle ones, so a burst does not pin memory forever.
struct BufferPool: ~Copyable {
    let size: Int
    private let keep: Int
    private var free: UnsafeMutablePointer<UnsafeMutableRawPointer>
    private var freeCount = 0
    private(set) var outstanding = 0

    init(size: Int, keep: Int = 256) {
        self.size = size
        self.keep = keep
        free = .allocate(capacity: keep)
    }

    deinit {
        for i in 0..<freeCount { free[i].deallocate() }
        free.deallocate()
    }

    @inline(__always)
    mutating func take() -> UnsafeMutableRawPointer {
        outstanding += 1
        if freeCount > 0 {
            freeCount -= 1
            return free[freeCount]
        }
        return .allocate(byteCount: size, alignment: 16)
    }

    @inline(__always)
    mutating func give(_ buffer: UnsafeMutableRawPointer) {
        outstanding -= 1
        if freeCount < keep {
            free[freeCount] = buffer
            freeCount += 1
        } else {
            buffer.deallocate()
        }
    }
}

/// Pipes for splice(2), per worker. A direction takes one only while it streams bulk and gives it back
/// once drained, so idle pairs hold no pipe (each costs two fds and kernel pages).
struct PipePool<K: Kernel>: ~Copyable {
    private var free: [(read: Int32, write: Int32)] = []
    private let keep: Int
    private(set) var outstanding = 0

    init(keep: Int = 64) {
        self.keep = keep
        free.reserveCapacity(keep)
    }

    deinit {
        for p in free { K.close(p.read); K.close(p.write) }
    }

    /// A pipe, or nil when none can be made (fd exhaustion): the caller falls back to copying.
    mutating func take() -> (read: Int32, write: Int32)? {
        if let p = free.popLast() { outstanding += 1; return p }
        guard let p = try? K.pipe() else { return nil }
        outstanding += 1
        return p
    }

    /// Only empty pipes come back; a pipe with bytes in it is closed instead.
    mutating func give(_ p: (read: Int32, write: Int32), empty: Bool) {
        outstanding -= 1
        if empty && free.count < keep {
            free.append(p)
        } else {
            K.close(p.read)
            K.close(p.write)
        }
    }
}
