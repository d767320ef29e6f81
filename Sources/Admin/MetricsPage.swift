import LoadBalancer
import OperatorHTTP

/// Renders `/metrics`: Prometheus text format 0.0.4, every name prefixed `lb_`, labelled by
/// `service` and, per backend, `backend`. Reads the workers' own counter cells and the pools'
/// per-backend atomics only: a scrape takes no lock a worker waits on.
struct MetricsPage {
    /// Per service, per backend slot: the address its labels were rendered for, and the rendered
    /// labels (`service="default",backend="127.0.0.1:8000"`). Rebuilt for a slot only when its address
    /// changes, so a scrape of 10,000 backends formats no address.
    var labelCache: [String: [BackendID: (SocketAddress, [UInt8])]] = [:]

    mutating func render(_ lb: LoadBalancer, services: [ServiceView], backends: [ServiceBackend], now: UInt64) -> [UInt8] {
        let global = lb.metrics
        var w = PrometheusWriter(reserving: 96 * 10 * max(backends.count, 16) + 16_384)
        let serviceLabels = services.map { PrometheusWriter.labels(["service": $0.name]) }
        // Every pair, probe and admission count is kept per service (a removed service's series go
        // away with it; its counts stay in the process's totals, /api/stats).
        let scoped: [([UInt8], MetricsSnapshot)] = zip(serviceLabels, services.map(\.metrics)).map { ($0, $1) }

        func family(_ name: String, _ kind: PrometheusWriter.Kind, _ help: String, _ value: (ServiceView) -> Int) {
            w.family(name, kind, help: help)
            for (i, s) in services.enumerated() { w.sample(name, serviceLabels[i], value(s)) }
        }
        func scopedFamily(_ name: String, _ kind: PrometheusWriter.Kind, _ help: String, _ value: (MetricsSnapshot) -> Int) {
            w.family(name, kind, help: help)
            for (labels, m) in scoped { w.sample(name, labels, value(m)) }
        }
        func scopedByLabel(_ name: String, _ help: String, _ label: String, _ values: [(String, (MetricsSnapshot) -> Int)]) {
            w.family(name, .counter, help: help)
            for (labels, m) in scoped {
                for (value, count) in values { w.sample(name, labels, extra: PrometheusWriter.labels([label: value]), count(m)) }
            }
        }

        family("lb_connections_accepted_total", .counter, "Client connections accepted.") { $0.accepted }
        family("lb_active_pairs", .gauge, "Client connections open now (with or without a backend yet).") { $0.active }
        family("lb_bad_gateway_total", .counter, "Clients answered 502 Bad Gateway because no backend could take them.") { $0.badGateways }
        scopedByLabel("lb_pairs_closed_total", "Closed client connections by termination cause (see the access log's cause field).", "cause",
                      CloseReason.allCases.filter { $0 != .none }.map { r in (r.name, { $0.closes[r] ?? 0 }) })
        scopedByLabel("lb_bytes_total", "Bytes forwarded by closed connections, by direction (to_backend: from clients; to_client: from backends).",
                      "direction", [("to_backend", { $0.counters[.bytesUp] }), ("to_client", { $0.counters[.bytesDown] })])
        scopedFamily("lb_connect_attempts_total", .counter, "Backend connect attempts started (first tries and retries).") { $0.counters[.connectAttempts] }
        let causes: [(String, ConnectFailure)] = [("refused", .refused), ("reset", .reset), ("timeout", .timeout), ("unreachable", .unreachable), ("other", .other), ("local", .local)]
        scopedByLabel("lb_connect_failures_total", "Failed backend connect attempts by cause (local: lb ran short, no backend blamed).", "cause",
                      causes.map { name, f in (name, { $0.connectFailures[f] ?? 0 }) })
        scopedFamily("lb_retries_total", .counter, "Connect attempts that were retries on another backend after a failure.") { $0.counters[.retries] }
        scopedFamily("lb_health_checks_total", .counter, "Active health probes started.") { $0.counters[.probesStarted] }
        scopedFamily("lb_health_check_failures_total", .counter, "Active health probes that failed.") { $0.counters[.probesFailed] }
        scopedFamily("lb_refused_total", .counter, "Clients reset at accept by --allow/--deny or --max-conns-per-source.") { $0.counters[.refused] }
        scopedFamily("lb_queued_total", .counter, "Connections that waited for a backend place (every backend at its limit).") { $0.counters[.queued] }
        scopedFamily("lb_queue_timeouts_total", .counter, "Queued connections whose --queue-timeout ran out.") { $0.counters[.queueTimeouts] }
        w.family("lb_queue_length", .gauge, help: "Connections waiting for a backend place now.")
        for (labels, m) in scoped { w.sample("lb_queue_length", labels, m.counters[.queueLength]) }

        var transitions: [String: Int] = [:]
        var byState: [String: [String: Int]] = [:]
        for b in backends {
            transitions[b.service, default: 0] += b.info.healthTransitions
            byState[b.service, default: [:]][AdminAPI.state(of: b.info), default: 0] += 1
        }
        family("lb_health_transitions_total", .counter, "Backend health changes (up to down or down to up), summed over the backends in the pool.") {
            transitions[$0.name] ?? 0
        }
        w.family("lb_backends", .gauge, help: "Backends in the pool by state.")
        for (i, s) in services.enumerated() {
            for state in ["up", "down", "drain", "disabled"] {
                w.sample("lb_backends", serviceLabels[i], extra: PrometheusWriter.labels(["state": state]), byState[s.name]?[state] ?? 0)
            }
        }
        w.family("lb_connect_duration_seconds", .histogram, help: "Time from accept to backend connected, retries included.")
        for (labels, m) in scoped {
            w.histogram("lb_connect_duration_seconds", labels, bounds: m.connectTime.bounds, counts: m.connectTime.counts, sum: m.connectTime.sum)
        }
        w.family("lb_pair_duration_seconds", .histogram, help: "Time from accept to close of client connections.")
        for (labels, m) in scoped {
            w.histogram("lb_pair_duration_seconds", labels, bounds: m.pairDuration.bounds, counts: m.pairDuration.counts, sum: m.pairDuration.sum)
        }

        // The process's own: one series each, no service.
        let c = global.counters
        func process(_ name: String, _ kind: PrometheusWriter.Kind, _ help: String, _ value: Int) {
            w.family(name, kind, help: help)
            w.sample(name, [], value)
        }
        process("lb_access_log_dropped_total", .counter, "Access-log lines dropped because the writer could not keep up (traffic is never held back).", c[.accessLogDropped])
        process("lb_accept_pauses_total", .counter, "Times accepting paused: out of file descriptors or memory, or at --max-conns.", c[.acceptPauses])
        process("lb_proxy_untrusted_total", .counter, "Clients reset at accept under --accept-proxy: their peer is not in --accept-proxy-from.", c[.proxyUntrusted])
        process("lb_preamble_rejected_total", .counter, "Clients reset for a malformed, truncated or oversized PROXY header or TLS ClientHello.", c[.preambleRejected])
        process("lb_preamble_timeouts_total", .counter, "Clients reset because their preamble did not arrive within --preamble-timeout.", c[.preambleTimeouts])
        process("lb_server_name_refused_total", .counter, "TLS clients reset: no server name, or one no service on that address serves.", c[.serverNameRefused])
        process("lb_splice_switches_total", .counter, "Stream directions moved from copying to splice(2).", c[.spliceSwitches])
        process("lb_buffers_in_use", .gauge, "Pooled buffers holding bytes in flight.", c[.buffersInUse])
        process("lb_pipes_in_use", .gauge, "Pooled pipes holding bytes in flight.", c[.pipesInUse])
        process("lb_draining", .gauge, "1 once a drain (SIGTERM) began.", lb.isDraining ? 1 : 0)
        w.family("lb_uptime_seconds", .gauge, help: "Seconds since start.")
        w.sample("lb_uptime_seconds", [], Double((now &- lb.startedAt) / 1_000_000) / 1000)

        // Per backend: one label rendering per backend, reused by each family.
        var labels: [[UInt8]] = []
        labels.reserveCapacity(backends.count)
        var index = 0
        while index < backends.count {
            let service = backends[index].service
            var cache = labelCache[service] ?? [:]
            let prefix = PrometheusWriter.labels(["service": service])
            while index < backends.count && backends[index].service == service {
                let b = backends[index].info
                if let cached = cache[b.id], cached.0 == b.address {
                    labels.append(cached.1)
                } else {
                    var l = prefix
                    l.append(contentsOf: ",backend=\"".utf8)
                    PrometheusWriter.appendLabelValue(b.address.description, to: &l)
                    l.append(UInt8(ascii: "\""))
                    cache[b.id] = (b.address, l)
                    labels.append(l)
                }
                index += 1
            }
            if cache.count > 2 * (labels.count + 512) { cache = [:] }  // removed backends' labels
            labelCache[service] = cache
        }
        if labelCache.count > services.count + 8 { labelCache = labelCache.filter { name, _ in services.contains { $0.name == name } } }
        func perBackend(_ name: String, _ kind: PrometheusWriter.Kind, _ help: String, _ value: (BackendInfo) -> Int) {
            w.family(name, kind, help: help)
            for i in backends.indices { w.sample(name, labels[i], value(backends[i].info)) }
        }
        perBackend("lb_backend_up", .gauge, "1 when the backend passes health checks (whatever its admin state).") { $0.isUp ? 1 : 0 }
        w.family("lb_backend_state", .gauge, help: "1 for the backend's current state: up, down, drain or disabled.")
        let stateLabels = ["up", "down", "drain", "disabled"].reduce(into: [String: [UInt8]]()) { $0[$1] = PrometheusWriter.labels(["state": $1]) }
        for i in backends.indices { w.sample("lb_backend_state", labels[i], extra: stateLabels[AdminAPI.state(of: backends[i].info)]!, 1) }
        perBackend("lb_backend_active_connections", .gauge, "Connections open to the backend now.") { $0.activeConnections }
        perBackend("lb_backend_connections_total", .counter, "Connect attempts to the backend.") { $0.totalConnections }
        perBackend("lb_backend_connect_failures_total", .counter, "Failed connect attempts to the backend.") { $0.failedConnects }
        perBackend("lb_backend_bytes_received_total", .counter, "Bytes received from the backend by finished connections.") { $0.bytesFromBackend }
        perBackend("lb_backend_bytes_sent_total", .counter, "Bytes sent to the backend by finished connections.") { $0.bytesToBackend }
        perBackend("lb_backend_health_transitions_total", .counter, "Health changes of the backend.") { $0.healthTransitions }
        return w.bytes
    }
}
