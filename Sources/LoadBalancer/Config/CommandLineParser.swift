/// Settings for `lb --demo`: an in-process farm of fake backends to balance over.
public struct DemoSettings: Sendable, Equatable {
    public var count = 5
    public var failRate = 0.0
    public var fault = "mixed"
    public var seed: UInt64 = 1
    public init() {}

    public static let faultKinds = ["refuse", "close", "reset", "hang", "slow", "drip", "die-mid", "flap", "mixed"]

    /// Health checking under `--demo` unless flags say otherwise: `http:/health` every 500 ms, 250 ms
    /// per probe, so with the default fall of 3 a faulty backend is out within about 2 s.
    public static let healthCheck = HealthCheckMode.http(path: "/health")
    public static let healthInterval = Duration.milliseconds(500)
    public static let healthTimeout = Duration.milliseconds(250)
}

public enum ParsedCommand: Sendable {
    case run(Configuration, demo: DemoSettings?)
    /// `--check`: the configuration is valid; exit 0 without binding anything.
    case check(Configuration)
    case help
    case version
}

/// `lb`'s command line, parsed and validated without touching the system. Every refusal is a
/// `ConfigError` naming the flag and the value.
public enum CommandLineParser {
    /// The version all three commands (lb, fakebackends, loadgen) report.
    public static let versionNumber = "0.1.0"
    public static let version = "lb \(versionNumber)"

    public static let usage = """
    usage: lb [flags]
      --listen ADDR           listen on HOST:PORT or [V6]:PORT, repeatable (default 0.0.0.0:8080)
      --backend SPEC          HOST:PORT, [V6]:PORT or HOST:LO-HI, optional @WEIGHT, repeatable
                              (default 127.0.0.1:20000-24999 and [::1]:25000-29999)
      --balance ALGO          round-robin (smooth weighted), least-conn, p2c, maglev or
                              source-hash (default round-robin)
      --slow-start DUR        ramp a backend that comes up or is added to its full weight over DUR
                              (round-robin, least-conn, p2c; default 0: off)
      --max-conns N           pairs held at once; past it clients wait in the listen backlog
                              (default: half the file descriptors left after the reserve)
      --backend-max-conns N   pairs per backend; when all are full pairs queue (default 0: no limit)
      --queue-timeout DUR     how long a pair waits for a backend place (default 5s; 0: no queue)
      --allow CIDR            serve only clients in these blocks (v4 or v6), repeatable
      --deny CIDR             refuse clients in these blocks with a reset, repeatable
      --max-conns-per-source N  pairs one client address may hold (default 0: no limit)
      --workers N             event loops, one thread each (default: CPU count)
      --backlog N             listen backlog (default 1024)
      --connect-timeout DUR   per backend connect attempt (default 1s)
      --idle-timeout DUR      close a pair with no bytes either way (default 60s)
      --fin-timeout DUR       close a half-closed pair whose other side stays open (default 30s)
      --drain-timeout DUR     on SIGTERM/SIGINT, how long open pairs may finish (default 10s)
      --retries N             other backends tried after a failed connect (default 3)
      --source ADDR[-ADDR]    bind backend connections to these local addresses, in turn
                              (an IPv4 range or one address; repeatable): more ports per backend
      --on-no-backend MODE    http502 (send 502 Bad Gateway) or close (default http502)
      --buffer-size BYTES     largest buffer per direction of a pair (default 16k)
      --splice on|off         zero-copy forwarding for bulk streams (default on)
      --health-check MODE     down (probe down backends), all or tcp (TCP connect to every
                              backend), or http:/PATH (GET /PATH on every backend, 2xx is up)
                              (default down; http:/health with --demo)
      --health-interval DUR   time between probes of one backend (default 2s; 500ms with --demo)
      --health-timeout DUR    bound on one probe (default 1s; 250ms with --demo)
      --health-rise N         good probes in a row to bring a backend up (default 2)
      --health-fall N         failures in a row to mark a backend down (default 3)
      --health-max-inflight N probes in flight per worker (default 256)
      --panic-threshold P|off when at most P% of backends are up, use them all, whatever their
                              health (default 0: when none is up)
      --check-on-idle on|off  an idle timeout with the client waiting starts a health check of
                              that backend, which decides (default on); off: no signal at all
      --proxy-protocol v1|v2  send a PROXY protocol header to backends (default: none)
      --accept-proxy          clients must start with a PROXY v1/v2 header
      --accept-proxy-from CIDR  peers allowed to send it, repeatable (default 127.0.0.0/8 and ::1)
      --preamble-timeout DUR  bound on reading a PROXY header or TLS ClientHello (default 3s)
      --server-name NAME      serve only TLS clients asking for NAME (a.example.com or *.example.com),
                              repeatable; others are refused (default: any client, not read)
      --quiet                 do not log backend state changes
      --admin ADDR|off        admin API, metrics and dashboard on HOST:PORT (default off;
                              127.0.0.1:9090 with --demo)
      --admin-token-file FILE bearer token for the admin API (required off loopback)
      --access-log PATH|-     one line per closed connection, to a file (reopened on SIGUSR1) or stdout
      --access-log-format F   text or json (default text)
      --demo                  start an in-process farm of fake HTTP backends and balance over it
                              (instead of --backend, which it refuses)
      --demo-count N          backends in the demo farm (default 5)
      --fail-rate F           fraction of demo backends that are faulty (default 0)
      --fault KIND            fault of those backends: refuse close reset hang slow drip die-mid flap mixed
      --seed S                seed choosing the faulty backends (default 1)
      --config FILE           read services and settings from a JSON file (docs/config.md);
                              flags given with it override the file's top-level settings
      --takeover-socket PATH  upgrade without a dropped connection: take the listening sockets of the
                              lb serving at PATH (if any), then serve them there to the next one
      --check                 validate the flags (and file), print a summary, exit 0 or 2
      --help, --version
    Durations take ms, s, m, h (250ms, 2s, 1m); below the 10ms timer resolution they are refused.
    Sizes take k, m, g. Booleans (--quiet, --demo) also take =true/false, =yes/no or =on/off.
    -- ends the flags. A bad flag exits with status 2.
    """

