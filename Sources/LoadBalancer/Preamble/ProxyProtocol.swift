/// The PROXY protocol, versions 1 and 2, as HAProxy's `doc/proxy-protocol.txt` (2020/03/05) defines it:
/// a header a proxy puts before the first byte of a connection to tell the server who the client is.
/// Both the parser and the encoders are pure functions over caller-owned bytes: no allocation, no
/// syscall, and they never read outside the buffer they are given.
public enum ProxyProtocolVersion: String, Sendable, Equatable {
    case v1, v2
}

/// A parsed PROXY header. `source` is the client, `destination` the address it connected to.
/// Both are nil when the header carries no usable address: v1 `UNKNOWN`, v2 `LOCAL`, or a v2 family
/// this TCP proxy falls back to UNSPEC for (AF_UNSPEC, UDP, AF_UNIX): the spec says the receiver
/// then uses the connection's own addresses (section 2.1 for UNKNOWN, 2.2 for LOCAL and UNSPEC).
public struct ProxyHeader: Sendable, Equatable {
    public var version: ProxyProtocolVersion
    /// v2 `LOCAL`: the sender made this connection on purpose (a health check), not for a client.
    public var isLocal: Bool
    public var source: SocketAddress?
    public var destination: SocketAddress?

    public init(version: ProxyProtocolVersion, isLocal: Bool = false, source: SocketAddress? = nil, destination: SocketAddress? = nil) {
        self.version = version
        self.isLocal = isLocal
        self.source = source
        self.destination = destination
    }
}

/// Why a PROXY header was refused. Every one of them closes the connection (spec 2.1: "Any sequence
/// which does not exactly match the protocol must be discarded and cause the receiver to abort").
public enum ProxyHeaderError: String, Sendable, Equatable, CustomStringConvertible {
    /// Neither `PROXY ` nor the v2 signature.
    case notProxyProtocol = "not a PROXY protocol header"
    /// v1: no CR LF in the first 107 bytes.
    case lineTooLong = "v1 line longer than 107 bytes"
    /// v1: a CR not followed by LF, or an LF alone.
    case badLineEnding = "v1 line not ended by CR LF"
    /// v1: not `TCP4`, `TCP6` or `UNKNOWN`.
    case badProtocol = "v1 protocol not TCP4, TCP6 or UNKNOWN"
    /// v1: field separators not exactly one space, or fields missing or extra.
    case badSyntax = "v1 fields not separated by single spaces"
    /// v1: an address not in the canonical form of the announced family.
    case badAddress = "v1 address malformed or of the wrong family"
    /// v1: a port out of 0-65535, or with a leading zero.
    case badPort = "v1 port malformed"
    /// v2: the version nibble is not 2.
    case badVersion = "v2 version not 2"
    /// v2: the command is neither LOCAL nor PROXY.
    case badCommand = "v2 command not LOCAL or PROXY"
    /// v2: a family/protocol byte the spec does not define.
    case badFamily = "v2 address family or protocol undefined"
    /// v2: the length is smaller than the announced family's addresses.
    case addressTooShort = "v2 length shorter than its addresses"
    /// v2: longer than `ProxyProtocol.maxV2Length`.
    case tooLong = "v2 header longer than the limit"
    /// v2: a TLV that runs past the header's end.
    case badTLV = "v2 TLV runs past the header"
    /// The connection ended before a whole header arrived.
    case truncated = "connection ended inside the header"

    public var description: String { rawValue }
}

/// The outcome of looking at the first bytes of a connection: a whole header and how many bytes it
/// took (the rest is the client's data), more bytes needed, or a refusal.
public enum ProxyHeaderParse: Sendable, Equatable {
    case needMore
    case ok(ProxyHeader, consumed: Int)
    case invalid(ProxyHeaderError)
}

public enum ProxyProtocol {
    /// Spec 2.1: "If the CRLF sequence is not found in the first 107 characters, the receiver should
    /// declare the line invalid."
    public static let maxV1Length = 107
    /// The spec sets no bound on v2 TLVs; this one is 4× the 536 bytes the format is designed to fit in,
    /// room for any TLVs in use (AWS NLB, GCP, HAProxy's SSL and unique-id ones) while bounding what an
    /// untrusted peer can make us hold.
    public static let maxV2Length = 2048
    /// Room an encoded header needs: a v1 TCP6 line is at most 104 bytes, v2 over IPv6 52.
    public static let maxEncodedLength = 108

