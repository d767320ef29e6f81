@testable import LoadBalancer
import Testing

@Suite struct AdmissionTests {
    func cidr(_ text: String) throws -> CIDR { try CIDR.parse(text).get() }
    func addr(_ host: String) -> SocketAddress { SocketAddress(host: host, port: 1234)! }

    @Test func ipv4Blocks() throws {
        let block = try cidr("10.1.0.0/16")
        #expect(block.contains(addr("10.1.2.3")) && block.contains(addr("10.1.255.255")))
        #expect(!block.contains(addr("10.2.0.0")) && !block.contains(addr("::1")))
        #expect(block.contains(addr("::ffff:10.1.9.9")))  // a dual-stack listener's view of an IPv4 client
        #expect(try cidr("0.0.0.0/0").contains(addr("192.0.2.1")))
        #expect(try cidr("127.0.0.2").contains(addr("127.0.0.2")) && !cidr("127.0.0.2").contains(addr("127.0.0.3")))
        #expect(block.description == "10.1.0.0/16")
    }

    @Test func ipv6Blocks() throws {
        let block = try cidr("2001:db8::/32")
        #expect(block.contains(addr("2001:db8::1")) && block.contains(addr("2001:db8:ffff::")))
        #expect(!block.contains(addr("2001:db9::1")) && !block.contains(addr("10.0.0.1")))
        #expect(try cidr("::1/128").contains(addr("::1")))
        #expect(try cidr("fd00::/8").contains(addr("fdff::1")) && !cidr("fd00::/8").contains(addr("fe80::1")))
        #expect(try cidr("2001:db8::/72").contains(addr("2001:db8::ff:1")))
        #expect(try !cidr("2001:db8::/72").contains(addr("2001:db8:0:0:100::1")))
        #expect(try cidr("::/0").contains(addr("::1")))
    }

    @Test func badBlocksAreRefusedWithAReason() {
        for bad in ["10.0.0.0/33", "10.0.0.1/8", "example.com/8", "10.0.0.0/", "::1/129", "10.0.0.0/x", "", "/8"] {
            guard case .failure(let f) = CIDR.parse(bad) else {
                Issue.record("\(bad) accepted")
                continue
            }
            #expect(!f.reason.isEmpty)
        }
    }

    @Test func allowAndDeny() throws {
        var s = AdmissionSettings()
        #expect(s.permits(addr("192.0.2.1")))
        s.allow = [try cidr("127.0.0.0/8"), try cidr("::1/128")]
        s.deny = [try cidr("127.0.0.66/32")]
        #expect(s.permits(addr("127.0.0.1")) && s.permits(addr("::1")))
        #expect(!s.permits(addr("127.0.0.66")) && !s.permits(addr("192.0.2.1")) && !s.permits(addr("::2")))
    }

    @Test func limitsAreExact() {
        var s = AdmissionSettings()
        s.maxConns = 3
        s.maxConnsPerSource = 2
        let a = Admission(s, fdLimit: 1000, fdReserve: 32)
        #expect(a.reserve() && a.reserve() && a.reserve())
        #expect(!a.reserve())
        a.release()
        #expect(a.reserve())
        #expect(a.admitSource(7) && a.admitSource(7) && !a.admitSource(7) && a.admitSource(8))
        a.releaseSource(7)
        #expect(a.sourceCount(7) == 1 && a.admitSource(7))
        #expect(Admission(AdmissionSettings(), fdLimit: 20_000, fdReserve: 200).maxConns == 9900)
    }
}
