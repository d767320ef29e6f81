import Glibc
import LoadBalancer
import LoadGen
import Synchronization

/// The LoadGen tests' server: a `TestServer` (thread per connection, blocking fds, 127.0.0.1 port 0)
/// running one of the handlers below. Handlers return when the client closes, so nothing outlives the
/// load generator's run for long.
enum LoadGenTestServer {
    /// Runs `body` with a server and always stops it.
    static func with<R>(_ handler: @escaping @Sendable (Int32) -> Void, _ body: (TestServer) throws -> R) rethrows -> R {
        let server = TestServer(handler: handler)
        defer { server.stop() }
        return try body(server)
    }

    // MARK: handler pieces

    /// Reads one request head; nil when the stream ends first. Returns whether the client asked to close.
    static func readRequest(_ fd: Int32) -> (close: Bool, text: String)? {
        let head = TestSocket.read(fd, until: "\r\n\r\n")
        guard head.hasSuffix("\r\n\r\n") else { return nil }
        return (head.lowercased().contains("connection: close"), head)
    }

    /// An HTTP server answering `status` with `X-Backend` naming backends round robin (server-wide).
    static func http(status: Int = 200, backends: [String] = ["b1"], chunked: Bool = false) -> @Sendable (Int32) -> Void {
        let box = SendableBox()
        return { fd in
            while let request = readRequest(fd) {
                let name = backends[box.value.wrappingAdd(1, ordering: .relaxed).oldValue % backends.count]
                var head = "HTTP/1.1 \(status) X\r\nX-Backend: \(name)\r\n"
                if request.close { head += "Connection: close\r\n" }
                let body = chunked ? "4\r\nhell\r\n1;ext=1\r\no\r\n0\r\nTrailer: x\r\n\r\n" : "hello"
                head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: 5\r\n\r\n"
                guard TestSocket.sendAll(fd, head + body), !request.close else { return }
            }
        }
    }

    static func echo(corrupt: Bool = false) -> @Sendable (Int32) -> Void {
        { fd in
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buf, buf.count)
                if n <= 0 { return }
                if corrupt { buf[0] ^= 0xFF }
                guard TestSocket.sendAll(fd, Array(buf[0..<n])) else { return }
            }
        }
    }

    /// Promises 100 bytes, sends 5, closes.
    static let closeEarly: @Sendable (Int32) -> Void = { fd in
        if readRequest(fd) != nil { TestSocket.sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort") }
    }

    /// Reads the request and closes with a RST.
    static let reset: @Sendable (Int32) -> Void = { fd in
        if readRequest(fd) != nil { _ = try? Sys.setLingerReset(fd) }
    }

    /// Never answers; returns when the client gives up and closes.
    static let hang: @Sendable (Int32) -> Void = { fd in _ = TestSocket.readAll(fd) }
}

/// Atomic is ~Copyable: a class box lets a @Sendable closure share one.
final class SendableBox: Sendable {
    let value = Atomic<Int>(0)
}

extension TestServer {
    var target: LoadTarget { LoadTarget(address: address, path: "/t") }
}
