import Admin
import CShim
import Glibc
import LoadBalancer
import Testing

/// Headless Chromium (Debian's `chromium`), installed on first use by `ci/install-chromium` (as
/// root, or with password-less sudo): it runs `apt-get update` first when apt has no package lists or
/// the install fails, and bounds every step; the whole install is cut at 18 minutes. Nil when chromium
/// is missing and cannot be installed here.
enum Chromium {
    static let path: String? = {
        if let found = find() { return found }
        guard access("/usr/bin/apt-get", X_OK) == 0, access(script, X_OK) == 0,
              let install = try? Subprocess("/usr/bin/timeout", ["-k", "10", "1080", script])
        else { return nil }
        if install.waitForExit(timeout: .seconds(1100)) != 0 {
            let said = install.stderr.split(separator: "\n").suffix(3).joined(separator: " / ")
            let line = "DashboardBrowserTests: chromium could not be installed: \(said)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        return find()
    }()

    /// `ci/install-chromium` of this checkout (from this file's path: Tests/IntegrationTests/...).
    static let script: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/ci/install-chromium"
    }()

    private static func find() -> String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { access($0, X_OK) == 0 }
    }
}

/// The dashboard in a real browser: the page loads, fetches /api/stats and /api/backends, and fills
/// its tiles and heat map. (ci/dashboard-check does the same against `lb --demo` under load and saves
/// a screenshot.)
@Suite struct DashboardBrowserTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test(.enabled(if: Chromium.path != nil, "chromium is not installed and cannot be installed here"))
    func pageShowsLiveDataInChromium() throws {
        let servers = (1...3).map { i in TestServer(handler: TestServer.http(port: UInt16(i))) }
        defer { for s in servers { s.stop() } }
        try withAdmin(backends: servers.map(\.address)) { lb, admin, address in
            for _ in 0..<5 { #expect(httpGet(address).text.contains("200 OK")) }
            _ = lb.pool.drain(servers[2].address)
            lb.log.backendChanged(servers[2].address, "drain", "by the test")
            let out = "/tmp/lb-dashboard-dom-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).html"
            defer { unlink(out) }
            // Through bash for the redirect: --dump-dom writes the DOM to stdout once the virtual-time
            // budget (timers advanced without waiting, fetches waited for) is spent.
            let chrome = try Subprocess("/bin/bash", ["-c",
                "\(Chromium.path!) --headless --no-sandbox --disable-gpu --user-data-dir=\(out).profile --window-size=1400,900 "
                    + "--virtual-time-budget=3000 --dump-dom \(admin.url) > \(out) 2>/dev/null; rm -rf \(out).profile"])
            #expect(chrome.waitForExit(timeout: .seconds(60)) == 0)
            let dom = String(decoding: (try? Sys.readFile(out, limit: 1 << 22)) ?? [], as: UTF8.self)
            let updated = dom.firstMatch(of: /data-updated="(\d+)"/).flatMap { Int($0.1) } ?? 0
            #expect(updated >= 2, "the page never got /api/stats")
            #expect(dom.contains(#"data-cells="3""#))
            #expect(dom.contains(address.description))
            #expect(dom.firstMatch(of: /id="kpi-backends"[^>]*>2<small>\/ 3<\/small>/) != nil)
            #expect(dom.contains(#"class="st drain""#) && dom.contains(servers[2].address.description))
            #expect(dom.contains(#"id="services" data-rows="1""#))  // one service: no services table
        }
    }

    /// Three services from a config file: the services table has a row each, with its own counts.
    @Test(.enabled(if: Chromium.path != nil, "chromium is not installed and cannot be installed here"))
    func pageShowsEachServiceInChromium() throws {
        let servers = (1...3).map { i in TestServer(handler: TestServer.http(port: UInt16(i))) }
        defer { for s in servers { s.stop() } }
        let text = """
            {"workers": 1, "quiet": true, "services": [
              {"name": "web", "listen": ["127.0.0.1:0"], "backends": ["\(servers[0].address)", "\(servers[1].address)"]},
              {"name": "api", "listen": ["127.0.0.1:0"], "backends": ["\(servers[2].address)"]},
              {"name": "gate", "listen": ["127.0.0.1:0"], "backends": []}]}
            """
        let lb = try LoadBalancer.start(try ConfigFile.parse(text, file: "test.json"), log: EventLog(echoToStderr: false))
        defer { lb.stopNow(); lb.wait(timeout: .seconds(30)) }
        let admin = try AdminServer.start(lb, on: SocketAddress(host: "127.0.0.1", port: 0)!, token: nil)
        defer { admin.stop() }
        for _ in 0..<3 { #expect(httpGet(lb.listenAddresses(of: "web")[0]).text.contains("200 OK")) }
        #expect(httpGet(lb.listenAddresses(of: "gate")[0]).text.hasPrefix("HTTP/1.1 502"))
        #expect(eventually { lb.counters[.closedPairs] == 4 })
        let dom = try Self.dump(admin)
        #expect(dom.contains(#"id="services" data-rows="3""#))
        #expect(dom.contains(#"data-cells="3""#))
        for name in ["web", "api", "gate"] { #expect(dom.contains(#"<tr data-service="\#(name)"><td>\#(name)</td>"#), "\(name)") }
        // web's row: 3 accepted, no 502; gate's: 1 accepted, one 502, 0 of 0 backends up.
        #expect(dom.firstMatch(of: /data-service="web">(?:<td[^>]*>[^<]*<\/td>){8}<td>3<\/td><td>0<\/td>/) != nil)
        #expect(dom.firstMatch(of: /data-service="gate">(?:<td[^>]*>[^<]*<\/td>){6}<td class="c-green">0 \/ 0<\/td><td>[^<]*<\/td><td>1<\/td><td>1<\/td>/) != nil)
    }

    /// The page's DOM once it has polled a few times (--dump-dom after a virtual-time budget).
    static func dump(_ admin: AdminServer) throws -> String {
        let out = "/tmp/lb-dashboard-dom-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).html"
        defer { unlink(out) }
        let chrome = try Subprocess("/bin/bash", ["-c",
            "\(Chromium.path!) --headless --no-sandbox --disable-gpu --user-data-dir=\(out).profile --window-size=1400,900 "
                + "--virtual-time-budget=3000 --dump-dom \(admin.url) > \(out) 2>/dev/null; rm -rf \(out).profile"])
        #expect(chrome.waitForExit(timeout: .seconds(60)) == 0)
        let dom = String(decoding: (try? Sys.readFile(out, limit: 1 << 22)) ?? [], as: UTF8.self)
        let updated = dom.firstMatch(of: /data-updated="(\d+)"/).flatMap { Int($0.1) } ?? 0
        #expect(updated >= 2, "the page never got /api/stats")
        return dom
    }
}
