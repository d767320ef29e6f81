/// Listen addresses shared by services told apart by TLS server name (HAProxy `req.ssl_sni`, nginx
/// `ssl_preread`, Traefik `HostSNI`): one listening socket per address, and a router that moves each
/// pair to the service its ClientHello names.
///
/// An address (with a fixed port) may be listed by several services when every one of them lists
/// `server_names`; one of them may list `*`, which makes it the default (names nothing else matches,
/// and ClientHellos without a server name). The first service listing the address owns its socket
/// (the one a reload or a takeover keeps); which service a pair belongs to is decided by its name.
extension Configuration {
    /// For each effective service, for each of its listen addresses: the indexes (into
    /// `effectiveServices`) of the services listening there, the owner (the first) first. Port 0
    /// addresses are never shared (each is its own socket).
    public var listenMembers: [[[Int]]] { Self.listenMembers(effectiveServices) }

    static func listenMembers(_ services: [ServiceConfiguration]) -> [[[Int]]] {
        var byAddress: [SocketAddress: [Int]] = [:]
        for (s, service) in services.enumerated() {
            for a in service.listen where a.port != 0 && byAddress[a]?.last != s { byAddress[a, default: []].append(s) }
        }
        return services.enumerated().map { s, service in
            service.listen.map { a in a.port == 0 ? [s] : byAddress[a] ?? [s] }
        }
    }

    /// The sharing rules, checked by `validate` with the other cross-value checks (`place` names the
    /// mistake as the other config errors do): every service on a shared address lists `server_names`;
    /// at most one lists `*`; no name is listed by two of them; and `accept_proxy`,
    /// `accept_proxy_from` and `preamble_timeout` are the same for all of them, since the preamble is
    /// read before the service is known.
    static func validateSharing(
        _ services: [ServiceConfiguration], place: (Int, String, Int?) -> String
    ) throws(ConfigError) {
        var checked = Set<SocketAddress>()
        let members = listenMembers(services)
        for (s, service) in services.enumerated() {
            for (i, a) in service.listen.enumerated() where members[s][i].count > 1 && checked.insert(a).inserted {
                let group = members[s][i]
                for m in group where services[m].settings.serverNames.isEmpty {
                    let at = services[m].listen.firstIndex(of: a) ?? 0
                    throw ConfigError(flag: place(m, "listen", at), value: nil, reason:
                        "\(a) is shared with service '\(services[group[0] == m ? group[1] : group[0]].name)': "
                        + "each service on a shared address needs server_names (\"*\" for the default)")
                }
                var owners: [String: Int] = [:]
                for m in group {
                    for (j, raw) in services[m].settings.serverNames.enumerated() {
                        let name = (try? ServerNameRouter.validate(raw).get()) ?? raw
                        if let other = owners[name], other != m {
                            let what = name == ServerNameRouter.defaultName
                                ? "'*' (the default) on \(a) is already service '\(services[other].name)'s"
                                : "server name '\(name)' on \(a) is already service '\(services[other].name)'s"
                            throw ConfigError(flag: place(m, "server_names", j), value: nil, reason: what)
                        }
                        owners[name] = m
                    }
                }
                let first = services[group[0]].settings
                for m in group.dropFirst() {
                    let other = services[m].settings
                    let key: String? =
                        other.acceptProxy != first.acceptProxy ? "accept_proxy"
                        : other.acceptProxyFrom != first.acceptProxyFrom ? "accept_proxy_from"
                        : other.preambleTimeout != first.preambleTimeout ? "preamble_timeout" : nil
                    if let key {
                        throw ConfigError(flag: place(m, key, nil), value: nil, reason:
                            "must be the same as service '\(services[group[0]].name)'s: both listen on \(a), "
                            + "whose preamble is read before the service is known")
                    }
                }
            }
        }
    }
}

/// How a listener that reads TLS server names picks each pair's service: its router (targets are
/// service indexes as the workers know them) and the preamble settings of the address, the same for
/// every service on it. Built for every listener one of whose services lists `server_names` (shared
/// or not); nil for the others, whose pairs belong to the listener's service from accept.
struct ListenerRoute: Sendable, Equatable {
    var router: ServerNameRouter
    var acceptProxy: Bool
    var trusted: [AddressRange]
    /// Nanoseconds.
    var timeout: UInt64

    /// `members`: the settings and service index of each service listening on the address, the owner
    /// first. Nil when none of them lists server names. A router the names cannot make (only a
    /// library caller that skipped `validate` gets there) routes nothing: every client is refused.
    init?(members: [(settings: ServiceSettings, index: Int)]) {
        guard members.contains(where: { !$0.settings.serverNames.isEmpty }) else { return nil }
        let routes = members.map { (names: $0.settings.serverNames, target: $0.index) }
        router = (try? ServerNameRouter(routes: routes, defaultTarget: nil)) ?? (try! ServerNameRouter(routes: [], defaultTarget: nil))
        let first = members[0].settings
        acceptProxy = first.acceptProxy
        trusted = first.acceptProxyFrom
        timeout = first.preambleTimeout.nanoseconds
    }
}
