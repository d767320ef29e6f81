import Glibc

extension Sys {
    /// The IPv4 and IPv6 addresses configured on this host's interfaces (port 0), from getifaddrs(3).
    /// Empty if the call fails: callers add loopback themselves, and a missing interface address only
    /// narrows what a wildcard listener is known to match.
    public static func interfaceAddresses() -> [SocketAddress] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0 else { return [] }
        defer { freeifaddrs(head) }
        var found: [SocketAddress] = []
        var node = head
        while let n = node {
            if let sa = n.pointee.ifa_addr {
                let family = Int32(sa.pointee.sa_family)
                if family == AF_INET || family == AF_INET6 {
                    var address = SocketAddress()
                    withUnsafeMutableBytes(of: &address.storage) { raw in
                        let size = family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size
                        raw.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: size))
                    }
                    address.port = 0
                    found.append(address)
                }
            }
            node = n.pointee.ifa_next
        }
        return found
    }
}
