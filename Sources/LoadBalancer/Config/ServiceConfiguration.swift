/// The settings one service runs with: what each of its pairs, listeners and health checks follow.
/// Built from a `Configuration`'s top-level fields (the flags, or a config file's top-level keys), then
/// overridden by a service's own keys. Durations are `Duration`s, sizes bytes.
public struct ServiceSettings: Sendable, Equatable {
    /// Listen backlog of this service's listeners.
    public var backlog: Int32
    public var connectTimeout: Duration
    public var idleTimeout: Duration
    public var finTimeout: Duration
    public var retries: Int
    public var onNoBackend: NoBackendAction
    /// Largest user-space buffer per direction of a pair.
    public var bufferSize: Int
    /// Mode, interval, timeout, rise and fall apply per service; `maxInFlight` is per worker and is
    /// taken from the top level only.
    public var health: HealthSettings
    /// Panic mode's threshold (see `Configuration.panicThreshold`).
    public var panicThreshold: Int?
    /// Whether an idle timeout starts a health check (see `Configuration.checkOnIdle`).
    public var checkOnIdle: Bool
    /// `balance`, `slow_start`, `backend_max_conns`.
    public var balancing: BalancingSettings
    /// `max_conns`, `queue_timeout`, `allow`, `deny`, `max_conns_per_source`.
    public var admission: AdmissionSettings
    /// `proxy_protocol`: the PROXY header sent to backends (nil: none).
    public var proxyProtocol: ProxyProtocolVersion?
    /// `accept_proxy`, `accept_proxy_from`: clients start with a PROXY header, from these peers only.
    public var acceptProxy: Bool
    public var acceptProxyFrom: [AddressRange]
    /// `preamble_timeout`.
    public var preambleTimeout: Duration
    /// `server_names`: the TLS server names this service serves (empty: any connection).
    public var serverNames: [String]
    /// `source`: local addresses this service's backend connections are bound to, in turn (see
    /// `Configuration.sources`); empty: the kernel picks.
    public var sources: [SocketAddress]

    /// The top-level settings of `config`.
    public init(_ config: Configuration) {
        backlog = config.backlog
        connectTimeout = config.connectTimeout
        idleTimeout = config.idleTimeout
        finTimeout = config.finTimeout
        retries = config.retries
        onNoBackend = config.onNoBackend
        bufferSize = config.bufferSize
        health = config.health
        panicThreshold = config.panicThreshold
        checkOnIdle = config.checkOnIdle
        balancing = config.balancing
        admission = config.admission
        proxyProtocol = config.proxyProtocol
        acceptProxy = config.acceptProxy
        acceptProxyFrom = config.acceptProxyFrom
        preambleTimeout = config.preambleTimeout
        serverNames = config.serverNames
        sources = config.sources
    }
}

/// One service: the addresses it listens on, its own backend pool and its own settings. The same
/// backend address in two services is two backends (two health states, two sets of counters).
public struct ServiceConfiguration: Sendable, Equatable {
    /// Unique among services; `[A-Za-z0-9_.-]`, 1 to 64 characters. Flags describe one service: `default`.
    public var name: String
    public var listen: [SocketAddress]
    public var backends: [BackendSpec]
    public var settings: ServiceSettings

    public init(name: String, listen: [SocketAddress], backends: [BackendSpec], settings: ServiceSettings) {
        self.name = name
        self.listen = listen
        self.backends = backends
        self.settings = settings
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x2E || c == 0x5F
            }
    }
}

/// How `Configuration.validate` names the place a mistake was made: a flag, or a config file's JSON path.
public enum ConfigOrigin: Sendable, Equatable {
    case flags
    /// `file` as given; `serviceList`: the services came from a `services` array (paths read
    /// `services[1].listen[0]`), or else from top-level `listen`/`backends` (paths read `listen[0]`).
    case file(String, serviceList: Bool)
}

