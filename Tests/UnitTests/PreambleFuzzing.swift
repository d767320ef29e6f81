// Shared by the bounded random-input test (PreambleFuzzTests) and the libFuzzer targets
// ci/fuzz-targets/proxy-header.swift and clienthello.swift, which compile this file in (`// fuzz-with:`).
import LoadBalancer

/// The properties every input must keep, beyond "does not crash": a verdict is stable once reached
/// (a longer input agrees), a header's `consumed` lies within the input, parsed addresses survive
/// re-encoding, and a server name is lowercase, valid and within its bound.
enum PreambleFuzzing {
    /// Checks the PROXY parser on `bytes`; returns what went wrong, or nil.
    static func checkProxy(_ bytes: UnsafeRawBufferPointer) -> String? {
        let result = ProxyProtocol.parse(bytes)
        switch result {
        case .needMore:
            if bytes.count >= ProxyProtocol.maxV2Length { return "needMore with \(bytes.count) bytes" }
            if case .ok = ProxyProtocol.parse(bytes, ended: true) { return "ended changed needMore to ok" }
        case .invalid:
            break
        case .ok(let header, let consumed):
            guard consumed >= 15, consumed <= bytes.count else { return "consumed \(consumed) of \(bytes.count)" }
            // The header alone parses the same, and so does any shorter prefix never say ok.
            let alone = ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: bytes[..<consumed]))
            guard alone == result else { return "header alone gave \(alone)" }
            if consumed > 1, case .ok = ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: bytes[..<(consumed - 1)])) {
                return "ok one byte short"
            }
            if let s = header.source, let d = header.destination {
                var out = [UInt8](repeating: 0, count: ProxyProtocol.maxEncodedLength)
                for v in [ProxyProtocolVersion.v1, .v2] {
                    let n = out.withUnsafeMutableBytes { ProxyProtocol.encode(v, source: s, destination: d, into: $0) }
                    let again = out.withUnsafeBytes { ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                    guard again == .ok(ProxyHeader(version: v, source: s, destination: d), consumed: n) else {
                        return "re-encoded \(v) gave \(again)"
                    }
                }
            }
        }
        return nil
    }

    /// Checks the ClientHello parser on `bytes`; returns what went wrong, or nil.
    static func checkClientHello(_ bytes: UnsafeRawBufferPointer) -> String? {
        var name = [UInt8](repeating: 0, count: ClientHello.maxNameLength)
        let result = name.withUnsafeMutableBytes { ClientHello.serverName(in: bytes, into: $0) }
        switch result {
        case .ok(let n):
            guard n >= 1, n <= ClientHello.maxNameLength else { return "name length \(n)" }
            for c in name.prefix(n) {
                let ok = (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x2E || c == 0x5F
                if !ok { return "name byte \(c)" }
            }
        case .needMore:
            if bytes.count >= ClientHello.maxBytes { return "needMore with \(bytes.count) bytes" }
        default:
            break
        }
        if result != .needMore && bytes.count > 0 {
            // A verdict stays: the same bytes plus more give the same answer.
            var longer = Array(bytes)
            longer.append(0x16)
            if longer.count <= ClientHello.maxBytes {
                var name2 = [UInt8](repeating: 0, count: ClientHello.maxNameLength)
                let again = longer.withUnsafeBytes { b in name2.withUnsafeMutableBytes { ClientHello.serverName(in: b, into: $0) } }
                if again != result { return "appending a byte changed \(result) to \(again)" }
            }
        }
        return nil
    }

    /// A mutation of `seed`: byte flips, random bytes, a cut, an insertion or a splice of lengths.
    static func mutate(_ seed: [UInt8], _ next: () -> UInt64) -> [UInt8] {
        var b = seed
        let rounds = Int(next() % 4) + 1
        for _ in 0..<rounds {
            let r = next()
            switch r % 6 {
            case 0 where !b.isEmpty:
                b[Int((r >> 8) % UInt64(b.count))] ^= UInt8(truncatingIfNeeded: 1 << ((r >> 40) % 8))
            case 1 where !b.isEmpty:
                b[Int((r >> 8) % UInt64(b.count))] = UInt8(truncatingIfNeeded: r >> 40)
            case 2 where !b.isEmpty:
                b.removeLast(Int((r >> 8) % UInt64(b.count)))
            case 3:
                b.insert(UInt8(truncatingIfNeeded: r >> 40), at: Int((r >> 8) % UInt64(b.count + 1)))
            case 4 where b.count >= 2:
                // Lengths are where parsers break: set a byte pair to an edge value.
                let at = Int((r >> 8) % UInt64(b.count - 1))
                let edges: [UInt16] = [0, 1, 0xFF, 0x100, 0x7FFF, 0xFFFF, UInt16(truncatingIfNeeded: b.count), UInt16(truncatingIfNeeded: b.count - at)]
                let v = edges[Int((r >> 40) % UInt64(edges.count))]
                b[at] = UInt8(v >> 8)
                b[at + 1] = UInt8(v & 0xFF)
            default:
                let count = Int((r >> 8) % 64)
                for _ in 0..<count { b.append(UInt8(truncatingIfNeeded: next())) }
            }
        }
        return b
    }

    /// Valid PROXY headers of each kind, to mutate.
    static let proxySeeds: [[UInt8]] = {
        let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        return [
            Array("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET".utf8),
            Array("PROXY TCP6 2001:db8::1 ::ffff:0:1 65535 0\r\n".utf8),
            Array("PROXY UNKNOWN\r\n".utf8),
            sig + [0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2],
            sig + [0x21, 0x21, 0, 42] + [UInt8](repeating: 0x20, count: 36) + [4, 0, 3, 1, 2, 3],
            sig + [0x20, 0x00, 0, 0],
        ]
    }()
}
