/// Settings for `lb --demo`: an in-process farm of fake backends to balance over.
public struct DemoSettings: Sendable, Equatable {
    public var count = 5
    public var failRate = 0.0
    public var fault = "mixed"
    public var seed: UInt64 = 1
    public init() {}

    public static let faultKinds = ["refuse", "close", "reset", "hang", "slow", "drip", "die-mid", "flap", "mixed"]
}

public enum ParsedCommand: Sendable {
    case run(Configuration, demo: DemoSettings?)
    case help
    case version
}

/// `lb`'s command line, parsed and validated without touching the system. Every refusal is a
/// `ConfigError` naming the flag and the value.
public enum CommandLineParser {
    public static let version = "lb 0.1.0"

    public static let usage = """
    usage: lb [flags]
      --listen ADDR           listen on HOST:PORT or [V6]:PORT, repeatable (default 0.0.0.0:8080)
      --backend SPEC          HOST:PORT, [V6]:PORT or HOST:LO-HI, optional @WEIGHT
                              (round robin ignores weights), repeatable
                              (default 127.0.0.1:8000-12999 and [::1]:13000-17999)
      --workers N             event loops, one thread each (default: CPU count)
      --backlog N             listen backlog (default 1024)
      --connect-timeout DUR   per backend connect attempt (default 1s)
      --idle-timeout DUR      close a pair with no bytes either way (default 60s)
      --fin-timeout DUR       close a half-closed pair whose other side stays open (default 30s)
      --drain-timeout DUR     on SIGTERM/SIGINT, how long open pairs may finish (default 10s)
      --retries N             other backends tried after a failed connect (default 3)
      --on-no-backend MODE    http502 (send 502 Bad Gateway) or close (default http502)
      --buffer-size BYTES     largest buffer per direction of a pair (default 16k)
      --splice on|off         zero-copy forwarding for bulk streams (default on)
      --health-check MODE     down (probe down backends), all (probe every backend),
                              or http:/PATH (GET /PATH on every backend, 2xx is up) (default down)
      --health-interval DUR   time between probes of one backend (default 2s)
      --health-timeout DUR    bound on one probe (default 1s)
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
      --demo-count N          backends in the demo farm (default 5)
      --fail-rate F           fraction of demo backends that are faulty (default 0)
      --fault KIND            fault of those backends: refuse close reset hang slow drip die-mid flap mixed
      --seed S                seed choosing the faulty backends (default 1)
      --help, --version
    Durations take ms, s, m, h (250ms, 2s, 1m).
    """

    public static func parse(_ arguments: [String]) -> Result<ParsedCommand, ConfigError> {
        Result { () throws(ConfigError) in try parseThrowing(arguments) }
    }

