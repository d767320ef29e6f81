import Glibc
import LoadBalancer

/// A blocking client socket with a receive timeout, so a broken server fails a test instead of hanging it.
/// An owning wrapper over `TestSocket`'s calls. Sendable: its one field is the descriptor, so one thread
/// may send while another reads.
final class TestClient: Sendable {
    let fd: Int32

    /// Connects (blocking); throws the SystemError (e.g. ECONNREFUSED) when it cannot.
    init(_ address: SocketAddress, timeout: Duration = .seconds(5)) throws(SystemError) {
        fd = try TestSocket.connect(address, timeout: timeout).get()
    }

    deinit { close(fd) }

    func setReceiveTimeout(_ timeout: Duration) { TestSocket.setReceiveTimeout(fd, timeout) }

    /// Sends everything; false when the peer is gone.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool { TestSocket.sendAll(fd, bytes) }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    func shutdownWrite() { TestSocket.shutdownWrite(fd) }

    /// One recv of up to `max` bytes.
    func readOnce(max: Int = 65536) -> ReadOutcome { TestSocket.readOnce(fd, max: max) }

    /// Reads until `count` bytes have come, or EOF, timeout or error; returns the bytes and how it ended.
    func read(count: Int) -> (bytes: [UInt8], end: ReadOutcome?) { TestSocket.read(fd, count: count) }

    /// Reads until EOF (or error/timeout); returns all bytes and the ending.
    func readToEnd() -> (bytes: [UInt8], end: ReadOutcome) {
        let (bytes, end) = TestSocket.read(fd, count: .max)
        return (bytes, end ?? .eof)  // nil only after Int.max bytes
    }

    /// Reads one HTTP response whose head carries Content-Length; nil when the connection ended first.
    func readHTTPResponse() -> (head: String, body: String)? {
        var got: [UInt8] = []
        while true {
            if let end = headEnd(got) {
                let head = String(decoding: got[..<end], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: " ")) } ?? 0
                while got.count < end + length {
                    guard case .data(let d) = readOnce() else { return nil }
                    got += d
                }
                return (head, String(decoding: got[end..<(end + length)], as: UTF8.self))
            }
            guard case .data(let d) = readOnce() else { return nil }
            got += d
        }
    }

    private func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i + 4 }
        return nil
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

/// connect() that reports the errno instead of throwing, for refusal checks.
func connectErrno(_ address: SocketAddress) -> Int32 {
    do {
        _ = try TestClient(address, timeout: .seconds(2))
        return 0
    } catch {
        return error.errno
    }
}
