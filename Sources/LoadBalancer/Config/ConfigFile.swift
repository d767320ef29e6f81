/// `lb --config FILE`: a JSON file describing services and settings. Every flag is also a key, in
/// snake_case without the dashes (`connect_timeout`, `health_check`), and takes the same values
/// (durations as strings like `"250ms"`). At the top level a key is the default for every service;
/// inside a service it overrides. Flags given with `--config` override the top-level keys, and a
/// service's own keys override both. The whole schema is in docs/config.md.
///
/// Every mistake is one `ConfigError` naming the file, the JSON path and what was wrong:
/// `lb.json: services[1].listen[0]: port out of range`.
public enum ConfigFile {
    enum Kind {
        /// A JSON integer.
        case integer
        /// A JSON string.
        case text
        /// A JSON string holding a duration.
        case duration
        /// An integer of bytes, or a string like "16k".
        case size
        /// true or false, given to the flag as on/off.
        case onOff
        /// An integer, or a string (a word like "off", or "50%").
        case integerOrWord
        /// A string or an array of strings, each given to the (repeatable) flag in turn. A service's
        /// list replaces the top level's, it does not add to it.
        case textList
    }

    enum Scope {
        /// Top level only (a process-wide setting).
        case global
        /// Top level (the default for every service) or inside a service.
        case service
    }

    /// The keys that map to a flag. `listen`, `backends`, `name`, `services` and `quiet` are read apart.
    static let keys: [String: (flag: String, kind: Kind, scope: Scope)] = [
        "workers": ("--workers", .integer, .global),
        "backlog": ("--backlog", .integer, .service),
        "connect_timeout": ("--connect-timeout", .duration, .service),
        "idle_timeout": ("--idle-timeout", .duration, .service),
        "fin_timeout": ("--fin-timeout", .duration, .service),
        "drain_timeout": ("--drain-timeout", .duration, .global),
        "retries": ("--retries", .integer, .service),
        "on_no_backend": ("--on-no-backend", .text, .service),
        "buffer_size": ("--buffer-size", .size, .service),
        "splice": ("--splice", .onOff, .global),
        "health_check": ("--health-check", .text, .service),
        "health_interval": ("--health-interval", .duration, .service),
        "health_timeout": ("--health-timeout", .duration, .service),
        "health_rise": ("--health-rise", .integer, .service),
        "health_fall": ("--health-fall", .integer, .service),
        "health_max_inflight": ("--health-max-inflight", .integer, .global),
        "takeover_socket": ("--takeover-socket", .text, .global),
        "panic_threshold": ("--panic-threshold", .integerOrWord, .service),
        "check_on_idle": ("--check-on-idle", .onOff, .service),
        "admin": ("--admin", .text, .global),
        "admin_token_file": ("--admin-token-file", .text, .global),
        "access_log": ("--access-log", .text, .global),
        "access_log_format": ("--access-log-format", .text, .global),
        "balance": ("--balance", .text, .service),
        "slow_start": ("--slow-start", .duration, .service),
        "max_conns": ("--max-conns", .integer, .service),
        "backend_max_conns": ("--backend-max-conns", .integer, .service),
        "queue_timeout": ("--queue-timeout", .duration, .service),
        "source": ("--source", .textList, .service),
        "proxy_protocol": ("--proxy-protocol", .text, .service),
        "accept_proxy_from": ("--accept-proxy-from", .textList, .service),
        "preamble_timeout": ("--preamble-timeout", .duration, .service),
        "server_names": ("--server-name", .textList, .service),
        "allow": ("--allow", .textList, .service),
        "deny": ("--deny", .textList, .service),
        "max_conns_per_source": ("--max-conns-per-source", .integer, .service),
    ]

