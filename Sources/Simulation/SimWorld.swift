import Glibc
import LoadBalancer

/// A simulated peer (client or backend): woken when one of its sockets changes or its timer is due.
open class SimActor {
    public let id: Int
    /// A wake-up is already queued for it (changes coalesce, like an epoll item).
    var wakeQueued = false

    public init(id: Int) { self.id = id }

    /// Called when a socket of this actor changed (`token` -1) or a timer it set fired.
    open func step(_ world: SimWorld, token: Int) {}
}

/// How hostile the world is: probabilities are per 65,536 calls.
public struct SimFaults: Sendable {
    public var eintr = 0
    public var emfile = 0
    public var enfile = 0
    public var eaddrnotavail = 0
    /// A send (or splice into a socket) accepts fewer bytes than would fit.
    public var shortWrite = 0
    /// An accept finds a connection the client already reset (ECONNABORTED).
    public var acceptAborted = 0
    /// epoll_wait returns early with EINTR.
    public var epollEINTR = 0
    /// The worker's loop is slow this once: virtual time jumps 1-20 ms after a wait returns.
    public var stall = 0

    public init() {}

    /// Everything on, at rates that still let most connections through.
    public static var hostile: SimFaults {
        var f = SimFaults()
        f.eintr = 600
        f.emfile = 150
        f.enfile = 50
        f.eaddrnotavail = 200
        f.shortWrite = 6000
        f.acceptAborted = 300
        f.epollEINTR = 800
        f.stall = 1500
        return f
    }
}

/// Latencies and sizes, in virtual nanoseconds and bytes.
public struct SimNetwork: Sendable {
    /// One-way delay of a segment: uniform in this range, with `spikeChance`/65,536 of them up to `spike`.
    public var minDelay: UInt64 = 5_000
    public var maxDelay: UInt64 = 400_000
    public var spikeChance = 300
    public var spike: UInt64 = 30_000_000
    /// Socket buffer sizes are drawn per socket from these.
    public var receiveBuffers = [2048, 8192, 65536, 212_992]
    public var sendBuffers = [2048, 16384, 65536, 212_992]
    /// The largest segment of a connection is drawn from these (segments are uniform up to it).
    public var segmentSizes = [64, 536, 1460, 1460, 4096, 4096, 16384, 16384, 65536, 65536]

    public init() {}
}

/// One trace record: rendered to text only when a run fails.
struct TraceRecord {
    var time: UInt64
    var op: StaticString
    var fd: Int32
    var value: Int
    var errno: Int32
}

/// The simulated kernel and network: one virtual clock, one event queue, one random stream from one
/// seed. Everything the balancer's worker does goes through its fd-level calls (`SimKernel`); the
/// simulated peers act on their sockets directly. Single-threaded by design: a run is a pure function
/// of its seed.
public final class SimWorld {
    public internal(set) var clock: UInt64
    public var rng: SplitMix64
    public let seed: UInt64
    public var faults: SimFaults
    public var network: SimNetwork
    public var planted: PlantedFaults = []
    /// The balancer's fd limit (RLIMIT_NOFILE): EMFILE past it, as Linux.
    public var fdLimit: Int

    var heap = EventHeap()
    var files: [SimFile?] = []
    public internal(set) var openFiles = 0
    var listeners: [SimSocket] = []
    public private(set) var sockets: [SimSocket] = []
    var nextPort: UInt16 = 20000
    /// First failure seen by the kernel itself (a call the worker should never make, a stuck loop).
    public var failure: String?
    public private(set) var eventsProcessed = 0
    public var eventBudget = 20_000_000

    var trace: [TraceRecord]
    var traceNext = 0
    public var traceCapacity: Int

    /// Buffers the peers borrow for one step (taken out and put back, so no copy-on-write and no
    /// allocation per step).
    var readBuffer = [UInt8](repeating: 0, count: 8192)
    var writeBuffer = [UInt8](repeating: 0, count: 4096)

    func takeReadBuffer() -> [UInt8] {
        let b = readBuffer
        readBuffer = []
        return b.isEmpty ? [UInt8](repeating: 0, count: 8192) : b
    }

    func takeWriteBuffer() -> [UInt8] {
        let b = writeBuffer
        writeBuffer = []
        return b.isEmpty ? [UInt8](repeating: 0, count: 4096) : b
    }

    /// Counters of what was injected, for the report.
    public private(set) var injected = [String: Int]()

