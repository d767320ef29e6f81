import Admin
import CShim
import FakeBackends
import Foundation
import LoadBalancer
import OperatorHTTP
import Testing

/// The admin API over real sockets: every endpoint, the token, and each kind of malformed request.
@Suite struct AdminAPITests {
    init() { _ = lb_ignore_sigpipe() }

    func backends(_ n: Int) -> [TestServer] {
        (0..<n).map { i in TestServer(handler: TestServer.http(port: UInt16(i + 1))) }
    }

    @Test func backendsListAndActions() throws {
        let servers = backends(3)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { lb, admin, address in
            #expect(httpGet(address).text.contains("200 OK"))
            let list = try #require(try adminCall(admin, "GET", "/api/backends"))
            #expect(list.status == 200)
            #expect(list.header("Content-Type") == "application/json")
            let items = try #require(list.json as? [[String: Any]])
            #expect(items.count == 3)
            for key in ["service", "address", "state", "weight", "active", "total", "failed", "bytes_in", "bytes_out", "last_change"] {
                #expect(items[0][key] != nil, "missing \(key)")
            }
            #expect(items.map { $0["service"] as? String } == ["default", "default", "default"])
            #expect(items.reduce(0) { $0 + ($1["total"] as? Int ?? 0) } == 1)
            #expect(try adminCall(admin, "GET", "/api/backends?service=default")?.status == 200)
            #expect(try adminCall(admin, "GET", "/api/backends?service=other")?.status == 404)

            let target = servers[0].address
            let one = try #require(try adminCall(admin, "GET", "/api/backends/\(target)")?.json as? [String: Any])
            #expect(one["address"] as? String == target.description && one["state"] as? String == "up")
            // Drain: state says so and no new pair goes there.
            let drained = try #require(try adminCall(admin, "POST", "/api/backends/\(target)/drain"))
            #expect(drained.status == 200)
            #expect((drained.json as? [String: Any])?["state"] as? String == "drain")
            let before = servers[0].accepted.load(ordering: .relaxed)
            for _ in 0..<6 { #expect(httpGet(address).text.contains("200 OK")) }
            #expect(servers[0].accepted.load(ordering: .relaxed) == before)
            // Enable (URL-encoded address), then disable.
            let encoded = target.description.replacingOccurrences(of: ":", with: "%3A")
            #expect((try adminCall(admin, "POST", "/api/backends/\(encoded)/enable")?.json as? [String: Any])?["state"] as? String == "up")
            #expect((try adminCall(admin, "POST", "/api/backends/\(target)/disable")?.json as? [String: Any])?["state"] as? String == "disabled")
            #expect(lb.pool.info(target)?.admin == .disabled)

            // Add, then delete.
            let extra = TestServer(handler: TestServer.http(port: 9))
            defer { extra.stop() }
            let added = try #require(try adminCall(admin, "POST", "/api/backends", body: #"{"address": "\#(extra.address)", "weight": 5, "service": "default"}"#))
            #expect(added.status == 201)
            #expect((added.json as? [String: Any])?["weight"] as? Int == 5)
            #expect(try adminCall(admin, "POST", "/api/backends", body: #"{"address": "\#(extra.address)"}"#)?.status == 409)
            #expect(lb.pool.count == 4)
            #expect(try adminCall(admin, "DELETE", "/api/backends/\(extra.address)")?.status == 200)
            #expect(lb.pool.count == 3)
            #expect(try adminCall(admin, "DELETE", "/api/backends/\(extra.address)")?.status == 404)

            // Events name each change, oldest first, with increasing sequence numbers.
            let events = try #require(try adminCall(admin, "GET", "/api/events")?.json as? [[String: Any]])
            #expect(events.compactMap { $0["state"] as? String } == ["drain", "enabled", "disabled", "added", "removed"])
            let seqs = events.compactMap { $0["seq"] as? Int }
            #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
            let later = try #require(try adminCall(admin, "GET", "/api/events?since=\(seqs[2])")?.json as? [[String: Any]])
            #expect(later.count == 2)
        }
    }

    @Test func unknownBackendsAndBadBodies() throws {
        let servers = backends(1)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { lb, admin, address in
            for (method, path) in [("POST", "/api/backends/127.0.0.1:1/drain"), ("POST", "/api/backends/[::1]:2/enable"),
                                   ("DELETE", "/api/backends/127.0.0.1:1"), ("GET", "/api/backends/127.0.0.1:1")] {
                let r = try #require(try adminCall(admin, method, path))
                #expect(r.status == 404, "\(method) \(path)")
                #expect((r.json as? [String: Any])?["error"] as? String != nil)
            }
            #expect(try adminCall(admin, "POST", "/api/backends/\(servers[0].address)/explode")?.status == 404)
            #expect(try adminCall(admin, "POST", "/api/backends/not-an-address/drain")?.status == 400)
            for body in ["{", "[]", #"{"weight": 2}"#, #"{"address": 7}"#, #"{"address": "127.0.0.1"}"#,
                         #"{"address": "127.0.0.1:9", "weight": 0}"#, #"{"address": "127.0.0.1:9", "weight": "x"}"#, ""] {
                let r = try #require(try adminCall(admin, "POST", "/api/backends", body: body))
                #expect(r.status == 400, "body \(body)")
                #expect((r.json as? [String: Any])?["error"] as? String != nil, "body \(body)")
            }
            #expect(try adminCall(admin, "POST", "/api/backends", body: #"{"address": "127.0.0.1:9", "service": "x"}"#)?.status == 404)
            // lb's own listen address would be a loop: refused, and nothing is added.
            let loop = try #require(try adminCall(admin, "POST", "/api/backends", body: #"{"address": "\#(address)"}"#))
            #expect(loop.status == 400)
            #expect((loop.json as? [String: Any])?["error"] as? String == "backend \(address) is lb's own listen address: that would be a loop")
            #expect(lb.pool.id(of: address) == nil)
            #expect(try adminCall(admin, "GET", "/nowhere")?.status == 404)
        }
    }

    @Test func badMethodsGet405WithAllow() throws {
        let servers = backends(1)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { _, admin, _ in
            for (method, path) in [("POST", "/metrics"), ("DELETE", "/api/stats"), ("PUT", "/api/backends"),
                                   ("GET", "/api/backends/\(servers[0].address)/drain"), ("POST", "/healthz"), ("PATCH", "/")] {
                let r = try #require(try adminCall(admin, method, path))
                #expect(r.status == 405, "\(method) \(path)")
                #expect(r.header("Allow") != nil)
            }
        }
    }

    @Test func metricsInPrometheusFormat() throws {
        let servers = backends(2)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { lb, admin, address in
            for _ in 0..<4 { #expect(httpGet(address).text.contains("200 OK")) }
            #expect(eventually { lb.counters[.closedPairs] == 4 })
            let r = try #require(try adminCall(admin, "GET", "/metrics"))
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            let lines = r.body.split(separator: "\n").map(String.init)
            var typed: Set<String> = []
            var helped: Set<String> = []
            for line in lines {
                if line.hasPrefix("# TYPE ") { typed.insert(String(line.split(separator: " ")[2])) }
                else if line.hasPrefix("# HELP ") { helped.insert(String(line.split(separator: " ")[2])) }
                else {
                    let name = String(line.prefix { $0 != "{" && $0 != " " })
                    #expect(name.hasPrefix("lb_"), "\(line)")
                    let family = ["_bucket", "_sum", "_count"].reduce(name) { n, s in typed.contains(n) ? n : (n.hasSuffix(s) ? String(n.dropLast(s.count)) : n) }
                    #expect(typed.contains(family) && helped.contains(family), "no TYPE/HELP before \(line)")
                    let process = ["lb_access_log_dropped_total", "lb_accept_pauses_total", "lb_splice_switches_total", "lb_buffers_in_use",
                                   "lb_pipes_in_use", "lb_draining", "lb_uptime_seconds", "lb_proxy_untrusted_total", "lb_preamble_rejected_total",
                                   "lb_preamble_timeouts_total", "lb_server_name_refused_total"]
                    #expect(line.contains(#"service="default""#) != process.contains(name), "\(line)")
                }
            }
            for needed in ["lb_connections_accepted_total", "lb_active_pairs", "lb_bytes_total", "lb_connect_attempts_total",
                           "lb_connect_failures_total", "lb_retries_total", "lb_bad_gateway_total", "lb_health_checks_total",
                           "lb_health_transitions_total", "lb_backend_up", "lb_backend_active_connections",
                           "lb_connect_duration_seconds", "lb_pair_duration_seconds", "lb_access_log_dropped_total"] {
                #expect(typed.contains(needed), "missing \(needed)")
            }
            #expect(lines.contains(#"lb_connections_accepted_total{service="default"} 4"#))
            #expect(lines.contains(#"lb_pairs_closed_total{service="default",cause="backend_closed"} 4"#))
            #expect(lines.contains(#"lb_connect_duration_seconds_count{service="default"} 4"#))
            #expect(lines.contains(#"lb_pair_duration_seconds_bucket{service="default",le="+Inf"} 4"#))
            #expect(lines.contains(#"lb_backend_up{service="default",backend="\#(servers[0].address)"} 1"#))
            #expect(lines.contains(#"lb_backend_state{service="default",backend="\#(servers[1].address)",state="up"} 1"#))
            let perBackend = lines.filter { $0.hasPrefix("lb_backend_connections_total{") }.compactMap { Int($0.split(separator: " ").last!) }
            #expect(perBackend.reduce(0, +) == 4)
        }
    }

    @Test func statsAndHealthz() throws {
        let servers = backends(2)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { lb, admin, address in
            #expect(httpGet(address).text.contains("200 OK"))
            let stats = try #require(try adminCall(admin, "GET", "/api/stats")?.json as? [String: Any])
            let totals = try #require(stats["totals"] as? [String: Any])
            #expect(totals["accepted"] as? Int == 1)
            let services = try #require(stats["services"] as? [[String: Any]])
            #expect(services.first?["name"] as? String == "default" && services.first?["up"] as? Int == 2)
            let heat = try #require(stats["heat"] as? [String: Any])
            #expect(heat["states"] as? String == "uu")
            #expect((heat["active"] as? [Int])?.count == 2)
            #expect(stats["history"] is [String: Any] && stats["events"] is [Any])

            let ok = try #require(try adminCall(admin, "GET", "/healthz"))
            #expect(ok.status == 200)
            lb.beginDrain()
            #expect(try adminCall(admin, "GET", "/healthz")?.status == 503)
        }
    }

    @Test func dashboardPageIsSelfContained() throws {
        let servers = backends(1)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address), token: AdminToken("t0k")) { _, admin, _ in
            // The page holds no data and is served without the token; everything it fetches needs it.
            let page = try #require(try adminCall(admin, "GET", "/"))
            #expect(page.status == 200)
            #expect(page.header("Content-Type") == "text/html; charset=utf-8")
            #expect(page.body.contains("<canvas"))
            #expect(!page.body.contains("http://") && !page.body.contains("https://"))
            #expect(try adminCall(admin, "GET", "/api/stats")?.status == 401)
        }
    }

