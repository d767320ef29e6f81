/// A response an `HTTPServer` handler returns: status, content type, body and extra headers. The
/// server adds `Content-Length` and `Connection`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [HTTPHeader]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [HTTPHeader] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int, text: String) {
        self.init(status: status, body: Array((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    public static func json(_ status: Int, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: body + [10])
    }

    /// `{"error":"..."}` with the message escaped.
    public static func jsonError(_ status: Int, _ message: String) -> HTTPResponse {
        var w = JSONWriter()
        w.object { $0.field("error", message) }
        return json(status, w.bytes)
    }

    /// The bytes on the wire (RFC 9112 section 4): status line, headers, blank line, body. `head`
    /// leaves the body out (a HEAD request) but keeps its length.
    public func serialized(keepAlive: Bool, head: Bool = false) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        for h in headers { text += "\(h.name): \(h.value)\r\n" }
        text += keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n"
        var out = Array(text.utf8)
        if !head { out += body }
        return out
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}
