import Admin
import CShim
import Glibc
import LoadBalancer
import Testing

/// Headless Chromium (Debian's `chromium`), installed with apt-get on first use when this runs as
/// root; nil when it is missing and cannot be installed here.
enum Chromium {
    static let path: String? = {
        if let found = find() { return found }
        guard geteuid() == 0, access("/usr/bin/apt-get", X_OK) == 0,
              let install = try? Subprocess("/usr/bin/apt-get", ["install", "-y", "-q", "chromium"], preamble: "export DEBIAN_FRONTEND=noninteractive; ")
        else { return nil }
        _ = install.waitForExit(timeout: .seconds(600))
        return find()
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
        }
    }
}
