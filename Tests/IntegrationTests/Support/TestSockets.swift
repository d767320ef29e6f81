import Glibc
import LoadBalancer
import Synchronization

/// How a read loop ended.
enum StreamEnd: Equatable { case eof, reset, timeout, limit }

/// What one read gave: bytes, or how the stream ended (with the errno of a failure).
enum ReadOutcome: Equatable {
    case data([UInt8])
    case eof
    case timeout
    case error(Int32)
}

/// Blocking socket helpers for test clients and servers. Every socket gets send and receive timeouts,
/// so a broken proxy fails a test instead of hanging it.
enum TestSocket {
    static func setTimeouts(_ fd: Int32, seconds: Int = 10) { setTimeouts(fd, .seconds(seconds)) }

    static func setTimeouts(_ fd: Int32, _ timeout: Duration) {
        setReceiveTimeout(fd, timeout)
        var tv = timeval(timeout)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func setReceiveTimeout(_ fd: Int32, _ timeout: Duration) {
        var tv = timeval(timeout)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A blocking connected socket, or the connect's errno.
    static func connect(_ address: SocketAddress, timeoutSeconds: Int = 10) -> Result<Int32, SystemError> {
        connect(address, timeout: .seconds(timeoutSeconds))
    }

    static func connect(_ address: SocketAddress, timeout: Duration) -> Result<Int32, SystemError> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SystemError(errno: errno, operation: "socket")) }
        setTimeouts(fd, timeout)
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            close(fd)
            return .failure(SystemError(errno: e, operation: "connect \(address)"))
        }
        return .success(fd)
    }

    @discardableResult
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    @discardableResult
    static func sendAll(_ fd: Int32, _ text: String) -> Bool { sendAll(fd, Array(text.utf8)) }

    /// One recv of up to `max` bytes.
    static func readOnce(_ fd: Int32, max: Int = 65536) -> ReadOutcome {
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

    /// Reads until `count` bytes have come (end nil), or EOF, timeout or error; returns the bytes and how
    /// it ended.
    static func read(_ fd: Int32, count: Int) -> (bytes: [UInt8], end: ReadOutcome?) {
        var got: [UInt8] = []
        while got.count < count {
            switch readOnce(fd, max: min(65536, count - got.count)) {
            case .data(let d): got += d
            case let other: return (got, other)
            }
        }
        return (got, nil)
    }

    /// Reads until EOF, an error, a timeout or `limit` bytes.
    static func readAll(_ fd: Int32, limit: Int = 1 << 30) -> (bytes: [UInt8], end: StreamEnd) {
        let (bytes, end) = read(fd, count: limit)
        switch end {
        case nil: return (bytes, .limit)
        case .eof?: return (bytes, .eof)
        case .timeout?: return (bytes, .timeout)
        case .error?, .data?: return (bytes, .reset)
        }
    }

    /// Reads exactly `count` bytes, or returns what came before the stream ended.
    static func read(_ fd: Int32, exactly count: Int) -> [UInt8] {
        readAll(fd, limit: count).bytes
    }

    /// Reads until the bytes read end with `marker` (an HTTP header block, say).
    static func read(_ fd: Int32, until marker: String) -> String {
        var out: [UInt8] = []
        var byte: UInt8 = 0
        let m = Array(marker.utf8)
        while !out.suffix(m.count).elementsEqual(m) {
            let n = recv(fd, &byte, 1, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func shutdownWrite(_ fd: Int32) { _ = shutdown(fd, Int32(SHUT_WR)) }

    /// Close with a reset (SO_LINGER 0): a crashed peer. For sockets the caller owns.
    static func reset(_ fd: Int32) {
        resetOnClose(fd)
        close(fd)
    }

    /// Makes the coming close send a reset. Server handlers use this: `TestServer` closes their fd.
    static func resetOnClose(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// A loopback port that refuses connections until `close()`. The socket stays bound but never
    /// listens, so the kernel answers a SYN with a reset. A port that was bound and then closed could be
    /// taken meanwhile by another test's listener, or picked as the source port of a connect to itself
    /// (a TCP self-connect, which succeeds). A bound port is skipped by both.
    final class RefusingPort: Sendable {
        let address: SocketAddress
        private let fd: Int32

        init(v6: Bool = false) {
            var address = SocketAddress(host: v6 ? "::1" : "127.0.0.1", port: 0)!
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            precondition(address.withSockaddr { bind(fd, $0, $1) } == 0, "bind")
            _ = address.withMutableSockaddr { getsockname(fd, $0, $1) }
            self.fd = fd
            self.address = address
        }

        func close() { Glibc.close(fd) }
    }
}

/// A thread-per-connection blocking server on a loopback port 0, running `handler` for each connection.
/// `stop()` unblocks everything and joins.
final class TestServer: Sendable {
    let address: SocketAddress
    private let listenFD: Int32
    private let connections = Mutex<Set<Int32>>([])
    private let threads = Mutex<[OSThread]>([])
    let accepted = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// `port` 0 picks a free one; a given port (one a stopped server held, to restart it) is bound with
    /// SO_REUSEADDR so the old one's TIME_WAIT connections do not stand in the way.
    init(v6: Bool = false, port: UInt16 = 0, handler: @escaping @Sendable (Int32) -> Void) {
        var address = SocketAddress(host: v6 ? "::1" : "127.0.0.1", port: port)!
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        precondition(address.withSockaddr { bind(fd, $0, $1) } == 0, "bind")
        precondition(listen(fd, 512) == 0, "listen")
        _ = address.withMutableSockaddr { getsockname(fd, $0, $1) }
        self.address = address
        listenFD = fd
        let acceptThread = OSThread.start { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c >= 0 { _ = fcntl(c, F_SETFD, FD_CLOEXEC) }  // lb child processes must not inherit it
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                if stopped.load(ordering: .acquiring) { close(c); return }
                accepted.add(1, ordering: .relaxed)
                TestSocket.setTimeouts(c, seconds: 30)
                connections.withLock { _ = $0.insert(c) }
                let t = OSThread.start { [self] in
                    handler(c)
                    connections.withLock { _ = $0.remove(c) }
                    close(c)
                }
                threads.withLock { $0.append(t) }
            }
        }
        threads.withLock { $0.append(acceptThread) }
    }

    var port: UInt16 { address.port }

    func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        connections.withLock { for c in $0 { shutdown(c, Int32(SHUT_RDWR)) } }
        while let batch = Optional(threads.withLock { t -> [OSThread] in let all = t; t.removeAll(); return all }), !batch.isEmpty {
            for t in batch { t.join() }
        }
        close(listenFD)
    }

    deinit { stop() }

    // MARK: handlers

    /// Returns every byte; on EOF, shuts its write side (half-close aware).
    static let echo: @Sendable (Int32) -> Void = { fd in
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if !TestSocket.sendAll(fd, Array(buf[0..<n])) { return }
        }
        TestSocket.shutdownWrite(fd)
        _ = TestSocket.readAll(fd)
    }

    /// Answers each HTTP request (no body) with 200 and `X-Backend: <port>`, keep-alive.
    static func http(port: UInt16) -> @Sendable (Int32) -> Void {
        { fd in
            while true {
                let head = TestSocket.read(fd, until: "\r\n\r\n")
                guard head.hasSuffix("\r\n\r\n") else { return }
                let body = "backend \(port)\n"
                let close = head.lowercased().contains("connection: close")
                let response = "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nX-Backend: \(port)\r\n"
                    + (close ? "Connection: close\r\n" : "") + "\r\n" + body
                guard TestSocket.sendAll(fd, response), !close else { return }
            }
        }
    }
}

extension timeval {
    init(_ d: Duration) {
        self.init(tv_sec: Int(d.components.seconds), tv_usec: Int(d.components.attoseconds / 1_000_000_000_000))
    }
}
