import CShim
import Glibc

extension Sys {
    /// The most descriptors one `send(_:_:passing:)` carries.
    public static let maxPassedFDs = Int(LB_MAX_PASSED_FDS)

    /// Sends one datagram to the Unix socket at `path` (`@name`: abstract namespace), from a socket
    /// made and closed for it: sd_notify's way.
    public static func sendDatagram(toUnixPath path: String, _ bytes: [UInt8]) throws(SystemError) {
        let rc = bytes.withUnsafeBytes { raw in lb_unix_datagram_send(path, raw.baseAddress, raw.count) }
        if rc < 0 { throw SystemError(errno: errno, operation: "sendto \(path)") }
    }

    /// A Unix datagram socket bound at `path` (blocking, close-on-exec): the receiving end of
    /// sd_notify, as systemd holds it.
    public static func unixDatagramBind(_ path: String) throws(SystemError) -> Int32 {
        let fd = lb_unix_datagram_bind(path)
        if fd < 0 { throw SystemError(errno: errno, operation: "bind \(path)") }
        return fd
    }

    /// A listening Unix seqpacket socket bound at `path` (blocking, close-on-exec).
    public static func unixListen(_ path: String, backlog: Int32 = 4) throws(SystemError) -> Int32 {
        let fd = lb_unix_listen(path, backlog)
        if fd < 0 { throw SystemError(errno: errno, operation: "listen \(path)") }
        return fd
    }

    /// A blocking Unix seqpacket connection to `path`.
    public static func unixConnect(_ path: String) throws(SystemError) -> Int32 {
        let fd = lb_unix_connect(path)
        if fd < 0 { throw SystemError(errno: errno, operation: "connect \(path)") }
        return fd
    }

    /// Sends `bytes` (at least one) with `fds` attached (SCM_RIGHTS), at most `LB_MAX_PASSED_FDS`.
    public static func send(_ socket: Int32, _ bytes: [UInt8], passing fds: [Int32]) throws(SystemError) {
        let rc = bytes.withUnsafeBytes { raw in
            fds.withUnsafeBufferPointer { f in lb_send_fds(socket, raw.baseAddress, raw.count, f.baseAddress, Int32(f.count)) }
        }
        if rc < 0 { throw SystemError(errno: errno, operation: "sendmsg") }
        if rc != bytes.count { throw SystemError(errno: EMSGSIZE, operation: "sendmsg") }
    }

    /// Receives up to `capacity` bytes and the fds attached to them. Zero bytes: the peer closed.
    public static func receive(_ socket: Int32, capacity: Int, fds maxFDs: Int = Int(LB_MAX_PASSED_FDS)) throws(SystemError) -> (bytes: [UInt8], fds: [Int32]) {
        var bytes = [UInt8](repeating: 0, count: capacity)
        var fds = [Int32](repeating: -1, count: maxFDs)
        var count: Int32 = 0
        let rc = bytes.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer { f in lb_recv_fds(socket, raw.baseAddress, raw.count, f.baseAddress, Int32(maxFDs), &count) }
        }
        if rc < 0 { throw SystemError(errno: errno, operation: "recvmsg") }
        return (Array(bytes[0..<rc]), Array(fds[0..<Int(count)]))
    }
}

extension Sys {
    /// Accepts one connection on a blocking Unix listener (close-on-exec).
    public static func unixAccept(_ fd: Int32) throws(SystemError) -> Int32 {
        let c = lb_unix_accept(fd)
        if c < 0 { throw SystemError(errno: errno, operation: "accept") }
        return c
    }

    /// The user id of the peer of a connected Unix socket (SO_PEERCRED).
    public static func peerUID(_ fd: Int32) throws(SystemError) -> UInt32 {
        let uid = lb_peer_uid(fd)
        if uid < 0 { throw SystemError(errno: errno, operation: "getsockopt(SO_PEERCRED)") }
        return UInt32(uid)
    }

    /// Bounds every blocking receive on `fd`.
    public static func setReceiveTimeout(_ fd: Int32, milliseconds: Int32) throws(SystemError) {
        _ = try retrying("setsockopt(SO_RCVTIMEO)") { Int(lb_set_receive_timeout(fd, milliseconds)) }
    }

    /// A second descriptor for the same open socket (close-on-exec).
    public static func duplicate(_ fd: Int32) throws(SystemError) -> Int32 {
        Int32(try retrying("fcntl(F_DUPFD_CLOEXEC)") { Int(fcntl(fd, F_DUPFD_CLOEXEC, 0)) })
    }

    public static func rename(_ from: String, to: String) throws(SystemError) {
        if Glibc.rename(from, to) != 0 { throw SystemError(errno: errno, operation: "rename \(from) \(to)") }
    }

    public static func unlink(_ path: String) throws(SystemError) {
        if Glibc.unlink(path) != 0 { throw SystemError(errno: errno, operation: "unlink \(path)") }
    }

    /// The inode of what `path` names, or nil when it names nothing.
    public static func inode(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    /// Whether `path` names something that is not a socket (a regular file, a directory); false when it
    /// names nothing or a socket. The symbolic link itself is looked at, not what it points to.
    public static func namesNonSocket(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFSOCK
    }

    /// Shuts a socket both ways (a blocked accept or receive on it returns).
    public static func shutdownBoth(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }
}
