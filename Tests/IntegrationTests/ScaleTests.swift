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
        let before = FileLimit.openDescriptorCount()
        let farm = try FakeBackendFarm.start(FarmConfiguration(ephemeral: 5_000))
        #expect(farm.addresses.count == 5_000)
        #expect(Set(farm.addresses.map(\.port)).count == 5_000)
        #expect(FileLimit.openDescriptorCount() >= before + 5_000)

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

        farm.stop()
        // Other suites run alongside and open a few descriptors of their own: allow some slack.
        let after = FileLimit.openDescriptorCount()
        #expect(after < before + 100, "descriptors before \(before), after stop \(after)")
        #expect(connectErrno(farm.addresses[0]) == ECONNREFUSED)
    }
}
