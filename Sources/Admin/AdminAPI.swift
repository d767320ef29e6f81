import FoundationEssentials
import Glibc
import LoadBalancer
import OperatorHTTP
import Synchronization

/// The admin API's routes over a running `LoadBalancer`: what `lb --admin` serves (docs/admin.md).
///
///     GET    /                                the dashboard (one self-contained page)
///     GET    /metrics                         Prometheus text format 0.0.4
///     GET    /api/backends[?service=NAME]     one JSON object per backend
///     POST   /api/backends                    {"address": "HOST:PORT", "weight": N, "service": "NAME"}
///     POST   /api/backends/ADDR/drain|enable|disable
///     DELETE /api/backends/ADDR
///     GET    /api/stats                       totals, rates and history for the dashboard
///     GET    /api/events[?since=SEQ]          recent backend state changes
///     GET    /healthz                         200 while serving, 503 while draining
///
/// With a token, every request but the dashboard's page needs `Authorization: Bearer TOKEN` (the page
/// holds no data; it asks for the token and sends it with each of its requests).
public final class AdminAPI: Sendable {
    /// Today a pool is one service, named so in labels and JSON.
    public static let defaultService = "default"

    public let balancer: LoadBalancer
    private let token: AdminToken?
    private let state = Mutex(State())

    struct State {
        var history = StatsHistory()
        var metrics = MetricsPage()
    }

    public init(balancer: LoadBalancer, token: AdminToken?) {
        self.balancer = balancer
        self.token = token
    }

    /// Samples totals for the rates (the server calls it every second).
    public func tick() {
        let m = balancer.metrics
        let services = ServiceView.all(balancer)
        let backends = services.backends()
        let now = MonotonicClock.now()
        state.withLock { $0.history.record(StatsHistory.sample(m, now: now), services: services, backends: backends) }
    }

