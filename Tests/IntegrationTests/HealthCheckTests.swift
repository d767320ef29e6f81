import CShim
import FakeBackends
import Glibc
import LoadBalancer
import LoadGen
import Testing

/// Passive and active health checking over real sockets.
@Suite struct HealthCheckTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test func stoppedBackendIsSkippedAndLoggedOnce() throws {
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 3), configure: { $0.health.interval = .seconds(30) }) { farm, lb, address in
            let stopped = farm.addresses[0]
            farm.kill(stopped)
            let report = try load(address, requests: 200, concurrency: 20)
            #expect(report.succeeded == 200)
            #expect(report.backends[String(stopped.port)] == nil)
            let info = try #require(lb.pool.info(stopped))
            #expect(!info.isUp && info.healthTransitions == 1)
            // Both workers raced to mark it: exactly one logged it.
            let lines = lb.log.recent.filter { $0.contains("\(stopped)") }
            #expect(lines == ["backend \(stopped) down: connect failed: connection refused (1 in a row)"])
        }
    }

    @Test func restartedBackendComesBackAfterRiseGoodProbes() throws {
        let interval = Duration.milliseconds(300)
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 2), configure: {
            $0.health.interval = interval
            $0.health.rise = 2
        }) { farm, lb, address in
            let victim = farm.addresses[1]
            farm.kill(victim)
            _ = try load(address, requests: 10, concurrency: 2)
            #expect(lb.pool.info(victim)?.isUp == false)
            try farm.restart(victim)
            #expect(eventually(timeout: .seconds(10)) { lb.pool.info(victim)?.isUp == true })
            // It came up on `rise` good probes in a row. The worker logs just after it flips the state.
            #expect(eventually { lb.log.recent.contains("backend \(victim) up: health check passed (2/2)") })
            let report = try load(address, requests: 100, concurrency: 4)
            #expect((report.backends[String(victim.port)] ?? 0) >= 40)
        }
    }

    @Test func flappingBackendGetsNoTrafficWhileDown() throws {
        // rise 5 at 1s: a backend that comes back stays out of rotation for about five seconds.
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 3), configure: {
            $0.health.interval = .seconds(1)
            $0.health.rise = 5
        }) { farm, lb, address in
            let flapper = farm.addresses[2]
            for _ in 0..<2 {
                farm.kill(flapper)
                #expect(eventually { _ = try? load(address, requests: 3, concurrency: 1); return lb.pool.info(flapper)?.isUp == false })
                try farm.restart(flapper)  // listening again, but still down for the balancer
                let requestsBefore = farm.counters(flapper).requests
                let report = try load(address, requests: 100, concurrency: 5)
                #expect(report.succeeded == 100)
                #expect(lb.pool.info(flapper)?.isUp == false)
                #expect(report.backends[String(flapper.port)] == nil)
                // Probes connect, they send no request: any request would be client traffic.
                #expect(farm.counters(flapper).requests == requestsBefore)
                // Then it comes back and takes its share, so the next round kills a backend in rotation.
                try #require(eventually(timeout: .seconds(20)) { lb.pool.info(flapper)?.isUp == true })
                let back = try load(address, requests: 30, concurrency: 3)
                #expect(back.succeeded == 30)
                // Round robin over 3 gives it 10 of 30; a worker with a stale view may send its first
                // batch (at most the 3 connections in flight) elsewhere.
                let share = back.backends[String(flapper.port)] ?? 0
                #expect(share >= 7)
                #expect(eventually { farm.counters(flapper).requests == requestsBefore + UInt64(share) })
            }
        }
    }

    @Test func markedDownByHandIsBroughtBackByProbes() throws {
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 2), configure: {
            $0.health.interval = .milliseconds(200)
            $0.health.rise = 2
        }) { farm, lb, address in
            let target = farm.addresses[0]
            #expect(try lb.markDown(target).get() == true)
            #expect(lb.log.recent.contains("backend \(target) down: marked down by hand"))
            // It listens and is healthy, so the probes of down backends bring it back.
            #expect(eventually { lb.pool.info(target)?.isUp == true })
            let report = try load(address, requests: 40, concurrency: 2)
            #expect(report.succeeded == 40)
            // Round robin over 2 up backends with one shared counter gives it every other pick: 20 of 40.
            // A worker that has not rebuilt its view since the change may send its first batch (at most
            // the 2 connections in flight) to the other one, and those picks may have been its turns.
            #expect((report.backends[String(target.port)] ?? 0) >= 18)
        }
    }

    /// An idle timeout with the client waiting asks for a health check of that backend; the check, not
    /// the timeout, decides. A hung application behind a live socket fails an HTTP check.
    @Test func idleTimeoutOnAHungBackendIsConfirmedByAHealthCheck() throws {
        var farmConfig = FarmConfiguration(ephemeral: 1)
        farmConfig.failRate = 1
        farmConfig.fault = .hang
        try withFarmAndBalancer(farmConfig, configure: {
            $0.idleTimeout = .milliseconds(200)
            $0.health.mode = .http(path: "/health")
            $0.health.timeout = .milliseconds(200)
            $0.health.fall = 2
            $0.health.interval = .seconds(60)  // the walk's one round is spent at start: checks come from the timeout
            $0.panicThreshold = nil
        }) { farm, lb, address in
            let silent = farm.addresses[0]
            let (text, end) = httpGet(address)
            #expect(text.isEmpty && end == .reset)  // cut by the idle timeout: a reset, not a clean end
            #expect(eventually { lb.pool.info(silent)?.isUp == false })
            #expect(eventually { lb.log.recent.contains { $0.hasPrefix("backend \(silent) down: health check got no answer in time") } })
            // With its only backend down (and panic mode off), the next client is told at once.
            #expect(httpGet(address).text.hasPrefix("HTTP/1.1 502 Bad Gateway"))
        }
    }

    @Test func httpCheckNeedsA2xx() throws {
        let sick = TestServer { fd in
            _ = TestSocket.read(fd, until: "\r\n\r\n")
            _ = TestSocket.sendAll(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        let well = TestServer { fd in
            let head = TestSocket.read(fd, until: "\r\n\r\n")
            let status = head.hasPrefix("GET /healthz ") ? "200 OK" : "404 Not Found"
            _ = TestSocket.sendAll(fd, "HTTP/1.1 \(status)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        defer { sick.stop(); well.stop() }
        try withBalancer(backends: [sick.address, well.address], configure: {
            $0.health.mode = .http(path: "/healthz")
            $0.health.interval = .milliseconds(100)
            $0.health.fall = 2
        }) { lb, _ in
            #expect(eventually { lb.pool.info(sick.address)?.isUp == false })
            #expect(eventually { lb.log.recent.contains("backend \(sick.address) down: health check got a non-2xx answer (2/2)") })
            // The well one has been probed many times by now and is still up.
            #expect(eventually { well.accepted.load(ordering: .relaxed) >= 5 })
            #expect(lb.pool.info(well.address)?.isUp == true)
            #expect(lb.counters[.probesStarted] >= 10)
        }
    }

    @Test func hungHealthCheckTimesOut() throws {
        var farmConfig = FarmConfiguration(ephemeral: 2)
        farmConfig.failRate = 0.5
        farmConfig.fault = .hang
        try withFarmAndBalancer(farmConfig, configure: {
            $0.health.mode = .http(path: "/health")
            $0.health.interval = .milliseconds(100)
            // Long enough that the healthy one never misses it on a loaded machine; the hung one
            // never answers at all, so it still times out.
            $0.health.timeout = .seconds(1)
            $0.health.fall = 2
        }) { farm, lb, _ in
            let hung = try #require(farm.faulty.first?.address)
            #expect(eventually { lb.pool.info(hung)?.isUp == false })
            #expect(eventually { lb.log.recent.contains("backend \(hung) down: health check got no answer in time (2/2)") })
            let healthy = farm.addresses.first { $0 != hung }!
            #expect(lb.pool.info(healthy)?.isUp == true)
        }
    }
}

extension ScaleTests {
    /// 5,000 backends, 10% refusing: TCP checks of every backend settle on exactly the refusing set.
    @Test func fiveThousandBackendsSettleOnExactlyTheRefusingOnes() throws {
        var farmConfig = FarmConfiguration(ephemeral: 5000)
        farmConfig.failRate = 0.1
        farmConfig.fault = .refuse
        farmConfig.seed = 7
        try withFarmAndBalancer(farmConfig, configure: {
            $0.health.mode = .all
            $0.health.interval = .seconds(1)
            $0.health.fall = 2
        }) { farm, lb, _ in
            let refusing = Set(farm.faulty.map(\.address))
            #expect(refusing.count == 500)
            func down() -> Set<SocketAddress> { Set(lb.pool.all().filter { !$0.isUp }.map(\.address)) }
            #expect(eventually(timeout: .seconds(60)) { down() == refusing })
            // And it stays exact over further probe rounds: nothing healthy flaps down.
            let rounds = lb.counters[.probesStarted]
            #expect(eventually(timeout: .seconds(60)) { lb.counters[.probesStarted] >= rounds + 10_000 })
            #expect(down() == refusing)
            #expect(lb.pool.downBackends == 500)
        }
    }
}
