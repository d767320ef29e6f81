/// The share of its weight a backend gets while it ramps up after coming up or being added, as
/// HAProxy's `slowstart` does: linear in the time since, from `floor` to the whole weight.
///
/// Pure: `now` and `since` are monotonic nanoseconds passed in; `since == 0` means "up since start-up"
/// (backends present at start do not ramp, as in HAProxy).
enum SlowStart {
    /// Per mille: the smallest share a ramping backend gets (so it is tried at all).
    static let floor: Int = 10
    static let full: Int = 1000

    @inline(__always)
    static func permille(since: UInt64, now: UInt64, duration: UInt64) -> Int {
        if duration == 0 || since == 0 || now &- since >= duration || now < since { return full }
        let share = Int((now - since) / max(1, duration / 1000))
        return max(floor, share)
    }
}
