import CShim

/// Event bits as plain integers, converted once from the shim's macros.
public enum EpollEvents {
    public static let input: UInt32 = LB_EPOLLIN
    /// Urgent data is waiting (TCP's urgent pointer): a read stops at its mark.
    public static let priority: UInt32 = LB_EPOLLPRI
    public static let output: UInt32 = LB_EPOLLOUT
    public static let error: UInt32 = LB_EPOLLERR
    public static let hangup: UInt32 = LB_EPOLLHUP
    public static let readHangup: UInt32 = LB_EPOLLRDHUP
    public static let edgeTriggered: UInt32 = LB_EPOLLET
}

/// One ready event: what happened, and the 64-bit cookie given at registration.
public struct EpollEvent: Sendable {
    public var events: UInt32
    public var data: UInt64
}

/// The ready-event array as the kernel fills it (packed on x86_64), read in place.
public struct EpollEventBuffer: @unchecked Sendable {
    // @unchecked: a view of memory owned by one Epoll, used only on its thread.
    let base: UnsafeMutableRawPointer

    @inline(__always)
    public subscript(i: Int) -> EpollEvent {
        let p = base + i &* Int(LB_EPOLL_EVENT_SIZE)
        return EpollEvent(
            events: p.loadUnaligned(as: UInt32.self),
            data: p.loadUnaligned(fromByteOffset: Int(LB_EPOLL_DATA_OFFSET), as: UInt64.self))
    }
}

/// One epoll instance on Linux (the farm, loadgen and the admin threads use it as it is).
public typealias Epoll = KernelEpoll<LinuxKernel>

/// One epoll instance and its ready-event array, allocated once. Owned by one thread. Generic over the
/// kernel so a worker's epoll is the simulated one in the simulation (`Kernel`).
public struct KernelEpoll<K: Kernel>: ~Copyable {
    public let fd: Int32
    public let events: EpollEventBuffer
    public let capacity: Int32

    public init(capacity: Int32 = 512) throws(SystemError) {
        fd = try K.epollCreate()
        self.capacity = min(capacity, 1024)
        events = EpollEventBuffer(base: .allocate(byteCount: Int(self.capacity) * Int(LB_EPOLL_EVENT_SIZE), alignment: 8))
    }

    deinit {
        events.base.deallocate()
        K.close(fd)
    }

    @inline(__always)
    public func add(_ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        try K.epollControl(self.fd, Int32(LB_EPOLL_CTL_ADD), fd, events: events, data: data)
    }

    @inline(__always)
    public func modify(_ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        try K.epollControl(self.fd, Int32(LB_EPOLL_CTL_MOD), fd, events: events, data: data)
    }

    /// Removing is only needed for fds that stay open (a paused listener); close removes the rest.
    @inline(__always)
    public func remove(_ fd: Int32) {
        _ = try? K.epollControl(self.fd, Int32(LB_EPOLL_CTL_DEL), fd, events: 0, data: 0)
    }

    @inline(__always)
    public func wait(timeoutMs: Int32) throws(SystemError) -> Int {
        try K.epollWait(fd, events.base, capacity, timeoutMs: timeoutMs)
    }
}
