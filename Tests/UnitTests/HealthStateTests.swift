import LoadBalancer
import Testing

@Suite struct HealthStateTests {
    @Test func connectFailureIsDownAtOnce() {
        var h = HealthState()
        #expect(h.apply(.connectFailed(.refused), rise: 2, fall: 3) == .wentDown)
        #expect(!h.isUp && h.failStreak == 3)
        #expect(h.apply(.connectFailed(.refused), rise: 2, fall: 3) == .none)
    }

    @Test func silentTimeoutsFallAfterThreshold() {
        var h = HealthState()
        #expect(h.apply(.silentTimeout, rise: 2, fall: 3) == .none)
        #expect(h.apply(.silentTimeout, rise: 2, fall: 3) == .none)
        #expect(h.apply(.answered, rise: 2, fall: 3) == .none)  // an answer breaks the run
        #expect(h.failStreak == 0)
        #expect(h.apply(.silentTimeout, rise: 2, fall: 3) == .none)
        #expect(h.apply(.silentTimeout, rise: 2, fall: 3) == .none)
        #expect(h.apply(.silentTimeout, rise: 2, fall: 3) == .wentDown)
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
