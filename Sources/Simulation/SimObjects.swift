import LoadBalancer

/// An epoll instance with Linux's ready-list semantics (fs/eventpoll.c): a wake-up whose key meets an
/// item's interest puts the item on the ready list once (several changes coalesce); epoll_wait polls
/// each ready item for its mask as it is *now*, reports it if non-zero, and puts level-triggered items
/// back on the list while edge-triggered ones wait for the next wake-up.
public final class SimEpoll {
    enum Target {
        case socket(SimSocket)
        case pipe(SimPipe, readEnd: Bool)
        case eventFD(SimEventFD)

        var mask: UInt32 {
            switch self {
            case .socket(let s): return s.pollMask
            case .pipe(let p, let readEnd): return readEnd ? p.readMask : p.writeMask
            case .eventFD(let e): return e.mask
            }
        }
    }

    final class Item {
        let fd: Int32
        let target: Target
        var events: UInt32
        var data: UInt64
        var ready = false
        var removed = false
        unowned let epoll: SimEpoll

        init(fd: Int32, target: Target, events: UInt32, data: UInt64, epoll: SimEpoll) {
            self.fd = fd
            self.target = target
            self.events = events
            self.data = data
            self.epoll = epoll
        }
    }

    var items: [Int32: Item] = [:]
    var readyList: [Item] = []
    var readyHead = 0

    var hasReady: Bool { readyHead < readyList.count }

    func enqueue(_ item: Item) {
        guard !item.ready, !item.removed else { return }
        item.ready = true
        readyList.append(item)
    }

    /// ep_poll_callback: `key` 0 means "any change" (sk_state_change wakes without a key).
    static func wake(_ watchers: [Item], key: UInt32) {
        for item in watchers where !item.removed {
            if key == 0 || key & (item.events | EpollEvents.error | EpollEvents.hangup) != 0 {
                item.epoll.enqueue(item)
            }
        }
    }

    /// ep_send_events: fills `out` (kernel layout) with at most `max` events.
    func collect(into out: UnsafeMutableRawPointer, max: Int, eventSize: Int, dataOffset: Int, report: (Int32, UInt32) -> Void) -> Int {
        var n = 0
        var requeue: [Item] = []
        while n < max && readyHead < readyList.count {
            let item = readyList[readyHead]
            readyHead += 1
            item.ready = false
            if item.removed { continue }
            let revents = item.target.mask & (item.events | EpollEvents.error | EpollEvents.hangup)
            if revents == 0 { continue }
            let p = out + n * eventSize
            p.storeBytes(of: revents, as: UInt32.self)
            p.storeBytes(of: item.data, toByteOffset: dataOffset, as: UInt64.self)
            report(item.fd, revents)
            n += 1
            if item.events & EpollEvents.edgeTriggered == 0 { requeue.append(item) }
        }
        if readyHead == readyList.count {
            readyList.removeAll(keepingCapacity: true)
            readyHead = 0
        } else if readyHead > 256 {
            readyList.removeFirst(readyHead)
            readyHead = 0
        }
        for item in requeue { enqueue(item) }
        return n
    }
}

/// A pipe: 16 slots, one per segment spliced in (a socket segment, or one write), as Linux's
/// pipe_buffer array: small segments fill it with few bytes.
public final class SimPipe {
    static let slots = 16
    static let slotBytes = 4096
    var ring = ByteRing(capacity: SimPipe.slots * SimPipe.slotBytes)
    var readOpen = true
    var writeOpen = true
    var readWatchers: [SimEpoll.Item] = []
    var writeWatchers: [SimEpoll.Item] = []

    var freeSlots: Int { Self.slots - ring.segmentCount }
    var readMask: UInt32 { (ring.isEmpty ? 0 : EpollEvents.input) | (writeOpen ? 0 : EpollEvents.hangup) }
    var writeMask: UInt32 { (freeSlots > 0 ? EpollEvents.output : 0) | (readOpen ? 0 : EpollEvents.error) }
}

/// eventfd(2): a counter, readable while non-zero.
public final class SimEventFD {
    var counter: UInt64 = 0
    var watchers: [SimEpoll.Item] = []
    var mask: UInt32 { (counter > 0 ? EpollEvents.input : 0) | (counter < UInt64.max - 1 ? EpollEvents.output : 0) }
}

/// What an fd of the balancer refers to.
enum SimFile {
    case socket(SimSocket)
    case pipeRead(SimPipe)
    case pipeWrite(SimPipe)
    case epoll(SimEpoll)
    case eventFD(SimEventFD)
}
