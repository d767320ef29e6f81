import CShim
import FakeBackends
import Glibc
import LoadBalancer
import LoadGen
import Testing

/// The operator's checklist from the design sketch, automated: fake backends, the balancer and the load
/// generator all in-process, over real loopback sockets.
@Suite struct OperatorChecklistTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test func threeBackendsOneRequest() throws {
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 3)) { farm, lb, address in
            let report = try load(address, requests: 1, concurrency: 1)
            #expect(report.succeeded == 1 && report.statusCodes == [200: 1])
            #expect(report.backends.count == 1)
            #expect(farm.totals.requests == 1)
        }
    }

    @Test func thousandRequestsAtConcurrencyHundredSpreadEvenly() throws {
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 3)) { farm, lb, address in
            let report = try load(address, requests: 1000, concurrency: 100)
            #expect(report.succeeded == 1000, "\(report.errors)")
            #expect(report.backends.count == 3)
            for (name, count) in report.backends {
                #expect(abs(Double(count) - 1000.0 / 3) <= 1000.0 / 3 * 0.05, "backend \(name) got \(count)")
            }
            #expect(Set(report.backends.keys) == Set(farm.addresses.map { String($0.port) }))
        }
    }

    @Test func killedBackendEndsItsClientPromptlyAndRecovers() throws {
        var farmConfig = FarmConfiguration(ephemeral: 3)
        farmConfig.loops = 1
        try withFarmAndBalancer(farmConfig, configure: {
            $0.idleTimeout = .seconds(120)
            $0.health.interval = .milliseconds(200)
            $0.health.rise = 2
        }) { farm, lb, address in
            let victim = farm.addresses[1]
            // Requests to the victim hang in flight, so it dies mid-request.
            farm.setFault(victim, .hang)
            var stuck: Int32 = -1
            for _ in 0..<3 where stuck < 0 {
                // Counted before connecting: lb may accept and reach the victim before connect() returns here.
                let before = farm.counters(victim).connections
                guard case .success(let fd) = TestSocket.connect(address, timeoutSeconds: 30) else { continue }
                TestSocket.sendAll(fd, "GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
                // Either the victim took it (it will never answer) or another backend answers.
                var answered = false
                let reached = eventually { farm.counters(victim).connections > before || { answered = Self.readable(fd); return answered }() }
                if !reached { close(fd) }
                try #require(reached, "the request neither reached the victim nor got an answer")
                if answered {
                    _ = TestSocket.readAll(fd)
                    close(fd)
                } else {
                    stuck = fd
                }
            }
            try #require(stuck >= 0, "no request reached the victim")
            defer { close(stuck) }
            // Killed while it still hangs (clearing the fault first could let it answer and close
            // cleanly before the kill, an EOF rather than the reset this checks); then healed for
            // its restart.
            farm.kill(victim)
            farm.setFault(victim, nil)

            // That client's connection ends at once (a reset passed on), not after the 120s idle timeout.
            let start = MonotonicClock.now()
            let (_, end) = TestSocket.readAll(stuck)
            #expect(end == .reset)  // the backend died: its reset is passed on
            #expect(MonotonicClock.now() - start < 60_000_000_000)

            // Every later request succeeds on the others.
            let after = try load(address, requests: 300, concurrency: 10)
            #expect(after.succeeded == 300, "\(after.errors)")
            #expect(after.backends[String(victim.port)] == nil)
            #expect(lb.pool.info(victim)?.isUp == false)

            // Restarted, it is probed back up and takes traffic again.
            try farm.restart(victim)
            #expect(eventually(timeout: .seconds(10)) { lb.pool.info(victim)?.isUp == true })
            let recovered = try load(address, requests: 300, concurrency: 10)
            #expect(recovered.succeeded == 300)
            #expect((recovered.backends[String(victim.port)] ?? 0) > 50)

            // And nothing is left open: what `netstat -an | grep PORT` would show.
            #expect(eventually { lb.counters[.activePairs] == 0 })
            let leftovers = openSockets(balancer: address, backends: farm.addresses)
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
    }

    @Test func echoThroughTheBalancerLosesNoByte() throws {
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 4, mode: .echo)) { _, lb, address in
            var config = LoadConfiguration(target: LoadTarget(address: address))
            config.mode = .echo
            config.size = 200_000
            config.keepAlive = true
            config.requests = 400
            config.concurrency = 40
            config.threads = 2
            config.timeout = .seconds(20)
            let report = try LoadGenerator.run(config)
            #expect(report.succeeded == 400, "\(report.errors)")
            #expect(report.errors[.mismatch] == nil)
            #expect(report.bytesReceived == 400 * 200_000)
            #expect(eventually { lb.counters[.activePairs] == 0 })
        }
    }

        /// Whether `fd` has something to read (or an end) right now.
    static func readable(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 1
    }

    @Test func noConnectionLeftAfterARun() throws {
        try withFarmAndBalancer(FarmConfiguration(ephemeral: 3)) { farm, lb, address in
            let report = try load(address, requests: 500, concurrency: 50, keepAlive: true)
            #expect(report.succeeded == 500)
            #expect(eventually { lb.counters[.activePairs] == 0 })
            #expect(lb.counters[.accepted] == report.connections)
            #expect(openSockets(balancer: address, backends: farm.addresses).isEmpty)
            #expect(lb.pool.all().allSatisfy { $0.activeConnections == 0 })
        }
    }
}

extension ScaleTests {
    /// 5,000 backends, a tenth of them faulty in every way the farm knows. Active HTTP checks find the
    /// broken ones, connect retries cover the refusals, and no client request fails.
    @Test func fiveThousandBackendsWithMixedFaultsServeEveryRequest() throws {
        var farmConfig = FarmConfiguration(ephemeral: 5000)
        farmConfig.failRate = 0.1
        farmConfig.fault = .mixed
        farmConfig.seed = 42
        farmConfig.delay = .milliseconds(100)
        try withFarmAndBalancer(farmConfig, configure: {
            $0.health.mode = .http(path: "/health")
            $0.health.interval = .seconds(1)
            $0.health.timeout = .seconds(3)
            $0.health.fall = 2
            $0.health.maxInFlight = 512
            $0.connectTimeout = .milliseconds(500)
        }) { farm, lb, address in
            let faulty = farm.faulty
            #expect(faulty.count == 500)
            // Faults an HTTP check must catch: no answer, a broken answer, or no listener.
            let broken: Set<FaultKind> = [.refuse, .close, .reset, .hang, .dieMid]
            let mustBeDown = faulty.filter { broken.contains($0.fault) }.map(\.address)
            let settled = eventually(timeout: .seconds(60)) { mustBeDown.allSatisfy { lb.pool.info($0)?.isUp == false } }
            let stillUp = faulty.filter { broken.contains($0.fault) && lb.pool.info($0.address)?.isUp == true }
            #expect(settled, "still up: \(stillUp.prefix(10).map { "\($0.address.port) \($0.fault) \(lb.pool.info($0.address).map { "\($0.failStreak)" } ?? "")" }) counters \(lb.counters)")

            let report = try load(address, requests: 2000, concurrency: 50, timeout: .seconds(20))
            #expect(report.succeeded == 2000, "\(report.errors) \(report.statusCodes)")
            #expect(report.backends.count > 1000)
            let hitBroken = mustBeDown.filter { report.backends[String($0.port)] != nil }
            #expect(hitBroken.isEmpty)
        }
    }
}
