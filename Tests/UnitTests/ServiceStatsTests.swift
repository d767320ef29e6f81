@testable import Admin
import LoadBalancer
import Testing

/// The per-service pieces of `/api/stats` that are pure: rates between two samples, and which
/// counters a service keeps.
@Suite struct ServiceStatsTests {
    @Test func ratesArePerSecondAndACounterThatWentBackReadsZero() {
        var before = StatsHistory.Sample()
        before.accepted = 100
        before.bytesUp = 1000
        before.bytesDown = 5000
        before.badGateways = 4
        before.resets = 7
        var after = before
        after.accepted = 150
        after.bytesUp = 2000
        after.bytesDown = 4000  // went back (cannot happen to a counter): 0, not negative
        after.badGateways = 5
        after.timeouts = 3
        let r = StatsHistory.rates(after, before, 0.5)
        #expect(r.connections == 100 && r.bytesUp == 2000 && r.bytesDown == 0)
        #expect(r.badGateways == 2 && r.resets == 0 && r.timeouts == 6 && r.connectFailures == 0)
    }

    @Test func everyCounterTheIssueNamesIsKeptPerServiceAndTheProcessKeepsItsOwn() {
        let perService: Set<WorkerCounter> = [.accepted, .activePairs, .closedPairs, .badGateways, .connectFailures, .bytesUp,
                                              .bytesDown, .probesStarted, .probesFailed, .connectAttempts, .retries, .refused,
                                              .queued, .queueTimeouts, .queueLength]
        #expect(Set(WorkerCounter.allCases.filter(\.isPerService)) == perService)
        for c in [WorkerCounter.acceptPauses, .spliceSwitches, .buffersInUse, .pipesInUse, .accessLogDropped] {
            #expect(!c.isPerService, "\(c)")
        }
    }
}
