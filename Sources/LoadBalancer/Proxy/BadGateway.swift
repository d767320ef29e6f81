/// The bytes a client gets when no backend could take its connection.
public enum BadGateway {
    public static let body = "502 Bad Gateway: no backend could take this connection\n"
    public static let response: [UInt8] = Array(
        ("HTTP/1.1 502 Bad Gateway\r\n"
            + "Content-Type: text/plain\r\n"
            + "Content-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n"
            + "\r\n" + body).utf8)
}