    public func handle(_ request: HTTPRequestHead) -> HTTPResponse {
        let (path, query) = Self.split(request.target)
        let isPage = path == "/" || path == "/index.html"
        if let token, !isPage, !token.accepts(authorization: request.header("authorization")) {
            var r = HTTPResponse.jsonError(401, request.header("authorization") == nil ? "missing bearer token" : "wrong bearer token")
            r.headers.append(HTTPHeader("WWW-Authenticate", #"Bearer realm="lb""#))
            return r
        }
        let method = request.method == "HEAD" ? "GET" : request.method
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        switch segments.first {
        case nil where isPage, "index.html":
            guard method == "GET" else { return Self.notAllowed("GET") }
            return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: Dashboard.page,
                                headers: [HTTPHeader("Cache-Control", "no-store")])
        case "metrics" where segments.count == 1:
            guard method == "GET" else { return Self.notAllowed("GET") }
            let services = ServiceView.all(balancer)
            let backends = services.backends()
            let now = MonotonicClock.now()
            let body = state.withLock { $0.metrics.render(balancer, services: services, backends: backends, now: now) }
            return HTTPResponse(status: 200, contentType: PrometheusWriter.contentType, body: body)
        case "healthz" where segments.count == 1:
            guard method == "GET" else { return Self.notAllowed("GET") }
            return balancer.isDraining ? HTTPResponse(status: 503, text: "draining") : HTTPResponse(status: 200, text: "ok")
        case "api" where segments.count >= 2:
            return api(method: method, segments: Array(segments.dropFirst()), query: query, body: request.body)
        default:
            return .jsonError(404, "no such endpoint: \(path)")
        }
    }

    private func api(method: String, segments: [String], query: [String: String], body: [UInt8]) -> HTTPResponse {
        switch segments[0] {
        case "stats" where segments.count == 1:
            guard method == "GET" else { return Self.notAllowed("GET") }
            return .json(200, stats())
        case "events" where segments.count == 1:
            guard method == "GET" else { return Self.notAllowed("GET") }
            var since = 0
            if let s = query["since"] {
                guard let n = Int(s), n >= 0 else { return .jsonError(400, "since: expected a sequence number") }
                since = n
            }
            return .json(200, events(since: since))
        case "backends":
            let services = ServiceView.all(balancer)
            let named = query["service"]
            if let named, services.named(named) == nil { return .jsonError(404, "no such service: \(named)") }
            if segments.count == 1 {
                switch method {
                case "GET": return .json(200, backendList(services.filter { named == nil || $0.name == named }))
                case "POST": return addBackend(body, services: services, query: named)
                default: return Self.notAllowed("GET, POST")
                }
            }
            let address: SocketAddress
            switch Self.backendAddress(segments[1]) {
            case .success(let a): address = a
            case .failure(let f): return .jsonError(400, "backend address \(segments[1].debugDescription): \(f.reason)")
            }
            guard segments.count <= 3 else { return .jsonError(404, "no such endpoint") }
            let action = segments.count == 3 ? segments[2] : nil
            if let action, !["drain", "enable", "disable"].contains(action) {
                return .jsonError(404, "no such action: \(action) (drain, enable, disable)")
            }
            let allowed = action == nil ? "GET, DELETE" : "POST"
            guard (action == nil && (method == "GET" || method == "DELETE")) || (action != nil && method == "POST") else {
                return Self.notAllowed(allowed)
            }
            let service: ServiceView
            switch services.holding(address, service: named) {
            case .success(let s): service = s
            case .failure(let f): return .jsonError(f.status, f.message)
            }
            switch (method, action) {
            case ("GET", _):
                guard let info = service.pool.info(address) else { return .jsonError(404, "no such backend: \(address)") }
                var w = JSONWriter()
                write(info, service: service.name, to: &w, now: MonotonicClock.now())
                return .json(200, w.bytes)
            case ("DELETE", _): return change(address, in: service, service.pool.remove(address), "removed")
            case (_, "drain"): return change(address, in: service, service.pool.drain(address), "drain")
            case (_, "disable"): return change(address, in: service, service.pool.disable(address), "disabled")
            default: return change(address, in: service, service.pool.undrain(address), "enabled")
            }
        default:
            return .jsonError(404, "no such endpoint: /api/\(segments.joined(separator: "/"))")
        }
    }

    private func change(_ address: SocketAddress, in service: ServiceView, _ result: Result<Void, PoolError>, _ state: String) -> HTTPResponse {
        if case .failure(let error) = result { return .jsonError(404, error.description) }
        balancer.log.backendChanged(address, state, serviceNamed("by the admin API", service.name), service: service.name)
        if state == "removed" {
            var w = JSONWriter()
            w.object { w in
                w.field("service", service.name)
                w.field("address", address.description)
                w.field("state", "removed")
            }
            return .json(200, w.bytes)
        }
        guard let info = service.pool.info(address) else { return .jsonError(404, "no such backend: \(address)") }
        var w = JSONWriter()
        write(info, service: service.name, to: &w, now: MonotonicClock.now())
        return .json(200, w.bytes)
    }

    /// `cause`, ending with the service when there is more than the one `default` (as the workers'
    /// health lines do: the same address in two services is two backends).
    private func serviceNamed(_ cause: String, _ name: String) -> String {
        let services = balancer.services
        return services.count == 1 && name == Self.defaultService ? cause : "\(cause), service \(name)"
    }

    struct NewBackend: Decodable {
        var address: String
        var weight: Int?
        var service: String?
    }

    private func addBackend(_ body: [UInt8], services: [ServiceView], query: String?) -> HTTPResponse {
        guard !body.isEmpty else { return .jsonError(400, #"expected a JSON body: {"address": "HOST:PORT", "weight": N}"#) }
        let spec: NewBackend
        do {
            spec = try JSONDecoder().decode(NewBackend.self, from: Data(body))
        } catch DecodingError.keyNotFound(let key, _) {
            return .jsonError(400, "missing field: \(key.stringValue)")
        } catch DecodingError.typeMismatch(_, let context) {
            return .jsonError(400, "wrong type for \(context.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch {
            return .jsonError(400, #"bad JSON body: expected {"address": "HOST:PORT", "weight": N, "service": "NAME"}"#)
        }
        let service: ServiceView
        switch services.pick(spec.service ?? query) {
        case .success(let s): service = s
        case .failure(let f): return .jsonError(f.status, f.message)
        }
        let weight = spec.weight ?? 1
        guard (1...BackendSpec.maxWeight).contains(weight) else { return .jsonError(400, "weight must be between 1 and \(BackendSpec.maxWeight)") }
        let address: SocketAddress
        switch Self.backendAddress(spec.address) {
        case .success(let a): address = a
        case .failure(let f): return .jsonError(400, "address \(spec.address.debugDescription): \(f.reason)")
        }
        if balancer.isOwnListener(address) {
            return .jsonError(400, "backend \(address) is lb's own listen address: that would be a loop")
        }
        switch service.pool.add(BackendSpec(address: address, weight: weight)) {
        case .failure(.duplicate): return .jsonError(409, "backend \(address) is already in the pool")
        case .failure(let error): return .jsonError(503, error.description)
        case .success(let id):
            balancer.log.backendChanged(address, "added", serviceNamed("by the admin API (weight \(weight))", service.name), service: service.name)
            var w = JSONWriter()
            write(service.pool.info(id: id), service: service.name, to: &w, now: MonotonicClock.now())
            return HTTPResponse(status: 201, contentType: "application/json", body: w.bytes + [10])
        }
    }

    // MARK: JSON bodies

    /// `up`, `down`, `drain` or `disabled`: the admin state wins over health.
    static func state(of b: BackendInfo) -> String {
        switch b.admin {
        case .draining: "drain"
        case .disabled: "disabled"
        default: b.isUp ? "up" : "down"
        }
    }

    private func write(_ b: BackendInfo, service: String, to w: inout JSONWriter, now: UInt64) {
        w.object { w in
            w.field("service", service)
            w.field("address", b.address.description)
            w.field("state", Self.state(of: b))
            w.field("weight", b.weight)
            w.field("active", b.activeConnections)
            w.field("total", b.totalConnections)
            w.field("failed", b.failedConnects)
            w.field("bytes_in", b.bytesFromBackend)
            w.field("bytes_out", b.bytesToBackend)
            w.field("last_change", Double((now &- min(b.lastChange, now)) / 1_000_000) / 1000)
        }
    }

    func backendList(_ services: [ServiceView]) -> [UInt8] {
        let backends = services.backends()
        let now = MonotonicClock.now()
        var w = JSONWriter(reserving: backends.count * 200 + 16)
        w.array { w in for b in backends { write(b.info, service: b.service, to: &w, now: now) } }
        return w.bytes
    }

    func events(since: Int, limit: Int = 200) -> [UInt8] {
        let list = balancer.log.backendEvents.filter { $0.sequence > since }.suffix(limit)
        let services = ServiceView.all(balancer)
        // An event from a caller that did not say its service is named when there is only one.
        let only: String? = services.count == 1 ? services[0].name : nil
        var w = JSONWriter()
        w.array { w in
            for e in list {
                w.object { w in
                    w.field("seq", e.sequence)
                    w.field("time", e.unixTime)
                    w.field("service", e.service ?? only)
                    w.field("backend", e.address.description)
                    w.field("state", e.state)
                    w.field("cause", e.cause)
                }
            }
        }
        return w.bytes
    }

    /// The dashboard's one request a second: totals, rates and their history, per-service counts,
    /// per-backend state and load for the heat map, and the last events. Shape in docs/admin.md.
    func stats() -> [UInt8] {
        let lb = balancer
        let m = lb.metrics
        let services = ServiceView.all(lb)
        let backends = services.backends()
        let now = MonotonicClock.now()
        let (rates, active, backendRates, serviceRates) = state.withLock { s in
            (s.history.rates, s.history.active, s.history.backendRates, s.history.serviceRates)
        }
        var w = JSONWriter(reserving: backends.count * 12 + 32_768)
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        w.object { w in
            w.field("time", Double(ts.tv_sec) + Double(ts.tv_nsec / 1_000_000) / 1000)
            w.field("uptime_seconds", Double((now &- lb.startedAt) / 1_000_000) / 1000)
            w.field("draining", lb.isDraining)
            w.field("workers", lb.workerCount)
            w.key("listeners")
            w.array { w in for a in lb.listenAddresses { w.string(a.description) } }
            w.key("totals")
            Self.writeTotals(m, process: true, to: &w)
            w.key("closes")
            w.object { w in for r in CloseReason.allCases where r != .none { w.field(r.name, m.closes[r] ?? 0) } }
            w.key("connect_time")
            w.object { w in
                w.field("p50", Self.quantile(m.connectTime, 0.5))
                w.field("p99", Self.quantile(m.connectTime, 0.99))
            }
            w.key("history")
            w.object { w in
                w.field("interval_seconds", 1)
                func series(_ name: String, _ value: (StatsHistory.Rates) -> Double) {
                    w.key(name)
                    w.array { w in for r in rates { w.double((value(r) * 10).rounded() / 10) } }
                }
                series("connections") { $0.connections }
                series("bytes_to_backends") { $0.bytesUp }
                series("bytes_to_clients") { $0.bytesDown }
                series("bad_gateways") { $0.badGateways }
                series("connect_failures") { $0.connectFailures }
                series("resets") { $0.resets }
                series("timeouts") { $0.timeouts }
                w.key("active")
                w.array { w in for a in active { w.int(a) } }
            }
            var counts: [String: [String: Int]] = [:]
            var backendActive: [String: Int] = [:]
            var states: [UInt8] = []
            states.reserveCapacity(backends.count)
            for b in backends {
                let s = Self.state(of: b.info)
                counts[b.service, default: [:]][s, default: 0] += 1
                states.append(s == "up" ? UInt8(ascii: "u") : s == "down" ? UInt8(ascii: "d") : s == "drain" ? UInt8(ascii: "r") : UInt8(ascii: "x"))
                backendActive[b.service, default: 0] += b.info.activeConnections
            }
            w.key("services")
            w.array { w in
                for service in services {
                    w.object { w in
                        w.field("name", service.name)
                        w.field("backends", counts[service.name]?.values.reduce(0, +) ?? 0)
                        for s in ["up", "down", "drain", "disabled"] { w.field(s, counts[service.name]?[s] ?? 0) }
                        w.field("active", service.active)
                        w.field("backend_connections", backendActive[service.name] ?? 0)
                        let rate = serviceRates[service.name] ?? StatsHistory.Rates()
                        w.field("connections_per_second", (rate.connections * 10).rounded() / 10)
                        let m = service.metrics
                        w.key("totals")
                        Self.writeTotals(m, to: &w)
                        w.key("rates")
                        Self.writeRates(rate, to: &w)
                        w.key("closes")
                        w.object { w in for r in CloseReason.allCases where r != .none { w.field(r.name, m.closes[r] ?? 0) } }
                        w.key("connect_time")
                        w.object { w in
                            w.field("p50", Self.quantile(m.connectTime, 0.5))
                            w.field("p99", Self.quantile(m.connectTime, 0.99))
                        }
                    }
                }
            }
            // One entry per backend, in pool order (the order of /api/backends): u up, d down,
            // r drain, x disabled; active connections; new connections per second (~10 s average).
            w.key("heat")
            w.object { w in
                w.field("count", backends.count)
                w.field("states", String(decoding: states, as: UTF8.self))
                w.key("active")
                w.array { w in for b in backends { w.int(b.info.activeConnections) } }
                w.key("rate")
                w.array { w in
                    for b in backends {
                        let rate = backendRates[StatsHistory.BackendKey(service: b.service, address: b.info.address)] ?? 0
                        w.double((rate * 100).rounded() / 100)
                    }
                }
            }
            w.key("events")
            w.raw(String(decoding: events(since: 0, limit: 15), as: UTF8.self))
        }
        return w.bytes
    }

    /// The counters of `m` as a JSON object; `process` adds the process's own (access-log drops).
    static func writeTotals(_ m: MetricsSnapshot, process: Bool = false, to w: inout JSONWriter) {
        let c = m.counters
        w.object { w in
            w.field("accepted", c[.accepted])
            w.field("active", c[.activePairs])
            w.field("closed", c[.closedPairs])
            w.field("bytes_to_backends", c[.bytesUp])
            w.field("bytes_to_clients", c[.bytesDown])
            w.field("bad_gateways", c[.badGateways])
            w.field("connect_attempts", c[.connectAttempts])
            w.field("connect_failures", m.connectFailures.values.reduce(0, +))
            w.field("retries", c[.retries])
            w.field("health_checks", c[.probesStarted])
            w.field("health_check_failures", c[.probesFailed])
            w.field("refused", c[.refused])
            w.field("queued", c[.queued])
            w.field("queue_timeouts", c[.queueTimeouts])
            w.field("queue_length", c[.queueLength])
            if process { w.field("access_log_dropped", c[.accessLogDropped]) }
        }
    }

    /// Per-second rates as a JSON object (one decimal).
    static func writeRates(_ r: StatsHistory.Rates, to w: inout JSONWriter) {
        func f(_ v: Double) -> Double { (v * 10).rounded() / 10 }
        w.object { w in
            w.field("connections", f(r.connections))
            w.field("bytes_to_backends", f(r.bytesUp))
            w.field("bytes_to_clients", f(r.bytesDown))
            w.field("bad_gateways", f(r.badGateways))
            w.field("connect_failures", f(r.connectFailures))
            w.field("resets", f(r.resets))
            w.field("timeouts", f(r.timeouts))
        }
    }

    /// A quantile estimated from histogram buckets (linear within the bucket, as Prometheus'
    /// `histogram_quantile`); 0 with no observations.
    static func quantile(_ h: HistogramSnapshot, _ q: Double) -> Double {
        let total = h.count
        guard total > 0 else { return 0 }
        let rank = q * Double(total)
        var seen = 0
        for (i, n) in h.counts.enumerated() {
            if Double(seen + n) >= rank && n > 0 {
                let lower = i == 0 ? 0 : h.bounds[i - 1]
                let upper = i < h.bounds.count ? h.bounds[i] : (h.bounds.last ?? 0)
                return lower + (upper - lower) * (rank - Double(seen)) / Double(n)
            }
            seen += n
        }
        return h.bounds.last ?? 0
    }

    // MARK: request pieces

    static func notAllowed(_ allow: String) -> HTTPResponse {
        var r = HTTPResponse.jsonError(405, "method not allowed (allowed: \(allow))")
        r.headers.append(HTTPHeader("Allow", allow))
        return r
    }

    /// Path and decoded query parameters.
    static func split(_ target: String) -> (String, [String: String]) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = percentDecoded(kv[0]) ?? String(kv[0])
                query[key] = kv.count > 1 ? (percentDecoded(kv[1]) ?? String(kv[1])) : ""
            }
        }
        return (String(parts[0]), query)
    }

    /// `%XX` sequences decoded (and `+` left alone: paths do not use it for spaces). Nil when a `%` is
    /// not followed by two hex digits or the result is not UTF-8.
    static func percentDecoded<S: StringProtocol>(_ text: S) -> String? {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard bytes.count >= 2, let hi = hex(bytes.removeFirst()), let lo = hex(bytes.removeFirst()) else { return nil }
            out.append(hi << 4 | lo)
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }

    /// A backend address from a path segment or a body: `HOST:PORT` or `[V6]:PORT`, URL-encoded or not.
    static func backendAddress(_ raw: String) -> Result<SocketAddress, ParseFailure> {
        guard let text = percentDecoded(raw) else { return .failure(ParseFailure("bad %-encoding")) }
        switch ValueParsers.listenAddress(text) {
        case .failure(let f): return .failure(f)
        case .success(let a):
            if text.hasPrefix(":") { return .failure(ParseFailure("missing host")) }
            if a.port == 0 { return .failure(ParseFailure("port 0 is not a backend")) }
            return .success(a)
        }
    }
}
