import LoadBalancer

/// A simulated backend server: a listener whose answer to SYNs follows a schedule (up, refusing, a
/// black hole), and one `SimBackendConnection` per accepted connection, each with a behaviour drawn
/// from the seed.
public final class SimBackend: SimActor {
    public enum Mode: Sendable { case up, refusing, blackHole }
    public enum Behaviour: CaseIterable, Sendable {
        /// Reads the upload, sends the download, FIN, closes after the client's FIN.
        case serve
        /// Resets the connection as soon as it is accepted.
        case resetAfterAccept
        /// Sends part of the download, then resets.
        case dieMidStream
        /// Accepts and never reads or writes.
        case silent
        /// Reads slowly.
        case slowReader
    }

    public let address: SocketAddress
    public internal(set) var mode: Mode = .up
    var listener: SimSocket!
    unowned let run: SimulationRun
    /// The behaviours this backend draws from (weights by repetition).
    let behaviours: [Behaviour]
    public internal(set) var connections: [SimBackendConnection] = []
    /// Connect attempts this backend refused or ignored (what lb may count against it).
    public internal(set) var failedAttempts = 0

    init(id: Int, address: SocketAddress, behaviours: [Behaviour], run: SimulationRun) {
        self.address = address
        self.behaviours = behaviours
        self.run = run
        super.init(id: id)
    }

    override public func step(_ world: SimWorld, token: Int) {
        while let s = world.peerAccept(listener, actor: self) {
            // Once faults stop (`quietAt`), a backend serves every connection well.
            let behaviour = world.clock >= run.quietAt ? .serve : world.pick(behaviours)
            let c = SimBackendConnection(id: connections.count, backend: self, socket: s, behaviour: behaviour, run: run)
            s.actor = c
            connections.append(c)
            c.step(world, token: -1)
        }
    }
}

public final class SimBackendConnection: SimActor {
    public let behaviour: SimBackend.Behaviour
    unowned let backend: SimBackend
    unowned let run: SimulationRun
    let socket: SimSocket
    var header = [UInt8](repeating: 0, count: SimHello.size)
    private(set) var hello: SimHello?
    /// Upload bytes read after the hello, download bytes written.
    public private(set) var upRead = 0
    public private(set) var downWritten = 0
    public private(set) var sawEOF = false
    public private(set) var sawReset = false
    public private(set) var sentFIN = false
    public private(set) var sentReset = false
    public private(set) var closed = false
    var headerRead = 0
    var pausedUntil: UInt64 = 0
    var echoPending: [UInt8] = []
    var dieAt = 0

    init(id: Int, backend: SimBackend, socket: SimSocket, behaviour: SimBackend.Behaviour, run: SimulationRun) {
        self.backend = backend
        self.socket = socket
        self.behaviour = behaviour
        self.run = run
        super.init(id: id)
    }

    var keyUp: UInt64 = 0
    var keyDown: UInt64 = 0

    func finish(_ world: SimWorld, reset: Bool) {
        guard !closed else { return }
        closed = true
        if reset {
            sentReset = true
            world.peerReset(socket)
        } else {
            world.peerClose(socket)
        }
    }

    override public func step(_ world: SimWorld, token: Int) {
        guard !closed else { return }
        switch behaviour {
        case .resetAfterAccept:
            finish(world, reset: true)
            return
        case .silent:
            if world.hasPendingError(socket) || socket.state == .closed {
                sawReset = true
                finish(world, reset: false)
            }
            return
        default:
            break
        }
        if token >= 0 && world.clock < pausedUntil { return }
        read(world)
        if closed { return }
        write(world)
        if closed { return }
        if sawEOF && sentFIN && echoPending.isEmpty { finish(world, reset: false) }
    }

    func read(_ world: SimWorld) {
        var buffer = world.takeReadBuffer()
        defer { world.readBuffer = buffer }
        while !closed && !sawEOF {
            if hello?.echo == true && !echoPending.isEmpty { return }  // echo paces reading by writing
            let want = headerRead < SimHello.size ? SimHello.size - headerRead
                : behaviour == .slowReader ? world.uniform(1...300) : buffer.count
            switch world.peerRead(socket, &buffer, want) {
            case .bytes(let n):
                if headerRead < SimHello.size {
                    for i in 0..<n { header[headerRead + i] = buffer[i] }
                    headerRead += n
                    if headerRead == SimHello.size {
                        guard let h = header.withUnsafeBufferPointer({ SimHello.decode($0.baseAddress!) }) else {
                            run.fail("backend \(backend.address): a connection began with bytes that are no hello (bytes from another stream)")
                            finish(world, reset: true)
                            return
                        }
                        hello = h
                        keyUp = UInt64(h.client) &* 2 &+ 1 &+ run.seedKey
                        keyDown = h.echo ? keyUp : UInt64(h.client) &* 2 &+ 2 &+ run.seedKey
                        run.backendGotHello(self, client: Int(h.client))
                        dieAt = Int(h.downLength) / 2
                    }
                    continue
                }
                let bad = buffer.withUnsafeBufferPointer { SimStream.firstMismatch($0.baseAddress!, key: keyUp, offset: upRead, count: n) }
                if let bad {
                    run.fail("backend \(backend.address) for client \(hello!.client): upload byte \(upRead + bad) is wrong (lost, reordered or duplicated bytes)")
                    finish(world, reset: true)
                    return
                }
                if hello!.echo { echoPending.append(contentsOf: buffer[0..<n]) }
                upRead += n
                if behaviour == .slowReader {
                    pausedUntil = world.clock + world.uniform(100_000, 5_000_000)
                    world.timer(self, after: pausedUntil - world.clock, token: 1)
                    return
                }
            case .end:
                sawEOF = true
                if let h = hello, let c = run.client(Int(h.client)), upRead != c.upTotal {
                    run.fail("backend \(backend.address) for client \(h.client): clean EOF after \(upRead) of \(c.upTotal) upload bytes: a truncated stream looked complete")
                }
            case .error:
                sawReset = true
                finish(world, reset: false)
                return
            case .wouldBlock:
                return
            }
        }
    }

    func write(_ world: SimWorld) {
        guard let h = hello, !sentFIN else { return }
        if h.echo {
            while !echoPending.isEmpty {
                let w = world.peerWrite(socket, &echoPending, echoPending.count)
                if w < 0 { sawReset = true; finish(world, reset: false); return }
                if w == 0 { return }
                echoPending.removeFirst(w)
                downWritten += w
            }
            if sawEOF {
                sentFIN = true
                world.peerShutdown(socket)
            } else if !echoPending.isEmpty {
                return
            } else {
                read(world)
            }
            return
        }
        var chunk = world.takeWriteBuffer()
        defer { world.writeBuffer = chunk }
        let total = Int(h.downLength)
        while downWritten < total {
            if behaviour == .dieMidStream && downWritten >= dieAt {
                finish(world, reset: true)
                return
            }
            var n = min(chunk.count, total - downWritten)
            if behaviour == .dieMidStream { n = max(1, min(n, dieAt - downWritten)) }
            chunk.withUnsafeMutableBufferPointer { SimStream.fill($0.baseAddress!, key: keyDown, offset: downWritten, count: n) }
            let w = world.peerWrite(socket, &chunk, n)
            if w < 0 { sawReset = true; finish(world, reset: false); return }
            if w == 0 { return }
            downWritten += w
        }
        if behaviour == .dieMidStream && total > 0 { finish(world, reset: true); return }
        sentFIN = true
        world.peerShutdown(socket)
    }
}
