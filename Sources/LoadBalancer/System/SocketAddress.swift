import Glibc

/// An IPv4 or IPv6 socket address, stored inline (no allocation). `sockaddr_in6` is large enough for both.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    var storage = sockaddr_in6()

    public init() {}

    public init(ipv4 octets: (UInt8, UInt8, UInt8, UInt8), port: UInt16) {
        withUnsafeMutableBytes(of: &storage) { raw in
            let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            sin.pointee.sin_family = sa_family_t(AF_INET)
            sin.pointee.sin_port = port.bigEndian
            sin.pointee.sin_addr.s_addr = (UInt32(octets.0) << 24 | UInt32(octets.1) << 16 | UInt32(octets.2) << 8 | UInt32(octets.3)).bigEndian
        }
    }

    /// Parses a numeric host (`127.0.0.1`, `::1`, `0.0.0.0`, `localhost`) and a port. No DNS: a balancer
    /// must not block on a resolver, and every address here is a literal.
    public init?(host: String, port: UInt16) {
        let host = host == "localhost" ? "127.0.0.1" : host
        // inet_pton reads a C string: "1.2.3.4\0junk" would be read as 1.2.3.4 (a JSON config can carry \u0000).
        if host.utf8.contains(0) { return nil }
        var ok = false
        withUnsafeMutableBytes(of: &storage) { raw in
            if host.contains(":") {
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = port.bigEndian
                ok = inet_pton(AF_INET6, host, &sin6.pointee.sin6_addr) == 1
            } else {
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = port.bigEndian
                ok = inet_pton(AF_INET, host, &sin.pointee.sin_addr) == 1
            }
        }
        if !ok { return nil }
    }

    public var family: Int32 { Int32(storage.sin6_family) }

    /// An IPv4 address as a host-order integer (127.0.0.1 is 0x7F000001); 0 for IPv6.
    public var ipv4Value: UInt32 {
        guard !isIPv6 else { return 0 }
        return withUnsafeBytes(of: storage) { raw in
            UInt32(bigEndian: raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_addr.s_addr)
        }
    }
    public var isIPv6: Bool { family == AF_INET6 }

    public var port: UInt16 {
        get { UInt16(bigEndian: storage.sin6_port) }  // sin_port and sin6_port share an offset
        set { storage.sin6_port = newValue.bigEndian }
    }

    public var length: socklen_t {
        socklen_t(isIPv6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        withUnsafeBytes(of: storage) { raw in
            if isIPv6 {
                let a = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_addr
                return withUnsafeBytes(of: a) { b in b.prefix(15).allSatisfy { $0 == 0 } && b[15] == 1 }
            }
            let s = UInt32(bigEndian: raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_addr.s_addr)
            return s >> 24 == 127
        }
    }

    public var host: String {
        withUnsafeBytes(of: storage) { raw in
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if isIPv6 {
                var a = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_addr
                inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
            } else {
                var a = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_addr
                inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
            }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// `127.0.0.1:8000` or `[::1]:13000`.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    @inline(__always)
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        let len = length
        return withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), len)
        }
    }

    @inline(__always)
    public mutating func withMutableSockaddr<R>(_ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> R) -> R {
        var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
        return withUnsafeMutableBytes(of: &storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len)
        }
    }

    /// The raw address bytes (4 or 16), for comparing and hashing without formatting the text.
    @inline(__always)
    private func withAddressBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            isIPv6
                ? body(UnsafeRawBufferPointer(rebasing: raw[MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!...].prefix(16)))
                : body(UnsafeRawBufferPointer(rebasing: raw[MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!...].prefix(4)))
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        a.family == b.family && a.port == b.port && a.withAddressBytes { x in b.withAddressBytes { y in x.elementsEqual(y) } }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(port)
        withAddressBytes { hasher.combine(bytes: $0) }
    }
}
