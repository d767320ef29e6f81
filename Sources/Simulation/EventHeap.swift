/// Something the simulated world does at a virtual time.
enum SimAction {
    /// A segment of `bytes` (or the FIN, with 0 bytes) from `sender` reaches its peer.
    case arrive(SimSocket, epoch: Int, bytes: Int, fin: Bool)
    /// A reset reaches `target`.
    case reset(SimSocket, epoch: Int)
    /// A SYN from `client` reaches `listener` (nil: nobody listens there).
    case syn(SimSocket, epoch: Int, listener: SimSocket?)
    /// The SYN-ACK reaches `client`: its connect completes.
    case synAck(SimSocket, epoch: Int)
    /// An actor's own timer, or a wake-up about one of its sockets.
    case actor(SimActor, token: Int)
    /// A scenario step (start a client, take a backend down, begin the drain...).
    case call(() -> Void)
}

/// A binary min-heap on (time, sequence): events at the same time run in the order they were made,
/// so a seed always gives the same run. The heap holds plain keys; actions wait in a side table, so
/// sifting moves no references (no retain/release per swap).
struct EventHeap {
    struct Key {
        var time: UInt64
        var seq: UInt64
        var slot: Int32
    }

    struct Entry {
        var time: UInt64
        var action: SimAction
    }

    private var keys: [Key] = []
    private var actions: [SimAction?] = []
    private var freeSlots: [Int32] = []
    private var nextSeq: UInt64 = 0

    var isEmpty: Bool { keys.isEmpty }
    var count: Int { keys.count }
    var nextTime: UInt64? { keys.first?.time }

    @inline(__always)
    private static func less(_ a: Key, _ b: Key) -> Bool { a.time < b.time || (a.time == b.time && a.seq < b.seq) }

    mutating func push(_ time: UInt64, _ action: SimAction) {
        let slot: Int32
        if let f = freeSlots.popLast() {
            slot = f
            actions[Int(f)] = action
        } else {
            slot = Int32(actions.count)
            actions.append(action)
        }
        keys.append(Key(time: time, seq: nextSeq, slot: slot))
        nextSeq &+= 1
        var i = keys.count - 1
        let k = keys[i]
        while i > 0 {
            let parent = (i - 1) / 2
            if !Self.less(k, keys[parent]) { break }
            keys[i] = keys[parent]
            i = parent
        }
        keys[i] = k
    }

    mutating func pop() -> Entry? {
        guard !keys.isEmpty else { return nil }
        let top = keys[0]
        let last = keys.removeLast()
        if !keys.isEmpty {
            var i = 0
            let n = keys.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = l
                if l >= n { break }
                if r < n && Self.less(keys[r], keys[l]) { m = r }
                if !Self.less(keys[m], last) { break }
                keys[i] = keys[m]
                i = m
            }
            keys[i] = last
        }
        let action = actions[Int(top.slot)].take()!
        freeSlots.append(top.slot)
        return Entry(time: top.time, action: action)
    }

    mutating func removeAll() {
        keys.removeAll()
        actions.removeAll()
        freeSlots.removeAll()
    }
}