    public init(seed: UInt64, faults: SimFaults = SimFaults(), network: SimNetwork = SimNetwork(), fdLimit: Int = 1024, traceCapacity: Int = 4096) {
        self.seed = seed
        rng = SplitMix64(seed: seed)
        self.faults = faults
        self.network = network
        self.fdLimit = fdLimit
        self.traceCapacity = traceCapacity
        trace = []
        trace.reserveCapacity(traceCapacity)
        clock = 1_000_000_000  // not 0: the worker treats 0 as "never"
        files = [nil, nil, nil]  // 0, 1, 2 are stdin, stdout, stderr
    }

    /// Breaks the reference cycles between peers, actors and epoll items.
    public func tearDown() {
        kept.removeAll()
        for s in sockets {
            s.peer = nil
            s.watchers.removeAll()
            s.acceptQueue.removeAll()
        }
        files.removeAll()
        heap.removeAll()
        sockets.removeAll()
        listeners.removeAll()
    }

    /// Actors the world holds for a caller that keeps no reference of its own (sockets hold theirs
    /// unowned), until `tearDown`.
    var kept: [SimActor] = []
    public func keepAlive(_ actor: SimActor) { kept.append(actor) }

    // MARK: randomness and time

    @inline(__always)
    public func chance(_ perMille65536: Int) -> Bool {
        perMille65536 > 0 && Int(rng.next() & 0xFFFF) < perMille65536
    }

    @inline(__always)
    public func uniform(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + rng.next(below: range.upperBound - range.lowerBound + 1)
    }

    @inline(__always)
    public func uniform(_ lo: UInt64, _ hi: UInt64) -> UInt64 {
        hi <= lo ? lo : lo + rng.next() % (hi - lo + 1)
    }

    public func pick<T>(_ list: [T]) -> T { list[rng.next(below: list.count)] }

    func delay() -> UInt64 {
        if chance(network.spikeChance) { return uniform(network.maxDelay, network.spike) }
        return uniform(network.minDelay, network.maxDelay)
    }

    func schedule(at time: UInt64, _ action: SimAction) { heap.push(max(time, clock), action) }

    /// Runs `body` at virtual time `time`.
    public func at(_ time: UInt64, _ body: @escaping () -> Void) { schedule(at: time, .call(body)) }

    /// Wakes `actor` after a short reaction time (coalesced).
    public func wake(_ actor: SimActor?) {
        guard let actor, !actor.wakeQueued else { return }
        actor.wakeQueued = true
        schedule(at: clock + uniform(0, 50_000), .actor(actor, token: -1))
    }

    public func timer(_ actor: SimActor, after: UInt64, token: Int) {
        schedule(at: clock + after, .actor(actor, token: token))
    }

    // MARK: running

    /// Processes one event; false when nothing is left.
    @discardableResult
    public func runOne(until limit: UInt64 = .max) -> Bool {
        guard let t = heap.nextTime, t <= limit else { return false }
        let e = heap.pop()!
        if e.time > clock { clock = e.time }
        eventsProcessed += 1
        if eventsProcessed > eventBudget && failure == nil { failure = "event budget exhausted (\(eventBudget)): a busy loop?" }
        process(e.action)
        return true
    }

    /// Runs the world (peers and network only) until nothing is left to do or `limit` is reached.
    public func settle(until limit: UInt64 = .max) {
        while runOne(until: limit) {}
        if limit != .max && clock < limit { clock = limit }
    }

    public func advance(to time: UInt64) { if time > clock { clock = time } }

    func process(_ action: SimAction) {
        switch action {
        case .arrive(let s, let epoch, let bytes, let fin): arrive(s, epoch: epoch, bytes: bytes, fin: fin)
        case .reset(let s, let epoch): resetArrives(s, epoch: epoch)
        case .syn(let s, let epoch, let listener): synArrives(s, epoch: epoch, listener: listener)
        case .synAck(let s, let epoch): synAckArrives(s, epoch: epoch)
        case .actor(let a, let token):
            if token < 0 { a.wakeQueued = false }
            a.step(self, token: token)
        case .call(let body): body()
        }
    }

    // MARK: trace

    @inline(__always)
    func record(_ op: StaticString, _ fd: Int32, _ value: Int, _ err: Int32 = 0) {
        let r = TraceRecord(time: clock, op: op, fd: fd, value: value, errno: err)
        if trace.count < traceCapacity {
            trace.append(r)
        } else if traceCapacity > 0 {
            trace[traceNext] = r
            traceNext = (traceNext + 1) % traceCapacity
        }
    }