    @Test func tokenIsRequiredWhenSet() throws {
        let servers = backends(1)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address), token: AdminToken("s3cret")) { lb, admin, _ in
            for path in ["/metrics", "/api/backends", "/api/stats", "/api/events", "/healthz"] {
                let none = try #require(try adminCall(admin, "GET", path))
                #expect(none.status == 401, "\(path)")
                #expect(none.header("WWW-Authenticate") == #"Bearer realm="lb""#)
                #expect(try adminCall(admin, "GET", path, token: "wrong")?.status == 401)
                #expect(try adminCall(admin, "GET", path, token: "s3cret")?.status == 200)
            }
            #expect(try adminCall(admin, "POST", "/api/backends/\(servers[0].address)/drain")?.status == 401)
            #expect(lb.pool.info(servers[0].address)?.admin == .active)
            #expect(try adminCall(admin, "POST", "/api/backends/\(servers[0].address)/drain", token: "s3cret")?.status == 200)
        }
        // Off loopback there is no starting without one.
        try withBalancer(backends: servers.map(\.address)) { lb, _ in
            #expect(throws: AdminError.self) { try AdminServer.start(lb, on: SocketAddress(host: "0.0.0.0", port: 0)!, token: nil) }
        }
    }

    @Test func keepAliveAndPipelining() throws {
        let servers = backends(1)
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { _, admin, _ in
            let client = try TestClient(admin.address)
            client.send("GET /healthz HTTP/1.1\r\n\r\n")
            #expect(readReply(client)?.status == 200)
            // HEAD: the head with the body's length, and no body (the next answer follows at once).
            client.send("HEAD /healthz HTTP/1.1\r\n\r\n")
            let head = TestSocket.read(client.fd, until: "\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: 3\r\n"))
            client.send("GET /healthz HTTP/1.1\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            let (bytes, end) = client.readToEnd()
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))  // no body was left behind by the HEAD
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
            #expect(text.contains("HTTP/1.1 404 Not Found"))
            #expect(end == .eof)
        }
    }

    @Test func malformedRequestsGet4xxAndTheServerGoesOn() throws {
        let servers = backends(1)
        defer { for s in servers { s.stop() } }
        var limits = HTTPServerLimits()
        limits.readTimeout = .milliseconds(300)
        limits.maxConnections = 4
        try withAdmin(backends: servers.map(\.address), limits: limits) { _, admin, _ in
            func raw(_ text: String) throws -> AdminReply? {
                let c = try TestClient(admin.address)
                c.send(text)
                return readReply(c)
            }
            // Oversized head, oversized body, bad request line, unsupported version.
            #expect(try raw("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n")?.status == 431)
            #expect(try raw("POST /api/backends HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n")?.status == 413)
            #expect(try raw("HELLO\r\n\r\n")?.status == 400)
            #expect(try raw("GET / HTTP/3\r\n\r\n")?.status == 505)
            #expect(try raw("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")?.status == 400)
            // Slow: half a request, then nothing: 408 after the read timeout, and the connection closes.
            let slow = try TestClient(admin.address)
            slow.send("GET /healthz HTTP/1.1\r\nHost: x")
            let r = readReply(slow)
            #expect(r?.status == 408)
            #expect(slow.readToEnd().end == .eof)
            // Truncated: a body shorter than its Content-Length, then the client leaves.
            let truncated = try TestClient(admin.address)
            truncated.send("POST /api/backends HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"addr")
            truncated.shutdownWrite()
            #expect(truncated.readToEnd().bytes.isEmpty)
            // The cap: the fifth connection at once is told 503.
            let held = try (0..<4).map { _ in try TestClient(admin.address) }
            let holdersAccepted = eventually { (try? adminCallRaw(admin)) == 503 }
            #expect(holdersAccepted)
            _ = held
            // And the server still serves.
            #expect(eventually { (try? adminCall(admin, "GET", "/healthz"))??.status == 200 })
            #expect(admin.address.port != 0)
        }
    }
}

/// The status of one plain request, or nil.
private func adminCallRaw(_ admin: AdminServer) throws -> Int? {
    try adminCall(admin, "GET", "/healthz")?.status
}
