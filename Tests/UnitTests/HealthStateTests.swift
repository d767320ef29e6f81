import LoadBalancer
import Testing

@Suite struct HealthStateTests {
    @Test func connectFailureIsDownAtOnce() {
        var h = HealthState()
        #expect(h.apply(.connectFailed(.refused), rise: 2, fall: 3) == .wentDown)
        // The streak counts what happened (one failure), not the threshold it skipped.
        #expect(!h.isUp && h.failStreak == 1)
        #expect(h.apply(.connectFailed(.refused), rise: 2, fall: 3) == .none)
        #expect(h.failStreak == 2)
    }

    @Test func failedChecksFallAfterThresholdAndAnAnswerBreaksTheRun() {
        var h = HealthState()
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 3) == .none)
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 3) == .none)
        #expect(h.apply(.answered, rise: 2, fall: 3) == .none)  // traffic answered: the run is broken
        #expect(h.failStreak == 0)
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 3) == .none)
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 3) == .none)
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 3) == .wentDown)
    }

    @Test func risesAfterConsecutiveProbes() {
        var h = HealthState(isUp: false)
        #expect(h.apply(.probeSucceeded, rise: 2, fall: 3) == .none)
        #expect(h.apply(.probeFailed(.refused), rise: 2, fall: 3) == .none)  // resets the run
        #expect(h.apply(.probeSucceeded, rise: 2, fall: 3) == .none)
        #expect(h.apply(.probeSucceeded, rise: 2, fall: 3) == .wentUp)
        #expect(h.isUp && h.failStreak == 0 && h.transitions == 1)
    }

    @Test func probesOfHealthyBackendsFall() {
        var h = HealthState()
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 2) == .none)
        #expect(h.apply(.probeSucceeded, rise: 2, fall: 2) == .none)
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 2) == .none)
        #expect(h.apply(.probeFailed(.timeout), rise: 2, fall: 2) == .wentDown)
    }

    @Test(arguments: [
        HealthState(), HealthState(isUp: false, failStreak: 3, successStreak: 1, transitions: 7),
        HealthState(isUp: true, failStreak: 255, successStreak: 255, transitions: .max),
    ])
    func packsIntoOneWord(state: HealthState) {
        #expect(HealthState(packed: state.packed) == state)
    }
}
