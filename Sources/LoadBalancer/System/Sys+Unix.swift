import CShim
import Glibc

extension Sys {
    /// Sends one datagram to the Unix socket at `path` (`@name`: abstract namespace), from a socket
    /// made and closed for it: sd_notify's way.
    public static func sendDatagram(toUnixPath path: String, _ bytes: [UInt8]) throws(SystemError) {
        let rc = bytes.withUnsafeBytes { raw in lb_unix_datagram_send(path, raw.baseAddress, raw.count) }
        if rc < 0 { throw SystemError(errno: errno, operation: "sendto \(path)") }
    }

    /// A listening Unix stream socket bound at `path` (blocking, close-on-exec).
    public static func unixListen(_ path: String, backlog: Int32 = 4) throws(SystemError) -> Int32 {
        let fd = lb_unix_listen(path, backlog)
        if fd < 0 { throw SystemError(errno: errno, operation: "listen \(path)") }
        return fd
    }

    /// A blocking Unix stream connection to `path`.
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
