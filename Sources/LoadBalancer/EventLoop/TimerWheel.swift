/// A hashed timing wheel: O(1) schedule and cancel, time passed in (never read from a clock here), so
/// it runs the same under a test's fake clock as under the event loop's monotonic one.
///
/// Timers are small integers chosen by the owner (a connection slot, a probe slot), at most one pending
/// deadline each. Entries live in intrusive doubly linked lists threaded through flat arrays: no
/// allocation per schedule. A deadline more than one revolution ahead stays in its slot and is skipped
/// until its round comes. Resolution is one tick; deadlines are rounded up, so a timer never fires early.
public struct TimerWheel: ~Copyable {
    public let tickNanos: UInt64
    let slotMask: Int
    let slotCount: Int

    private var capacity: Int
    private var next: UnsafeMutablePointer<Int32>
    private var prev: UnsafeMutablePointer<Int32>
    private var due: UnsafeMutablePointer<UInt64>   // deadline, in ticks
    private var where_: UnsafeMutablePointer<Int32> // slot index, expiredList, or notScheduled
    // `var`, though never reassigned: with `let`, Swift 6.3.1 under -sanitize=thread emits a TSan access
    // call on a loaded field value instead of an address for writes through these pointers in a mutating
    // method of this ~Copyable struct ("Invalid bitcast", the compiler aborts; ci/sanitize thread).
    /// slotCount list heads, then one more for the expired list.
    private var heads: UnsafeMutablePointer<Int32>
    private var occupied: UnsafeMutablePointer<UInt64>  // one bit per non-empty slot

    /// The tick whose slot has been swept; everything due at or before it is in the expired list.
    private var cursor: UInt64
    public private(set) var count = 0
    /// A lower bound for the next tick with anything scheduled (0: unknown). Kept so the event loop's
    /// timeout costs nothing per iteration: scheduling only lowers it, sweeping past it clears it.
    private var earliestHint: UInt64 = 0

    private static let notScheduled: Int32 = -1
    private static let inExpired: Int32 = -2

    public init(tick: Duration = .milliseconds(10), slots: Int = 1024, capacity: Int = 1024, now: UInt64) {
        precondition(slots >= 64 && slots & (slots - 1) == 0, "slots must be a power of two, at least 64")
        tickNanos = UInt64(tick.components.seconds) * 1_000_000_000 + UInt64(tick.components.attoseconds / 1_000_000_000)
        precondition(tickNanos > 0)
        slotCount = slots
        slotMask = slots - 1
        self.capacity = max(capacity, 1)
        next = .allocate(capacity: self.capacity)
        prev = .allocate(capacity: self.capacity)
        due = .allocate(capacity: self.capacity)
        where_ = .allocate(capacity: self.capacity)
        where_.initialize(repeating: Self.notScheduled, count: self.capacity)
        heads = .allocate(capacity: slots + 1)
        heads.initialize(repeating: -1, count: slots + 1)
        occupied = .allocate(capacity: (slots + 63) / 64)
        occupied.initialize(repeating: 0, count: (slots + 63) / 64)
        cursor = now / tickNanos
    }

    deinit {
        next.deallocate(); prev.deallocate(); due.deallocate(); where_.deallocate()
        heads.deallocate(); occupied.deallocate()
    }

    public func isScheduled(_ id: Int32) -> Bool {
        Int(id) < capacity && where_[Int(id)] != Self.notScheduled
    }

    /// Schedules (or moves) timer `id` to fire at `deadline` (monotonic nanoseconds).
    public mutating func schedule(_ id: Int32, at deadline: UInt64) {
        if Int(id) >= capacity { grow(to: Int(id) + 1) }
        if where_[Int(id)] != Self.notScheduled { cancel(id) }
        var tick = (deadline + tickNanos - 1) / tickNanos
        if tick <= cursor { tick = cursor + 1 }  // the current tick has been swept: fire at the next sweep
        due[Int(id)] = tick
        if earliestHint != 0 && tick < earliestHint { earliestHint = tick }
        let slot = Int(tick & UInt64(slotMask))
        link(id, into: heads + slot, list: Int32(slot))
        occupied[slot >> 6] |= 1 << UInt64(slot & 63)
        count += 1
    }

    public mutating func cancel(_ id: Int32) {
        guard Int(id) < capacity else { return }
        let list = where_[Int(id)]
        if list == Self.notScheduled { return }
        if list == Self.inExpired {
            unlink(id, from: expiredHead)
        } else {
            unlink(id, from: heads + Int(list))
            if heads[Int(list)] < 0 { occupied[Int(list) >> 6] &= ~(1 << UInt64(list & 63)) }
        }
        count -= 1
    }

