import LoadBalancer
import Testing

@Suite struct CommandLineParserTests {
    func run(_ args: [String]) throws -> (Configuration, DemoSettings?) {
        guard case .run(let c, let d) = try CommandLineParser.parse(args).get() else {
            Issue.record("expected a run command")
            throw ConfigError(flag: "", value: nil, reason: "not run")
        }
        return (c, d)
    }

    @Test func defaults() throws {
        let (c, demo) = try run([])
        #expect(demo == nil)
        #expect(c.listen.map(\.description) == ["0.0.0.0:8080"])
        #expect(c.backends.count == 10_000)
        #expect(c.backends.first?.description == "127.0.0.1:20000")
        #expect(c.backends[4999].description == "127.0.0.1:24999")
        #expect(c.backends[5000].description == "[::1]:25000")
        #expect(c.backends.last?.description == "[::1]:29999")
        #expect(c.backlog == 1024)
        #expect(c.connectTimeout == .seconds(1))
        #expect(c.idleTimeout == .seconds(60))
        #expect(c.finTimeout == .seconds(30))
        #expect(c.drainTimeout == .seconds(10))
        #expect(c.retries == 3)
        #expect(c.onNoBackend == .http502)
        #expect(c.bufferSize == 16384)
        #expect(c.workers == Configuration.cpuCount)
        #expect(c.health.interval == .seconds(2) && c.health.timeout == .seconds(1))
        #expect(c.health.rise == 2 && c.health.fall == 3 && c.health.mode == .downOnly)
    }

    @Test func everyFlag() throws {
        let (c, _) = try run([
            "--listen", "127.0.0.1:9000", "--listen=[::1]:9001", "--backend", "127.0.0.1:7000-7002@3",
            "--backend", "[::1]:7100", "--workers", "3", "--backlog", "64", "--connect-timeout", "250ms",
            "--idle-timeout", "5s", "--fin-timeout", "2s", "--drain-timeout", "1m", "--retries", "0",
            "--on-no-backend", "close", "--buffer-size", "32k", "--splice", "off", "--health-check", "http:/healthz",
            "--health-interval", "500ms", "--health-timeout", "200ms", "--health-rise", "4", "--health-fall", "5",
            "--health-max-inflight", "9", "--quiet",
        ])
        #expect(c.listen.map(\.description) == ["127.0.0.1:9000", "[::1]:9001"])
        #expect(c.backends.map(\.description) == ["127.0.0.1:7000@3", "127.0.0.1:7001@3", "127.0.0.1:7002@3", "[::1]:7100"])
        #expect(c.workers == 3 && c.backlog == 64 && c.retries == 0)
        #expect(c.connectTimeout == .milliseconds(250) && c.idleTimeout == .seconds(5))
        #expect(c.finTimeout == .seconds(2) && c.drainTimeout == .seconds(60))
        #expect(c.onNoBackend == .close && c.bufferSize == 32768 && !c.splice)
        #expect(c.health.mode == .http(path: "/healthz"))
        #expect(c.health.interval == .milliseconds(500) && c.health.timeout == .milliseconds(200))
        #expect(c.health.rise == 4 && c.health.fall == 5 && c.health.maxInFlight == 9)
        #expect(!c.logBackendChanges)
    }

    @Test func demoFlags() throws {
        let (_, demo) = try run(["--demo", "--demo-count", "7", "--fail-rate", "0.5", "--fault", "hang", "--seed", "9"])
        #expect(demo?.count == 7 && demo?.failRate == 0.5 && demo?.fault == "hang" && demo?.seed == 9)
    }

