/// One backend as configured: where it is and how much traffic it should take relative to others.
public struct BackendSpec: Sendable, Hashable, CustomStringConvertible {
    public static let maxWeight = 1000
    public var address: SocketAddress
    public var weight: Int
    /// Active pairs this backend may hold; 0: the service's `--backend-max-conns`.
    public var maxConnections: Int

    public init(address: SocketAddress, weight: Int = 1, maxConnections: Int = 0) {
        self.address = address
        self.weight = weight
        self.maxConnections = maxConnections
    }

    public var description: String { weight == 1 ? address.description : "\(address)@\(weight)" }
}

/// What a client gets when no backend would take its connection.
public enum NoBackendAction: String, Sendable, Equatable {
    case http502
    case close
}

/// Which backends active health checks probe, and how.
public enum HealthCheckMode: Sendable, Equatable {
    /// Probe only backends marked down, to bring them back (traffic itself is the check for the rest).
    case downOnly
    /// Probe every backend with a TCP connect.
    case all
    /// Probe every backend with `GET path` and require a 2xx answer.
    case http(path: String)
}

public struct HealthSettings: Sendable, Equatable {
    public var mode: HealthCheckMode = .downOnly
    public var interval: Duration = .seconds(2)
    public var timeout: Duration = .seconds(1)
    public var rise = 2
    public var fall = 3
    /// Probes in flight at once, per worker.
    public var maxInFlight = 256

    public init() {}
}

/// Where the access log goes and how its lines look.
public struct AccessLogSettings: Sendable, Equatable {
    public enum Format: String, Sendable { case text, json }
    /// A file path (opened for append, reopened on SIGUSR1), or `-` for standard output.
    public var path: String
    public var format: Format
    /// Records each worker holds for the writer thread; when full, records are dropped and counted.
    public var bufferPerWorker: Int

    public init(path: String, format: Format = .text, bufferPerWorker: Int = 16_384) {
        self.path = path
        self.format = format
        self.bufferPerWorker = bufferPerWorker
    }
}

/// Everything `lb` runs with. Defaults are documented here and in README.md; parsing and validation are
/// pure (see `CommandLineParser`) and tested without a socket.
public struct Configuration: Sendable, Equatable {
    /// 0.0.0.0:8080
    public var listen: [SocketAddress] = [SocketAddress(ipv4: (0, 0, 0, 0), port: 8080)]
    /// 127.0.0.1:20000-24999 and [::1]:25000-29999: clear of lb's own default ports (8080, and 9090 for
    /// the admin API) and below the kernel's default ephemeral range (32768-60999), so neither lb's
    /// listener nor an outgoing connection's local port can collide with a backend.
    public var backends: [BackendSpec] = Configuration.defaultPool
    /// Event loops, one thread each. Default: CPU count.
    public var workers = Configuration.cpuCount
    public var backlog: Int32 = 1024
    public var connectTimeout: Duration = .seconds(1)
    public var idleTimeout: Duration = .seconds(60)
    /// Once one direction has ended, how long the other may stay open.
    public var finTimeout: Duration = .seconds(30)
    public var drainTimeout: Duration = .seconds(10)
    /// Other backends tried after the first connect fails.
    public var retries = 3
    public var onNoBackend: NoBackendAction = .http502
    /// Largest user-space buffer per direction of a pair, held only while bytes are in flight.
    public var bufferSize = 16 * 1024
    /// Zero-copy forwarding through pooled pipes for streams that fill the buffer.
    public var splice = true
    public var health = HealthSettings()
    /// Panic mode: when the share of a pool's backends that are up is at most this percentage, new pairs
    /// are sent to every active backend whatever its health (a refusing one costs a retry). 0, the
    /// default: only when none is up. nil: never (an all-down pool answers `onNoBackend` at once).
    public var panicThreshold: Int? = 0
    /// An idle timeout while the client waited for an answer starts an immediate health check of that
    /// backend (counted like any probe) instead of being taken as a failure: one-way protocols, long
    /// polls and idle sessions go quiet by design. false: idle timeouts say nothing about health.
    public var checkOnIdle = true
    /// Local addresses backend connections are bound to before connecting (`--source`), taken in turn
    /// for each backend of the same family, with IP_BIND_ADDRESS_NO_PORT so the kernel still picks the
    /// port per destination: N addresses give N times the ephemeral ports towards one backend (HAProxy's
    /// `source`). Empty: the kernel picks the address too. The default for every service; a service
    /// may give its own (`ServiceSettings.sources`).
    public var sources: [SocketAddress] = []
    /// Log each backend state change to stderr.
    public var logBackendChanges = true
    /// The services, each with its own listeners, pool and settings (a config file's `services`).
    /// Empty: one service named `default` made of `listen`, `backends` and the settings above (the
    /// flags). See `effectiveServices`.
    public var services: [ServiceConfiguration] = []
    /// Where this process serves its listening sockets to a newer `lb` (and asks an older one for
    /// them at start): `--takeover-socket PATH`. See `Takeover`.
    public var takeoverSocket: String?
    /// The config file these settings came from (`--config`), read again on reload; nil for flags only.
    public var configFile: String?
    /// `--balance`, `--slow-start`, `--backend-max-conns`.
    public var balancing = BalancingSettings()
    /// `--max-conns`, `--queue-timeout`, `--allow`, `--deny`, `--max-conns-per-source`.
    public var admission = AdmissionSettings()
    /// One line per closed pair (`--access-log`); nil: off, and workers keep no records.
    public var accessLog: AccessLogSettings?
    /// The admin HTTP server's address (`--admin`); nil: off. Served by the `lb` executable (the
    /// Admin target), not by this library.
    public var admin: SocketAddress?
    /// File holding the admin bearer token (`--admin-token-file`); required when `admin` is not loopback.
    public var adminTokenFile: String?
    /// Send a PROXY protocol header of this version to each backend before the client's bytes (nil: none).
    public var proxyProtocol: ProxyProtocolVersion?
    /// Clients must start with a PROXY protocol header (v1 or v2), whose addresses become theirs.
    public var acceptProxy = false
    /// The peers allowed to send that header; any other peer is refused with a reset. Loopback only.
    public var acceptProxyFrom: [AddressRange] = AddressRange.loopback
    /// How long a client may take to send its preamble (PROXY header, TLS ClientHello).
    public var preambleTimeout: Duration = .seconds(3)
    /// TLS server names this service serves (`a.example.com`, `*.example.com`); empty: any connection.
    /// When set, each client's ClientHello is read first and a name not listed is refused.
    public var serverNames: [String] = []

    public init() {}

    public static let defaultPool: [BackendSpec] = {
        var specs: [BackendSpec] = []
        specs.reserveCapacity(10_000)
        for port in UInt16(20000)...24999 { specs.append(BackendSpec(address: SocketAddress(host: "127.0.0.1", port: port)!)) }
        for port in UInt16(25000)...29999 { specs.append(BackendSpec(address: SocketAddress(host: "::1", port: port)!)) }
        return specs
    }()

    public static var cpuCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

import Glibc
