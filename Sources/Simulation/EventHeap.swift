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
/// so a seed always gives the same run.
struct EventHeap {
    struct Entry {
        var time: UInt64
        var seq: UInt64
        var action: SimAction
    }

    private(set) var entries: [Entry] = []
    private var nextSeq: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var nextTime: UInt64? { entries.first?.time }

    @inline(__always)
    private static func less(_ a: Entry, _ b: Entry) -> Bool { a.time < b.time || (a.time == b.time && a.seq < b.seq) }

    mutating func push(_ time: UInt64, _ action: SimAction) {
        entries.append(Entry(time: time, seq: nextSeq, action: action))
        nextSeq &+= 1
        var i = entries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !Self.less(entries[i], entries[parent]) { break }
            entries.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !entries.isEmpty else { return nil }
        let top = entries[0]
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var i = 0
            let n = entries.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && Self.less(entries[l], entries[m]) { m = l }
                if r < n && Self.less(entries[r], entries[m]) { m = r }
                if m == i { break }
                entries.swapAt(i, m)
                i = m
            }
        }
        return top
    }

    mutating func removeAll() { entries.removeAll() }
}
