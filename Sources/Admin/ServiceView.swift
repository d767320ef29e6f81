import LoadBalancer

/// One service as the admin side shows it: a name, a backend pool, and its counters. The one place
/// the admin code learns what services the balancer runs; everything else iterates over these.
struct ServiceView {
    var name: String
    var pool: BackendPool
    /// This service's counters, close causes, connect failures and histograms, summed over workers
    /// (the process-only counters read 0 here: they live in `LoadBalancer.metrics`).
    var metrics: MetricsSnapshot

    var accepted: Int { metrics.counters[.accepted] }
    var active: Int { metrics.counters[.activePairs] }
    var badGateways: Int { metrics.counters[.badGateways] }

    /// The balancer's current services, in configuration order.
    static func all(_ lb: LoadBalancer) -> [ServiceView] {
        lb.services.map { ServiceView(name: $0.name, pool: $0.pool, metrics: $0.metrics) }
    }
}

/// A backend with the service it belongs to.
struct ServiceBackend {
    var service: String
    var pool: BackendPool
    var info: BackendInfo
}

extension Array where Element == ServiceView {
    /// Every backend of these services, service by service in pool order (the heat map's order).
    func backends() -> [ServiceBackend] {
        flatMap { s in s.pool.all().map { ServiceBackend(service: s.name, pool: s.pool, info: $0) } }
    }

    func named(_ name: String) -> ServiceView? { first { $0.name == name } }

    /// The service a request means: the one named, or the only one when none is named.
    func pick(_ name: String?) -> Result<ServiceView, AdminFailure> {
        if let name {
            guard let s = named(name) else { return .failure(AdminFailure(404, "no such service: \(name)")) }
            return .success(s)
        }
        guard count == 1 else {
            return .failure(AdminFailure(400, "service: required when there are several (\(map(\.name).joined(separator: ", ")))"))
        }
        return .success(self[0])
    }

    /// The services whose pool holds `address` (restricted to `name` when one is given).
    func holding(_ address: SocketAddress, service name: String?) -> Result<ServiceView, AdminFailure> {
        let candidates = filter { (name == nil || $0.name == name) && $0.pool.id(of: address) != nil }
        if let name, named(name) == nil { return .failure(AdminFailure(404, "no such service: \(name)")) }
        switch candidates.count {
        case 0: return .failure(AdminFailure(404, "no such backend: \(address)"))
        case 1: return .success(candidates[0])
        default:
            return .failure(AdminFailure(400, "backend \(address) is in several services (\(candidates.map(\.name).joined(separator: ", "))): add ?service=NAME"))
        }
    }
}

/// An admin request that cannot be served: status and message.
struct AdminFailure: Error {
    var status: Int
    var message: String
    init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
}
