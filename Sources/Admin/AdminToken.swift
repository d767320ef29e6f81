import LoadBalancer
import OperatorHTTP

/// The admin API's bearer token (RFC 6750): read once from a file, compared in constant time.
public struct AdminToken: Sendable {
    let bytes: [UInt8]

    public init(_ token: String) { bytes = Array(token.utf8) }

    /// Reads the token from `path`: the file's text without surrounding whitespace and newlines.
    /// Throws a one-line reason when the file cannot be read or holds no token.
    public static func load(from path: String) throws(AdminError) -> AdminToken {
        let raw: [UInt8]
        do throws(SystemError) {
            raw = try Sys.readFile(path, limit: 4096)
        } catch {
            throw AdminError("--admin-token-file \(path): \(error)")
        }
        let text = String(decoding: raw, as: UTF8.self)
        var token = Substring(text)
        while let f = token.first, f.isWhitespace { token.removeFirst() }
        while let l = token.last, l.isWhitespace { token.removeLast() }
        guard !token.isEmpty else { throw AdminError("--admin-token-file \(path): the file holds no token") }
        guard token.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw AdminError("--admin-token-file \(path): the token must be printable ASCII without spaces")
        }
        return AdminToken(String(token))
    }

    /// True when `header` is `Bearer <token>`. The comparison takes the same time wherever the first
    /// difference is (it looks at every byte of the longer of the two), so timing does not leak the token.
    public func accepts(authorization header: String?) -> Bool {
        guard let header else { return false }
        let given = Array(header.utf8)
        let prefix = Array("Bearer ".utf8)
        guard given.count >= prefix.count else { return false }
        var schemeDiff: UInt8 = 0
        for i in 0..<prefix.count { schemeDiff |= (given[i] | 0x20) ^ (prefix[i] | 0x20) }
        let candidate = given[prefix.count...]
        return Self.constantTimeEqual(Array(candidate), bytes) && schemeDiff == 0
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let n = max(a.count, b.count)
        var diff: UInt = a.count == b.count ? 0 : 1
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= UInt(x ^ y)
        }
        return diff == 0
    }
}

/// A reason the admin side could not start, as one line.
public struct AdminError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
