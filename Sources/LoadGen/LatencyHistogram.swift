/// A log-bucketed latency histogram in nanoseconds, HDR-style.
///
/// Values below 128 ns get a bucket each. Above, every power of two [2^k, 2^(k+1)) is split into 64
/// equal sub-buckets, so a bucket is at most 1/64 of its lower bound wide. Percentiles report the
/// bucket's midpoint (clamped to the exact min and max), so a reported value is within 1/128 (0.8%)
/// of a value truly recorded at that rank. Recording is an index computation and an add: each worker
/// keeps its own histogram and the run merges them at the end.
public struct LatencyHistogram: Sendable, Equatable {
    static let exactLimit: UInt64 = 128       // values below this are exact
    static let subBuckets = 64                // per power of two above it
    static let subBits = 6                    // log2(subBuckets)
    static let bucketCount = 128 + (63 - 7 + 1) * 64

    public private(set) var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    /// Sum of all values, for the mean (wraps only after ~584 years of total latency).
    public private(set) var sum: UInt64 = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    @inline(__always)
    static func index(of value: UInt64) -> Int {
        if value < exactLimit { return Int(value) }
        let k = 63 - value.leadingZeroBitCount           // 7...63
        let sub = Int(value >> UInt64(k - subBits)) - subBuckets  // 0..<64
        return 128 + (k - 7) * subBuckets + sub
    }

    /// The lowest value that lands in bucket `index`, and the bucket's width.
    static func range(of index: Int) -> (low: UInt64, width: UInt64) {
        if index < Int(exactLimit) { return (UInt64(index), 1) }
        let k = (index - 128) / subBuckets + 7
        let sub = (index - 128) % subBuckets
        let width = UInt64(1) << UInt64(k - subBits)
        return ((UInt64(subBuckets + sub)) << UInt64(k - subBits), width)
    }

    @inline(__always)
    public mutating func record(_ nanoseconds: UInt64) {
        counts[Self.index(of: nanoseconds)] &+= 1
        count &+= 1
        sum &+= nanoseconds
        if nanoseconds < min { min = nanoseconds }
        if nanoseconds > max { max = nanoseconds }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        for i in 0..<Self.bucketCount where other.counts[i] != 0 { counts[i] &+= other.counts[i] }
        count &+= other.count
        sum &+= other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    /// The value at percentile `p` (0...100) in nanoseconds: the smallest recorded value such that at
    /// least p% of values are at or below it, to within the bucket error. 0 when empty.
    public func percentile(_ p: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        if p >= 100 { return max }
        let wanted = Swift.max(1, UInt64((p / 100 * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for i in 0..<Self.bucketCount where counts[i] != 0 {
            seen &+= counts[i]
            if seen >= wanted {
                let (low, width) = Self.range(of: i)
                let mid = low + width / 2
                return Swift.min(Swift.max(mid, min), max)
            }
        }
        return max
    }

    /// Mean in nanoseconds (0 when empty).
    public var mean: Double { count == 0 ? 0 : Double(sum) / Double(count) }
}
