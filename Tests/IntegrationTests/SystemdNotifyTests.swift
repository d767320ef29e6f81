import CShim
import Glibc
import LoadBalancer
import Testing

/// sd_notify against a fake systemd: a Unix datagram socket this test binds and reads.
@Suite struct SystemdNotifyTests {
    init() { _ = lb_ignore_sigpipe() }

    /// A fake notify socket; `next()` returns the next datagram, or nil after `timeout`.
    final class FakeSystemd: Sendable {
        let path: String
        let fd: Int32

        init(abstract: Bool) throws {
            path = (abstract ? "@" : "/tmp/") + "lb-notify-\(getpid())-\(MonotonicClock.now() % 1_000_000_000)"
            fd = try Sys.unixDatagramBind(path)
            try Sys.setReceiveTimeout(fd, milliseconds: 10_000)
        }

        func next() -> String? {
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            return n < 0 ? nil : String(decoding: buf[0..<n], as: UTF8.self)
        }

        deinit {
            close(fd)
            if !path.hasPrefix("@") { unlink(path) }
        }
    }

    @Test(arguments: [false, true])
    func notifierSendsOneDatagramPerState(abstract: Bool) throws {
        let systemd = try FakeSystemd(abstract: abstract)
        let notifier = SystemdNotifier(socketPath: systemd.path)
        #expect(notifier.notify("READY=1") == nil)
        #expect(notifier.notify("STOPPING=1") == nil)
        #expect(systemd.next() == "READY=1")
        #expect(systemd.next() == "STOPPING=1")
        // Outside systemd nothing is sent and nothing fails.
        #expect(SystemdNotifier(socketPath: nil).notify("READY=1") == nil)
        #expect(SystemdNotifier(socketPath: "").socketPath == nil)
        // A supervisor that went away is an error to log, not a crash.
        #expect(SystemdNotifier(socketPath: "/nonexistent/notify").notify("READY=1")?.errno == ENOENT)
    }

    @Test func lbTellsSystemdReadyReloadingAndStopping() throws {
        let path = try #require(LbExecutableTests.binary, "the lb executable is not built next to the tests")
        let backend = TestServer(handler: TestServer.http(port: 5))
        defer { backend.stop() }
        let systemd = try FakeSystemd(abstract: false)
        let file = ConfigFileExecutableTests.tempFile(#"{"workers": 1, "listen": ["127.0.0.1:0"], "backends": ["\#(backend.address)"]}"#)
        defer { unlink(file) }
        let lb = try Subprocess(path, ["--config", file], preamble: "export NOTIFY_SOCKET=\(systemd.path); ")
        #expect(systemd.next() == "READY=1")
        #expect(eventually { lb.stderr.contains("lb: listening on ") })  // written before READY=1 is sent
        lb.signal(SIGHUP)
        let reloading = systemd.next()
        #expect(reloading?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true, "\(reloading ?? "nothing")")
        #expect(systemd.next() == "READY=1")
        #expect(eventually { lb.stderr.contains("lb: reload: no changes") })
        lb.signal(SIGTERM)
        #expect(systemd.next() == "STOPPING=1")
        #expect(lb.waitForExit() == 0)
    }
}