    func inject(_ what: String) { injected[what, default: 0] += 1 }

    /// The last calls the worker made, oldest first: `t=1.002345000 recv fd=7 -> 120`.
    public func renderTrace(last n: Int = 200) -> String {
        var ordered: [TraceRecord] = []
        if trace.count < traceCapacity { ordered = trace } else { ordered = Array(trace[traceNext...] + trace[..<traceNext]) }
        var out = ""
        for r in ordered.suffix(n) {
            let secs = Double(r.time) / 1e9
            out += "t=\(secs) \(r.op) fd=\(r.fd) -> \(r.value)"
            if r.errno != 0 { out += " errno=\(r.errno)" }
            out += "\n"
        }
        return out
    }

    // MARK: sockets

    func makeSocket(family: Int32) -> SimSocket {
        let s = SimSocket(
            id: sockets.count, family: family,
            receiveCapacity: pick(network.receiveBuffers), sendCapacity: pick(network.sendBuffers))
        sockets.append(s)
        return s
    }

    func ephemeralAddress(family: Int32) -> SocketAddress {
        nextPort = nextPort == 65000 ? 20000 : nextPort + 1
        if family == AF_INET6 { return SocketAddress(host: "::1", port: nextPort)! }
        return SocketAddress(ipv4: (127, 0, 0, 1), port: nextPort)
    }

    /// A listening socket owned by a peer actor (a backend), or by the balancer (see `listenFD`).
    public func listen(_ address: SocketAddress, backlog: Int = 128, actor: SimActor?) -> SimSocket {
        let s = makeSocket(family: address.family)
        s.state = .listening
        s.local = address
        s.backlog = backlog
        s.actor = actor
        listeners.append(s)
        return s
    }

    func listener(at address: SocketAddress) -> SimSocket? {
        for l in listeners where !l.dead && l.state == .listening && l.local == address { return l }
        return nil
    }

    /// A peer's new socket connecting to `address`.
    public func connect(from actor: SimActor, to address: SocketAddress) -> SimSocket {
        let s = makeSocket(family: address.family)
        s.actor = actor
        startConnect(s, to: address)
        return s
    }

    func startConnect(_ s: SimSocket, to address: SocketAddress) {
        s.state = .synSent
        if s.bound {
            s.local.port = ephemeralAddress(family: address.family).port
        } else {
            s.local = ephemeralAddress(family: address.family)
        }
        s.remote = address
        schedule(at: clock + delay(), .syn(s, epoch: s.epoch, listener: listener(at: address)))
    }

    /// What a listener's owner says to a SYN (backends can be down or a black hole).
    public enum SynAnswer { case accept, refuse, ignore }
    /// Set by the scenario: how each listener answers right now (default: accept).
    public var synAnswer: (SimSocket) -> SynAnswer = { _ in .accept }
    /// The addresses (port 0) a socket may bind to as its source: the machine's own.
    public var localAddresses: [SocketAddress] = [SocketAddress(ipv4: (127, 0, 0, 1), port: 0)]

    /// SYN outcomes in the trace (value): 0 accepted, 1 refused, 2 ignored, 3 dropped (backlog full).
    func synArrives(_ s: SimSocket, epoch: Int, listener l: SimSocket?) {
        guard s.epoch == epoch, !s.dead, s.state == .synSent else { return }
        guard let l, !l.dead, l.state == .listening else {
            if s.fd >= 0 { record("SYN", s.fd, 1) }
            schedule(at: clock + delay(), .reset(s, epoch: s.epoch))
            return
        }
        switch synAnswer(l) {
        case .refuse:
            if s.fd >= 0 { record("SYN", s.fd, 1) }
            schedule(at: clock + delay(), .reset(s, epoch: s.epoch))
            return
        case .ignore:
            if s.fd >= 0 { record("SYN", s.fd, 2) }
            return
        case .accept:
            if s.fd >= 0 { record("SYN", s.fd, 0) }
        }
        if l.pendingAccepts >= l.backlog {
            if s.fd >= 0 { record("SYN", s.fd, 3) }
            // The SYN is dropped and the client sends it again a second later.
            schedule(at: clock + 1_000_000_000, .syn(s, epoch: epoch, listener: l))
            return
        }
        let child = makeSocket(family: l.family)
        child.state = .established
        child.local = l.local
        child.remote = s.local
        child.peer = s
        s.peer = child
        let ackAt = clock + delay()
        child.lastArrival = ackAt
        l.acceptQueue.append(child)
        notify(l, key: EpollEvents.input)
        schedule(at: ackAt, .synAck(s, epoch: epoch))
    }

