import CShim
import Dispatch
import Glibc
import LoadBalancer
import OperatorHTTP
import Synchronization

/// A control call handed to a loop. Every call but `stop` carries the completion its caller waits on.
enum LoopCommand: Sendable {
    case kill(Int32, Completion)
    case restart(Int32, Completion)
    case setFault(Int32, FaultKind?, Completion)
    case stop
}

/// A one-shot "done (or failed)" a control caller blocks on, with a deadline.
final class Completion: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let outcome = Mutex<SystemError?>(nil)

    func finish(_ error: SystemError? = nil) {
        outcome.withLock { $0 = error }
        semaphore.signal()
    }

    /// The loop's answer, or ETIMEDOUT if it did not come within `timeout`.
    func wait(timeout: Duration) -> SystemError? {
        let ms = Int(timeout.nanoseconds / 1_000_000)
        if semaphore.wait(timeout: .now() + .milliseconds(ms)) == .timedOut {
            return SystemError(errno: ETIMEDOUT, operation: "fake backend farm control call")
        }
        return outcome.withLock { $0 }
    }
}

/// The settings every loop shares, in the units the loop uses.
struct LoopSettings: Sendable {
    var mode: BackendMode
    var delayNanos: UInt64
    var flapNanos: UInt64
    var dripNanos: UInt64
    var seed: UInt64
}

/// One backend as a loop starts it: its listener (already open, or -1) and fault.
struct LoopBackendSetup: Sendable {
    var address: SocketAddress
    var listenerFD: Int32
    /// A refusing backend's socket: bound, not listening, so its port stays reserved.
    var parkedFD: Int32 = -1
    var fault: FaultKind?
}

/// The shared half of one event loop: what other threads may touch. The loop-thread half is
/// `FarmLoopRunner`, created on the loop's own thread.
final class FarmLoop: Sendable {
    struct Inbox {
        var commands: [LoopCommand] = []
        /// Set by the loop as it exits; later sends are refused so nobody waits on a dead loop.
        var closed = false
    }

    let settings: LoopSettings
    /// Read once, by the loop thread, as it starts.
    let setup: [LoopBackendSetup]
    /// Closed by the farm after the loop thread has been joined.
    let wakeFD: Int32
    /// Rule: commands in and `closed` are written under the lock; the eventfd is signalled under it too,
    /// so a send never signals a closed descriptor.
    let inbox = Mutex(Inbox())
    /// Per-backend counters, indexed by the loop's local backend index. Writes: loop thread; reads: anyone.
    let counters: Mutex<[BackendCounters]>
    /// Signalled once the loop has registered its listeners (or failed to).
    let ready = DispatchSemaphore(value: 0)
    let startError = Mutex<SystemError?>(nil)

    init(settings: LoopSettings, setup: [LoopBackendSetup]) throws(SystemError) {
        self.settings = settings
        self.setup = setup
        wakeFD = try Sys.eventFD()
        counters = Mutex([BackendCounters](repeating: BackendCounters(), count: setup.count))
    }

    /// Queues a command and wakes the loop; false when the loop has already stopped.
    func send(_ command: LoopCommand) -> Bool {
        inbox.withLock { inbox in
            if inbox.closed { return false }
            inbox.commands.append(command)
            Sys.signalEventFD(wakeFD)
            return true
        }
    }

    /// Takes the queued commands; `closing` also refuses later sends (the loop is exiting).
    func takeCommands(closing: Bool = false) -> [LoopCommand] {
        inbox.withLock { inbox in
            if closing { inbox.closed = true }
            let c = inbox.commands
            inbox.commands.removeAll()
            return c
        }
    }

    /// Closes the listeners and parked sockets the loop was handed: for a loop whose runner never
    /// took them over (it failed to start, or never started).
    func closeSetupDescriptors() {
        for b in setup {
            if b.listenerFD >= 0 { Sys.close(b.listenerFD) }
            if b.parkedFD >= 0 { Sys.close(b.parkedFD) }
        }
    }

