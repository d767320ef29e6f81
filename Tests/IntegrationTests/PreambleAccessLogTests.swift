import Admin
import CShim
import Foundation
import Glibc
import LoadBalancer
import Testing

/// Under --accept-proxy the access log names the client the header named, and gives refused
/// preambles their cause.
@Suite struct PreambleAccessLogTests {
    init() { _ = lb_ignore_sigpipe() }

    @Test func clientFromHeaderAndCauses() throws {
        let backend = PreambleTests.RecordingBackend()
        defer { backend.stop() }
        let path = "/tmp/lb-access-preamble-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path); unlink(path + ".1") }
        try withBalancer(backends: [backend.address], configure: { c in
            c.accessLog = AccessLogSettings(path: path)
            c.acceptProxy = true
            c.preambleTimeout = .milliseconds(200)
        }) { lb, address in
            let writer = try AccessLogWriter.start(lb, lb.configuration.accessLog!)
            defer { writer.stop() }
            func line(_ cause: String) -> String? {
                var found: String?
                _ = eventually {
                    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                    found = text.split(separator: "\n").map(String.init).first { $0.hasSuffix(" " + cause) }
                    return found != nil
                }
                return found
            }
            // A good header: the log's client is the header's source.
            let (_, answer, _) = PreambleTests.exchange(address, Array("PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\nping".utf8))
            #expect(answer == "done")
            let ok = try #require(line("client_closed"))
            let fields = ok.split(separator: " ").map(String.init)
            #expect(fields[1] == "[2001:db8::7]:40000")
            #expect(ok.contains(" bytes_up=4 "))
            // A malformed one, then a slow one.
            _ = PreambleTests.exchange(address, Array("PROXY TCP4 1.2.3.4 ::1 1 2\r\n".utf8))
            let bad = try #require(line("bad_preamble"))
            #expect(bad.contains(" CP "))
            guard case .success(let fd) = TestSocket.connect(address) else { Issue.record("connect"); return }
            defer { close(fd) }
            TestSocket.sendAll(fd, "PROXY ")
            #expect(TestSocket.readAll(fd).end == .reset)
            let slow = try #require(line("preamble_timeout"))
            #expect(slow.contains(" CT "))
        }
    }
}