    public static func parse(_ arguments: [String]) -> Result<ParsedCommand, ConfigError> {
        Result { () throws(ConfigError) in try parseThrowing(arguments) }
    }

    /// What the flags said so far (the flags, or a config file's keys turned into flags).
    struct FlagState {
        var config = Configuration()
        var demo: DemoSettings?
        var demoSettings = DemoSettings()
        var listens: [SocketAddress] = []
        var backends: [BackendSpec] = []
        var sawBackend = false
        var demoOnlyFlag: String?
        var healthModeSet = false, healthIntervalSet = false, healthTimeoutSet = false
        var adminFlag: SocketAddress??
        var accessLogFormat: AccessLogSettings.Format?
        var configPath: String?
        var check = false
        /// `--accept-proxy-from` given: its first use replaces the loopback default.
        var acceptFromSet = false

        /// The configuration the flags describe (listeners and backends in place), with the checks
        /// between flags done. Cross-value checks are `Configuration.validate`'s.
        func finished() throws(ConfigError) -> Configuration {
            var config = config
            switch adminFlag {
            case .some(let address): config.admin = address
            case .none: config.admin = demo != nil ? SocketAddress(host: "127.0.0.1", port: 9090) : nil
            }
            if let admin = config.admin, !admin.isLoopback, config.adminTokenFile == nil {
                throw ConfigError(flag: "--admin", value: admin.description, reason: "not a loopback address: give --admin-token-file")
            }
            if config.adminTokenFile != nil && config.admin == nil {
                throw ConfigError(flag: "--admin-token-file", value: nil, reason: "only applies with --admin")
            }
            if let format = accessLogFormat {
                guard config.accessLog != nil else {
                    throw ConfigError(flag: "--access-log-format", value: nil, reason: "only applies with --access-log")
                }
                config.accessLog!.format = format
            }
            if acceptFromSet && !config.acceptProxy {
                throw ConfigError(flag: "--accept-proxy-from", value: nil, reason: "only applies with --accept-proxy")
            }
            if let demoOnlyFlag, demo == nil {
                throw ConfigError(flag: demoOnlyFlag, value: nil, reason: "only applies with --demo")
            }
            if !listens.isEmpty { config.listen = listens }
            if sawBackend { config.backends = backends }
            return config
        }
    }