    static func parseThrowing(_ arguments: [String]) throws(ConfigError) -> ParsedCommand {
        var config = Configuration()
        var demo: DemoSettings?
        var demoSettings = DemoSettings()
        var listens: [SocketAddress] = []
        var backends: [BackendSpec] = []
        var sawBackend = false
        var demoOnlyFlag: String?
        var adminFlag: SocketAddress??
        var accessLogFormat: AccessLogSettings.Format?
        var acceptFrom: [AddressRange] = []

        var args = ArgumentCursor(arguments)
        while let flag = args.next() {
            switch flag {
            case "--help", "-h": return .help
            case "--version": return .version
            case "--listen":
                listens.append(try args.value(for: flag, ValueParsers.listenAddress))
            case "--backend":
                backends += try args.value(for: flag, ValueParsers.backends)
                sawBackend = true
            case "--workers":
                config.workers = try args.integer(for: flag, in: 1...256)
            case "--backlog":
                config.backlog = Int32(try args.integer(for: flag, in: 1...65535))
            case "--connect-timeout":
                config.connectTimeout = try args.positiveDuration(for: flag)
            case "--idle-timeout":
                config.idleTimeout = try args.positiveDuration(for: flag)
            case "--fin-timeout":
                config.finTimeout = try args.positiveDuration(for: flag)
            case "--drain-timeout":
                config.drainTimeout = try args.duration(for: flag)
            case "--retries":
                config.retries = try args.integer(for: flag, in: 0...100)
            case "--on-no-backend":
                config.onNoBackend = try args.value(for: flag, else: "expected http502 or close", NoBackendAction.init(rawValue:))
            case "--buffer-size":
                config.bufferSize = try args.byteSize(for: flag, in: 1024...(16 * 1024 * 1024))
            case "--splice":
                let v = try args.value(for: flag)
                switch v {
                case "on": config.splice = true
                case "off": config.splice = false
                default: throw ConfigError(flag: flag, value: v, reason: "expected on or off")
                }
            case "--health-check":
                let v = try args.value(for: flag)
                switch v {
                case "down": config.health.mode = .downOnly
                case "all", "tcp": config.health.mode = .all
                default:
                    guard v.hasPrefix("http:/"), !v.contains(" "), v.allSatisfy({ $0.isASCII && !$0.isNewline }) else {
                        throw ConfigError(flag: flag, value: v, reason: "expected down, all or http:/PATH")
                    }
                    config.health.mode = .http(path: String(v.dropFirst(5)))
                }
            case "--health-interval":
                config.health.interval = try args.positiveDuration(for: flag)
            case "--health-timeout":
                config.health.timeout = try args.positiveDuration(for: flag)
            case "--health-rise":
                config.health.rise = try args.integer(for: flag, in: 1...100)
            case "--health-fall":
                config.health.fall = try args.integer(for: flag, in: 1...100)
            case "--health-max-inflight":
                config.health.maxInFlight = try args.integer(for: flag, in: 1...100_000)
            case "--panic-threshold":
                let v = try args.value(for: flag)
                if v == "off" {
                    config.panicThreshold = nil
                } else {
                    guard let percent = Int(v.hasSuffix("%") ? String(v.dropLast()) : v), (0...100).contains(percent) else {
                        throw ConfigError(flag: flag, value: v, reason: "expected a percentage from 0 to 100, or off")
                    }
                    config.panicThreshold = percent
                }
            case "--check-on-idle":
                let v = try args.value(for: flag)
                switch v {
                case "on": config.checkOnIdle = true
                case "off": config.checkOnIdle = false
                default: throw ConfigError(flag: flag, value: v, reason: "expected on or off")
                }
            case "--proxy-protocol":
                let version: ProxyProtocolVersion = try args.value(for: flag, else: "expected v1 or v2", ProxyProtocolVersion.init(rawValue:))
                config.proxyProtocol = version
            case "--accept-proxy":
                config.acceptProxy = true
            case "--accept-proxy-from":
                acceptFrom.append(try args.value(for: flag, AddressRange.parse))
            case "--preamble-timeout":
                config.preambleTimeout = try args.positiveDuration(for: flag)
            case "--server-name":
                config.serverNames.append(try args.value(for: flag, ServerNameRouter.validate))
            case "--quiet":
                config.logBackendChanges = false
            case "--admin":
                let v = try args.value(for: flag)
                if v == "off" {
                    adminFlag = .some(nil)
                } else {
                    switch ValueParsers.listenAddress(v) {
                    case .success(let address): adminFlag = .some(address)
                    case .failure(let f): throw ConfigError(flag: flag, value: v, reason: f.reason + " (or off)")
                    }
                }
            case "--admin-token-file":
                let v = try args.value(for: flag)
                guard !v.isEmpty else { throw ConfigError(flag: flag, value: v, reason: "expected a file path") }
                config.adminTokenFile = v
            case "--access-log":
                let v = try args.value(for: flag)
                guard !v.isEmpty else { throw ConfigError(flag: flag, value: v, reason: "expected a file path or -") }
                config.accessLog = AccessLogSettings(path: v)
            case "--access-log-format":
                let format: AccessLogSettings.Format = try args.value(for: flag, else: "expected text or json", AccessLogSettings.Format.init(rawValue:))
                accessLogFormat = format
            case "--demo":
                demo = demoSettings
            case "--demo-count":
                demoSettings.count = try args.integer(for: flag, in: 1...10_000)
                demoOnlyFlag = flag
            case "--fail-rate":
                demoSettings.failRate = try args.fraction(for: flag); demoOnlyFlag = flag
            case "--fault":
                let v = try args.value(for: flag)
                guard DemoSettings.faultKinds.contains(v) else {
                    throw ConfigError(flag: flag, value: v, reason: "expected one of \(DemoSettings.faultKinds.joined(separator: ", "))")
                }
                demoSettings.fault = v; demoOnlyFlag = flag
            case "--seed":
                demoSettings.seed = try args.seed(for: flag); demoOnlyFlag = flag
            default:
                throw ArgumentCursor.unrecognized(flag)
            }
        }

        if !acceptFrom.isEmpty {
            guard config.acceptProxy else {
                throw ConfigError(flag: "--accept-proxy-from", value: nil, reason: "only applies with --accept-proxy")
            }
            config.acceptProxyFrom = acceptFrom
        }
        if !config.serverNames.isEmpty {
            do {
                _ = try ServerNameRouter(routes: [(names: config.serverNames, target: 0)], defaultTarget: nil)
            } catch {
                throw ConfigError(flag: "--server-name", value: nil, reason: error.reason)
            }
        }
        if demo != nil { demo = demoSettings }
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
        if let demoOnlyFlag, demo == nil {
            throw ConfigError(flag: demoOnlyFlag, value: nil, reason: "only applies with --demo")
        }
        if !listens.isEmpty { config.listen = listens }
        if sawBackend {
            var seen = Set<SocketAddress>()
            for b in backends where !seen.insert(b.address).inserted {
                throw ConfigError(flag: "--backend", value: b.address.description, reason: "listed twice")
            }
            config.backends = backends
        }
        var seenListen = Set<SocketAddress>()
        for l in config.listen where l.port != 0 && !seenListen.insert(l).inserted {
            throw ConfigError(flag: "--listen", value: l.description, reason: "listed twice")
        }
        return .run(config, demo: demo)
    }
}
