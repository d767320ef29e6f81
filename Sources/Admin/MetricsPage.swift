import LoadBalancer
import OperatorHTTP

/// Renders `/metrics`: Prometheus text format 0.0.4, every name prefixed `lb_`, labelled by
/// `service` and, per backend, `backend`. Reads the workers' own counter cells and the pool's
/// per-backend atomics only: a scrape takes no lock a worker waits on.
struct MetricsPage {
    /// Per backend slot: the address its label was rendered for, and the rendered label bytes
    /// (`service="default",backend="127.0.0.1:8000"`). Rebuilt for a slot only when its address changes.
    var labelCache: [BackendID: (SocketAddress, [UInt8])] = [:]

    mutating func render(_ lb: LoadBalancer, service: String, backends: [BackendInfo], now: UInt64) -> [UInt8] {
        let m = lb.metrics
        let c = m.counters
        var w = PrometheusWriter(reserving: 96 * 10 * max(backends.count, 16) + 16_384)
        let svc = PrometheusWriter.labels(["service": service])

        func counter(_ name: String, _ help: String, _ value: Int) {
            w.family(name, .counter, help: help)
            w.sample(name, svc, value)
        }
        func gauge(_ name: String, _ help: String, _ value: Int) {
            w.family(name, .gauge, help: help)
            w.sample(name, svc, value)
        }

        counter("lb_connections_accepted_total", "Client connections accepted.", c[.accepted])
        gauge("lb_active_pairs", "Client connections open now (with or without a backend yet).", c[.activePairs])
        w.family("lb_pairs_closed_total", .counter, help: "Closed client connections by termination cause (see the access log's cause field).")
        for reason in CloseReason.allCases where reason != .none {
            w.sample("lb_pairs_closed_total", svc, extra: PrometheusWriter.labels(["cause": reason.name]), m.closes[reason] ?? 0)
        }
        w.family("lb_bytes_total", .counter, help: "Bytes forwarded by closed connections, by direction (to_backend: from clients; to_client: from backends).")
        w.sample("lb_bytes_total", svc, extra: PrometheusWriter.labels(["direction": "to_backend"]), c[.bytesUp])
        w.sample("lb_bytes_total", svc, extra: PrometheusWriter.labels(["direction": "to_client"]), c[.bytesDown])
        counter("lb_connect_attempts_total", "Backend connect attempts started (first tries and retries).", c[.connectAttempts])
        w.family("lb_connect_failures_total", .counter, help: "Failed backend connect attempts by cause (local: lb ran short, no backend blamed).")
        for (failure, name) in [(ConnectFailure.refused, "refused"), (.reset, "reset"), (.timeout, "timeout"), (.unreachable, "unreachable"), (.other, "other"), (.local, "local")] {
            w.sample("lb_connect_failures_total", svc, extra: PrometheusWriter.labels(["cause": name]), m.connectFailures[failure] ?? 0)
        }
        counter("lb_retries_total", "Connect attempts that were retries on another backend after a failure.", c[.retries])
        counter("lb_bad_gateway_total", "Clients answered 502 Bad Gateway because no backend could take them.", c[.badGateways])
        counter("lb_health_checks_total", "Active health probes started.", c[.probesStarted])
        counter("lb_health_check_failures_total", "Active health probes that failed.", c[.probesFailed])
        var transitions = 0
        var byState: [String: Int] = ["up": 0, "down": 0, "drain": 0, "disabled": 0]
        for b in backends {
            transitions += b.healthTransitions
            byState[AdminAPI.state(of: b), default: 0] += 1
        }
        counter("lb_health_transitions_total", "Backend health changes (up to down or down to up), summed over the backends in the pool.", transitions)
        w.family("lb_backends", .gauge, help: "Backends in the pool by state.")
        for state in ["up", "down", "drain", "disabled"] {
            w.sample("lb_backends", svc, extra: PrometheusWriter.labels(["state": state]), byState[state] ?? 0)
        }
        w.family("lb_connect_duration_seconds", .histogram, help: "Time from accept to backend connected, retries included.")
        w.histogram("lb_connect_duration_seconds", svc, bounds: m.connectTime.bounds, counts: m.connectTime.counts, sum: m.connectTime.sum)
        w.family("lb_pair_duration_seconds", .histogram, help: "Time from accept to close of client connections.")
        w.histogram("lb_pair_duration_seconds", svc, bounds: m.pairDuration.bounds, counts: m.pairDuration.counts, sum: m.pairDuration.sum)
        counter("lb_access_log_dropped_total", "Access-log lines dropped because the writer could not keep up (traffic is never held back).", c[.accessLogDropped])
        counter("lb_accept_pauses_total", "Times accepting paused for lack of file descriptors or memory.", c[.acceptPauses])
        counter("lb_splice_switches_total", "Stream directions moved from copying to splice(2).", c[.spliceSwitches])
        gauge("lb_buffers_in_use", "Pooled buffers holding bytes in flight.", c[.buffersInUse])
        gauge("lb_pipes_in_use", "Pooled pipes holding bytes in flight.", c[.pipesInUse])
        w.family("lb_draining", .gauge, help: "1 once a drain (SIGTERM) began.")
        w.sample("lb_draining", [], lb.isDraining ? 1 : 0)
        w.family("lb_uptime_seconds", .gauge, help: "Seconds since start.")
        w.sample("lb_uptime_seconds", [], Double((now &- lb.startedAt) / 1_000_000) / 1000)

        // Per backend: one label rendering per backend, reused by each family.
        var labels: [[UInt8]] = []
        labels.reserveCapacity(backends.count)
        for b in backends {
            if let cached = labelCache[b.id], cached.0 == b.address {
                labels.append(cached.1)
            } else {
                var l = svc
                l.append(contentsOf: ",backend=\"".utf8)
                PrometheusWriter.appendLabelValue(b.address.description, to: &l)
                l.append(UInt8(ascii: "\""))
                labelCache[b.id] = (b.address, l)
                labels.append(l)
            }
        }
        func perBackend(_ name: String, _ kind: PrometheusWriter.Kind, _ help: String, _ value: (BackendInfo) -> Int) {
            w.family(name, kind, help: help)
            for i in backends.indices { w.sample(name, labels[i], value(backends[i])) }
        }
        perBackend("lb_backend_up", .gauge, "1 when the backend passes health checks (whatever its admin state).") { $0.isUp ? 1 : 0 }
        w.family("lb_backend_state", .gauge, help: "1 for the backend's current state: up, down, drain or disabled.")
        let stateLabels = ["up", "down", "drain", "disabled"].reduce(into: [String: [UInt8]]()) { $0[$1] = PrometheusWriter.labels(["state": $1]) }
        for i in backends.indices { w.sample("lb_backend_state", labels[i], extra: stateLabels[AdminAPI.state(of: backends[i])]!, 1) }
        perBackend("lb_backend_active_connections", .gauge, "Connections open to the backend now.") { $0.activeConnections }
        perBackend("lb_backend_connections_total", .counter, "Connect attempts to the backend.") { $0.totalConnections }
        perBackend("lb_backend_connect_failures_total", .counter, "Failed connect attempts to the backend.") { $0.failedConnects }
        perBackend("lb_backend_bytes_received_total", .counter, "Bytes received from the backend by finished connections.") { $0.bytesFromBackend }
        perBackend("lb_backend_bytes_sent_total", .counter, "Bytes sent to the backend by finished connections.") { $0.bytesToBackend }
        perBackend("lb_backend_health_transitions_total", .counter, "Health changes of the backend.") { $0.healthTransitions }
        if labelCache.count > backends.count * 2 + 1024 { labelCache = [:] }  // removed backends' labels
        return w.bytes
    }
}