    @Test(arguments: [
        (["--backend", "1.2.3.4:99999"], "--backend 1.2.3.4:99999: port out of range"),
        (["--workers", "0"], "--workers 0: must be between 1 and 256"),
        (["--workers", "many"], "--workers many: not a whole number"),
        (["--connect-timeout", "5"], "--connect-timeout 5: expected a duration like 250ms, 2s or 1m"),
        (["--idle-timeout", "0s"], "--idle-timeout 0s: must be more than zero"),
        (["--on-no-backend", "teapot"], "--on-no-backend teapot: expected http502 or close"),
        (["--buffer-size", "10"], "--buffer-size 10: must be between 1024 and 16777216 bytes (1k to 16m)"),
        (["--listen"], "--listen: needs a value"),
        (["--listen", "--check"], "--listen: needs a value (--check is the next flag)"),
        (["--listen", "0.0.0.0:9000", "--listen", "127.0.0.1:9000"], "--listen 127.0.0.1:9000: overlaps --listen 0.0.0.0:9000"),
        (["--listen", "127.0.0.1:9000", "--listen", "127.0.0.1:9000"], "--listen 127.0.0.1:9000: listed twice"),
        (["--listen", "localhost"], "--listen localhost: expected HOST:PORT"),
        (["--bogus"], "--bogus: unknown flag (see --help)"),
        (["stray"], "stray: unexpected argument (see --help)"),
        (["--health-check", "ping"], "--health-check ping: expected down, all (or tcp) or http:/PATH"),
        (["--fail-rate", "2", "--demo"], "--fail-rate 2: expected a fraction between 0 and 1"),
        (["--fault", "melt", "--demo"], "--fault melt: expected one of refuse, close, reset, hang, slow, drip, die-mid, flap, mixed"),
        (["--demo-count", "3"], "--demo-count: only applies with --demo"),
        (["--backend", "127.0.0.1:80", "--backend", "127.0.0.1:79-81"], "--backend 127.0.0.1:80: listed twice"),
        (["--splice", "maybe"], "--splice maybe: expected true/false, yes/no or on/off"),
        (["--admin", "0.0.0.0:9090"], "--admin 0.0.0.0:9090: not a loopback address: give --admin-token-file"),
        (["--admin", "nowhere"], "--admin nowhere: expected HOST:PORT (or off)"),
        (["--admin-token-file", "/tmp/t"], "--admin-token-file: only applies with --admin"),
        (["--access-log-format", "json"], "--access-log-format: only applies with --access-log"),
        (["--access-log", "-", "--access-log-format", "xml"], "--access-log-format xml: expected text or json"),
        (["--panic-threshold", "101"], "--panic-threshold 101: expected a percentage from 0 to 100, or off"),
        (["--panic-threshold", "half"], "--panic-threshold half: expected a percentage from 0 to 100, or off"),
        (["--check-on-idle", "sometimes"], "--check-on-idle sometimes: expected true/false, yes/no or on/off"),
    ])
    func badFlags(args: [String], message: String) {
        switch CommandLineParser.parse(args) {
        case .failure(let error): #expect(error.description == message)
        case .success: Issue.record("accepted \(args)")
        }
    }

    @Test func adminAndAccessLogFlags() throws {
        let (plain, _) = try run([])
        #expect(plain.admin == nil && plain.accessLog == nil)
        let (demo, _) = try run(["--demo"])
        #expect(demo.admin == SocketAddress(host: "127.0.0.1", port: 9090))
        let (off, _) = try run(["--demo", "--admin", "off"])
        #expect(off.admin == nil)
        let (c, _) = try run(["--admin", "0.0.0.0:9191", "--admin-token-file", "/etc/lb/token", "--access-log", "-", "--access-log-format", "json"])
        #expect(c.admin == SocketAddress(host: "0.0.0.0", port: 9191) && c.adminTokenFile == "/etc/lb/token")
        #expect(c.accessLog == AccessLogSettings(path: "-", format: .json))
    }

    @Test func panicThresholdAndCheckOnIdle() throws {
        var (c, _) = try run([])
        #expect(c.panicThreshold == 0 && c.checkOnIdle)
        (c, _) = try run(["--panic-threshold", "30%", "--check-on-idle", "off"])
        #expect(c.panicThreshold == 30 && !c.checkOnIdle)
        (c, _) = try run(["--panic-threshold", "off"])
        #expect(c.panicThreshold == nil)
    }

    @Test func helpAndVersion() throws {
        guard case .help = try CommandLineParser.parse(["--workers", "2", "--help"]).get() else { Issue.record("no help"); return }
        guard case .version = try CommandLineParser.parse(["--version"]).get() else { Issue.record("no version"); return }
        #expect(CommandLineParser.usage.contains("--connect-timeout"))
    }
}
