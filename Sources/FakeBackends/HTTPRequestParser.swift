/// One HTTP/1.x request, as far as a fake backend cares.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    public var target: String
    /// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes unless `keep-alive`.
    public var keepAlive: Bool
    public var contentLength: Int

    public init(method: String, target: String, keepAlive: Bool, contentLength: Int) {
        self.method = method
        self.target = target
        self.keepAlive = keepAlive
        self.contentLength = contentLength
    }
}

/// An incremental HTTP/1.x request parser: bytes go in as they arrive, complete requests (head and
/// `Content-Length` body) come out. The head is bounded (`maxHeadBytes`); bodies are counted, not kept.
/// Chunked request bodies are refused (a fake backend has no use for them).
public struct HTTPRequestParser: Sendable {
    public static let maxHeadBytes = 16 * 1024

    public enum Failure: Error, Equatable, Sendable {
        case headTooLarge
        case malformed(String)
    }

    private var head: [UInt8] = []
    private var pending: HTTPRequestHead?
    private var bodyRemaining = 0

    public init() {}

    /// True when no request is partly received.
    public var isIdle: Bool { head.isEmpty && pending == nil }

    /// Consumes all of `bytes`, calling `onRequest` for each request completed. After a failure the
    /// parser must not be fed again (the connection answers 400 and closes).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, onRequest: (HTTPRequestHead) -> Void) throws(Failure) {
        var i = 0
        let count = bytes.count
        while i < count {
            if let request = pending {
                let take = min(bodyRemaining, count - i)
                bodyRemaining -= take
                i += take
                if bodyRemaining == 0 {
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
                if request.contentLength > 0 {
                    pending = request
                    bodyRemaining = request.contentLength
                } else {
                    onRequest(request)
                }
            } else if head.count > Self.maxHeadBytes {
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
        default: throw .malformed("unsupported version")
        }
        guard method.utf8.allSatisfy({ $0 >= 65 && $0 <= 90 }) else { throw .malformed("bad method") }

        var contentLength: Int?
        var close = false
        var keepAlive = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: 58) else { throw .malformed("bad header line") }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
                .trimmingASCIIWhitespace()
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
        return HTTPRequestHead(method: method, target: target, keepAlive: persistent, contentLength: contentLength ?? 0)
    }
}

extension StringProtocol {
    func trimmingASCIIWhitespace() -> String {
        let u = Array(utf8)
        var lo = 0, hi = u.count
        while lo < hi && (u[lo] == 32 || u[lo] == 9) { lo += 1 }
        while hi > lo && (u[hi - 1] == 32 || u[hi - 1] == 9) { hi -= 1 }
        return String(decoding: u[lo..<hi], as: UTF8.self)
    }
}

/// The responses a fake backend sends, as bytes.
public enum FakeResponses {
    /// `200 OK` naming the port; `GET /health` gets the same. HEAD gets the head only.
    public static func ok(port: UInt16, keepAlive: Bool, includeBody: Bool = true) -> [UInt8] {
        let body = "backend \(port)\n"
        var text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nX-Backend: \(port)\r\n"
        // Said explicitly both ways: an HTTP/1.0 client that asked for keep-alive (ab -k) closes
        // otherwise, or waits for a close that never comes.
        text += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        if includeBody { text += body }
        return Array(text.utf8)
    }

    public static func badRequest(port: UInt16) -> [UInt8] {
        let body = "bad request\n"
        let text = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nX-Backend: \(port)\r\nConnection: close\r\n\r\n\(body)"
        return Array(text.utf8)
    }
}
