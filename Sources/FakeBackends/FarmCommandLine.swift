import LoadBalancer

/// What `fakebackends` runs with, beyond the farm itself.
public struct FarmOptions: Sendable {
    public var farm: FarmConfiguration
    /// Where to write the faulty backends (one `ADDRESS KIND` a line) instead of printing them.
    public var faultyFile: String?
    /// Where the control API listens, if anywhere.
    public var control: SocketAddress?

    public init(farm: FarmConfiguration, faultyFile: String? = nil, control: SocketAddress? = nil) {
        self.farm = farm
        self.faultyFile = faultyFile
        self.control = control
    }

    /// Descriptors the process needs: one per listener, plus loops (epoll, eventfd, spare), the control
    /// server and stdio, plus headroom for the connections being served.
    public var descriptorsNeeded: Int { farm.addresses.count + 4 * farm.loops + 64 }
}

public enum FarmCommand: Sendable {
    case run(FarmOptions)
    case help
    case version
}

/// `fakebackends`' command line, parsed and validated without touching the system. Every refusal is a
/// `ConfigError` naming the flag and the value.
public enum FarmCommandLine {
    public static let version = "fakebackends \(CommandLineParser.versionNumber)"

    public static let usage = """
    usage: fakebackends [flags]
      --count N          open the first N backends of the layout (default: all of it)
      --host H --ports LO-HI
                         the layout: H:LO..H:HI (default 127.0.0.1:20000-24999 then [::1]:25000-29999)
      --mode MODE        http (default), echo, source or sink
      --fail-rate F      fraction of backends that are faulty, 0 to 1 (default 0)
      --fault KIND       refuse close reset hang slow drip die-mid flap mixed (default mixed)
      --seed S           seed choosing the faulty backends and mixed kinds (default 1)
      --delay DUR        how long slow backends hold each response (default 200ms)
      --flap DUR         how long flapping backends stay up, then down (default 1s)
      --loops N          event loop threads (default 2)
      --faulty-file PATH write the faulty backends there instead of printing them
      --control ADDR     serve the control API on a loopback HOST:PORT
      --require-all      exit 1 if any port of the layout is busy (default: skip busy ports
                         and name them in the start-up line)
      --help, --version
    Durations take ms, s, m, h (250ms, 2s, 1m), 10ms at least (the timer resolution) or 0 for
    --delay. -- ends the flags. SIGINT or SIGTERM stops it and prints a summary.
    """

    public static func parse(_ arguments: [String]) -> Result<FarmCommand, ConfigError> {
        Result { () throws(ConfigError) in try parseThrowing(arguments) }
    }

    static func parseThrowing(_ arguments: [String]) throws(ConfigError) -> FarmCommand {
        var config = FarmConfiguration(addresses: [])
        config.skipBusyPorts = true
        var options = FarmOptions(farm: config)
        var count: Int?
        var countText = ""
        var host: (text: String, address: SocketAddress)?
        var ports: (text: String, low: UInt16, high: UInt16)?

        var args = ArgumentCursor(arguments)
        while let flag = args.next() {
            switch flag {
            case "--help", "-h":
                try args.noValue(for: flag)
                return .help
            case "--version":
                try args.noValue(for: flag)
                return .version
            case "--require-all":
                config.skipBusyPorts = !(try args.boolean(for: flag))
            case "--count":
                let v = try args.value(for: flag)
                count = try ArgumentCursor.check(flag, v, ValueParsers.integer(v, in: 1...65535))
                countText = v
            case "--host":
                let v = try args.value(for: flag)
                let bare = v.hasPrefix("[") && v.hasSuffix("]") ? String(v.dropFirst().dropLast()) : v
                guard let address = SocketAddress(host: bare, port: 0) else {
                    throw ConfigError(flag: flag, value: v, reason: "expected a numeric IPv4 or IPv6 address")
                }
                host = (v, address)
            case "--ports":
                let v = try args.value(for: flag)
                let range = try ArgumentCursor.check(flag, v, ValueParsers.portRange(v[...]))
                ports = (v, range.lowerBound, range.upperBound)
            case "--mode":
                config.mode = try args.value(for: flag, else: "expected http, echo, source or sink", BackendMode.init(rawValue:))
            case "--fail-rate":
                config.failRate = try args.fraction(for: flag)
            case "--fault":
                config.fault = try args.value(
                    for: flag, else: "expected one of \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))",
                    FaultKind.init(rawValue:))
            case "--seed":
                config.seed = try args.seed(for: flag)
            case "--delay":
                config.delay = try args.duration(for: flag)
            case "--flap":
                let v = try args.value(for: flag)
                let d = try ArgumentCursor.check(flag, v, ValueParsers.duration(v))
                guard d >= .milliseconds(10) else { throw ConfigError(flag: flag, value: v, reason: "must be at least 10ms") }
                config.flapPeriod = d
            case "--loops":
                config.loops = try args.integer(for: flag, in: 1...64)
            case "--faulty-file":
                let v = try args.value(for: flag)
                guard !v.isEmpty else { throw ConfigError(flag: flag, value: v, reason: "needs a path") }
                options.faultyFile = v
            case "--control":
                let v = try args.value(for: flag)
                let address = try ArgumentCursor.check(flag, v, ValueParsers.listenAddress(v))
                guard address.isLoopback else {
                    throw ConfigError(flag: flag, value: v, reason: "the control API listens on loopback only (127.0.0.1:PORT or [::1]:PORT)")
                }
                options.control = address
            default:
                throw ArgumentCursor.unrecognized(flag)
            }
        }

        if let operand = args.operands().first { throw ConfigError(flag: operand, value: nil, reason: "unexpected argument (see --help)") }
        if let ports {
            let first = host?.address ?? SocketAddress(ipv4: (127, 0, 0, 1), port: 0)
            let available = Int(ports.high) - Int(ports.low) + 1
            let n = count ?? available
            guard n <= available else {
                throw ConfigError(flag: "--count", value: countText, reason: "more than the \(Plural.count(available, "port")) of --ports \(ports.text)")
            }
            config.addresses = (0..<n).map { k in
                var a = first
                a.port = ports.low + UInt16(k)
                return a
            }
        } else {
            if let host { throw ConfigError(flag: "--host", value: host.text, reason: "needs --ports LO-HI") }
            let n = count ?? FarmConfiguration.defaultPoolSize
            guard n <= FarmConfiguration.defaultPoolSize else {
                throw ConfigError(flag: "--count", value: countText,
                                  reason: "the default layout has \(FarmConfiguration.defaultPoolSize) ports (use --host and --ports for others)")
            }
            config.addresses = FarmConfiguration(defaultPool: n).addresses
        }
        options.farm = config
        return .run(options)
    }

    /// `127.0.0.1:20000-24999, [::1]:25000-29999`: the addresses as runs of consecutive ports.
    public static func describe(_ addresses: [SocketAddress]) -> String {
        var runs: [String] = []
        var start = 0
        for k in addresses.indices {
            let next = k + 1
            let continues = next < addresses.count && addresses[next].port == addresses[k].port &+ 1
                && addresses[next].host == addresses[k].host
            if continues { continue }
            let a = addresses[start]
            let b = addresses[k]
            let host = a.isIPv6 ? "[\(a.host)]" : a.host
            runs.append(start == k ? a.description : "\(host):\(a.port)-\(b.port)")
            start = next
        }
        return runs.joined(separator: ", ")
    }
}
