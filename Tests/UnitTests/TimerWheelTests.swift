import LoadBalancer
import Testing

@Suite struct TimerWheelTests {
    let ms: UInt64 = 1_000_000

    func drain(_ wheel: inout TimerWheel, now: UInt64) -> [Int32] {
        var fired: [Int32] = []
        while let id = wheel.popExpired(now: now) { fired.append(id) }
        return fired.sorted()
    }

    @Test func firesInOrderNeverEarly() {
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 4, now: 0)
        wheel.schedule(1, at: 25 * ms)
        wheel.schedule(2, at: 100 * ms)
        wheel.schedule(3, at: 5 * ms)
        #expect(wheel.count == 3)
        #expect(drain(&wheel, now: 4 * ms) == [])
        #expect(drain(&wheel, now: 10 * ms) == [3])
        #expect(drain(&wheel, now: 29 * ms) == [])  // 25ms rounds up to the 30ms tick
        #expect(drain(&wheel, now: 30 * ms) == [1])
        #expect(drain(&wheel, now: 99 * ms) == [])
        #expect(drain(&wheel, now: 100 * ms) == [2])
        #expect(wheel.count == 0)
    }

    @Test func cancelAndReschedule() {
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 2, now: 0)
        wheel.schedule(0, at: 50 * ms)
        wheel.schedule(1, at: 50 * ms)
        wheel.cancel(0)
        #expect(!wheel.isScheduled(0) && wheel.isScheduled(1))
        wheel.schedule(1, at: 200 * ms)  // moving a timer replaces its deadline
        #expect(wheel.count == 1)
        #expect(drain(&wheel, now: 60 * ms) == [])
        #expect(drain(&wheel, now: 200 * ms) == [1])
        wheel.cancel(1)  // cancelling a fired timer is harmless
        #expect(wheel.count == 0)
    }

    @Test func deadlinesBeyondOneRevolution() {
        // 64 slots of 10ms = 640ms per revolution; 2s is three revolutions ahead.
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 2, now: 0)
        wheel.schedule(7, at: 2000 * ms)
        wheel.schedule(8, at: 2000 * ms - 640 * ms)  // same slot, one round earlier
        #expect(drain(&wheel, now: 700 * ms) == [])
        #expect(drain(&wheel, now: 1360 * ms) == [8])
        #expect(drain(&wheel, now: 1999 * ms) == [])
        #expect(drain(&wheel, now: 2000 * ms) == [7])
    }

    @Test func growsPastCapacityAndManyTimers() {
        var wheel = TimerWheel(tick: .milliseconds(1), slots: 128, capacity: 1, now: 0)
        for i in 0..<1000 { wheel.schedule(Int32(i), at: UInt64(i % 300 + 1) * ms) }
        for i in stride(from: 0, to: 1000, by: 2) { wheel.cancel(Int32(i)) }
        #expect(wheel.count == 500)
        let fired = drain(&wheel, now: 301 * ms)
        #expect(fired == Array(stride(from: 1, to: 1000, by: 2)).map(Int32.init))
    }

    @Test func timeoutHint() {
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 2, now: 0)
        #expect(wheel.millisecondsUntilNext(now: 0) == -1)
        wheel.schedule(0, at: 45 * ms)
        let hint = wheel.millisecondsUntilNext(now: 3 * ms)
        #expect(hint >= 42 && hint <= 47)  // wakes at the 50ms tick, never before the deadline is due
        #expect(wheel.millisecondsUntilNext(now: 60 * ms) == 0)
    }

    @Test func earlierTimerAfterIdlePollsStillFiresOnTime() {
        // Polls that find nothing due skip the sweep; a timer set later for an earlier time must not be missed.
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 4, now: 0)
        wheel.schedule(0, at: 5000 * ms)
        for t in stride(from: UInt64(10), to: 400, by: 30) { #expect(drain(&wheel, now: t * ms) == []) }
        wheel.schedule(1, at: 450 * ms)
        #expect(wheel.millisecondsUntilNext(now: 400 * ms) <= 50)
        #expect(drain(&wheel, now: 449 * ms) == [])
        #expect(drain(&wheel, now: 450 * ms) == [1])
        #expect(drain(&wheel, now: 4990 * ms) == [])
        #expect(drain(&wheel, now: 5000 * ms) == [0])
    }

    /// An idle sweep moves the cursor past the cached hint of a cancelled timer: the next timeout must
    /// still be the real one, not 0 (which made the loop spin until the tick ended).
    @Test func idleSweepPastAStaleHintGivesTheRealTimeout() {
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 2, now: 0)
        wheel.schedule(0, at: 300 * ms)
        #expect(wheel.millisecondsUntilNext(now: 0) == 300)
        wheel.cancel(0)
        #expect(wheel.popExpired(now: 2_000 * ms) == nil)
        wheel.schedule(1, at: 2_200 * ms)
        for now in [2_000, 2_005, 2_009] as [UInt64] {
            #expect(wheel.millisecondsUntilNext(now: now * ms) == Int32(2_200 - now))
            #expect(wheel.popExpired(now: now * ms) == nil)
        }
        #expect(drain(&wheel, now: 2_200 * ms) == [1])
    }

    @Test func scheduleInThePastFiresOnNextSweep() {
        var wheel = TimerWheel(tick: .milliseconds(10), slots: 64, capacity: 1, now: 1000 * ms)
        wheel.schedule(0, at: 10 * ms)
        #expect(drain(&wheel, now: 1000 * ms) == [])
        #expect(drain(&wheel, now: 1010 * ms) == [0])
    }
}
