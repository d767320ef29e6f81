import Glibc

/// Opening listeners and outgoing sockets: the few multi-call sequences, kept out of the event loop.
public enum Sockets {
    /// A non-blocking listener with SO_REUSEADDR (and SO_REUSEPORT when several workers each open one
    /// on the same address: the kernel then spreads new connections across them). With `noDelay`, the
    /// listener carries TCP_NODELAY, which accepted sockets inherit: one setsockopt per listener
    /// instead of one per connection.
    public static func listen(on address: SocketAddress, backlog: Int32, reusePort: Bool, noDelay: Bool = false) throws(SystemError) -> Int32 {
        let fd = try bind(on: address, reusePort: reusePort, noDelay: noDelay)
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
    public static func bind(on address: SocketAddress, reusePort: Bool, noDelay: Bool = false) throws(SystemError) -> Int32 {
        let fd = try Sys.socket(family: address.family)
        do throws(SystemError) {
            try Sys.setReuseAddress(fd)
            if noDelay { try Sys.setNoDelay(fd) }
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
}
