import CShim
import FakeBackends
import Glibc
import LoadBalancer
import Testing

/// Thousands of backends at once. Each test holds 5,000 or more descriptors, so they run one at a time
/// (the machine's hard limit is 20,000 for the whole test process). Tests elsewhere extend this suite.
@Suite(.serialized) struct ScaleTests {
    init() { lb_ignore_sigpipe() }

    @Test func fiveThousandListenersOpenAnswerAndClose() throws {
        FileLimit.raiseToHard()
        try #require(FileLimit.current >= 6_000, "RLIMIT_NOFILE too low for 5,000 listeners")
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 5_000))
        #expect(farm.addresses.count == 5_000)
        #expect(Set(farm.addresses.map(\.port)).count == 5_000)
        // Every backend has a listening socket of this process. The farm's own sockets, not the
        // process's fd count: other suites open and close descriptors alongside.
        let farmPorts = Set(farm.addresses.map(\.port))
        #expect(farm.addresses.allSatisfy { !$0.isIPv6 })
        let listeners = OpenSocket.ownedByThisProcess().filter { $0.state == "LISTEN" && !$0.v6 && farmPorts.contains($0.localPort) }
        #expect(listeners.count == 5_000)
        #expect(Set(listeners.map(\.localPort)) == farmPorts)

        // A sample spread over the whole farm (both loops, first and last) answers with its own port.
        var sample = Array(stride(from: 0, to: 5_000, by: 97))
        sample.append(4_999)
        for i in sample {
            let address = farm.addresses[i]
            let client = try TestClient(address)
            client.send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            let text = String(decoding: client.readToEnd().bytes, as: UTF8.self)
            #expect(text.contains("X-Backend: \(address.port)\r\n"), "backend \(i) at \(address)")
        }
        #expect(eventually { farm.totals.requests == UInt64(sample.count) })

        // The farm's sockets (its listeners, and any connection it still holds) while its ports are
        // still bound, so no other test's socket can be among them...
        let farmSockets = OpenSocket.ownedByThisProcess().filter { !$0.v6 && farmPorts.contains($0.localPort) }
        #expect(farmSockets.count >= 5_000)
        farm.stop()
        // ...are all closed once it stops. By inode, not port: a freed port can be taken at once by a
        // parallel test (which is also why no refusal is checked here).
        let inodes = Set(farmSockets.map(\.inode))
        let left = OpenSocket.ownedByThisProcess().filter { inodes.contains($0.inode) }
        #expect(left.isEmpty, "\(left.count) farm sockets still open after stop, e.g. \(left.prefix(3))")
    }
}
