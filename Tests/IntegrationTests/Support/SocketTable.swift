import Glibc
import LoadBalancer

/// What `netstat -an` shows, for this process only: TCP sockets from /proc/net/tcp{,6} whose inode is
/// one of this process's open fds. Parallel tests share the process, so callers filter by port.
struct OpenSocket: CustomStringConvertible {
    var localPort: UInt16
    var remotePort: UInt16
    var state: String
    /// One of this process's fds for it.
    var fd: Int32 = -1
    /// From /proc/net/tcp6. Ports are per family: 127.0.0.1:P and [::1]:P are different endpoints, and
    /// parallel tests do get the same number in both.
    var v6 = false
    /// The socket's inode: unique among open sockets, unlike a port (freed ports get reused) or an fd
    /// number (freed fds get reused).
    var inode: UInt64 = 0

    var description: String { "\(v6 ? "tcp6" : "tcp") local :\(localPort) remote :\(remotePort) \(state)" }

    func isLocal(_ address: SocketAddress) -> Bool { v6 == (address.family == AF_INET6) && localPort == address.port }
    func isRemote(_ address: SocketAddress) -> Bool { v6 == (address.family == AF_INET6) && remotePort == address.port }

    static let stateNames = [
        "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
        "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
    ]

    static func ownedByThisProcess() -> [OpenSocket] {
        let inodes = socketInodes()  // inode -> fd
        var result: [OpenSocket] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in readText(file).split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count > 9, let inode = UInt64(f[9]), let fd = inodes[inode] else { continue }
                let local = f[1].split(separator: ":"), remote = f[2].split(separator: ":")
                guard let lp = UInt16(local.last ?? "", radix: 16), let rp = UInt16(remote.last ?? "", radix: 16) else { continue }
                result.append(OpenSocket(localPort: lp, remotePort: rp, state: stateNames[String(f[3])] ?? String(f[3]), fd: fd,
                                         v6: file.hasSuffix("6"), inode: inode))
            }
        }
        return result
    }

    private static func socketInodes() -> [UInt64: Int32] {
        var inodes: [UInt64: Int32] = [:]
        guard let dir = opendir("/proc/self/fd") else { return inodes }
        defer { closedir(dir) }
        var target = [CChar](repeating: 0, count: 256)
        while let entry = readdir(dir) {
            // Read the name in place up to its NUL: a dirent record is only as long as its name, so copying
            // the whole 256-byte d_name field reads past the end of opendir's buffer (AddressSanitizer saw it).
            let name = String(cString: UnsafeRawPointer(entry).advanced(by: MemoryLayout<dirent>.offset(of: \.d_name)!)
                .assumingMemoryBound(to: CChar.self))
            let n = readlink("/proc/self/fd/" + name, &target, target.count - 1)
            guard n > 0 else { continue }
            let link = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if link.hasPrefix("socket:["), let inode = UInt64(link.dropFirst(8).dropLast()), let fd = Int32(name) { inodes[inode] = fd }
        }
        return inodes
    }

    private static func readText(_ path: String) -> String {
        guard let f = fopen(path, "r") else { return "" }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