    static func parseThrowing(_ arguments: [String]) throws(ConfigError) -> ParsedCommand {
        var state = FlagState()
        var args = ArgumentCursor(arguments)
        while let flag = args.next() {
            switch flag {
            case "--help", "-h": try args.noValue(for: flag); return .help
            case "--version": try args.noValue(for: flag); return .version
            default: try apply(flag, &args, to: &state)
            }
        }
        if let operand = args.operands().first { throw ConfigError(flag: operand, value: nil, reason: "unexpected argument (see --help)") }
        if let path = state.configPath {
            // The file first, then every flag again on top of its top-level settings.
            for (flag, given) in [("--listen", !state.listens.isEmpty), ("--backend", state.sawBackend), ("--demo", state.demo != nil)] where given {
                throw ConfigError(flag: flag, value: nil, reason: "not with --config (describe services in the file)")
            }
            let config = try ConfigFile.load(path, overrides: arguments)
            return state.check ? .check(config) : .run(config, demo: nil)
        }
        if state.demo != nil {
            state.demo = state.demoSettings
            if state.sawBackend {
                throw ConfigError(flag: "--backend", value: nil, reason: "cannot be combined with --demo (the demo balances over its own farm)")
            }
            // The demo farm speaks HTTP: check it that way, often, so faulty backends (close, reset,
            // hang, die-mid) leave the rotation within a couple of seconds. Explicit flags win.
            if !state.healthModeSet { state.config.health.mode = DemoSettings.healthCheck }
            if !state.healthIntervalSet { state.config.health.interval = DemoSettings.healthInterval }
            if !state.healthTimeoutSet { state.config.health.timeout = DemoSettings.healthTimeout }
        }
        let config = try state.finished()
        try config.validate(origin: .flags)
        return state.check ? .check(config) : .run(config, demo: state.demo)
    }

