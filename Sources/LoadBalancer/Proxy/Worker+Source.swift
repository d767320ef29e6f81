import Glibc

extension Worker {
    /// Binds a backend socket of service `s` to the service's next `source` address of its family (none
    /// configured: nothing to do, the kernel picks address and port at connect). IP_BIND_ADDRESS_NO_PORT
    /// first, so the bind takes no port: the port is chosen at connect for the full 4-tuple, and each
    /// source address adds a whole ephemeral range towards every backend (HAProxy's `source`). A failure
    /// (EADDRNOTAVAIL: the address is not local) throws like a failed connect: a local failure, retried
    /// on the next address, blaming no backend. The lists live in the service's run settings, so a
    /// reload's new list applies from the next connect; reading them allocates nothing.
    mutating func bindSource(_ fd: Int32, family: Int32, service s: UnsafeMutablePointer<WorkerService>) throws(SystemError) {
        let v6 = family == AF_INET6
        let count = v6 ? s.pointee.settings.sourcesV6.count : s.pointee.settings.sourcesV4.count
        guard count > 0 else { return }
        let at = s.pointee.sourceCursor % count
        let source = v6 ? s.pointee.settings.sourcesV6[at] : s.pointee.settings.sourcesV4[at]
        s.pointee.sourceCursor = at &+ 1
        try K.setBindAddressNoPort(fd)
        try K.bind(fd, to: source)
    }
}