    /// Starts the loop thread. The thread keeps the loop alive until it returns.
    func spawn() throws(SystemError) -> OSThread {
        try OSThread.spawn { [self] in FarmLoopRunner.run(self) }
    }
}

/// A backend as its loop sees it.
struct LoopBackend {
    var address: SocketAddress
    var listenerFD: Int32 = -1
    /// While the backend refuses: its socket, bound but not listening. Closing the listener instead
    /// would free the port for any other socket (another backend, an outgoing connection's source port),
    /// and "refused" would quietly become "answered by someone else".
    var parkedFD: Int32 = -1
    var listenerGeneration: UInt32 = 0
    var fault: FaultKind?
    var killed = false
    /// `flap` only: true while the listener is closed.
    var flapRefusing = false
    /// Built on first use: most backends of a large farm never answer a request.
    var keepAliveResponse: [UInt8] = []
    var closeResponse: [UInt8] = []
}

/// One accepted connection. Structs in a table with a free list: no object per connection.
struct Connection {
    var fd: Int32 = -1
    var generation: UInt32 = 0
    var backend: Int32 = 0
    /// The backend's fault when this connection was accepted.
    var fault: FaultKind?
    var interest: UInt32 = 0
    var parser = HTTPRequestParser()
    /// Bytes queued for the client; reading pauses while any are (so this stays bounded).
    var out: [UInt8] = []
    var outOffset = 0
    /// slow/drip: output waits for this connection's timer.
    var holding = false
    /// die-mid: part of the answer is out, the timer sends the RST.
    var dying = false
    var inputClosed = false
    var closeAfterWrite = false
    /// Bytes written on this connection (source's die-mid cut-off).
    var sent = 0
}

/// The loop-thread half: epoll, timing wheel, backends and connections. Only its own thread touches it.
///
/// Level-triggered epoll throughout: a connection asks for input only while it has nothing queued to
/// write, and for output only while it has, so no event repeats without work to do. Timer ids: a
/// connection slot `s` is `2s`, a backend `b` is `2b + 1` (flap).
final class FarmLoopRunner {
    static let scratchSize = 64 * 1024
    /// http reads are smaller so the responses to one read's pipelined requests stay bounded.
    static let httpReadSize = 8 * 1024
    static let sourceDieMidBytes = 16 * 1024
    static let acceptBurst = 64

    static let kindWake: UInt64 = 0
    static let kindListener: UInt64 = 1
    static let kindConnection: UInt64 = 2

    let loop: FarmLoop
    let settings: LoopSettings
    let epoll: Epoll
    var wheel: TimerWheel
    var backends: [LoopBackend]
    var conns: [Connection] = []
    var freeSlots: [Int32] = []
    let scratch: UnsafeMutableRawPointer
    /// source mode's bytes: a repeating printable pattern.
    let pattern: UnsafeMutableRawPointer
    /// A spare descriptor given up to accept-and-drop one connection when the process is out of fds
    /// (otherwise a level-triggered listener would wake the loop forever).
    var reserveFD: Int32 = -1
    var running = true

    static func run(_ loop: FarmLoop) {
        let runner: FarmLoopRunner
        do {
            runner = try FarmLoopRunner(loop)
        } catch {
            loop.closeSetupDescriptors()
            loop.startError.withLock { $0 = error }
            finishAll(loop.takeCommands(closing: true))
            loop.ready.signal()
            return
        }
        runner.serve()
    }

