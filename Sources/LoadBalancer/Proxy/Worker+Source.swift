import Glibc

extension Worker {
    /// Binds a backend socket to the next `--source` address of its family (none configured: nothing to
    /// do, the kernel picks address and port at connect). IP_BIND_ADDRESS_NO_PORT first, so the bind
    /// takes no port: the port is chosen at connect for the full 4-tuple, and each source address adds
    /// a whole ephemeral range towards every backend. A failure (EADDRNOTAVAIL: the address is not
    /// local) throws like a failed connect: a local failure, retried on the next address, blaming no backend.
    mutating func bindSource(_ fd: Int32, family: Int32) throws(SystemError) {
        let count = family == AF_INET6 ? settings.sourcesV6.count : settings.sourcesV4.count
        guard count > 0 else { return }
        let source = family == AF_INET6 ? settings.sourcesV6[sourceCursor % count] : settings.sourcesV4[sourceCursor % count]
        sourceCursor &+= 1
        if sourceCursor < 0 { sourceCursor = 0 }
        try K.setBindAddressNoPort(fd)
        try K.bind(fd, to: source)
    }
}
