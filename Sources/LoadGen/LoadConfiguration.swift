import LoadBalancer

/// What one request is.
public enum LoadMode: String, Sendable, CaseIterable {
    /// `GET PATH`: one new connection per request (like `ab`), or reused with `keepAlive` (like `wrk`).
    case http
    /// Send `size` random bytes and check that exactly the same bytes come back.
    case echo
    /// Connect and close: measures the connection rate.
    case connect
}

/// Where the load goes: `http://HOST:PORT/PATH`, `HOST:PORT` or `[V6]:PORT`. Hosts are numeric (or
/// `localhost`): no resolver, as in the balancer.
public struct LoadTarget: Sendable, Equatable, CustomStringConvertible {
    public var address: SocketAddress
    /// Request path for http mode, always starting with `/`.
    public var path: String
    /// Value of the `Host` header: the authority as written (`127.0.0.1:8080`, `[::1]:9000`).
    public var hostHeader: String

    public init(address: SocketAddress, path: String = "/", hostHeader: String? = nil) {
        self.address = address
        self.path = path
        self.hostHeader = hostHeader ?? address.description
    }

    public var description: String { "http://\(hostHeader)\(path)" }

    public static func parse(_ text: String) -> Result<LoadTarget, ParseFailure> {
        var rest = Substring(text)
        var isURL = false
        if let scheme = rest.firstRange(of: "://") {
            let name = rest[..<scheme.lowerBound].lowercased()
            guard name == "http" else { return .failure(ParseFailure("only http:// targets are supported")) }
            rest = rest[scheme.upperBound...]
            isURL = true
        }
        var path = "/"
        if let slash = rest.firstIndex(of: "/") {
            guard isURL else { return .failure(ParseFailure("a path needs the http:// form")) }
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(ParseFailure("the path must be printable ASCII without spaces"))
        }
        guard !rest.isEmpty else { return .failure(ParseFailure("missing host")) }
        let authority = String(rest)
        // http://HOST/ without a port means port 80; the bare form needs a port.
        let hasPort = authority.hasPrefix("[") ? authority.contains("]:") : authority.contains(":")
        let withPort = (isURL && !hasPort) ? authority + ":80" : authority
        let parts: (host: String, ports: Substring)
        switch ValueParsers.splitHostPort(withPort) {
        case .success(let p): parts = p
        case .failure(let f): return .failure(f)
        }
        guard !parts.host.isEmpty else { return .failure(ParseFailure("missing host")) }
        let port: UInt16
        switch ValueParsers.port(parts.ports) {
        case .success(let p): port = p
        case .failure(let f): return .failure(f)
        }
        guard let address = SocketAddress(host: parts.host, port: port) else {
            return .failure(ParseFailure("bad address '\(parts.host)' (numeric IPv4/IPv6 or localhost)"))
        }
        return .success(LoadTarget(address: address, path: path, hostHeader: authority))
    }
}

/// One run's settings. Defaults match `loadgen` with no flags but the target.
public struct LoadConfiguration: Sendable {
    public var target: LoadTarget
    public var mode: LoadMode = .http
    /// `-n`: total requests. With `duration` too, whichever bound comes first ends the run.
    public var requests: Int? = 1
    /// `--duration`: stop starting requests after this long; requests still in flight are cut off
    /// (counted in `requested`, not in `completed`).
    public var duration: Duration? = nil
    /// `-c`: connections open at once, spread over the threads.
    public var concurrency = 1
    /// `--threads`: worker threads, each with its own epoll (never more than `concurrency`).
    public var threads = Configuration.cpuCount
    /// `--keepalive`: reuse a connection for many requests (http and echo modes).
    public var keepAlive = false
    /// `--size`: echo payload bytes per request.
    public var size = 1024
    /// `--rate`: open-loop pacing, requests/s in total. Latency counts from the scheduled start.
    public var rate: Double? = nil
    /// Per request, connect plus response. A request that takes longer is a `timeout` error.
    public var timeout: Duration = .seconds(5)
    /// Write a progress line to stderr (fd 2) about four times a second.
    public var progress = false

    public init(target: LoadTarget) {
        self.target = target
    }
}