    /// Returns one timer that is due at `now`, unscheduling it, or nil when none is. Call in a loop:
    /// the owner handles each expiry (and may schedule or cancel others) between calls.
    public mutating func popExpired(now: UInt64) -> Int32? {
        while true {
            if expiredHead.pointee >= 0 {
                let id = expiredHead.pointee
                unlink(id, from: expiredHead)
                count -= 1
                return id
            }
            let nowTick = now / tickNanos
            if cursor >= nowTick || count == 0 {
                if count == 0 {
                    // The cursor jumps ahead with nothing to sweep: a hint it passes would stay below it,
                    // and the timeout would read 0 with nothing due (a spin until the next tick).
                    cursor = max(cursor, nowTick)
                    earliestHint = 0
                }
                return nil
            }
            // Nothing can be due before the earliest occupied tick: skip the sweep (the cursor catches
            // up when something is). This keeps the per-iteration cost at a compare.
            if earliestHint == 0 { earliestHint = nextOccupiedTick(after: cursor, limit: cursor + UInt64(slotCount)) }
            if nowTick < earliestHint { return nil }
            // Jump over empty slots; a wheel revolution bounds the jump.
            cursor = nextOccupiedTick(after: cursor, limit: nowTick)
            if cursor >= earliestHint { earliestHint = 0 }
            sweep(slot: Int(cursor & UInt64(slotMask)), tick: cursor)
        }
    }

    /// Milliseconds until the next tick with anything scheduled (rounded up), or -1 when nothing is.
    /// Suitable as an epoll_wait timeout; it may wake early for an entry a revolution ahead, never late.
    public mutating func millisecondsUntilNext(now: UInt64) -> Int32 {
        if count == 0 { return -1 }
        if expiredHead.pointee >= 0 { return 0 }
        let nowTick = now / tickNanos
        if earliestHint == 0 { earliestHint = nextOccupiedTick(after: cursor, limit: cursor + UInt64(slotCount)) }
        let target = earliestHint
        if target <= nowTick { return 0 }
        let ns = target * tickNanos - now
        return Int32(min((ns + 999_999) / 1_000_000, 60_000))
    }

    // MARK: internals

    private var expiredHead: UnsafeMutablePointer<Int32> { heads + slotCount }

    private func nextOccupiedTick(after tick: UInt64, limit: UInt64) -> UInt64 {
        var t = tick + 1
        while t < limit {
            let slot = Int(t & UInt64(slotMask))
            let word = occupied[slot >> 6] >> UInt64(slot & 63)
            if word != 0 {
                let skip = UInt64(word.trailingZeroBitCount)
                // Stay inside this word; the bit found may be past the limit.
                return min(t + skip, limit)
            }
            t += UInt64(64 - (slot & 63))
        }
        return limit
    }

    private mutating func sweep(slot: Int, tick: UInt64) {
        var id = heads[slot]
        while id >= 0 {
            let following = next[Int(id)]
            if due[Int(id)] <= tick {
                unlink(id, from: heads + slot)
                link(id, into: expiredHead, list: Self.inExpired)
            }
            id = following
        }
        if heads[slot] < 0 { occupied[slot >> 6] &= ~(1 << UInt64(slot & 63)) }
    }

    private func link(_ id: Int32, into head: UnsafeMutablePointer<Int32>, list: Int32) {
        let i = Int(id)
        next[i] = head.pointee
        prev[i] = -1
        if head.pointee >= 0 { prev[Int(head.pointee)] = id }
        head.pointee = id
        where_[i] = list
    }

    private func unlink(_ id: Int32, from head: UnsafeMutablePointer<Int32>) {
        let i = Int(id)
        if prev[i] >= 0 { next[Int(prev[i])] = next[i] } else { head.pointee = next[i] }
        if next[i] >= 0 { prev[Int(next[i])] = prev[i] }
        where_[i] = Self.notScheduled
    }

    private mutating func grow(to minimum: Int) {
        var newCapacity = capacity
        while newCapacity < minimum { newCapacity *= 2 }
        func moved<T>(_ old: UnsafeMutablePointer<T>, fill: T?) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: newCapacity)
            p.moveInitialize(from: old, count: capacity)
            if let fill { (p + capacity).initialize(repeating: fill, count: newCapacity - capacity) }
            old.deallocate()
            return p
        }
        next = moved(next, fill: nil)
        prev = moved(prev, fill: nil)
        due = moved(due, fill: nil)
        where_ = moved(where_, fill: Self.notScheduled)
        capacity = newCapacity
    }
}
