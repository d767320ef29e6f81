import Glibc
import LoadBalancer

/// A blocking client socket with a receive timeout, so a broken server fails a test instead of hanging it.
/// Sendable: its one field is the descriptor, so one thread may send while another reads.
final class TestClient: Sendable {
    let fd: Int32

    enum ReadOutcome: Equatable {
        case data([UInt8])
        case eof
        case timeout
        case error(Int32)
    }

    /// Connects (blocking); throws the SystemError (e.g. ECONNREFUSED) when it cannot.
    init(_ address: SocketAddress, timeout: Duration = .seconds(5)) throws(SystemError) {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "socket") }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = address.withSockaddr { sa, len in connect(fd, sa, len) }
        if rc != 0 {
            let err = errno
            close(fd)
            throw SystemError(errno: err, operation: "connect \(address)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    func setReceiveTimeout(_ timeout: Duration) {
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends everything; false when the peer is gone.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// One recv of up to `max` bytes.
    func readOnce(max: Int = 65536) -> ReadOutcome {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
            if n > 0 { return .data(Array(buffer[..<n])) }
            if n == 0 { return .eof }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return .timeout }
            return .error(err)
        }
    }

    /// Reads until `count` bytes have come, or EOF, timeout or error; returns the bytes and how it ended.
    func read(count: Int) -> (bytes: [UInt8], end: ReadOutcome?) {
        var got: [UInt8] = []
        while got.count < count {
            switch readOnce(max: min(65536, count - got.count)) {
            case .data(let d): got += d
            case let other: return (got, other)
            }
        }
        return (got, nil)
    }

    /// Reads until EOF (or error/timeout); returns all bytes and the ending.
    func readToEnd() -> (bytes: [UInt8], end: ReadOutcome) {
        var got: [UInt8] = []
        while true {
            switch readOnce() {
            case .data(let d): got += d
            case let other: return (got, other)
            }
        }
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