    private init(_ loop: FarmLoop) throws(SystemError) {
        self.loop = loop
        settings = loop.settings
        epoll = try Epoll(capacity: 512)
        wheel = TimerWheel(tick: .milliseconds(10), slots: 1024, capacity: 1024, now: MonotonicClock.now())
        backends = loop.setup.map { LoopBackend(address: $0.address, listenerFD: $0.listenerFD, parkedFD: $0.parkedFD, fault: $0.fault) }
        scratch = .allocate(byteCount: Self.scratchSize, alignment: 16)
        pattern = .allocate(byteCount: Self.scratchSize, alignment: 16)
        let text = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_\n".utf8)
        for i in 0..<Self.scratchSize { pattern.storeBytes(of: text[i % text.count], toByteOffset: i, as: UInt8.self) }
        reserveFD = (try? Sys.eventFD()) ?? -1
        try epoll.add(loop.wakeFD, events: EpollEvents.input, data: Self.kindWake << 62)
        for b in backends.indices where backends[b].listenerFD >= 0 {
            try epoll.add(backends[b].listenerFD, events: EpollEvents.input, data: listenerToken(Int32(b)))
        }
        let now = MonotonicClock.now()
        for b in backends.indices where backends[b].fault == .flap {
            wheel.schedule(Int32(2 * b + 1), at: now + settings.flapNanos)
        }
    }

    deinit {
        scratch.deallocate()
        pattern.deallocate()
    }

    private func serve() {
        loop.ready.signal()
        while running {
            let timeout = wheel.millisecondsUntilNext(now: MonotonicClock.now())
            let n: Int
            do {
                n = try epoll.wait(timeoutMs: timeout)
            } catch {
                // Only EBADF/EINVAL-class failures land here: the loop cannot go on.
                loop.startError.withLock { $0 = error }
                break
            }
            for i in 0..<n {
                let event = epoll.events[i]
                dispatch(event.events, event.data)
            }
            let now = MonotonicClock.now()
            while running, let id = wheel.popExpired(now: now) {
                if id & 1 == 1 { flapTimer(id >> 1) } else { connectionTimer(id >> 1) }
            }
        }
        shutdownEverything()
    }

    // MARK: events

    @inline(__always)
    private func listenerToken(_ b: Int32) -> UInt64 {
        Self.kindListener << 62 | UInt64(backends[Int(b)].listenerGeneration & 0x3FFF_FFFF) << 32 | UInt64(UInt32(b))
    }

    @inline(__always)
    private func connectionToken(_ s: Int32) -> UInt64 {
        Self.kindConnection << 62 | UInt64(conns[Int(s)].generation & 0x3FFF_FFFF) << 32 | UInt64(UInt32(s))
    }

    private func dispatch(_ events: UInt32, _ data: UInt64) {
        let kind = data >> 62
        let generation = UInt32(truncatingIfNeeded: data >> 32) & 0x3FFF_FFFF
        let index = Int32(truncatingIfNeeded: data & 0xFFFF_FFFF)
        switch kind {
        case Self.kindWake:
            Sys.drainEventFD(loop.wakeFD)
            for command in loop.takeCommands() { apply(command) }
        case Self.kindListener:
            let b = Int(index)
            guard b < backends.count, backends[b].listenerFD >= 0,
                  backends[b].listenerGeneration & 0x3FFF_FFFF == generation
            else { return }  // closed (killed, flapped) earlier in this batch
            acceptConnections(index)
        default:
            let s = Int(index)
            guard s < conns.count, conns[s].fd >= 0, conns[s].generation & 0x3FFF_FFFF == generation else { return }
            connectionEvent(index, events)
        }
    }

    private func acceptConnections(_ b: Int32) {
        for _ in 0..<Self.acceptBurst {
            let listener = backends[Int(b)].listenerFD
            guard listener >= 0 else { return }
            let fd: Int32
            do {
                guard case .done(let accepted) = try Sys.accept(listener, peer: nil) else { return }
                fd = Int32(accepted)
            } catch {
                switch error.errno {
                case ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE: shedOne(listener)
                default: break
                }
                return
            }
            adopt(fd, backend: b)
        }
    }

