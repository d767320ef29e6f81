import CShim
import Glibc
import LoadBalancer
import Testing

/// The `lb` executable as an operator runs it: flags, signals, and running out of file descriptors.
@Suite struct LbExecutableTests {
    init() { _ = lb_ignore_sigpipe() }

    static let binary = Subprocess.product("lb")

    /// Starts lb and waits for its start-up line; returns the process and the bound listen address.
    func startLB(_ arguments: [String], fileLimit: Int? = nil, preamble: String = "") throws -> (Subprocess, SocketAddress) {
        let path = try #require(Self.binary, "the lb executable is not built next to the tests")
        let lb = try Subprocess(path, ["--listen", "127.0.0.1:0"] + arguments, fileLimit: fileLimit, preamble: preamble)
        try #require(eventually { lb.stderr.contains("lb: listening on ") }, "no start-up line: \(lb.stderr)")
        let line = lb.stderr.split(separator: "\n").first { $0.contains("lb: listening on ") }!
        let text = line.split(separator: "lb: listening on ", maxSplits: 1)[1].prefix { $0 != " " && $0 != "," }
        let port = try #require(UInt16(text.split(separator: ":").last ?? ""))
        return (lb, SocketAddress(host: "127.0.0.1", port: port)!)
    }

    @Test(arguments: [
        (["--backend", "1.2.3.4:99999"], "lb: --backend 1.2.3.4:99999: port out of range\n"),
        (["--workers", "zero"], "lb: --workers zero: not a whole number\n"),
        (["--idle-timeout", "10"], "lb: --idle-timeout 10: expected a duration like 250ms, 2s or 1m\n"),
        (["--frobnicate"], "lb: --frobnicate: unknown flag (see --help)\n"),
    ])
    func badFlagsExitTwoWithOneLine(arguments: [String], expected: String) throws {
        let path = try #require(Self.binary, "the lb executable is not built next to the tests")
        let lb = try Subprocess(path, arguments)
        #expect(lb.waitForExit() == 2)
        #expect(lb.stderr == expected)
    }

    /// `--check` refuses what the start would refuse before binding (a loop, an unreadable token file),
    /// and its summary counts in the singular for one.
    @Test(arguments: [
        (["--listen", "127.0.0.1:18999", "--backend", "127.0.0.1:18999"], 2,
         "lb: every --backend is lb's own listen address (127.0.0.1:18999): that would be a loop\n"),
        (["--admin", "127.0.0.1:0", "--admin-token-file", "/nonexistent/lb-token"], 2,
         "lb: --admin-token-file /nonexistent/lb-token: open: No such file or directory\n"),
        (["--config"], 2, "every backend of service a is lb's own listen address (127.0.0.1:18999): that would be a loop\n"),
        (["--listen", "127.0.0.1:18999", "--backend", "127.0.0.1:18998"], 0,
         "lb: flags: ok: 1 service (default), 1 listen address, 1 backend\n"),
    ])
    func checkRefusesWhatTheStartWould(arguments: [String], code: Int32, expected: String) throws {
        if arguments.first == "--config" {
            // A file's loop names the file and the service.
            let file = "/tmp/lb-check-loop-\(getpid()).json"
            let fd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
            let text = #"{"services": [{"name": "a", "listen": ["127.0.0.1:18999"], "backends": ["127.0.0.1:18999"]}]}"#
            #expect(write(fd, text, text.utf8.count) == text.utf8.count)
            close(fd)
            defer { unlink(file) }
            let path = try #require(Self.binary, "the lb executable is not built next to the tests")
            let lb = try Subprocess(path, ["--config", file, "--check"])
            #expect(lb.waitForExit() == code)
            #expect(lb.stderr == "lb: \(file): " + expected)
            return
        }
        let path = try #require(Self.binary, "the lb executable is not built next to the tests")
        let lb = try Subprocess(path, arguments + ["--check"], preamble: "exec 1>&2; ")  // the ok line is stdout's
        #expect(lb.waitForExit() == code)
        #expect(lb.stderr == expected)
    }

    @Test func startsServesAndDrainsOnSigterm() throws {
        let backend = TestServer(handler: TestServer.http(port: 80))
        defer { backend.stop() }
        let (lb, address) = try startLB(["--backend", backend.address.description, "--workers", "2"])
        #expect(lb.stderr.contains("with 2 workers, 1 backend"))
        #expect(backendHeader(httpGet(address).text) == "80")
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
        #expect(lb.stderr.contains("draining open connections"))
        #expect(lb.stderr.contains("lb: stopped after 1 connection ("))
    }

    /// Two lb processes on one address: the second exits 1 naming it, as with any program holding the
    /// port, instead of joining the first one's SO_REUSEPORT group and taking half its connections.
    @Test func aSecondLbOnTheSameAddressExitsOne() throws {
        let backend = TestServer(handler: TestServer.http(port: 80))
        defer { backend.stop() }
        let (first, address) = try startLB(["--backend", backend.address.description, "--workers", "2"])
        let path = try #require(Self.binary)
        let second = try Subprocess(path, ["--listen", address.description, "--backend", backend.address.description])
        #expect(second.waitForExit() == 1)
        #expect(second.stderr.hasSuffix("lb: bind \(address): Address already in use\n"))
        #expect(backendHeader(httpGet(address).text) == "80")  // the first one still serves
        first.signal(SIGTERM)
        #expect(first.waitForExit() == 0)
    }

    /// With `holes`, lb starts with every other fd from 10 to 56 already taken (inherited), so fd
    /// numbers say little about what is left: the spare fd must still save the clients already accepted.
    @Test(arguments: [false, true])
    func runningOutOfFileDescriptorsPausesAcceptingWithoutLosingClients(holes: Bool) throws {
        let backend = TestServer(handler: TestServer.echo)
        defer { backend.stop() }
        let preamble = holes ? stride(from: 10, through: 56, by: 2).map { "exec \($0)</dev/null; " }.joined() : ""
        // 64 fds: after its own (~15) and the reserve, lb holds only about a dozen pairs.
        let (lb, address) = try startLB(["--backend", backend.address.description, "--workers", "1"], fileLimit: 64, preamble: preamble)
        var clients: [Int32] = []
        defer { for fd in clients { close(fd) } }
        for _ in 0..<40 {
            guard case .success(let fd) = TestSocket.connect(address) else { break }
            clients.append(fd)
        }
        #expect(clients.count == 40)  // the kernel's backlog holds the ones lb has not accepted
        #expect(eventually { lb.stderr.contains("accept paused for 100ms") })
        // Paused is not busy: over a second of back-off lb uses little CPU (a spin would use ~1 s).
        let before = lb.cpuSeconds
        observationWindow(.seconds(1))
        #expect(lb.cpuSeconds - before < 0.5)
        // Logged once, though it stayed paused (and retried) all through that second.
        #expect(lb.stderr.split(separator: "\n").filter { $0.contains("accept paused") }.count == 1)
        // Every client is served once others leave: none was dropped from the backlog.
        for (i, fd) in clients.enumerated() {
            TestSocket.sendAll(fd, "client \(i)")
            #expect(TestSocket.read(fd, exactly: "client \(i)".utf8.count) == Array("client \(i)".utf8), "client \(i)")
            close(fd)
            clients[i] = -1
        }
        clients.removeAll()
        lb.signal(SIGTERM)
        #expect(lb.waitForExit() == 0)
    }
}
