/// Smooth weighted round robin, nginx's algorithm (`ngx_http_upstream_get_peer`, 2012): on each pick
/// every backend's current value grows by its weight, the largest is chosen and loses the total. A
/// weight-3 backend among weights 1, 2, 3 gets 3 of every 6 picks, spread out (c b c a b c ...), never
/// in a burst; equal weights give plain rotation.
///
/// nginx runs the step per pick, O(backends). Here the pool runs it once per membership version and
/// publishes one period of the sequence; a pick is one relaxed fetch-add on the pool's shared cursor
/// and one load, the same cost as plain rotation, and the workers together walk one sequence.
enum SmoothWeightedSequence {
    /// Longest period kept. Weights whose (gcd-reduced) sum is larger are scaled down to fit, each
    /// keeping at least 1: a share moves by at most (backends / cap) of the total.
    static let maxPeriod = 1 << 20
    /// Periods up to this many backend-steps (backends × period) run nginx's O(n) step exactly; larger
    /// ones use the earliest-deadline-first order (Envoy's weighted round robin), which has the same
    /// proportions and is as smooth, in O(period × log n).
    static let exactBudget = 20_000_000

    /// One period of the sequence for `ids` with `weights` (both in member order).
    static func build(_ ids: [BackendID], weights: [Int32]) -> [BackendID] {
        let n = ids.count
        if n == 0 { return [] }
        if weights.allSatisfy({ $0 == weights[0] }) { return ids }
        var w = weights.map { Int(max($0, 1)) }
        let g = w.reduce(0) { gcd($0, $1) }
        w = w.map { $0 / g }
        var total = w.reduce(0, +)
        if total > maxPeriod {
            let scale = Double(maxPeriod) / Double(total)
            w = w.map { max(1, Int((Double($0) * scale).rounded())) }
            total = w.reduce(0, +)
        }
        if n * total <= exactBudget { return exact(ids, w, total) }
        return earliestDeadlineFirst(ids, w, total)
    }

    /// nginx's step, `total` times.
    static func exact(_ ids: [BackendID], _ w: [Int], _ total: Int) -> [BackendID] {
        var current = [Int](repeating: 0, count: ids.count)
        var out: [BackendID] = []
        out.reserveCapacity(total)
        for _ in 0..<total {
            var best = 0
            for i in 0..<ids.count {
                current[i] += w[i]
                if current[i] > current[best] { best = i }
            }
            current[best] -= total
            out.append(ids[best])
        }
        return out
    }

    /// Each backend's k-th turn is due at (k + 1/2) / weight; turns are taken in due order, ties by
    /// member order. A binary heap keeps it O(log n) per turn.
    static func earliestDeadlineFirst(_ ids: [BackendID], _ w: [Int], _ total: Int) -> [BackendID] {
        var heap = BinaryHeap(count: ids.count) { a, b in (a.due, a.index) < (b.due, b.index) }
        for i in 0..<ids.count { heap.push(.init(due: 0.5 / Double(w[i]), index: i)) }
        var out: [BackendID] = []
        out.reserveCapacity(total)
        var turns = [Int](repeating: 0, count: ids.count)
        for _ in 0..<total {
            let top = heap.pop()
            out.append(ids[top.index])
            turns[top.index] += 1
            heap.push(.init(due: (Double(turns[top.index]) + 0.5) / Double(w[top.index]), index: top.index))
        }
        return out
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}

/// A small min-heap for building sequences (not used on the hot path).
struct BinaryHeap {
    struct Entry { var due: Double; var index: Int }
    private var items: [Entry] = []
    private let less: (Entry, Entry) -> Bool

    init(count: Int, less: @escaping (Entry, Entry) -> Bool) {
        items.reserveCapacity(count)
        self.less = less
    }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !less(items[i], items[parent]) { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry {
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

extension Balancer {
    /// The next entry of the shared sequence that can take a pair. Skipped entries fall to the ones
    /// after them, so a down backend's turns spread over its neighbours in the sequence. While a
    /// backend ramps up (slow start) it keeps each of its turns with a probability equal to its share.
    @inline(__always)
    mutating func pickRoundRobin(avoid: BackendID, now: UInt64) -> PickResult {
        let n = tableCount
        if n == 0 { return .none }
        var i = Int(pool.cursor.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(n))
        for _ in 0..<Swift.min(n, Self.quickTries) {
            let id = tableBase[i]
            if id != avoid, candidate(id) == .ok {
                if slowStart == 0 { return .backend(id) }
                let share = rampPermille(id, now: now)
                if share >= SlowStart.full || rng.next(below: SlowStart.full) < share { return .backend(id) }
            }
            i += 1
            if i == n { i = 0 }
        }
        return scan(from: memberCount > 0 ? rng.next(below: memberCount) : 0, avoid: avoid)
    }
}
