import LoadBalancer

/// What `loadgen`'s arguments ask for.
public enum LoadGenCommand: Sendable {
    case run(LoadConfiguration, json: Bool, allowErrors: Bool)
    case help
    case version
}

/// `loadgen`'s command line, parsed and validated without touching the system. A refusal is a
/// `ConfigError` naming the flag and the value: `-c 0: must be between 1 and 100000`.
public enum LoadGenCommandLine {
    public static let version = "loadgen \(CommandLineParser.versionNumber)"

    public static let usage = """
    usage: loadgen [flags] TARGET
      TARGET                  http://HOST:PORT/PATH, HOST:PORT or [V6]:PORT (numeric host or localhost)
      -n N                    total requests (default 1, or unbounded with --duration)
      -c N                    concurrent connections (default 1)
      --duration DUR          run for this long (with -n: whichever ends first)
      --threads T             worker threads, one epoll each (default: CPU count)
      --mode MODE             http (GET, default), echo (send --size random bytes, expect them back),
                              connect (connect and close: the connection rate)
      --keepalive             reuse connections (like wrk; default: one per request, like ab)
      --size BYTES            echo payload per request (default 1024; 16k, 1m accepted)
      --rate R                open loop: start R requests/s in total; latency counts from the
                              scheduled start, so a stalled server shows (no coordinated omission)
      --timeout DUR           bound on one request, connect included (default 5s)
      --json                  print the report as one JSON object
      --allow-errors          exit 0 even when requests failed
      --help, --version
    Durations take ms, s, m, h (250ms, 2s, 1m), 1ms at least. Booleans (--keepalive, --json,
    --allow-errors) also take =true/false, =yes/no or =on/off. -- ends the flags (a TARGET may follow).
    Exit status: 0 all requests succeeded, 1 some failed, 2 bad arguments.
    """

    public static func parse(_ arguments: [String]) -> Result<LoadGenCommand, ConfigError> {
        Result { () throws(ConfigError) in try parseThrowing(arguments) }
    }

    static func parseThrowing(_ arguments: [String]) throws(ConfigError) -> LoadGenCommand {
        var target: LoadTarget?
        var requests: Int?
        var duration: Duration?
        var concurrency = 1
        var threads: Int?
        var mode = LoadMode.http
        var keepAlive = false
        var size: Int?
        var rate: Double?
        var timeout: Duration = .seconds(5)
        var json = false
        var allowErrors = false

        var args = ArgumentCursor(arguments)
        while let flag = args.next() {
            switch flag {
            case "--help", "-h":
                try args.noValue(for: flag)
                return .help
            case "--version":
                try args.noValue(for: flag)
                return .version
            case "-n", "--requests":
                requests = try args.integer(for: flag, in: 1...1_000_000_000)
            case "-c", "--concurrency":
                concurrency = try args.integer(for: flag, in: 1...100_000)
            case "--duration":
                duration = try args.positiveDuration(for: flag, resolution: .milliseconds(1))
            case "--threads":
                threads = try args.integer(for: flag, in: 1...256)
            case "--mode":
                mode = try args.value(for: flag, else: "expected http, echo or connect", LoadMode.init(rawValue:))
            case "--keepalive", "-k":
                keepAlive = try args.boolean(for: flag)
            case "--size":
                size = try args.byteSize(for: flag, in: 1...(64 * 1024 * 1024))
            case "--rate":
                let r: Double = try args.value(for: flag, else: "expected requests per second, more than 0") { text in
                    Double(text).flatMap { $0.isFinite && $0 > 0 && $0 <= 10_000_000 ? $0 : nil }
                }
                rate = r
            case "--timeout":
                timeout = try args.positiveDuration(for: flag, resolution: .milliseconds(1))
            case "--json":
                json = try args.boolean(for: flag)
            case "--allow-errors":
                allowErrors = try args.boolean(for: flag)
            default:
                if flag.hasPrefix("-") { throw ArgumentCursor.unrecognized(flag) }
                guard target == nil else { throw ConfigError(flag: flag, value: nil, reason: "only one target") }
                target = try ArgumentCursor.check("target", flag, LoadTarget.parse(flag))
            }
        }
        for operand in args.operands() {
            guard target == nil else { throw ConfigError(flag: operand, value: nil, reason: "only one target") }
            target = try ArgumentCursor.check("target", operand, LoadTarget.parse(operand))
        }

        guard let target else { throw ConfigError(flag: "target", value: nil, reason: "missing (see --help)") }
        if size != nil && mode != .echo { throw ConfigError(flag: "--size", value: nil, reason: "only applies with --mode echo") }
        if keepAlive && mode == .connect {
            throw ConfigError(flag: "--keepalive", value: nil, reason: "does not apply to --mode connect")
        }
        var config = LoadConfiguration(target: target)
        config.mode = mode
        config.requests = requests ?? (duration == nil ? 1 : nil)
        config.duration = duration
        config.concurrency = concurrency
        if let threads { config.threads = threads }
        config.threads = min(config.threads, concurrency)
        config.keepAlive = keepAlive
        if let size { config.size = size }
        config.rate = rate
        config.timeout = timeout
        return .run(config, json: json, allowErrors: allowErrors)
    }
}
