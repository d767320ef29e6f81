import Admin
import CShim
import Foundation
import Glibc
import LoadBalancer
import Testing

/// The admin side over a balancer of several services, read from a real config file's text: every
/// pair, probe and admission series is labelled by its service and counts only that service's traffic.
@Suite struct AdminServicesTests {
    init() { _ = lb_ignore_sigpipe() }

    /// A balancer started from config-file `text`, with the admin server and the access-log writer.
    static func withServices(
        _ text: String, _ body: (LoadBalancer, AdminServer, String) throws -> Void
    ) throws {
        let log = "/tmp/lb-admin-services-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(log) }
        var config = try ConfigFile.parse(text, file: "test.json")
        config.accessLog = AccessLogSettings(path: log, format: .text)
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait(timeout: .seconds(30)) }
        let admin = try AdminServer.start(lb, on: SocketAddress(host: "127.0.0.1", port: 0)!, token: nil)
        defer { admin.stop() }
        let writer = try AccessLogWriter.start(lb, lb.configuration.accessLog!)
        defer { writer.stop() }
        try body(lb, admin, log)
    }

    /// `/metrics` as series → value (`name{labels}` as rendered).
    static func scrape(_ admin: AdminServer) throws -> [String: Double] {
        let r = try #require(try adminCall(admin, "GET", "/metrics"))
        #expect(r.status == 200)
        var values: [String: Double] = [:]
        for line in r.body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = v
        }
        return values
    }

    @Test func everySeriesIsPerServiceAndActionsNameTheirService() throws {
        let a = TestServer(handler: TestServer.http(port: 1))
        let b = TestServer(handler: TestServer.http(port: 2))
        let shared = TestServer(handler: TestServer.http(port: 3))
        let refusing = TestSocket.RefusingPort()
        defer { a.stop(); b.stop(); shared.stop(); refusing.close() }
        let text = """
            {"workers": 2, "quiet": true, "services": [
              {"name": "web", "listen": ["127.0.0.1:0"], "backends": ["\(a.address)", "\(shared.address)"]},
              {"name": "api", "listen": ["127.0.0.1:0"], "backends": ["\(b.address)", "\(shared.address)", "\(refusing.address)"],
               "health_interval": "100ms"},
              {"name": "gate", "listen": ["127.0.0.1:0"], "backends": []},
              {"name": "walled", "listen": ["127.0.0.1:0"], "backends": ["\(a.address)"], "allow": ["10.0.0.0/8"]}]}
            """
        try Self.withServices(text) { lb, admin, log in
            let web = lb.listenAddresses(of: "web")[0], api = lb.listenAddresses(of: "api")[0]
            let gate = lb.listenAddresses(of: "gate")[0], walled = lb.listenAddresses(of: "walled")[0]
            for _ in 0..<4 { #expect(httpGet(web).text.contains("200 OK")) }
            for _ in 0..<6 { #expect(httpGet(api).text.contains("200 OK")) }
            #expect(httpGet(gate).text.hasPrefix("HTTP/1.1 502"))
            #expect(httpGet(walled).text.isEmpty)  // reset at accept: never a pair
            #expect(eventually { lb.counters[.closedPairs] == 11 && lb.counters[.activePairs] == 0 && lb.counters[.refused] == 1 })

            // Probes run for api's refusing backend (down at its first failed connect) and no other.
            var m: [String: Double] = [:]
            #expect(eventually { m = (try? Self.scrape(admin)) ?? [:]; return (m[#"lb_health_checks_total{service="api"}"#] ?? 0) >= 1 })
            func v(_ series: String) -> Double? { m[series] }
            for (service, accepted) in [("web", 4.0), ("api", 6), ("gate", 1), ("walled", 0)] {
                #expect(v(#"lb_connections_accepted_total{service="\#(service)"}"#) == accepted, "\(service)")
                #expect(v(#"lb_active_pairs{service="\#(service)"}"#) == 0)
                #expect(v(#"lb_queue_length{service="\#(service)"}"#) == 0)
                #expect(v(#"lb_queued_total{service="\#(service)"}"#) == 0)
            }
            #expect(v(#"lb_refused_total{service="walled"}"#) == 1 && v(#"lb_refused_total{service="web"}"#) == 0)
            #expect(v(#"lb_bad_gateway_total{service="gate"}"#) == 1 && v(#"lb_bad_gateway_total{service="web"}"#) == 0)
            #expect(v(#"lb_pairs_closed_total{service="gate",cause="no_backend"}"#) == 1)
            #expect(v(#"lb_pairs_closed_total{service="web",cause="no_backend"}"#) == 0)
            #expect(v(#"lb_pairs_closed_total{service="web",cause="backend_closed"}"#) == 4)
            #expect(v(#"lb_pairs_closed_total{service="api",cause="backend_closed"}"#) == 6)
            #expect(v(#"lb_connect_attempts_total{service="web"}"#) == 4 && v(#"lb_connect_attempts_total{service="gate"}"#) == 0)
            // api's refusing backend failed at least once (then went down); every failure was retried.
            let refused = try #require(v(#"lb_connect_failures_total{service="api",cause="refused"}"#))
            #expect(refused >= 1)
            #expect(v(#"lb_retries_total{service="api"}"#) == refused)
            #expect(v(#"lb_connect_attempts_total{service="api"}"#) == 6 + refused)
            #expect(v(#"lb_connect_failures_total{service="web",cause="refused"}"#) == 0 && v(#"lb_retries_total{service="web"}"#) == 0)
            #expect(v(#"lb_health_checks_total{service="web"}"#) == 0)
            #expect((v(#"lb_health_check_failures_total{service="api"}"#) ?? 0) >= 1)
            #expect((v(#"lb_bytes_total{service="web",direction="to_client"}"#) ?? 0) > 0)
            #expect((v(#"lb_bytes_total{service="api",direction="to_backend"}"#) ?? 0) > 0)
            #expect(v(#"lb_bytes_total{service="gate",direction="to_backend"}"#) == 0)
            #expect(v(#"lb_bytes_total{service="walled",direction="to_client"}"#) == 0)
            for (service, connected, closed) in [("web", 4.0, 4.0), ("api", 6, 6), ("gate", 0, 1), ("walled", 0, 0)] {
                #expect(v(#"lb_connect_duration_seconds_count{service="\#(service)"}"#) == connected, "\(service)")
                #expect(v(#"lb_pair_duration_seconds_count{service="\#(service)"}"#) == closed, "\(service)")
                #expect(v(#"lb_pair_duration_seconds_bucket{service="\#(service)",le="+Inf"}"#) == closed, "\(service)")
            }
            // The services add up to the process's totals.
            let c = lb.counters
            for (family, counter) in [("lb_connections_accepted_total", WorkerCounter.accepted), ("lb_bad_gateway_total", .badGateways),
                                      ("lb_connect_attempts_total", .connectAttempts), ("lb_retries_total", .retries), ("lb_refused_total", .refused)] {
                let sum = ["web", "api", "gate", "walled"].compactMap { v(#"\#(family){service="\#($0)"}"#) }.reduce(0, +)
                #expect(Int(sum) == c[counter], "\(family)")
            }
            // The process's own series carry no service.
            for name in ["lb_access_log_dropped_total", "lb_accept_pauses_total", "lb_splice_switches_total", "lb_buffers_in_use",
                         "lb_pipes_in_use", "lb_draining"] {
                #expect(v(name) != nil, "\(name)")
            }

            // /api/backends per service; an address in two services needs ?service= for an action.
            func list(_ q: String) throws -> [[String: Any]] {
                try #require(try adminCall(admin, "GET", "/api/backends\(q)")?.json as? [[String: Any]])
            }
            #expect(try list("?service=web").map { $0["service"] as? String } == ["web", "web"])
            #expect(try list("?service=api").compactMap { $0["address"] as? String } == [b.address, shared.address, refusing.address].map(\.description))
            #expect(try list("").count == 6)
            #expect(try adminCall(admin, "GET", "/api/backends?service=nope")?.status == 404)
            let ambiguous = try #require(try adminCall(admin, "POST", "/api/backends/\(shared.address)/drain"))
            #expect(ambiguous.status == 400 && ambiguous.body.contains("several services"))
            let drained = try #require(try adminCall(admin, "POST", "/api/backends/\(shared.address)/drain?service=api"))
            #expect(drained.status == 200)
            #expect((drained.json as? [String: Any])?["service"] as? String == "api" && (drained.json as? [String: Any])?["state"] as? String == "drain")
            #expect((try adminCall(admin, "GET", "/api/backends/\(shared.address)?service=web")?.json as? [String: Any])?["state"] as? String == "up")
            #expect(lb.service(named: "api")?.pool.info(shared.address)?.admin == .draining)
            #expect(lb.service(named: "web")?.pool.info(shared.address)?.admin != .draining)
            #expect(lb.log.backendEvents.last.map { $0.state == "drain" && $0.cause == "by the admin API, service api" } == true)
            // /api/events names each event's service, even with several.
            let events = try #require(try adminCall(admin, "GET", "/api/events")?.json as? [[String: Any]])
            #expect(events.last.map { $0["service"] as? String == "api" && $0["state"] as? String == "drain" } == true, "\(events)")
            // The preamble refusals are process-wide series.
            for name in ["lb_proxy_untrusted_total", "lb_preamble_rejected_total", "lb_preamble_timeouts_total", "lb_server_name_refused_total"] {
                #expect(v(name) == 0, "\(name)")
            }
            // An address in one service needs no ?service=.
            #expect(try adminCall(admin, "POST", "/api/backends/\(b.address)/disable")?.status == 200)
            #expect(lb.service(named: "api")?.pool.info(b.address)?.admin == .disabled)
            #expect(try adminCall(admin, "POST", "/api/backends/\(b.address)/enable?service=web")?.status == 404)
            #expect(try adminCall(admin, "POST", "/api/backends/\(shared.address)/enable?service=api")?.status == 200)

            // /api/stats: per-service totals and rates that add up to the process's.
            let stats = try #require(try adminCall(admin, "GET", "/api/stats")?.json as? [String: Any])
            let services = try #require(stats["services"] as? [[String: Any]])
            #expect(services.compactMap { $0["name"] as? String } == ["web", "api", "gate", "walled"])
            let accepted = services.compactMap { ($0["totals"] as? [String: Any])?["accepted"] as? Int }
            #expect(accepted == [4, 6, 1, 0])
            #expect((stats["totals"] as? [String: Any])?["accepted"] as? Int == 11)
            #expect(services.allSatisfy { ($0["rates"] as? [String: Any])?["connections"] is Double })
            #expect((services[2]["closes"] as? [String: Any])?["no_backend"] as? Int == 1)
            #expect((services[3]["totals"] as? [String: Any])?["refused"] as? Int == 1)

            // The access log names each pair's service.
            var lines: [String] = []
            #expect(eventually { lines = AccessLogTests.lines(log); return lines.count == 11 })
            let named = Dictionary(grouping: lines) { $0.split(separator: " ")[3] }.mapValues(\.count)
            #expect(named == ["web": 4, "api": 6, "gate": 1])
        }
    }

    @Test func aServiceAddedByAReloadIsCountedAndARemovedOneStaysInTheTotals() throws {
        let a = TestServer(handler: TestServer.http(port: 1))
        defer { a.stop() }
        let text = """
            {"workers": 2, "quiet": true, "services": [
              {"name": "one", "listen": ["127.0.0.1:0"], "backends": ["\(a.address)"]},
              {"name": "two", "listen": ["127.0.0.1:0"], "backends": ["\(a.address)"]}]}
            """
        try Self.withServices(text) { lb, admin, _ in
            for _ in 0..<3 { #expect(httpGet(lb.listenAddresses(of: "one")[0]).text.contains("200 OK")) }
            var config = lb.configuration
            config.services.removeAll { $0.name == "one" }
            config.services.append(ServiceConfiguration(name: "three", listen: [SocketAddress(host: "127.0.0.1", port: 0)!],
                                                        backends: [BackendSpec(address: a.address)], settings: config.services[0].settings))
            _ = try lb.reload(to: config)
            let three = try #require(lb.listenAddresses(of: "three").first)
            for _ in 0..<2 { #expect(httpGet(three).text.contains("200 OK")) }
            #expect(eventually { lb.counters[.closedPairs] == 5 })
            let m = try Self.scrape(admin)
            #expect(m[#"lb_connections_accepted_total{service="three"}"#] == 2)
            #expect(m[#"lb_pair_duration_seconds_count{service="three"}"#] == 2)
            #expect(m[#"lb_connections_accepted_total{service="two"}"#] == 0)
            #expect(m[#"lb_connections_accepted_total{service="one"}"#] == nil)  // removed: its series go
            #expect(lb.counters[.accepted] == 5)  // but its counts stay in the totals
            #expect(lb.metrics.closes[.backendClosed] == 5)
            #expect(lb.workerCounters.map { $0[.accepted] }.reduce(0, +) == 5)
        }
    }

    /// On a listener shared by name, a pair is its service's once routed; one refused before routing
    /// counts on no service, and only in the process's totals.
    @Test func routedPairsCountOnTheirServiceAndUnroutedOnesOnTheProcessOnly() throws {
        let backends = (0..<2).map { _ in PreambleTests.RecordingBackend() }
        defer { for b in backends { b.stop() } }
        let config = try SharedListenerIntegrationTests.config(
            port: try SharedListenerIntegrationTests.freePort(), backends: backends.map(\.address), withDefault: false)
        let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait() }
        let admin = try AdminServer.start(lb, on: SocketAddress(host: "127.0.0.1", port: 0)!, token: nil)
        defer { admin.stop() }
        let address = lb.listenAddresses[0]
        #expect(PreambleTests.exchange(address, SharedListenerIntegrationTests.vector("tls13")).1 == "done")  // a.example.com
        #expect(PreambleTests.exchange(address, SharedListenerIntegrationTests.vector("alpn")).2 == .reset)   // no service takes it
        #expect(eventually { lb.counters[.closedPairs] == 2 && lb.counters[.activePairs] == 0 })
        let m = try Self.scrape(admin)
        #expect(m[#"lb_connections_accepted_total{service="a"}"#] == 1 && m[#"lb_connections_accepted_total{service="b"}"#] == 0)
        #expect(m[#"lb_pair_duration_seconds_count{service="a"}"#] == 1 && m[#"lb_pair_duration_seconds_count{service="b"}"#] == 0)
        #expect(m[#"lb_active_pairs{service="a"}"#] == 0)
        let process = lb.metrics
        #expect(process.counters[.accepted] == 2 && process.pairDuration.count == 2)
        #expect(process.closes[.connectFailed] == 0 && process.counters[.serverNameRefused] == 1)
    }
}
