/// What a pair's preamble still waits for, as bits of `ConnectionPair.preamble`.
enum PreambleNeeds {
    /// A PROXY protocol header (`--accept-proxy`).
    static let proxyHeader: UInt8 = 1 << 0
    /// A TLS ClientHello's server name (a listener shared by services told apart by `server_names`).
    static let serverName: UInt8 = 1 << 1
}

/// One service's preamble settings, in loop units. Server names are not here: they belong to the
/// listener (`ListenerRoute`), which may be shared by several services.
struct PreambleSettings: Sendable, Equatable {
    /// Send a PROXY header of this version to backends (nil: none).
    var send: ProxyProtocolVersion?
    var acceptProxy: Bool
    var trusted: [AddressRange]
    /// Nanoseconds.
    var timeout: UInt64

    init(_ config: ServiceSettings) {
        send = config.proxyProtocol
        acceptProxy = config.acceptProxy
        trusted = config.acceptProxyFrom
        timeout = config.preambleTimeout.nanoseconds
    }

    /// Whether pairs of this service need their client's address kept (`Worker.peers`).
    var needsPeers: Bool { acceptProxy || send != nil }
    /// Whether they need the address the client connected to as a PROXY header said (`Worker.locals`).
    var needsLocals: Bool { acceptProxy && send != nil }

    /// Room kept before preamble bytes in their buffer, so the header sent on fits in front of them
    /// and both go in one write.
    var headroom: Int { send == nil ? 0 : ProxyProtocol.maxEncodedLength }
}