    func synAckArrives(_ s: SimSocket, epoch: Int) {
        guard s.epoch == epoch, !s.dead, s.state == .synSent else { return }
        if s.fd >= 0 { record("SYN-ACK", s.fd, 0) }
        s.state = .established
        notify(s, key: 0)
        transmit(s)
    }

    /// Something changed on `s`: its epoll items and its actor hear of it.
    func notify(_ s: SimSocket, key: UInt32) {
        if !s.watchers.isEmpty { SimEpoll.wake(s.watchers, key: key) }
        if s.actor != nil { wake(s.actor) }
    }

    /// Sends what the window allows, in random segment sizes, then the FIN once everything is out.
    func transmit(_ s: SimSocket) {
        guard let p = s.peer, s.state == .established else { return }
        while s.unsent > 0 {
            let window = p.window(inFlightTowards: s.inFlight)
            if window <= 0 { break }
            let largest = pick(network.segmentSizes)
            let n = uniform(1...min(s.unsent, window, largest))
            s.inFlight += n
            let at = max(s.lastArrival, clock + delay())
            s.lastArrival = at
            schedule(at: at, .arrive(s, epoch: s.epoch, bytes: n, fin: false))
        }
        if s.finQueued && !s.finSent && s.unsent == 0 {
            s.finSent = true
            let at = max(s.lastArrival, clock + delay())
            s.lastArrival = at
            schedule(at: at, .arrive(s, epoch: s.epoch, bytes: 0, fin: true))
        }
    }

    func arrive(_ s: SimSocket, epoch: Int, bytes: Int, fin: Bool) {
        guard s.epoch == epoch, let p = s.peer else { return }
        if p.dead || p.state == .closed {
            // Nobody there any more: the segment is answered with a reset.
            schedule(at: clock + delay(), .reset(s, epoch: s.epoch))
            return
        }
        if bytes > 0 {
            if p.orphaned {
                // Data for a socket its owner closed: Linux answers with a reset (tcp_rcv_state_process).
                s.inFlight -= bytes
                s.snd.drop(bytes)
                abort(p, notifyPeer: true)
                return
            }
            let moved = s.snd.move(to: &p.rcv, bytes)
            precondition(moved == bytes, "window accounting")
            s.inFlight -= bytes
            // Freed send space wakes a writer that found the queue full (sk_stream_write_space).
            if s.noSpace && s.writable {
                s.noSpace = false
                notify(s, key: EpollEvents.output)
            } else if s.actor != nil {
                wake(s.actor)
            }
            notify(p, key: EpollEvents.input)
        }
        if fin {
            p.finReceived = true
            p.receiveShutdown = true
            if p.orphaned && p.finSent { p.dead = true }
            notify(p, key: 0)
        }
    }

    /// An abortive close or a disconnect: a reset goes to the peer after the segments already sent
    /// (they are on the wire), and what was never sent is dropped.
    func abort(_ s: SimSocket, notifyPeer: Bool) {
        if notifyPeer, let p = s.peer, !p.dead {
            s.sentReset = true
            let at = max(s.lastArrival, clock + delay())
            s.lastArrival = at
            schedule(at: at, .reset(p, epoch: p.epoch))
        }
        s.snd.truncate(to: s.inFlight)
        s.finQueued = false
        s.state = .closed
        s.sendShutdown = true
        s.receiveShutdown = true
        s.rcv.removeAll()
        if s.orphaned { s.dead = true }
    }

    func resetArrives(_ s: SimSocket, epoch: Int) {
        guard s.epoch == epoch, !s.dead else { return }
        switch s.state {
        case .synSent: s.error = ECONNREFUSED
        case .established: s.error = s.finReceived && !s.sendShutdown ? EPIPE : ECONNRESET
        default: return
        }
        s.gotReset = true
        s.snd.removeAll()
        s.inFlight = 0
        s.epoch += 1
        s.peer?.peer = nil
        s.peer = nil
        s.state = .closed
        s.sendShutdown = true
        s.receiveShutdown = true
        if s.orphaned { s.dead = true }
        notify(s, key: 0)
    }
}
