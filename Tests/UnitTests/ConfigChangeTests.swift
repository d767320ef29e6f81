import LoadBalancer
import Testing

@Suite struct ConfigChangeTests {
    static func service(_ name: String, _ listen: [String], _ backends: [String], _ configure: (inout ServiceSettings) -> Void = { _ in }) -> ServiceConfiguration {
        var settings = ServiceSettings(Configuration())
        configure(&settings)
        return ServiceConfiguration(
            name: name, listen: listen.map { try! ValueParsers.listenAddress($0).get() },
            backends: backends.flatMap { try! ValueParsers.backends($0).get() }, settings: settings)
    }

    static func config(_ services: [ServiceConfiguration], _ configure: (inout Configuration) -> Void = { _ in }) -> Configuration {
        var c = Configuration()
        c.services = services
        configure(&c)
        return c
    }

    @Test func nothingChangedIsEmptyEvenWithTenThousandBackends() {
        let a = Self.config([Self.service("web", [":80"], ["127.0.0.1:10000-14999", "[::1]:10000-14999"])])
        let change = ConfigChange(old: a, new: a)
        #expect(change.isEmpty)
        #expect(change.summary == "no changes")
        #expect(change.result == a)
    }

    @Test func servicesBackendsListenersAndSettings() {
        let old = Self.config([
            Self.service("web", [":80"], ["127.0.0.1:1", "127.0.0.1:2"]),
            Self.service("db", [":5433"], ["127.0.0.1:5432"]),
        ])
        let new = Self.config([
            Self.service("api", [":81"], ["127.0.0.1:9"]),
            Self.service("web", [":80", "[::]:80"], ["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]) { $0.idleTimeout = .seconds(5) },
        ])
        let change = ConfigChange(old: old, new: new)
        #expect(change.addedServices.map(\.name) == ["api"])
        #expect(change.removedServices == ["db"])
        #expect(change.changedServices.count == 1)
        let web = change.changedServices[0]
        #expect(web.addedBackends.map(\.description) == ["127.0.0.1:3", "127.0.0.1:4"])
        #expect(web.removedBackends.map(\.description) == ["127.0.0.1:1"])
        #expect(web.addedListeners.map(\.description) == ["[::]:80"])
        #expect(web.removedListeners.isEmpty)
        #expect(web.settingsChanged && web.settings.idleTimeout == .seconds(5))
        #expect(change.needsRestart.isEmpty)
        #expect(change.summary == "+1 service (api), -1 service (db), web: +2 -1 backends, +1 -0 listeners, settings")
    }

    @Test func keptServicesWithoutChangesAreNotListed() {
        let old = Self.config([Self.service("web", [":80"], ["127.0.0.1:1"]), Self.service("db", [":81"], ["127.0.0.1:2"])])
        let new = Self.config([Self.service("web", [":80"], ["127.0.0.1:1"]), Self.service("db", [":81"], ["127.0.0.1:3"])])
        let change = ConfigChange(old: old, new: new)
        #expect(change.changedServices.map(\.name) == ["db"])
        #expect(change.summary == "db: +1 -1 backends")
    }

    @Test func whatNeedsARestartIsReportedAndKeptAsItWas() {
        let old = Self.config([Self.service("web", [":80"], ["127.0.0.1:1"])]) { $0.workers = 2 }
        let new = Self.config([Self.service("web", [":80"], ["127.0.0.1:1@5"]) { $0.bufferSize = 64 * 1024; $0.backlog = 10 }]) {
            $0.workers = 4; $0.splice = false
        }
        let change = ConfigChange(old: old, new: new, workerBufferSize: 16 * 1024)
        #expect(change.needsRestart == [
            "workers 2 -> 4", "splice on -> off",
            "web: backlog 1024 -> 10 for kept listeners", "web: buffer_size 65536 (workers hold 16384)",
        ])
        #expect(change.result.workers == 2 && change.result.splice)
        #expect(change.changedServices.first?.reweighted.map(\.description) == ["127.0.0.1:1@5"])
    }

    @Test func balancingAndAdmissionNeedARestartAndTheResultKeepsWhatRuns() {
        let old = Self.config([Self.service("web", [":80"], ["127.0.0.1:1"])])
        let new = Self.config([Self.service("web", [":80"], ["127.0.0.1:1"]) {
            $0.balancing.algorithm = .maglev
            $0.admission.maxConns = 10
        }])
        let change = ConfigChange(old: old, new: new)
        #expect(change.needsRestart == [
            "web: balance, slow_start or backend_max_conns",
            "web: max_conns, queue_timeout, allow, deny or max_conns_per_source",
        ])
        #expect(change.result.services[0].settings.balancing.algorithm == .roundRobin)
        #expect(change.result.services[0].settings.admission.maxConns == nil)
        // Flags only: the default service's settings are the top level's.
        var flagsOld = Configuration(), flagsNew = Configuration()
        flagsOld.backends = []
        flagsNew.backends = []
        flagsNew.balancing.algorithm = .leastConn
        let flagsChange = ConfigChange(old: flagsOld, new: flagsNew)
        #expect(flagsChange.needsRestart == ["default: balance, slow_start or backend_max_conns"])
        #expect(flagsChange.result.balancing.algorithm == .roundRobin)
    }

    @Test func flagsOnlyConfigurationsDiffAsTheServiceDefault() {
        var old = Configuration(), new = Configuration()
        old.backends = [BackendSpec(address: SocketAddress(host: "127.0.0.1", port: 1)!)]
        new.backends = []
        let change = ConfigChange(old: old, new: new)
        #expect(change.summary == "default: +0 -1 backends")
    }
}

extension ConfigChangeTests {
    @Test func processWideSettingsThatApplyAtOnceAreListed() {
        let old = Self.config([Self.service("web", [":80"], ["127.0.0.1:1"])])
        var new = old
        new.drainTimeout = .seconds(5)
        let change = ConfigChange(old: old, new: new)
        #expect(!change.isEmpty && change.needsRestart.isEmpty)
        #expect(change.summary == "drain_timeout 10.0 seconds -> 5.0 seconds")
        #expect(change.result.drainTimeout == .seconds(5))
    }
}
