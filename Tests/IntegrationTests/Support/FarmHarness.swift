import FakeBackends
import LoadBalancer
import LoadGen

/// A fake backend farm on free loopback ports and a balancer over it, both always stopped.
func withFarmAndBalancer<T>(
    _ farmConfig: FarmConfiguration, workers: Int = 2, configure: (inout Configuration) -> Void = { _ in },
    _ body: (FakeBackendFarm, LoadBalancer, SocketAddress) throws -> T
) throws -> T {
    FileLimit.raiseToHard()
    let farm = try FakeBackendFarm.start(farmConfig)
    defer { farm.stop() }
    return try withBalancer(backends: farm.addresses, workers: workers, configure: configure) { lb, address in
        try body(farm, lb, address)
    }
}

/// `loadgen -n requests -c concurrency http://address/`, in-process.
func load(_ address: SocketAddress, requests: Int, concurrency: Int, keepAlive: Bool = false, timeout: Duration = .seconds(10)) throws -> LoadReport {
    var config = LoadConfiguration(target: LoadTarget(address: address, path: "/"))
    config.requests = requests
    config.concurrency = concurrency
    config.keepAlive = keepAlive
    config.threads = 2
    config.timeout = timeout
    return try LoadGenerator.run(config)
}

/// Sockets of this process on the balancer's port or to any of `backends` (what
/// `netstat -an | grep PORT` would show), listeners aside.
func openSockets(balancer: SocketAddress, backends: [SocketAddress]) -> [OpenSocket] {
    OpenSocket.ownedByThisProcess().filter { s in
        s.state != "LISTEN" && (s.isLocal(balancer) || s.isRemote(balancer) || backends.contains { s.isRemote($0) })
    }
}