extension Configuration {
    /// The services `lb` runs: `services`, or when that is empty the one service the flags describe,
    /// named `default`, made of `listen`, `backends` and the top-level settings.
    public var effectiveServices: [ServiceConfiguration] {
        if !services.isEmpty { return services }
        return [ServiceConfiguration(name: "default", listen: listen, backends: backends, settings: ServiceSettings(self))]
    }

    /// The checks that look across values, shared by flags, config files and reloads: service names
    /// valid and unique, every service listening somewhere, no backend listed twice in one service, no
    /// address (or an overlapping wildcard) used twice. The first mistake is thrown, named as `origin`
    /// says. Values themselves (ports, durations) are checked where they are parsed.
    public func validate(origin: ConfigOrigin = .flags) throws(ConfigError) {
        let services = effectiveServices
        func place(_ s: Int, _ field: String, _ i: Int? = nil) -> String {
            switch origin {
            case .flags: return "--" + field
            case .file(let file, let list):
                let element = i.map { "[\($0)]" } ?? ""
                return "\(file): " + (list ? "services[\(s)]." : "") + field + element
            }
        }
        var names: [String: Int] = [:]
        for (s, service) in services.enumerated() {
            guard ServiceConfiguration.isValidName(service.name) else {
                throw ConfigError(flag: place(s, "name"), value: nil, reason: "a name is 1-64 of A-Z a-z 0-9 _ . -")
            }
            if let first = names[service.name] {
                throw ConfigError(flag: place(s, "name"), value: nil, reason: "service '\(service.name)' is already services[\(first)]")
            }
            names[service.name] = s
            if service.listen.isEmpty {
                throw ConfigError(flag: place(s, "listen"), value: nil, reason: "a service needs at least one listen address")
            }
            var seen = Set<SocketAddress>()
            for (i, b) in service.backends.enumerated() where !seen.insert(b.address).inserted {
                if case .flags = origin {
                    throw ConfigError(flag: "--backend", value: b.address.description, reason: "listed twice")
                }
                throw ConfigError(flag: place(s, "backends", i), value: nil, reason: "backend \(b.address) listed twice")
            }
        }
        // Two listeners on one port of one family collide when the addresses are equal or either is the
        // wildcard: the kernel would pick between them, not the operator. The same address in two
        // services is one listener shared by server name when either lists names (`validateSharing`
        // checks the rest); without names it is the plain collision it always was.
        var taken: [(service: Int, index: Int, address: SocketAddress)] = []
        for (s, service) in services.enumerated() {
            for (i, a) in service.listen.enumerated() where a.port != 0 {
                let collision = taken.first { t in
                    let shared = t.address == a && t.service != s
                        && !(services[t.service].settings.serverNames.isEmpty && service.settings.serverNames.isEmpty)
                    return Self.listenersCollide(t.address, a) && !shared
                }
                if let other = collision {
                    if case .flags = origin {
                        let reason = other.address == a ? "listed twice" : "overlaps --listen \(other.address)"
                        throw ConfigError(flag: "--listen", value: a.description, reason: reason)
                    }
                    let whose = other.service == s ? "this service" : "service '\(services[other.service].name)'"
                    let what = other.address == a ? "already used by" : "overlaps \(other.address) of"
                    throw ConfigError(flag: place(s, "listen", i), value: nil, reason: "\(a) \(what) \(whose)")
                }
                taken.append((s, i, a))
            }
        }
        try Self.validateSharing(services) { s, field, i in place(s, field, i) }
    }

    static func listenersCollide(_ a: SocketAddress, _ b: SocketAddress) -> Bool {
        guard a.port == b.port, a.family == b.family else { return false }
        return a == b || a.isWildcard || b.isWildcard
    }
}

extension SocketAddress {
    /// 0.0.0.0 or [::]: every address of its family (only checked while validating, so the text will do).
    var isWildcard: Bool { isIPv6 ? host == "::" : host == "0.0.0.0" }
}
