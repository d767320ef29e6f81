import Glibc

/// Which backends are lb's own listeners: proxying to one would send each connection back to lb, which
/// would proxy it again, thousands of connections a second from one client. Pure: the host's addresses
/// are passed in (`Sys.interfaceAddresses()`).
///
/// A backend is one of lb's listeners when, on the same port:
/// - it is the listen address itself;
/// - the listen address is a wildcard (`0.0.0.0` or `::`) of the same family and the backend is a local
///   address: loopback (all of 127.0.0.0/8, `::1`), the wildcard itself (a connect to `0.0.0.0` reaches
///   the host), or an interface address. lb's IPv6 listeners are `IPV6_V6ONLY`, so `[::]` covers IPv6 only.
/// An IPv4-mapped IPv6 backend (`[::ffff:127.0.0.1]`) is judged as the IPv4 address it reaches, and a
/// wildcard backend as loopback.
public enum SelfLoop {
    /// `backends` split into those that may be used and those that are lb's own `listen` addresses,
    /// each in the order given.
    public static func partition(_ backends: [BackendSpec], listen: [SocketAddress], local: [SocketAddress])
        -> (kept: [BackendSpec], looped: [BackendSpec])
    {
        guard !listen.isEmpty else { return (backends, []) }
        let ports = Set(listen.map(\.port))
        var localHosts = Set(local.map { normalized($0, port: 0) })
        localHosts.insert(SocketAddress(ipv4: (127, 0, 0, 1), port: 0))
        localHosts.insert(SocketAddress(host: "::1", port: 0)!)
        var kept: [BackendSpec] = []
        var looped: [BackendSpec] = []
        kept.reserveCapacity(backends.count)
        for b in backends {
            // Most pools share no port with a listener: one set lookup each.
            if ports.contains(b.address.port) && isOwnListener(b.address, listen: listen, localHosts: localHosts) {
                looped.append(b)
            } else {
                kept.append(b)
            }
        }
        return (kept, looped)
    }

    static func isOwnListener(_ backend: SocketAddress, listen: [SocketAddress], localHosts: Set<SocketAddress>) -> Bool {
        let target = normalized(backend, port: backend.port)
        for l in listen where l.port == target.port {
            if isWildcard(l) {
                if l.family == target.family && (isLoopback(target) || localHosts.contains(normalized(target, port: 0))) {
                    return true
                }
            } else if normalized(l, port: l.port) == target {
                return true
            }
        }
        return false
    }

    /// The address a connect to `a` reaches, with `port`: IPv4-mapped IPv6 as IPv4, a wildcard as loopback.
    static func normalized(_ a: SocketAddress, port: UInt16) -> SocketAddress {
        var out = a
        out.port = port
        if a.isIPv6 {
            let b = bytes(a)
            if b.prefix(10).allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
                out = SocketAddress(ipv4: (b[12], b[13], b[14], b[15]), port: port)
            } else if b.allSatisfy({ $0 == 0 }) {
                out = SocketAddress(host: "::1", port: port)!
            }
        } else if bytes(a).allSatisfy({ $0 == 0 }) {
            out = SocketAddress(ipv4: (127, 0, 0, 1), port: port)
        }
        return out
    }

    static func isWildcard(_ a: SocketAddress) -> Bool { bytes(a).allSatisfy { $0 == 0 } }

    static func isLoopback(_ a: SocketAddress) -> Bool { a.isLoopback }

    /// The 4 or 16 address bytes.
    static func bytes(_ a: SocketAddress) -> [UInt8] {
        withUnsafeBytes(of: a.storage) { raw in
            a.isIPv6
                ? Array(raw[MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!...].prefix(16))
                : Array(raw[MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!...].prefix(4))
        }
    }
}

extension LoadBalancer {
    /// Whether `address` is one of this balancer's own listeners (see `SelfLoop`): a backend added at
    /// run time (admin API, reload) must be refused when it is, as start-up leaves such backends out.
    public func isOwnListener(_ address: SocketAddress) -> Bool {
        !SelfLoop.partition([BackendSpec(address: address)], listen: listenAddresses, local: Sys.interfaceAddresses()).looped.isEmpty
    }
}
