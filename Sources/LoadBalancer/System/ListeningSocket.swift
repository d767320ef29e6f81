import Glibc

/// Opening listeners and outgoing sockets: the few multi-call sequences, kept out of the event loop.
public enum Sockets {
    /// A non-blocking listener with SO_REUSEADDR (and SO_REUSEPORT when several workers each open one
    /// on the same address: the kernel then spreads new connections across them). With `proxied`, the
    /// listener carries what a proxied stream needs, which accepted sockets inherit (one setsockopt per
    /// listener instead of one per connection): TCP_NODELAY, and SO_OOBINLINE so an urgent byte stays
    /// in the stream to be passed on.
    public static func listen(on address: SocketAddress, backlog: Int32, reusePort: Bool, proxied: Bool = false) throws(SystemError) -> Int32 {
        let fd = try bind(on: address, reusePort: reusePort, proxied: proxied)
        do throws(SystemError) {
            try Sys.listen(fd, backlog: backlog)
            return fd
        } catch {
            Sys.close(fd)
            throw error
        }
    }

    /// The first half of `listen`: a non-blocking socket with the same options, bound to `address` but
    /// not listening. On error the socket is closed and the error thrown.
    public static func bind(on address: SocketAddress, reusePort: Bool, proxied: Bool = false) throws(SystemError) -> Int32 {
        let fd = try Sys.socket(family: address.family)
        do throws(SystemError) {
            try Sys.setReuseAddress(fd)
            if proxied {
                try Sys.setNoDelay(fd)
                try Sys.setUrgentInline(fd)
            }
            if reusePort { try Sys.setReusePort(fd) }
            if address.isIPv6 { try Sys.setV6Only(fd) }
            do throws(SystemError) {
                try Sys.bind(fd, to: address)
            } catch {
                throw SystemError(errno: error.errno, operation: "bind \(address)")
            }
            return fd
        } catch {
            Sys.close(fd)
            throw error
        }
    }

    /// Throws EADDRINUSE (as `bind ADDRESS`) when another socket already listens on `address`, or on an
    /// address that overlaps it (a wildcard on the same port). SO_REUSEPORT would let a second process
    /// of the same user join the listening group and silently take a share of the connections; a plain
    /// bind, which this tries and undoes, is refused as for any program. Port 0 is always free.
    /// (Two processes starting in the same instant could both pass; a handover of listening sockets
    /// does not bind at all.)
    public static func requireUnused(_ address: SocketAddress) throws(SystemError) {
        guard address.port != 0 else { return }
        let fd = try bind(on: address, reusePort: false)
        Sys.close(fd)
    }
}