    /// `\r\n\r\n\0\r\nQUIT\n`, spec 2.2.
    @inline(__always)
    static func v2SignatureByte(_ i: Int) -> UInt8 {
        switch i {
        case 0, 2, 5: return 0x0D
        case 1, 3, 6, 11: return 0x0A
        case 4: return 0x00
        case 7: return 0x51
        case 8: return 0x55
        case 9: return 0x49
        default: return 0x54  // 10
        }
    }

    // MARK: parsing

    /// Parses the PROXY header at the start of `bytes`, v1 or v2 (the receiver is configured for the
    /// protocol and never guesses, spec section 5: anything else is `.invalid`). Partial headers are
    /// tolerated (`.needMore`), as the spec recommends; the caller bounds how long and how much.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ProxyHeaderParse {
        let n = bytes.count
        if n == 0 { return .needMore }
        if bytes[0] == 0x0D { return parseV2(bytes) }
        if bytes[0] == UInt8(ascii: "P") { return parseV1(bytes) }
        return .invalid(.notProxyProtocol)
    }

    /// Parses, and when the connection has ended (`ended`) turns "need more" into `.truncated`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, ended: Bool) -> ProxyHeaderParse {
        let result = parse(bytes)
        if ended, case .needMore = result { return .invalid(.truncated) }
        return result
    }

    static func parseV2(_ b: UnsafeRawBufferPointer) -> ProxyHeaderParse {
        let n = b.count
        for i in 0..<min(n, 12) where b[i] != v2SignatureByte(i) { return .invalid(.notProxyProtocol) }
        if n >= 13 {
            if b[12] >> 4 != 2 { return .invalid(.badVersion) }
            if b[12] & 0x0F > 1 { return .invalid(.badCommand) }
        }
        if n >= 14 {
            switch b[13] {
            case 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32: break
            default: return .invalid(.badFamily)
            }
        }
        if n < 16 { return .needMore }
        let length = Int(b[14]) << 8 | Int(b[15])
        let total = 16 + length
        if total > maxV2Length { return .invalid(.tooLong) }
        let isLocal = b[12] & 0x0F == 0
        // Address lengths by family (spec 2.2); UNSPEC has none.
        let addressLength: Int
        switch b[13] >> 4 {
        case 1: addressLength = 12
        case 2: addressLength = 36
        case 3: addressLength = 216
        default: addressLength = 0
        }
        // "Receivers MUST always consider this field to skip the appropriate number of bytes and must
        // not assume zero is presented for LOCAL connections": so LOCAL with an address block is fine,
        // but a PROXY command whose length cannot hold its family's addresses is not.
        if !isLocal && length < addressLength { return .invalid(.addressTooShort) }
        if n < total { return .needMore }
        // TLVs follow the addresses; skip them, but only if each lies wholly inside the header.
        var at = 16 + (length >= addressLength ? addressLength : length)
        // LOCAL: "discard the protocol block including the family"; UNSPEC: "ignore address
        // information", whose size is then unknown, so what follows cannot be walked as TLVs either.
        if isLocal || b[13] == 0 { at = total }
        while at < total {
            guard total - at >= 3 else { return .invalid(.badTLV) }
            let valueLength = Int(b[at + 1]) << 8 | Int(b[at + 2])
            guard valueLength <= total - at - 3 else { return .invalid(.badTLV) }
            at += 3 + valueLength
        }
        var header = ProxyHeader(version: .v2, isLocal: isLocal)
        // Only TCP over IPv4/IPv6 carries addresses a TCP proxy uses; the other valid combinations
        // fall back to UNSPEC, as the spec allows ("provided that it automatically falls back").
        if !isLocal {
            let base = b.baseAddress! + 16
            switch b[13] {
            case 0x11:
                header.source = SocketAddress(addressBytes: UnsafeRawBufferPointer(start: base, count: 4), port: be16(b, 16 + 8))
                header.destination = SocketAddress(addressBytes: UnsafeRawBufferPointer(start: base + 4, count: 4), port: be16(b, 16 + 10))
            case 0x21:
                header.source = SocketAddress(addressBytes: UnsafeRawBufferPointer(start: base, count: 16), port: be16(b, 16 + 32))
                header.destination = SocketAddress(addressBytes: UnsafeRawBufferPointer(start: base + 16, count: 16), port: be16(b, 16 + 34))
            default:
                break
            }
        }
        return .ok(header, consumed: total)
    }

    @inline(__always)
    private static func be16(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }

    static func parseV1(_ b: UnsafeRawBufferPointer) -> ProxyHeaderParse {
        let n = b.count
        let prefix: StaticString = "PROXY "
        let p = prefix.utf8Start
        for i in 0..<min(n, 6) where b[i] != p[i] { return .invalid(.notProxyProtocol) }
        // Find the CR LF within the first 107 bytes (so the CR at index 105 at the latest); a lone CR
        // or LF is refused (spec 2.1).
        var cr = -1
        var i = 6
        let limit = min(n, maxV1Length - 1)
        while i < limit {
            let c = b[i]
            if c == 0x0A { return .invalid(.badLineEnding) }
            if c == 0x0D {
                if i + 1 >= n { return .needMore }
                if b[i + 1] != 0x0A { return .invalid(.badLineEnding) }
                cr = i
                break
            }
            i += 1
        }
        if cr < 0 { return n >= maxV1Length - 1 ? .invalid(.lineTooLong) : .needMore }
        let consumed = cr + 2

        // The protocol token.
        var at = 6
        let protoEnd = nextSpace(b, from: at, end: cr)
        let proto = UnsafeRawBufferPointer(rebasing: b[at..<protoEnd])
        if matches(proto, "UNKNOWN") {
            // "the receiver must ignore anything presented before the CRLF is found".
            return .ok(ProxyHeader(version: .v1), consumed: consumed)
        }
        let isV6: Bool
        if matches(proto, "TCP4") {
            isV6 = false
        } else if matches(proto, "TCP6") {
            isV6 = true
        } else {
            return .invalid(.badProtocol)
        }
        // Exactly four fields follow, each after exactly one space.
        var fields: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
        at = protoEnd
        for k in 0..<4 {
            guard at < cr, b[at] == 0x20 else { return .invalid(.badSyntax) }
            at += 1
            let end = nextSpace(b, from: at, end: cr)
            guard end > at else { return .invalid(.badSyntax) }
            switch k {
            case 0: fields.0 = at; fields.1 = end
            case 1: fields.2 = at; fields.3 = end
            case 2: fields.4 = at; fields.5 = end
            default: fields.6 = at; fields.7 = end
            }
            at = end
        }
        guard at == cr else { return .invalid(.badSyntax) }
        guard let sport = parsePort(b, fields.4, fields.5), let dport = parsePort(b, fields.6, fields.7) else {
            return .invalid(.badPort)
        }
        let source: SocketAddress?, destination: SocketAddress?
        if isV6 {
            source = parseIPv6(b, fields.0, fields.1, port: sport)
            destination = parseIPv6(b, fields.2, fields.3, port: dport)
        } else {
            source = parseIPv4(b, fields.0, fields.1, port: sport)
            destination = parseIPv4(b, fields.2, fields.3, port: dport)
        }
        guard let source, let destination else { return .invalid(.badAddress) }
        return .ok(ProxyHeader(version: .v1, source: source, destination: destination), consumed: consumed)
    }

    @inline(__always)
    private static func nextSpace(_ b: UnsafeRawBufferPointer, from: Int, end: Int) -> Int {
        var i = from
        while i < end && b[i] != 0x20 { i += 1 }
        return i
    }

    private static func matches(_ b: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        guard b.count == text.utf8CodeUnitCount else { return false }
        let t = text.utf8Start
        for i in 0..<b.count where b[i] != t[i] { return false }
        return true
    }

    /// Decimal 0-65535, no leading zero ("0" itself is fine).
    static func parsePort(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UInt16? {
        let count = end - start
        guard count >= 1, count <= 5 else { return nil }
        if count > 1 && b[start] == UInt8(ascii: "0") { return nil }
        var value = 0
        for i in start..<end {
            let c = b[i]
            guard c >= 0x30, c <= 0x39 else { return nil }
            value = value * 10 + Int(c - 0x30)
        }
        return value <= 65535 ? UInt16(value) : nil
    }

    /// Exactly four decimal numbers 0-255 separated by single dots, no leading zeros (spec 2.1).
    static func parseIPv4(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int, port: UInt16) -> SocketAddress? {
        var octets: UInt32 = 0
        var i = start
        for part in 0..<4 {
            if part > 0 {
                guard i < end, b[i] == UInt8(ascii: ".") else { return nil }
                i += 1
            }
            let first = i
            var value = 0
            while i < end, b[i] >= 0x30, b[i] <= 0x39, i - first < 3 {
                value = value * 10 + Int(b[i] - 0x30)
                i += 1
            }
            let digits = i - first
            guard digits >= 1, value <= 255, digits == 1 || b[first] != UInt8(ascii: "0") else { return nil }
            octets = octets << 8 | UInt32(value)
        }
        guard i == end else { return nil }
        return SocketAddress(ipv4: UInt32(octets), port: port)
    }

    /// Groups of 1-4 hex digits separated by colons, with at most one `::`, 128 bits in all (spec 2.1).
    /// The dotted IPv4 tail (`::ffff:1.2.3.4`) is not part of that grammar and is refused.
    static func parseIPv6(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int, port: UInt16) -> SocketAddress? {
        var words = SIMD8<UInt16>()
        var count = 0
        var gap = -1  // index in `words` where `::` stands
        var i = start
        if end - start >= 2 && b[i] == UInt8(ascii: ":") && b[i + 1] == UInt8(ascii: ":") {
            gap = 0
            i += 2
            if i == end { return SocketAddress(ipv6Words: words, port: port) }
        }
        while true {
            var value: UInt16 = 0
            let first = i
            while i < end, i - first < 4, let d = hexValue(b[i]) {
                value = value << 4 | UInt16(d)
                i += 1
            }
            guard i > first, count < 8 else { return nil }
            words[count] = value
            count += 1
            if i == end { break }
            guard b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i < end && b[i] == UInt8(ascii: ":") {
                guard gap < 0 else { return nil }
                gap = count
                i += 1
                if i == end { break }
            } else if i == end {
                return nil  // a single trailing colon
            }
        }
        if gap < 0 {
            guard count == 8 else { return nil }
        } else {
            guard count <= 7 else { return nil }
            // Move the groups after the gap to the end.
            let tail = count - gap
            var shifted = SIMD8<UInt16>()
            for k in 0..<gap { shifted[k] = words[k] }
            for k in 0..<tail { shifted[8 - tail + k] = words[gap + k] }
            words = shifted
        }
        return SocketAddress(ipv6Words: words, port: port)
    }

    @inline(__always)
    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    // MARK: encoding

    /// Writes the header for a connection from `source` to `destination` into `out` and returns its
    /// length; `out` needs `maxEncodedLength` bytes (returns 0 if it is smaller). v1 writes
    /// `PROXY TCP4 ...` or `TCP6`, v2 the binary PROXY command for TCP. When one address is IPv4 and the
    /// other IPv6 (a header received over one family and sent on over another), the IPv4 one is written
    /// as IPv4-mapped IPv6, so the line stays valid instead of degrading to `UNKNOWN`.
    public static func encode(
        _ version: ProxyProtocolVersion, source: SocketAddress, destination: SocketAddress, into out: UnsafeMutableRawBufferPointer
    ) -> Int {
        guard out.count >= maxEncodedLength else { return 0 }
        let v6 = source.isIPv6 || destination.isIPv6
        switch version {
        case .v1:
            var w = Writer(out)
            w.text("PROXY ")
            w.text(v6 ? "TCP6 " : "TCP4 ")
            w.address(source, v6: v6)
            w.byte(0x20)
            w.address(destination, v6: v6)
            w.byte(0x20)
            w.decimal(Int(source.port))
            w.byte(0x20)
            w.decimal(Int(destination.port))
            w.byte(0x0D)
            w.byte(0x0A)
            return w.at
        case .v2:
            var w = Writer(out)
            for i in 0..<12 { w.byte(v2SignatureByte(i)) }
            w.byte(0x21)  // version 2, PROXY
            w.byte(v6 ? 0x21 : 0x11)  // TCP over IPv6 / IPv4
            w.byte(0)
            w.byte(v6 ? 36 : 12)
            w.rawAddress(source, v6: v6)
            w.rawAddress(destination, v6: v6)
            w.byte(UInt8(source.port >> 8)); w.byte(UInt8(source.port & 0xFF))
            w.byte(UInt8(destination.port >> 8)); w.byte(UInt8(destination.port & 0xFF))
            return w.at
        }
    }

    /// The v2 `LOCAL` header (16 bytes: no addresses, family UNSPEC): what health checks send, since
    /// the connection is the proxy's own (spec 2.2). Returns 0 if `out` holds fewer than 16 bytes.
    public static func encodeLocal(into out: UnsafeMutableRawBufferPointer) -> Int {
        guard out.count >= 16 else { return 0 }
        var w = Writer(out)
        for i in 0..<12 { w.byte(v2SignatureByte(i)) }
        w.byte(0x20)
        w.byte(0x00)
        w.byte(0)
        w.byte(0)
        return w.at
    }

    /// Appends into a buffer known to be large enough (checked once by the callers).
    struct Writer {
        let out: UnsafeMutableRawBufferPointer
        var at = 0
        init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

        @inline(__always) mutating func byte(_ c: UInt8) {
            out[at] = c
            at += 1
        }

        mutating func text(_ s: StaticString) {
            let p = s.utf8Start
            for i in 0..<s.utf8CodeUnitCount { byte(p[i]) }
        }

        mutating func decimal(_ value: Int) {
            if value >= 10 { decimal(value / 10) }
            byte(UInt8(0x30 + value % 10))
        }

        mutating func hex(_ value: UInt16) {
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let d = UInt8((value >> UInt16(shift)) & 0xF)
                if d == 0 && !started && shift > 0 { continue }
                started = true
                byte(d < 10 ? 0x30 + d : 0x61 + d - 10)
            }
        }

        mutating func address(_ a: SocketAddress, v6: Bool) {
            if !v6 {
                let ip = a.ipv4Value
                for k in 0..<4 {
                    if k > 0 { byte(UInt8(ascii: ".")) }
                    decimal(Int((ip >> UInt32(24 - 8 * k)) & 0xFF))
                }
                return
            }
            // RFC 5952 canonical text: lowercase, no leading zeros, the longest run (2+ groups, the first
            // on a tie) of zero groups written `::`. Groups only: the spec's grammar has no dotted tail.
            let words = a.ipv6Words
            var bestStart = -1, bestLength = 1
            var k = 0
            while k < 8 {
                if words[k] == 0 {
                    var e = k
                    while e < 8 && words[e] == 0 { e += 1 }
                    if e - k > bestLength { bestStart = k; bestLength = e - k }
                    k = e
                } else {
                    k += 1
                }
            }
            k = 0
            while k < 8 {
                if k == bestStart {
                    byte(UInt8(ascii: ":")); byte(UInt8(ascii: ":"))
                    k += bestLength
                    continue
                }
                if k > 0 && k != bestStart + bestLength { byte(UInt8(ascii: ":")) }
                hex(words[k])
                k += 1
            }
        }

        mutating func rawAddress(_ a: SocketAddress, v6: Bool) {
            if v6 {
                let words = a.ipv6Words
                for k in 0..<8 { byte(UInt8(words[k] >> 8)); byte(UInt8(words[k] & 0xFF)) }
            } else {
                let ip = a.ipv4Value
                for k in 0..<4 { byte(UInt8((ip >> UInt32(24 - 8 * k)) & 0xFF)) }
            }
        }
    }
}
