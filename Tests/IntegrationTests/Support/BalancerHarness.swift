import CShim
import LoadBalancer

/// Runs `body` against a balancer started in-process on 127.0.0.1:0, and always stops it.
func withBalancer<T>(
    backends: [SocketAddress], workers: Int = 2, configure: (inout Configuration) -> Void = { _ in },
    _ body: (LoadBalancer, SocketAddress) throws -> T
) throws -> T {
    var config = Configuration()
    config.listen = [SocketAddress(host: "127.0.0.1", port: 0)!]
    config.backends = backends.map { BackendSpec(address: $0) }
    config.workers = workers
    config.logBackendChanges = false
    configure(&config)
    let lb = try LoadBalancer.start(config, log: EventLog(echoToStderr: false))
    defer {
        lb.stopNow()
        lb.wait(timeout: .seconds(30))
    }
    return try body(lb, lb.listenAddresses[0])
}

/// One HTTP/1.1 request with Connection: close; returns the whole response text and how it ended.
func httpGet(_ address: SocketAddress, path: String = "/") -> (text: String, end: StreamEnd) {
    guard case .success(let fd) = TestSocket.connect(address) else { return ("", .reset) }
    defer { close(fd) }
    TestSocket.sendAll(fd, "GET \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    let (bytes, end) = TestSocket.readAll(fd)
    return (String(decoding: bytes, as: UTF8.self), end)
}

/// The value of the X-Backend header in a response, or nil.
func backendHeader(_ response: String) -> String? {
    for line in response.split(separator: "\r\n") where line.lowercased().hasPrefix("x-backend:") {
        return line.dropFirst("x-backend:".count).trimmingCharacters(in: " ")
    }
    return nil
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}

import Glibc
