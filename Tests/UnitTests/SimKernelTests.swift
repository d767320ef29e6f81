import CShim
import Glibc
import LoadBalancer
import Simulation
import Testing

/// What the simulated kernel does that loopback cannot show on demand: coalesced edge-triggered
/// events reported with the mask of wait time, injected EINTR/EMFILE/EADDRNOTAVAIL sorted by `Sys`'s
/// real loops, short writes, connects that time out, and one seed giving one run.
@Suite struct SimKernelTests {
    typealias K = SimKernel

    final class Peer: SimActor {}

    /// A balancer-side socket connected to a peer's listener, after the world settled.
    func connected(_ world: SimWorld, ep: Int32) -> (fd: Int32, peer: SimSocket, actor: Peer) {
        let actor = Peer(id: 1)
        world.keepAlive(actor)  // the socket holds it unowned; callers drop the tuple's copy
        let address = SocketAddress(ipv4: (127, 0, 0, 2), port: 80)
        let listener = world.listen(address, actor: actor)
        let fd = try! K.socket(family: AF_INET)
        _ = try! K.connect(fd, to: address)
        try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), fd, events: EpollEvents.input | EpollEvents.output | EpollEvents.readHangup | EpollEvents.edgeTriggered, data: 1)
        world.settle()
        return (fd, world.peerAccept(listener, actor: actor)!, actor)
    }

    func wait(_ ep: Int32, timeoutMs: Int32 = 0) -> [(UInt32, UInt64)] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16 * Int(LB_EPOLL_EVENT_SIZE), alignment: 8)
        defer { buffer.deallocate() }
        let n = try! K.epollWait(ep, buffer, 16, timeoutMs: timeoutMs)
        return (0..<n).map { i in
            let p = buffer + i * Int(LB_EPOLL_EVENT_SIZE)
            return (p.loadUnaligned(as: UInt32.self), p.loadUnaligned(fromByteOffset: Int(LB_EPOLL_DATA_OFFSET), as: UInt64.self))
        }
    }

    @Test func changesCoalesceIntoOneEventWithTheMaskOfWaitTime() {
        let world = SimWorld(seed: 7)
        world.run {
            let ep = try! K.epollCreate()
            let (fd, peer, _) = connected(world, ep: ep)
            #expect(wait(ep).map(\.0) == [EpollEvents.output])  // the connect completed
            #expect(wait(ep).isEmpty)  // edge-triggered: nothing new
            var bytes = [UInt8](repeating: 1, count: 100)
            for _ in 0..<3 { _ = world.peerWrite(peer, &bytes, 100) }
            world.peerShutdown(peer)
            world.settle()
            // Many segments and a FIN, one event, with everything that is true now.
            let events = wait(ep)
            #expect(events.count == 1)
            #expect(events.first?.0 == EpollEvents.input | EpollEvents.output | EpollEvents.readHangup)
            // Readiness that went away before the wait is not reported: read it all first.
            _ = world.peerWrite(peer, &bytes, 0)
            var buf = [UInt8](repeating: 0, count: 1000)
            #expect(try! K.receive(fd, &buf, 1000) == .done(300))
            #expect(try! K.receive(fd, &buf, 1000) == .done(0))
            #expect(wait(ep).isEmpty)
            K.close(fd)
            K.close(ep)
        }
        #expect(world.failure == nil)
        world.tearDown()
    }

    @Test func injectedInterruptsAreRetriedByTheRealLoops() {
        var faults = SimFaults()
        faults.eintr = 30_000  // almost every other call
        let world = SimWorld(seed: 3, faults: faults)
        world.run {
            let ep = try! K.epollCreate()
            let (fd, peer, _) = connected(world, ep: ep)
            var bytes = [UInt8](repeating: 9, count: 10)
            for _ in 0..<20 {
                _ = world.peerWrite(peer, &bytes, 10)
                world.settle()
                var buf = [UInt8](repeating: 0, count: 64)
                #expect(try! K.receive(fd, &buf, 64) == .done(10))  // never an EINTR seen by the caller
            }
            K.close(fd)
            K.close(ep)
        }
        #expect(world.injected["EINTR", default: 0] > 5)
        world.tearDown()
    }

    @Test func descriptorLimitsAndLocalFailures() {
        let world = SimWorld(seed: 5, fdLimit: 8)
        world.run {
            var fds: [Int32] = []
            var refused: Int32 = 0
            for _ in 0..<10 {
                do throws(SystemError) { fds.append(try K.socket(family: AF_INET)) } catch { refused = error.errno; break }
            }
            #expect(refused == EMFILE)
            #expect(fds.count == 5)  // 0, 1, 2 are taken; the limit counts them
            #expect(fds == [3, 4, 5, 6, 7])  // lowest free number first, as Linux
            K.close(fds[1])
            #expect(try! K.socket(family: AF_INET) == 4)
            for fd in fds { K.close(fd) }
        }
        var faults = SimFaults()
        faults.eaddrnotavail = 65536
        let w2 = SimWorld(seed: 5, faults: faults)
        w2.run {
            let fd = try! K.socket(family: AF_INET)
            #expect(throws: SystemError(errno: EADDRNOTAVAIL, operation: "connect")) {
                try K.connect(fd, to: SocketAddress(ipv4: (127, 0, 0, 2), port: 80))
            }
            K.close(fd)
        }
        world.tearDown()
        w2.tearDown()
    }

    @Test func aBlackHoleNeverAnswersAndTimeIsVirtual() {
        let world = SimWorld(seed: 11)
        world.synAnswer = { _ in .ignore }
        world.run {
            let ep = try! K.epollCreate()
            _ = world.listen(SocketAddress(ipv4: (127, 0, 0, 2), port: 80), actor: nil)
            let fd = try! K.socket(family: AF_INET)
            #expect(try! K.connect(fd, to: SocketAddress(ipv4: (127, 0, 0, 2), port: 80)) == .inProgress)
            try! K.epollControl(ep, Int32(LB_EPOLL_CTL_ADD), fd, events: EpollEvents.output | EpollEvents.edgeTriggered, data: 1)
            let before = K.now()
            #expect(wait(ep, timeoutMs: 60_000).isEmpty)
            #expect(K.now() - before == 60_000_000_000)  // a minute passed, instantly
            K.close(fd)
            K.close(ep)
        }
        world.tearDown()
    }

    @Test func shortWritesAcceptFewerBytes() {
        var faults = SimFaults()
        faults.shortWrite = 65536
        let world = SimWorld(seed: 2, faults: faults)
        world.run {
            let ep = try! K.epollCreate()
            let (fd, peer, _) = connected(world, ep: ep)
            var bytes = [UInt8](repeating: 1, count: 1000)
            guard case .done(let n) = try! K.write(fd, &bytes, 1000) else { Issue.record("EAGAIN"); return }
            #expect(n > 0 && n < 1000)
            world.settle()
            #expect(world.queuedToRead(peer) == n)
            K.close(fd)
            K.close(ep)
        }
        world.tearDown()
    }

    @Test func oneSeedOneRun() {
        func run(_ seed: UInt64) -> String {
            let world = SimWorld(seed: seed, faults: .hostile)
            let trace = world.run { () -> String in
                let ep = try! K.epollCreate()
                let (fd, peer, _) = connected(world, ep: ep)
                var bytes = [UInt8](repeating: 1, count: 5000)
                for _ in 0..<5 {
                    _ = world.peerWrite(peer, &bytes, 5000)
                    _ = wait(ep, timeoutMs: 5)
                    var buf = [UInt8](repeating: 0, count: 3000)
                    _ = try? K.receive(fd, &buf, 3000)
                }
                K.close(fd)
                K.close(ep)
                return world.renderTrace()
            }
            world.tearDown()
            return trace
        }
        #expect(run(99) == run(99))
        #expect(run(99) != run(100))
    }
}