    /// Applies one flag (its value taken from `args`) to `state`. Shared by the command line and config
    /// files, so every flag is also a file key with the same checks.
    static func apply(_ flag: String, _ args: inout ArgumentCursor, to state: inout FlagState) throws(ConfigError) {
        switch flag {
        case "--config":
            state.configPath = try args.value(for: flag)
        case "--check":
            state.check = true
        case "--takeover-socket":
            let path = try args.value(for: flag)
            guard !path.isEmpty, path.utf8.count < 100 else {
                throw ConfigError(flag: flag, value: path, reason: "a socket path is 1 to 99 bytes")
            }
            state.config.takeoverSocket = path
        case "--listen":
            state.listens.append(try args.value(for: flag, ValueParsers.listenAddress))
        case "--backend":
            state.backends += try args.value(for: flag, ValueParsers.backends)
            state.sawBackend = true
        case "--workers":
            state.config.workers = try args.integer(for: flag, in: 1...256)
        case "--backlog":
            state.config.backlog = Int32(try args.integer(for: flag, in: 1...65535))
        case "--connect-timeout":
            state.config.connectTimeout = try args.positiveDuration(for: flag)
        case "--idle-timeout":
            state.config.idleTimeout = try args.positiveDuration(for: flag)
        case "--fin-timeout":
            state.config.finTimeout = try args.positiveDuration(for: flag)
        case "--drain-timeout":
            state.config.drainTimeout = try args.duration(for: flag)
        case "--retries":
            state.config.retries = try args.integer(for: flag, in: 0...100)
        case "--source":
            state.config.sources += try args.value(for: flag, ValueParsers.sourceAddresses)
            guard state.config.sources.count <= ValueParsers.maxSourceAddresses else {
                throw ConfigError(flag: flag, value: nil, reason: "at most \(ValueParsers.maxSourceAddresses) source addresses")
            }
            guard Set(state.config.sources).count == state.config.sources.count else {
                throw ConfigError(flag: flag, value: nil, reason: "an address is listed twice")
            }
        case "--on-no-backend":
            state.config.onNoBackend = try args.value(for: flag, else: "expected http502 or close", NoBackendAction.init(rawValue:))
        case "--buffer-size":
            state.config.bufferSize = try args.byteSize(for: flag, in: 1024...(16 * 1024 * 1024))
        case "--splice":
            state.config.splice = try args.value(for: flag, ValueParsers.boolean)
        case "--health-check":
            let v = try args.value(for: flag)
            state.healthModeSet = true
            switch v {
            case "down": state.config.health.mode = .downOnly
            case "all", "tcp": state.config.health.mode = .all
            default:
                guard v.hasPrefix("http:/"), !v.contains(" "), v.allSatisfy({ $0.isASCII && !$0.isNewline }) else {
                    throw ConfigError(flag: flag, value: v, reason: "expected down, all (or tcp) or http:/PATH")
                }
                state.config.health.mode = .http(path: String(v.dropFirst(5)))
            }
        case "--health-interval":
            state.config.health.interval = try args.positiveDuration(for: flag)
            state.healthIntervalSet = true
        case "--health-timeout":
            state.config.health.timeout = try args.positiveDuration(for: flag)
            state.healthTimeoutSet = true
        case "--health-rise":
            state.config.health.rise = try args.integer(for: flag, in: 1...100)
        case "--health-fall":
            state.config.health.fall = try args.integer(for: flag, in: 1...100)
        case "--health-max-inflight":
            state.config.health.maxInFlight = try args.integer(for: flag, in: 1...100_000)
        case "--balance":
            state.config.balancing.algorithm = try args.value(
                for: flag, else: "expected one of \(BalanceAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))",
                BalanceAlgorithm.init(rawValue:))
        case "--slow-start":
            state.config.balancing.slowStart = try args.duration(for: flag)
        case "--max-conns":
            state.config.admission.maxConns = try args.integer(for: flag, in: 1...10_000_000)
        case "--backend-max-conns":
            state.config.balancing.backendMaxConns = try args.integer(for: flag, in: 0...10_000_000)
        case "--queue-timeout":
            state.config.admission.queueTimeout = try args.duration(for: flag)
        case "--allow":
            state.config.admission.allow.append(try args.value(for: flag, CIDR.parse))
        case "--deny":
            state.config.admission.deny.append(try args.value(for: flag, CIDR.parse))
        case "--max-conns-per-source":
            state.config.admission.maxConnsPerSource = try args.integer(for: flag, in: 0...10_000_000)
        case "--panic-threshold":
            let v = try args.value(for: flag)
            if v == "off" {
                state.config.panicThreshold = nil
            } else {
                guard let percent = Int(v.hasSuffix("%") ? String(v.dropLast()) : v), (0...100).contains(percent) else {
                    throw ConfigError(flag: flag, value: v, reason: "expected a percentage from 0 to 100, or off")
                }
                state.config.panicThreshold = percent
            }
        case "--check-on-idle":
            state.config.checkOnIdle = try args.value(for: flag, ValueParsers.boolean)
        case "--proxy-protocol":
            let version: ProxyProtocolVersion = try args.value(for: flag, else: "expected v1 or v2", ProxyProtocolVersion.init(rawValue:))
            state.config.proxyProtocol = version
        case "--accept-proxy":
            state.config.acceptProxy = try args.boolean(for: flag)
        case "--accept-proxy-from":
            let range = try args.value(for: flag, AddressRange.parse)
            if !state.acceptFromSet { state.config.acceptProxyFrom = [] }
            state.acceptFromSet = true
            state.config.acceptProxyFrom.append(range)
        case "--preamble-timeout":
            state.config.preambleTimeout = try args.positiveDuration(for: flag)
        case "--server-name":
            state.config.serverNames.append(try args.value(for: flag, ServerNameRouter.validate))
            do {
                _ = try ServerNameRouter(routes: [(names: state.config.serverNames, target: 0)], defaultTarget: nil)
            } catch {
                throw ConfigError(flag: flag, value: nil, reason: error.reason)
            }
        case "--quiet":
            state.config.logBackendChanges = !(try args.boolean(for: flag))
        case "--admin":
            let v = try args.value(for: flag)
            if v == "off" {
                state.adminFlag = .some(nil)
            } else {
                switch ValueParsers.listenAddress(v) {
                case .success(let address): state.adminFlag = .some(address)
                case .failure(let f): throw ConfigError(flag: flag, value: v, reason: f.reason + " (or off)")
                }
            }
        case "--admin-token-file":
            let v = try args.value(for: flag)
            guard !v.isEmpty else { throw ConfigError(flag: flag, value: v, reason: "expected a file path") }
            state.config.adminTokenFile = v
        case "--access-log":
            let v = try args.value(for: flag)
            guard !v.isEmpty else { throw ConfigError(flag: flag, value: v, reason: "expected a file path or -") }
            state.config.accessLog = AccessLogSettings(path: v)
        case "--access-log-format":
            let format: AccessLogSettings.Format = try args.value(for: flag, else: "expected text or json", AccessLogSettings.Format.init(rawValue:))
            state.accessLogFormat = format
        case "--demo":
            state.demo = try args.boolean(for: flag) ? state.demoSettings : nil
        case "--demo-count":
            state.demoSettings.count = try args.integer(for: flag, in: 1...10_000)
            state.demoOnlyFlag = flag
        case "--fail-rate":
            state.demoSettings.failRate = try args.fraction(for: flag); state.demoOnlyFlag = flag
        case "--fault":
            let v = try args.value(for: flag)
            guard DemoSettings.faultKinds.contains(v) else {
                throw ConfigError(flag: flag, value: v, reason: "expected one of \(DemoSettings.faultKinds.joined(separator: ", "))")
            }
            state.demoSettings.fault = v; state.demoOnlyFlag = flag
        case "--seed":
            state.demoSettings.seed = try args.seed(for: flag); state.demoOnlyFlag = flag
        default:
            throw ArgumentCursor.unrecognized(flag)
        }
    }
}