    /// Out of descriptors: free the spare, accept one connection and reset it, take the spare back.
    private func shedOne(_ listener: Int32) {
        guard reserveFD >= 0 else { return }
        Sys.close(reserveFD)
        reserveFD = -1
        if case .done(let fd)? = try? Sys.accept(listener, peer: nil) {
            try? Sys.setLingerReset(Int32(fd))
            Sys.close(Int32(fd))
        }
        reserveFD = (try? Sys.eventFD()) ?? -1
    }

    private func adopt(_ fd: Int32, backend b: Int32) {
        let fault = backends[Int(b)].fault
        count(b) { $0.connections &+= 1 }
        switch fault {
        case .close?:
            count(b) { $0.faultsHit &+= 1 }
            Sys.close(fd)
            return
        case .reset?:
            count(b) { $0.faultsHit &+= 1 }
            try? Sys.setLingerReset(fd)
            Sys.close(fd)
            return
        case .hang?, .slow?, .drip?:
            count(b) { $0.faultsHit &+= 1 }
        default:
            break
        }
        try? Sys.setNoDelay(fd)  // answers are small and final: Nagle would only hold them back
        let s = allocateSlot()
        let generation = conns[Int(s)].generation &+ 1
        conns[Int(s)] = Connection(fd: fd, generation: generation, backend: b, fault: fault)
        let want = desiredInterest(s)
        do {
            try epoll.add(fd, events: want, data: connectionToken(s))
        } catch {
            close(s, reset: true)
            return
        }
        conns[Int(s)].interest = want
        if settings.mode == .source && fault != .hang { outputQueued(s) }
    }

    private func allocateSlot() -> Int32 {
        if let s = freeSlots.popLast() { return s }
        conns.append(Connection())
        return Int32(conns.count - 1)
    }

    private func connectionEvent(_ s: Int32, _ events: UInt32) {
        let generation = conns[Int(s)].generation
        if events & (EpollEvents.error | EpollEvents.hangup) != 0 {
            close(s, reset: false)
            return
        }
        if conns[Int(s)].fault == .hang {
            // Never read or write; once the client has closed its side there is nobody left to hang.
            if events & EpollEvents.readHangup != 0 { close(s, reset: false) }
            return
        }
        if events & EpollEvents.input != 0 {
            readSome(s)
            guard alive(s, generation) else { return }
        }
        if events & EpollEvents.output != 0 {
            pump(s)
            guard alive(s, generation) else { return }
        }
        updateInterest(s)
    }

    @inline(__always)
    private func alive(_ s: Int32, _ generation: UInt32) -> Bool {
        conns[Int(s)].fd >= 0 && conns[Int(s)].generation == generation
    }

