import Glibc
import LoadBalancer
import Testing

/// Helpers the lb and the fake backend farm share: `ValueParsers.portRange` and `Sockets.bind`.
@Suite struct SharedHelperTests {
    @Test(arguments: [("9000", UInt16(9000)...9000), ("9000-9009", 9000...9009), ("1-65535", 1...65535), ("7-7", 7...7)])
    func portRanges(text: String, expected: ClosedRange<UInt16>) throws {
        #expect(try ValueParsers.portRange(text[...]).get() == expected)
    }

    @Test(arguments: [
        ("9009-9000", "port range runs backwards"), ("9000-70000", "port out of range"), ("0-5", "port out of range"),
        ("", "bad port ''"), ("9000-", "bad port ''"), ("-9000", "bad port ''"), ("1-2-3", "bad port '2-3'"),
    ])
    func badPortRanges(text: String, reason: String) {
        #expect(ValueParsers.portRange(text[...]) == .failure(ParseFailure(reason)))
    }

    @Test func bindLeavesABoundSocketThatIsNotListening() throws {
        let fd = try Sockets.bind(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        defer { Sys.close(fd) }
        let bound = try Sys.localAddress(of: fd)
        #expect(bound.port != 0)
        var listening: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0)
        #expect(listening == 0)
        // An address this host does not have: the error names it.
        let foreign = SocketAddress(host: "192.0.2.1", port: bound.port)!
        #expect(throws: SystemError(errno: EADDRNOTAVAIL, operation: "bind \(foreign)")) {
            try Sockets.bind(on: foreign, reusePort: false)
        }
    }

    @Test func anUnlistenedPortRefusesConnects() throws {
        let fd = try Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 4, reusePort: false)
        defer { Sys.close(fd) }
        let address = try Sys.localAddress(of: fd)
        try Sys.unlisten(fd)
        let client = try Sys.socket(family: AF_INET)
        defer { Sys.close(client) }
        var refused = false
        do { _ = try Sys.connect(client, to: address) } catch { refused = error.errno == ECONNREFUSED }
        if !refused {  // in progress: the refusal shows as the socket's error
            var pfd = pollfd(fd: client, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 5_000)
            refused = (try? Sys.socketError(client)) == ECONNREFUSED
        }
        #expect(refused)
    }
}
