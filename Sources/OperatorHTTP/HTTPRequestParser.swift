/// One header line as received: the name lower-cased, the value trimmed of spaces and tabs.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One HTTP/1.x request (RFC 9112): its head and, when the parser keeps bodies, its body.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    public var target: String
    /// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes unless `keep-alive`.
    public var keepAlive: Bool
    public var contentLength: Int
    public var headers: [HTTPHeader]
    /// The body's bytes when the parser was asked to keep them (`keepBodies`), else empty.
    public var body: [UInt8]

    public init(method: String, target: String, keepAlive: Bool, contentLength: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.keepAlive = keepAlive
        self.contentLength = contentLength
        self.headers = headers
        self.body = body
    }

    /// The first header of that name (case-insensitive), or nil.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// An incremental HTTP/1.x request parser (RFC 9112): bytes go in as they arrive, complete requests
/// (head and `Content-Length` body) come out. Shared by the fake backends (bodies counted, not kept)
/// and the admin server (bodies kept, bounded).
///
/// Bounds: the request line and headers together at most `maxHeadBytes`; a body at most
/// `maxBodyBytes` (refused as soon as its `Content-Length` is read, before any of it arrives).
/// Chunked request bodies are refused: neither user sends them.
public struct HTTPRequestParser: Sendable {
    /// The fake backends' bound (the admin server passes its own, 8 KiB).
    public static let maxHeadBytes = 16 * 1024

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case headTooLarge
        case bodyTooLarge(Int)
        case unsupportedVersion
        case malformed(String)

        /// The status an HTTP server answers with: 431, 413, 505 or 400.
        public var status: Int {
            switch self {
            case .headTooLarge: 431
            case .bodyTooLarge: 413
            case .unsupportedVersion: 505
            case .malformed: 400
            }
        }

        public var description: String {
            switch self {
            case .headTooLarge: "request line and headers too large"
            case .bodyTooLarge(let n): "body too large (\(n) bytes)"
            case .unsupportedVersion: "unsupported HTTP version"
            case .malformed(let why): why
            }
        }
    }

    public let headLimit: Int
    public let bodyLimit: Int
    public let keepBodies: Bool
    private var head: [UInt8] = []
    private var pending: HTTPRequestHead?
    private var bodyRemaining = 0

    public init(maxHeadBytes: Int = HTTPRequestParser.maxHeadBytes, maxBodyBytes: Int = Int.max, keepBodies: Bool = false) {
        headLimit = maxHeadBytes
        bodyLimit = maxBodyBytes
        self.keepBodies = keepBodies
    }

    /// True when no request is partly received.
    public var isIdle: Bool { head.isEmpty && pending == nil }

    /// Consumes all of `bytes`, calling `onRequest` for each request completed. After a failure the
    /// parser must not be fed again (the connection answers 4xx and closes).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, onRequest: (HTTPRequestHead) -> Void) throws(Failure) {
        var i = 0
        let count = bytes.count
        while i < count {
            if pending != nil {
                let take = min(bodyRemaining, count - i)
                if keepBodies { pending!.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)])) }
                bodyRemaining -= take
                i += take
                if bodyRemaining == 0 {
                    let request = pending!
                    pending = nil
                    onRequest(request)
                }
                continue
            }
            let b = bytes[i]
            i += 1
            if head.isEmpty && (b == 13 || b == 10) { continue }  // blank lines before a request are allowed
            head.append(b)
            if b == 10 && Self.endsHead(head) {
                let request = try Self.parseHead(head)
                head.removeAll(keepingCapacity: true)
                if request.contentLength > bodyLimit { throw .bodyTooLarge(request.contentLength) }
                if request.contentLength > 0 {
                    pending = request
                    if keepBodies { pending!.body.reserveCapacity(request.contentLength) }
                    bodyRemaining = request.contentLength
                } else {
                    onRequest(request)
                }
            } else if head.count > headLimit {
                throw .headTooLarge
            }
        }
    }

    /// The head ends with an empty line: `\r\n\r\n` or a bare `\n\n`.
    private static func endsHead(_ h: [UInt8]) -> Bool {
        let n = h.count
        if n >= 2 && h[n - 2] == 10 { return true }
        return n >= 3 && h[n - 2] == 13 && h[n - 3] == 10
    }

    static func parseHead(_ bytes: [UInt8]) throws(Failure) -> HTTPRequestHead {
        var lines = bytes.split(separator: 10, omittingEmptySubsequences: false).map { line in
            line.last == 13 ? line.dropLast() : line
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let requestLine = lines.first else { throw .malformed("empty request") }
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: true)
        guard parts.count == 3 else { throw .malformed("bad request line") }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        let http11: Bool
        switch version {
        case "HTTP/1.1": http11 = true
        case "HTTP/1.0": http11 = false
        default:
            guard version.hasPrefix("HTTP/") else { throw .malformed("bad request line") }
            throw .unsupportedVersion
        }
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 >= 65 && $0 <= 90 }) else { throw .malformed("bad method") }
        guard target.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { throw .malformed("bad request target") }

        var contentLength: Int?
        var close = false
        var keepAlive = false
        var headers: [HTTPHeader] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: 58), colon > line.startIndex else { throw .malformed("bad header line") }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            guard !name.utf8.contains(where: { $0 == 32 || $0 == 9 }) else { throw .malformed("bad header name") }
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingASCIIWhitespace()
            headers.append(HTTPHeader(name, value))
            switch name {
            case "content-length":
                guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), value.utf8.count <= 12,
                      let n = Int(value)
                else { throw .malformed("bad Content-Length") }
                if let contentLength, contentLength != n { throw .malformed("conflicting Content-Length") }
                contentLength = n
            case "transfer-encoding":
                if value.lowercased() != "identity" { throw .malformed("chunked bodies are not supported") }
            case "connection":
                for token in value.lowercased().split(separator: ",") {
                    switch token.trimmingASCIIWhitespace() {
                    case "close": close = true
                    case "keep-alive": keepAlive = true
                    default: break
                    }
                }
            default: break
            }
        }
        let persistent = http11 ? !close : (keepAlive && !close)
        return HTTPRequestHead(method: method, target: target, keepAlive: persistent, contentLength: contentLength ?? 0, headers: headers)
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public func trimmingASCIIWhitespace() -> String {
        let u = Array(utf8)
        var lo = 0, hi = u.count
        while lo < hi && (u[lo] == 32 || u[lo] == 9) { lo += 1 }
        while hi > lo && (u[hi - 1] == 32 || u[hi - 1] == 9) { hi -= 1 }
        return String(decoding: u[lo..<hi], as: UTF8.self)
    }
}
