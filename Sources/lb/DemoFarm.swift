import FakeBackends
import LoadBalancer

/// `lb --demo`: an in-process farm of fake HTTP backends on free loopback ports, so one command shows a
/// working balancer on a fresh machine. Faulty backends (`--fail-rate`, `--fault`) show health checks at work.
struct DemoFarm {
    let farm: FakeBackendFarm

    static func start(_ settings: DemoSettings) throws(SystemError) -> DemoFarm {
        var config = FarmConfiguration(ephemeral: settings.count, host: "127.0.0.1", mode: .http)
        config.failRate = settings.failRate
        config.fault = FaultKind(rawValue: settings.fault) ?? .mixed
        config.seed = settings.seed
        config.loops = 1
        return DemoFarm(farm: try FakeBackendFarm.start(config))
    }

    var backends: [BackendSpec] { farm.addresses.map { BackendSpec(address: $0) } }

    var summary: String {
        let faulty = farm.faulty
        var text = Plural.count(farm.addresses.count, "http backend") + " on 127.0.0.1"
        if !faulty.isEmpty {
            text += ", faulty: " + faulty.map { "\($0.address.port) \($0.fault.rawValue)" }.joined(separator: ", ")
        }
        return text
    }

    func stop() { farm.stop() }
}
