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