    private func readSome(_ s: Int32) {
        let fd = conns[Int(s)].fd
        let b = conns[Int(s)].backend
        let limit = settings.mode == .http ? Self.httpReadSize : Self.scratchSize
        let n: Int
        do {
            guard case .done(let got) = try Sys.receive(fd, scratch, limit) else { return }
            n = got
        } catch {
            close(s, reset: false)
            return
        }
        if n == 0 {
            endOfInput(s)
            return
        }
        count(b) { $0.bytesIn &+= UInt64(n) }
        switch settings.mode {
        case .http:
            answerHTTP(s, n)
        case .echo:
            conns[Int(s)].out.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: n))
            outputQueued(s)
        case .sink:
            if conns[Int(s)].fault == .dieMid {
                count(b) { $0.faultsHit &+= 1 }
                close(s, reset: true)
            }
        case .source:
            break  // input is read only to notice the client going away
        }
    }

    private func endOfInput(_ s: Int32) {
        conns[Int(s)].inputClosed = true
        if settings.mode == .source { return }  // a half-closed client may still be reading the stream
        let c = conns[Int(s)]
        if c.outOffset < c.out.count || c.holding || c.dying {
            conns[Int(s)].closeAfterWrite = true
        } else {
            close(s, reset: false)
        }
    }

    private func answerHTTP(_ s: Int32, _ n: Int) {
        let b = conns[Int(s)].backend
        // Move the parser and buffer out so the closure below does not overlap an access to `conns`.
        var parser = conns[Int(s)].parser
        conns[Int(s)].parser = HTTPRequestParser()
        var out = conns[Int(s)].out
        conns[Int(s)].out = []
        var requests: UInt64 = 0
        var closing = false
        do {
            try parser.feed(UnsafeRawBufferPointer(start: scratch, count: n)) { head in
                if closing { return }  // nothing after a `Connection: close` request is answered
                requests += 1
                if !head.keepAlive { closing = true }
                out.append(contentsOf: response(b, keepAlive: head.keepAlive, includeBody: head.method != "HEAD"))
            }
        } catch {
            out.append(contentsOf: FakeResponses.badRequest(port: backends[Int(b)].address.port))
            closing = true
        }
        conns[Int(s)].parser = parser
        conns[Int(s)].out = out
        if requests > 0 { count(b) { $0.requests &+= requests } }
        if closing {
            conns[Int(s)].closeAfterWrite = true
            conns[Int(s)].inputClosed = true
        }
        if !out.isEmpty { outputQueued(s) }
    }

    private func response(_ b: Int32, keepAlive: Bool, includeBody: Bool) -> [UInt8] {
        let port = backends[Int(b)].address.port
        guard includeBody else { return FakeResponses.ok(port: port, keepAlive: keepAlive, includeBody: false) }
        if keepAlive {
            if backends[Int(b)].keepAliveResponse.isEmpty {
                backends[Int(b)].keepAliveResponse = FakeResponses.ok(port: port, keepAlive: true)
            }
            return backends[Int(b)].keepAliveResponse
        }
        if backends[Int(b)].closeResponse.isEmpty {
            backends[Int(b)].closeResponse = FakeResponses.ok(port: port, keepAlive: false)
        }
        return backends[Int(b)].closeResponse
    }

    /// New output is ready (or, for source, the stream starts): a slow backend holds it first.
    private func outputQueued(_ s: Int32) {
        if conns[Int(s)].fault == .slow {
            hold(s, for: settings.delayNanos)
            return
        }
        pump(s)
    }

    private func hold(_ s: Int32, for nanos: UInt64) {
        conns[Int(s)].holding = true
        wheel.schedule(2 * s, at: MonotonicClock.now() + nanos)
    }

    /// Writes what may be written now: everything, one byte (drip), or half then RST (die-mid).
    private func pump(_ s: Int32) {
        let c = conns[Int(s)]
        if c.holding || c.dying || c.fd < 0 { return }
        let fd = c.fd
        let b = c.backend
        if settings.mode == .source {
            var length = Self.scratchSize
            if c.fault == .drip { length = 1 }
            if c.fault == .dieMid { length = max(0, Self.sourceDieMidBytes - c.sent) }
            if length > 0 {
                let written = Self.write(fd, pattern, length)
                if written < 0 {
                    close(s, reset: false)
                    return
                }
                conns[Int(s)].sent += written
                if written > 0 { count(b) { $0.bytesOut &+= UInt64(written) } }
            }
            if c.fault == .drip { hold(s, for: settings.dripNanos) }
            if c.fault == .dieMid && conns[Int(s)].sent >= Self.sourceDieMidBytes { startDying(s) }
            return
        }
        while conns[Int(s)].outOffset < conns[Int(s)].out.count {
            let offset = conns[Int(s)].outOffset
            let total = conns[Int(s)].out.count
            var length = total - offset
            if c.fault == .drip { length = 1 }
            if c.fault == .dieMid {
                length = max(1, total / 2) - offset
                if length <= 0 {
                    startDying(s)
                    return
                }
            }
            // The write runs inside the buffer's access; closing (which rewrites `conns`) waits until after it.
            let written = conns[Int(s)].out.withUnsafeBytes { raw in Self.write(fd, raw.baseAddress! + offset, length) }
            if written < 0 {
                close(s, reset: false)
                return
            }
            if written == 0 { return }  // would block: wait for EPOLLOUT
            conns[Int(s)].outOffset += written
            conns[Int(s)].sent += written
            count(b) { $0.bytesOut &+= UInt64(written) }
            if c.fault == .drip && conns[Int(s)].outOffset < total {
                hold(s, for: settings.dripNanos)
                return
            }
        }
        if c.fault == .dieMid {
            startDying(s)
            return
        }
        let keep = conns[Int(s)].out.capacity <= 4096
        conns[Int(s)].out.removeAll(keepingCapacity: keep)
        conns[Int(s)].outOffset = 0
        if conns[Int(s)].closeAfterWrite { close(s, reset: false) }
    }

    /// One write: bytes written, 0 when it would block, -1 when the connection failed.
    private static func write(_ fd: Int32, _ bytes: UnsafeRawPointer, _ length: Int) -> Int {
        do {
            switch try Sys.write(fd, bytes, length) {
            case .done(let n): return n
            case .wouldBlock: return 0
            }
        } catch {
            return -1
        }
    }

    private func startDying(_ s: Int32) {
        conns[Int(s)].dying = true
        count(conns[Int(s)].backend) { $0.faultsHit &+= 1 }
        // The RST goes one tick later, so the partial answer leaves before it (SO_LINGER 0 drops unsent bytes).
        wheel.schedule(2 * s, at: MonotonicClock.now() + wheel.tickNanos)
        updateInterest(s)
    }

    private func connectionTimer(_ s: Int32) {
        guard Int(s) < conns.count, conns[Int(s)].fd >= 0 else { return }
        if conns[Int(s)].dying {
            close(s, reset: true)
            return
        }
        guard conns[Int(s)].holding else { return }
        let generation = conns[Int(s)].generation
        conns[Int(s)].holding = false
        pump(s)
        if alive(s, generation) { updateInterest(s) }
    }

    private func desiredInterest(_ s: Int32) -> UInt32 {
        let c = conns[Int(s)]
        if c.fault == .hang { return EpollEvents.readHangup }
        if c.holding || c.dying { return 0 }
        if c.outOffset < c.out.count { return EpollEvents.output }
        if settings.mode == .source {
            return c.inputClosed ? EpollEvents.output : EpollEvents.input | EpollEvents.output
        }
        return c.inputClosed ? 0 : EpollEvents.input
    }

    private func updateInterest(_ s: Int32) {
        let want = desiredInterest(s)
        guard want != conns[Int(s)].interest else { return }
        do {
            try epoll.modify(conns[Int(s)].fd, events: want, data: connectionToken(s))
            conns[Int(s)].interest = want
        } catch {
            close(s, reset: true)
        }
    }

    private func close(_ s: Int32, reset: Bool) {
        let fd = conns[Int(s)].fd
        guard fd >= 0 else { return }
        if reset { try? Sys.setLingerReset(fd) }
        Sys.close(fd)
        wheel.cancel(2 * s)
        let generation = conns[Int(s)].generation &+ 1
        conns[Int(s)] = Connection(fd: -1, generation: generation)
        freeSlots.append(s)
    }

    @inline(__always)
    private func count(_ b: Int32, _ body: (inout BackendCounters) -> Void) {
        loop.counters.withLock { body(&$0[Int(b)]) }
    }

    // MARK: control

    private func apply(_ command: LoopCommand) {
        switch command {
        case .kill(let b, let done):
            backends[Int(b)].killed = true
            backends[Int(b)].flapRefusing = false
            wheel.cancel(2 * b + 1)
            try? applyListener(b)  // closing cannot fail
            for s in conns.indices where conns[s].fd >= 0 && conns[s].backend == b {
                close(Int32(s), reset: true)
            }
            done.finish()
        case .restart(let b, let done):
            backends[Int(b)].killed = false
            backends[Int(b)].flapRefusing = false
            if backends[Int(b)].fault == .flap { wheel.schedule(2 * b + 1, at: MonotonicClock.now() + settings.flapNanos) }
            applyListener(b, reportingTo: done)
        case .setFault(let b, let fault, let done):
            backends[Int(b)].fault = fault
            backends[Int(b)].flapRefusing = false
            if fault == .flap && !backends[Int(b)].killed {
                wheel.schedule(2 * b + 1, at: MonotonicClock.now() + settings.flapNanos)
            } else {
                wheel.cancel(2 * b + 1)
            }
            applyListener(b, reportingTo: done)
        case .stop:
            running = false
        }
    }

    private func flapTimer(_ b: Int32) {
        guard Int(b) < backends.count, backends[Int(b)].fault == .flap, !backends[Int(b)].killed else { return }
        backends[Int(b)].flapRefusing.toggle()
        // A failed re-listen (the port taken meanwhile) is retried at the next flip.
        try? applyListener(b)
        wheel.schedule(2 * b + 1, at: MonotonicClock.now() + settings.flapNanos)
    }

    /// `applyListener(b)` for a control call: its outcome goes to the waiting caller.
    private func applyListener(_ b: Int32, reportingTo done: Completion) {
        do throws(SystemError) {
            try applyListener(b)
            done.finish()
        } catch {
            done.finish(error)
        }
    }

    /// Opens or closes backend `b`'s listener to match its state (killed, refusing, flapped shut).
    private func applyListener(_ b: Int32) throws(SystemError) {
        let backend = backends[Int(b)]
        let wanted = !backend.killed && backend.fault != .refuse && !(backend.fault == .flap && backend.flapRefusing)
        if wanted && backend.listenerFD < 0 {
            let fd: Int32
            if backend.parkedFD >= 0 {
                try Sys.listen(backend.parkedFD, backlog: FarmConfiguration.backlog)
                fd = backend.parkedFD
                backends[Int(b)].parkedFD = -1
            } else {
                fd = try Sockets.listen(on: backend.address, backlog: FarmConfiguration.backlog, reusePort: false)
            }
            backends[Int(b)].listenerFD = fd
            backends[Int(b)].listenerGeneration &+= 1
            do {
                try epoll.add(fd, events: EpollEvents.input, data: listenerToken(b))
            } catch {
                Sys.close(fd)
                backends[Int(b)].listenerFD = -1
                throw error
            }
        } else if !wanted && backend.listenerFD >= 0 {
            epoll.remove(backend.listenerFD)
            if (try? Sys.unlisten(backend.listenerFD)) != nil {
                backends[Int(b)].parkedFD = backend.listenerFD
            } else {
                Sys.close(backend.listenerFD)
            }
            backends[Int(b)].listenerFD = -1
            backends[Int(b)].listenerGeneration &+= 1
        }
    }

    /// Answers commands that arrived too late for a loop that has stopped: nothing left to do.
    static func finishAll(_ commands: [LoopCommand]) {
        for command in commands {
            switch command {
            case .kill(_, let done), .restart(_, let done), .setFault(_, _, let done): done.finish()
            case .stop: break
            }
        }
    }

    private func shutdownEverything() {
        Self.finishAll(loop.takeCommands(closing: true))
        for s in conns.indices where conns[s].fd >= 0 { close(Int32(s), reset: false) }
        for b in backends.indices where backends[b].parkedFD >= 0 {
            Sys.close(backends[b].parkedFD)
            backends[b].parkedFD = -1
        }
        for b in backends.indices where backends[b].listenerFD >= 0 {
            Sys.close(backends[b].listenerFD)
            backends[b].listenerFD = -1
        }
        if reserveFD >= 0 { Sys.close(reserveFD) }
        reserveFD = -1
    }
}
