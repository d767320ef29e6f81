import CShim
import Foundation
import Glibc
import LoadBalancer
import Testing

/// The `lb` executable's operator side: `--demo` prints the dashboard's URL, `--admin` serves it,
/// SIGUSR1 reopens the access log, and a bad admin setup exits with one line.
@Suite struct LbAdminExecutableTests {
    init() { _ = lb_ignore_sigpipe() }

    func path() throws -> String { try #require(Subprocess.product("lb"), "the lb executable is not built next to the tests") }

    @Test func demoPrintsTheAdminURLAndSigusr1ReopensTheLog() throws {
        let log = "/tmp/lb-exe-access-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(log); unlink(log + ".1") }
        let lb = try Subprocess(try path(), ["--demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log", log])
        try #require(eventually { lb.stderr.contains("lb: admin API and dashboard on http://127.0.0.1:") }, "\(lb.stderr)")
        let text = lb.stderr
        let url = text.split(separator: "\n").first { $0.contains("lb: admin API and dashboard on ") }!
        let adminPort = try #require(UInt16(url.split(separator: ":").last!.dropLast()))
        let listenLine = text.split(separator: "\n").first { $0.contains("lb: listening on ") }!
        let port = try #require(UInt16(listenLine.split(separator: "lb: listening on 127.0.0.1:", maxSplits: 1)[1].prefix { $0 != " " }))
        let address = SocketAddress(host: "127.0.0.1", port: port)!
        let admin = SocketAddress(host: "127.0.0.1", port: adminPort)!

        #expect(httpGet(admin, path: "/healthz").text.hasSuffix("\r\n\r\nok\n"))
        #expect(httpGet(address).text.contains("200 OK"))
        #expect(eventually { AccessLogTests.lines(log).count == 1 })
        #expect(rename(log, log + ".1") == 0)
        lb.signal(SIGUSR1)
        #expect(eventually { access(log, F_OK) == 0 })
        #expect(httpGet(address).text.contains("200 OK"))
        #expect(eventually { AccessLogTests.lines(log).count == 1 })
        #expect(AccessLogTests.lines(log + ".1").count == 1)
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
    }

    @Test func badAdminSetupExitsWithOneLine() throws {
        let refusing = TestSocket.RefusingPort()
        defer { refusing.close() }
        let noToken = try Subprocess(try path(), ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--admin", "0.0.0.0:0"])
        #expect(noToken.waitForExit() == 2)
        #expect(noToken.stderr == "lb: --admin 0.0.0.0:0: not a loopback address: give --admin-token-file\n")
        let missing = try Subprocess(try path(), ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--admin", "127.0.0.1:0",
                                                  "--admin-token-file", "/nonexistent/lb-token"])
        #expect(missing.waitForExit() == 1)
        #expect(missing.stderr.hasPrefix("lb: --admin-token-file /nonexistent/lb-token: open"))
        #expect(missing.stderr.split(separator: "\n").count == 1)
    }
}
