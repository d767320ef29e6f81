/// A fixed-capacity FIFO of bytes (a socket buffer, a pipe), with the sizes of the segments it was
/// filled in kept beside it: a pipe's 16 slots hold one socket segment each, whatever its size.
struct ByteRing: ~Copyable {
    let capacity: Int
    private let storage: UnsafeMutablePointer<UInt8>
    private var head = 0
    private(set) var count = 0
    /// Segment sizes, oldest first (`segHead` is the first live one); their sum is `count`.
    private var segments: [Int] = []
    private var segHead = 0

    init(capacity: Int) {
        self.capacity = capacity
        storage = .allocate(capacity: max(capacity, 1))
    }

    deinit { storage.deallocate() }

    var free: Int { capacity - count }
    var isEmpty: Bool { count == 0 }
    var segmentCount: Int { segments.count - segHead }

    /// Appends `n` bytes as one segment (n <= free).
    mutating func append(_ bytes: UnsafeRawPointer, _ n: Int) {
        precondition(n <= free && n >= 0)
        if n == 0 { return }
        var tail = (head + count) % capacity
        var done = 0
        while done < n {
            let run = min(n - done, capacity - tail)
            (storage + tail).update(from: (bytes + done).assumingMemoryBound(to: UInt8.self), count: run)
            done += run
            tail = (tail + run) % capacity
        }
        count += n
        segments.append(n)
    }

    /// Copies the first `n` bytes out without removing them.
    func peek(into out: UnsafeMutableRawPointer, _ n: Int, offset: Int = 0) {
        precondition(offset + n <= count)
        var from = (head + offset) % capacity
        var done = 0
        while done < n {
            let run = min(n - done, capacity - from)
            (out + done).copyMemory(from: storage + from, byteCount: run)
            done += run
            from = (from + run) % capacity
        }
    }

    /// Removes the first `n` bytes.
    mutating func drop(_ n: Int) {
        precondition(n <= count)
        head = (head + n) % capacity
        count -= n
        var left = n
        while left > 0 {
            let s = segments[segHead]
            if s <= left {
                left -= s
                segHead += 1
            } else {
                segments[segHead] = s - left
                left = 0
            }
        }
        if segHead > 64 && segHead * 2 > segments.count {
            segments.removeFirst(segHead)
            segHead = 0
        }
        if count == 0 { head = 0 }
    }

    /// Copies out and removes up to `n` bytes; returns how many.
    mutating func read(into out: UnsafeMutableRawPointer, _ n: Int) -> Int {
        let k = min(n, count)
        peek(into: out, k)
        drop(k)
        return k
    }

    /// Bytes in the first `k` segments (capped at `limit`).
    func bytesInFirstSegments(_ k: Int, limit: Int) -> Int {
        var total = 0
        var i = segHead
        while i < segments.count && i - segHead < k && total < limit {
            total += segments[i]
            i += 1
        }
        return min(total, limit)
    }

    /// Moves up to `n` bytes to `other` as one segment; returns how many moved.
    mutating func move(to other: inout ByteRing, _ n: Int) -> Int {
        let k = min(n, count, other.free)
        if k == 0 { return 0 }
        withUnsafeTemporaryAllocation(byteCount: k, alignment: 1) { tmp in
            peek(into: tmp.baseAddress!, k)
            other.append(tmp.baseAddress!, k)
        }
        drop(k)
        return k
    }

    /// Keeps only the first `n` bytes (a reset drops what was never sent).
    mutating func truncate(to n: Int) {
        guard n < count else { return }
        count = n
        var left = n
        var i = segHead
        while i < segments.count && left > 0 {
            if segments[i] >= left {
                segments[i] = left
                left = 0
                i += 1
                break
            }
            left -= segments[i]
            i += 1
        }
        segments.removeSubrange(i...)
        if n == 0 { removeAll() }
    }

    mutating func removeAll() {
        head = 0
        count = 0
        segments.removeAll(keepingCapacity: true)
        segHead = 0
    }
}