    /// Reads and parses `path`, then applies `overrides` (the command line: its `--config` and
    /// `--check` are ignored here) on top of the top-level keys.
    public static func load(_ path: String, overrides: [String] = []) throws(ConfigError) -> Configuration {
        let bytes: [UInt8]
        do {
            bytes = try Sys.readFile(path, limit: 16 << 20)
        } catch {
            throw ConfigError(flag: path, value: nil, reason: "cannot read: \(SystemError.message(for: error.errno))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(flag: path, value: nil, reason: "not UTF-8 text")
        }
        return try parse(text, file: path, overrides: overrides)
    }

    /// Parses a config file's text (pure: `file` only names it in errors and in `configFile`).
    public static func parse(_ text: String, file: String, overrides: [String] = []) throws(ConfigError) -> Configuration {
        func error(_ path: String, _ reason: String) -> ConfigError {
            ConfigError(flag: path.isEmpty ? file : "\(file): \(path)", value: nil, reason: reason)
        }
        let root: JSONValue
        switch JSONValue.parse(text) {
        case .success(let v): root = v
        case .failure(let f): throw error("", f.reason)
        }
        guard case .object(let members) = root else { throw error("", "expected a JSON object at the top, got \(root.kind)") }

        var state = CommandLineParser.FlagState()
        var servicesValue: JSONValue?
        var topListen: [SocketAddress]?
        var topBackends: [BackendSpec]?
        for (key, value) in members {
            switch key {
            case "services": servicesValue = value
            case "listen": topListen = try listen(value, path: key, error)
            case "backends": topBackends = try backends(value, path: key, error)
            case "name": throw error(key, "only inside a service")
            default: try apply(key, value, path: key, inService: false, to: &state, error)
            }
        }
        var args = ArgumentCursor(overrides)
        while let flag = args.next() { try CommandLineParser.apply(flag, &args, to: &state) }
        var config = try state.finished()

        if let servicesValue {
            for (key, given) in [("listen", topListen != nil), ("backends", topBackends != nil)] where given {
                throw error(key, "not with services (give each service its own \(key))")
            }
            guard case .array(let list) = servicesValue else { throw error("services", "expected an array, got \(servicesValue.kind)") }
            guard !list.isEmpty else { throw error("services", "needs at least one service") }
            for (i, item) in list.enumerated() {
                config.services.append(try service(item, path: "services[\(i)]", defaults: config, error))
            }
        } else {
            if let topListen { config.listen = topListen }
            if let topBackends { config.backends = topBackends }
        }
        config.configFile = file
        try config.validate(origin: .file(file, serviceList: servicesValue != nil))
        return config
    }

    private static func service(
        _ value: JSONValue, path: String, defaults: Configuration, _ error: (String, String) -> ConfigError
    ) throws(ConfigError) -> ServiceConfiguration {
        guard case .object(let members) = value else { throw error(path, "expected an object, got \(value.kind)") }
        var state = CommandLineParser.FlagState()
        state.config = defaults
        var name: String?, listenAddresses: [SocketAddress]?, backendSpecs: [BackendSpec]?
        for (key, v) in members {
            let keyPath = "\(path).\(key)"
            switch key {
            case "name":
                guard case .string(let s) = v else { throw error(keyPath, "expected a string, got \(v.kind)") }
                name = s
            case "listen": listenAddresses = try listen(v, path: keyPath, error)
            case "backends": backendSpecs = try backends(v, path: keyPath, error)
            case "services": throw error(keyPath, "services do not nest")
            default: try apply(key, v, path: keyPath, inService: true, to: &state, error)
            }
        }
        guard let name else { throw error(path, "missing \"name\"") }
        guard let listenAddresses else { throw error(path, "missing \"listen\"") }
        guard let backendSpecs else { throw error(path, "missing \"backends\"") }
        return ServiceConfiguration(name: name, listen: listenAddresses, backends: backendSpecs, settings: ServiceSettings(state.config))
    }

    /// One settings key: checked for its JSON type, then handed to the flag parser as its flag.
    private static func apply(
        _ key: String, _ value: JSONValue, path: String, inService: Bool, to state: inout CommandLineParser.FlagState,
        _ error: (String, String) -> ConfigError
    ) throws(ConfigError) {
        if key == "quiet" {
            guard !inService else { throw error(path, "only allowed at the top level") }
            guard case .bool(let b) = value else { throw error(path, "expected true or false, got \(value.kind)") }
            state.config.logBackendChanges = !b
            return
        }
        if key == "accept_proxy" {
            guard case .bool(let b) = value else { throw error(path, "expected true or false, got \(value.kind)") }
            state.config.acceptProxy = b
            return
        }
        guard let k = keys[key] else { throw error(path, "unknown key (see docs/config.md)") }
        if inService && k.scope == .global { throw error(path, "only allowed at the top level") }
        if case .textList = k.kind {
            let items = try strings(value, path: path, error)
            // Replace, not extend: a service's list overrides the top level's.
            switch key {
            case "allow": state.config.admission.allow = []
            case "deny": state.config.admission.deny = []
            case "source": state.config.sources = []
            case "accept_proxy_from": state.config.acceptProxyFrom = []
            case "server_names": state.config.serverNames = []
            default: break
            }
            for (i, item) in items.enumerated() {
                var args = ArgumentCursor([k.flag, item])
                _ = args.next()
                do {
                    try CommandLineParser.apply(k.flag, &args, to: &state)
                } catch let e {
                    throw error(value.isArray ? "\(path)[\(i)]" : path, e.reason)
                }
            }
            return
        }
        let text: String
        switch (k.kind, value) {
        case (.integer, .number(let n)), (.size, .number(let n)), (.integerOrWord, .number(let n)):
            guard Int(n) != nil else { throw error(path, "expected a whole number, got \(n)") }
            text = n
        case (.text, .string(let s)), (.duration, .string(let s)), (.size, .string(let s)), (.integerOrWord, .string(let s)):
            text = s
        case (.onOff, .bool(let b)):
            text = b ? "on" : "off"
        case (.integerOrWord, _): throw error(path, "expected a whole number or a string, got \(value.kind)")
        case (.integer, _): throw error(path, "expected a whole number, got \(value.kind)")
        case (.duration, _): throw error(path, "expected a duration in a string like \"250ms\", got \(value.kind)")
        case (.size, _): throw error(path, "expected a size like 16384 or \"16k\", got \(value.kind)")
        case (.onOff, _): throw error(path, "expected true or false, got \(value.kind)")
        case (.text, _): throw error(path, "expected a string, got \(value.kind)")
        case (.textList, _): return  // handled above
        }
        var args = ArgumentCursor([k.flag, text])
        _ = args.next()
        do {
            try CommandLineParser.apply(k.flag, &args, to: &state)
        } catch let e {
            throw error(path, e.reason)
        }
    }

    private static func strings(_ value: JSONValue, path: String, _ error: (String, String) -> ConfigError) throws(ConfigError) -> [String] {
        if case .string(let s) = value { return [s] }
        guard case .array(let items) = value else { throw error(path, "expected an array of strings, got \(value.kind)") }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw error("\(path)[\(i)]", "expected a string, got \(item.kind)") }
            out.append(s)
        }
        return out
    }

    private static func listen(_ value: JSONValue, path: String, _ error: (String, String) -> ConfigError) throws(ConfigError) -> [SocketAddress] {
        var out: [SocketAddress] = []
        for (i, text) in try strings(value, path: path, error).enumerated() {
            switch ValueParsers.listenAddress(text) {
            case .success(let a): out.append(a)
            case .failure(let f): throw error("\(path)[\(i)]", f.reason)
            }
        }
        return out
    }

    /// Strings as `--backend` takes them (`HOST:PORT`, `HOST:LO-HI`, `@WEIGHT`), or objects
    /// `{"address": "HOST:PORT", "weight": 3}`.
    private static func backends(_ value: JSONValue, path: String, _ error: (String, String) -> ConfigError) throws(ConfigError) -> [BackendSpec] {
        guard case .array(let items) = value else { throw error(path, "expected an array, got \(value.kind)") }
        var out: [BackendSpec] = []
        for (i, item) in items.enumerated() {
            let itemPath = "\(path)[\(i)]"
            switch item {
            case .string(let text):
                switch ValueParsers.backends(text) {
                case .success(let specs): out += specs
                case .failure(let f): throw error(itemPath, f.reason)
                }
            case .object(let members):
                var address: String?, weight = 1, maxConns = 0
                for (key, v) in members {
                    switch (key, v) {
                    case ("address", .string(let s)):
                        guard !s.contains("@") else { throw error("\(itemPath).address", "give the weight as \"weight\"") }
                        address = s
                    case ("weight", .number(let n)):
                        guard let w = Int(n), (1...BackendSpec.maxWeight).contains(w) else {
                            throw error("\(itemPath).weight", "weight must be between 1 and \(BackendSpec.maxWeight)")
                        }
                        weight = w
                    case ("max_conns", .number(let n)):
                        guard let m = Int(n), (0...10_000_000).contains(m) else {
                            throw error("\(itemPath).max_conns", "must be between 0 and 10000000")
                        }
                        maxConns = m
                    case ("max_conns", _): throw error("\(itemPath).max_conns", "expected a whole number, got \(v.kind)")
                    case ("address", _): throw error("\(itemPath).address", "expected a string, got \(v.kind)")
                    case ("weight", _): throw error("\(itemPath).weight", "expected a whole number, got \(v.kind)")
                    default: throw error("\(itemPath).\(key)", "unknown key (a backend has address, weight and max_conns)")
                    }
                }
                guard let address else { throw error(itemPath, "missing \"address\"") }
                switch ValueParsers.backends(address) {
                case .success(let specs): out += specs.map { BackendSpec(address: $0.address, weight: weight, maxConnections: maxConns) }
                case .failure(let f): throw error("\(itemPath).address", f.reason)
                }
            default:
                throw error(itemPath, "expected a string or an object, got \(item.kind)")
            }
        }
        return out
    }
}
