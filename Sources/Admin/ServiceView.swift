import LoadBalancer

/// One service as the admin side shows it: a name, a backend pool, and its pair counters. The one
/// place the admin code learns what services the balancer runs; everything else iterates over these.
struct ServiceView {
    var name: String
    var pool: BackendPool
    var accepted: Int
    var active: Int
    var badGateways: Int
    /// This service's close reasons, connect failures and histograms; nil when the balancer keeps
    /// them for the process only (then /metrics shows them once, without a service label).
    var metrics: MetricsSnapshot?

    /// The balancer's services, in configuration order. With one service, the process-wide close
    /// reasons, connect failures and histograms are that service's; with several they are kept for the
    /// process only (per-service pair counters still come from each service).
    static func all(_ lb: LoadBalancer) -> [ServiceView] {
        let services = lb.services
        if services.count == 1 {
            let m = lb.metrics
            let c = m.counters
            return [ServiceView(name: services[0].name, pool: services[0].pool, accepted: c[.accepted],
                                active: c[.activePairs], badGateways: c[.badGateways], metrics: m)]
        }
        return services.map { s in
            let c = s.counters
            return ServiceView(name: s.name, pool: s.pool, accepted: c[.accepted], active: c[.activePairs],
                               badGateways: c[.badGateways], metrics: nil)
        }
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
