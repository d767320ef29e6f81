import LoadBalancer

/// A simulated client: connects to the balancer, sends a hello and its upload, reads its download,
/// and checks every byte. Its behaviour is drawn from the seed.
public final class SimClient: SimActor {
    public enum Behaviour: CaseIterable, Sendable {
        /// Uploads, then FIN, reads the whole download, closes.
        case normal
        /// FIN right after the hello: the download must still flow (half-close).
        case halfCloseEarly
        /// Reads a few bytes at a time with pauses: lb must not buffer more than its bound.
        case slowReader
        /// Sends the hello and then nothing, reads nothing: lb's idle timeout ends it.
        case silent
        /// Resets part-way through its upload.
        case resetMidUpload
        /// Resets part-way through its download.
        case resetMidDownload
        /// Echo: the backend sends back what it reads, so the two directions pace each other.
        case echo
    }

    public let behaviour: Behaviour
    let target: SocketAddress
    let upTotal: Int
    public let downTotal: Int
    let resetAt: Int
    var socket: SimSocket?
    let hello: [UInt8]
    unowned let run: SimulationRun

    public private(set) var upWritten = 0
    public private(set) var downRead = 0
    public private(set) var sawEOF = false
    public private(set) var sawReset = false
    public private(set) var sentFIN = false
    public private(set) var sentReset = false
    public private(set) var refused = false
    public private(set) var badGateway = false
    public private(set) var closed = false
    var decided = false  // the first download bytes said: backend data, or lb's 502
    var pausedUntil: UInt64 = 0
    var connectedAt: UInt64 = 0

    let keyUp: UInt64
    let keyDown: UInt64

    init(id: Int, behaviour: Behaviour, target: SocketAddress, upTotal: Int, downTotal: Int, run: SimulationRun) {
        self.behaviour = behaviour
        self.target = target
        self.upTotal = behaviour == .halfCloseEarly ? 0 : upTotal
        self.downTotal = behaviour == .echo ? (behaviour == .halfCloseEarly ? 0 : upTotal) : downTotal
        self.run = run
        keyUp = UInt64(id) &* 2 &+ 1 &+ run.seedKey
        keyDown = behaviour == .echo ? keyUp : UInt64(id) &* 2 &+ 2 &+ run.seedKey
        resetAt = max(1, upTotal / 2)
        var h = [UInt8](repeating: 0, count: SimHello.size)
        let d = behaviour == .echo ? upTotal : downTotal
        SimHello(client: UInt32(id), downLength: UInt32(d), echo: behaviour == .echo).encode(into: &h)
        hello = h
        super.init(id: id)
    }

    func start(_ world: SimWorld) {
        socket = world.connect(from: self, to: target)
    }

    @inline(__always)
    func upByte(_ offset: Int) -> UInt8 {
        offset < SimHello.size ? hello[offset] : SimStream.byte(keyUp, offset - SimHello.size)
    }

    public var upLength: Int { SimHello.size + upTotal }

    override public func step(_ world: SimWorld, token: Int) {
        guard let s = socket, !closed else { return }
        if world.isConnecting(s) { return }
        if token >= 0 && world.clock < pausedUntil { return }
        upload(world, s)
        if closed { return }
        download(world, s)
    }

    func finish(_ world: SimWorld, _ s: SimSocket, reset: Bool) {
        guard !closed else { return }
        closed = true
        if reset {
            sentReset = true
            world.peerReset(s)
        } else {
            world.peerClose(s)
        }
    }

    func upload(_ world: SimWorld, _ s: SimSocket) {
        if behaviour == .silent && upWritten >= SimHello.size { return }
        var chunk = world.takeWriteBuffer()
        defer { world.writeBuffer = chunk }
        while upWritten < upLength && !sentReset {
            if behaviour == .resetMidUpload && upWritten >= SimHello.size + resetAt {
                finish(world, s, reset: true)
                return
            }
            var n = min(chunk.count, upLength - upWritten)
            if behaviour == .silent { n = min(n, SimHello.size - upWritten) }
            if behaviour == .resetMidUpload { n = min(n, SimHello.size + resetAt - upWritten) }
            chunk.withUnsafeMutableBufferPointer { c in
                var i = 0
                while i < n && upWritten + i < SimHello.size { c[i] = hello[upWritten + i]; i += 1 }
                if i < n { SimStream.fill(c.baseAddress! + i, key: keyUp, offset: upWritten + i - SimHello.size, count: n - i) }
            }
            let w = world.peerWrite(s, &chunk, n)
            if w < 0 {
                // The connection is gone: lb reset it (the error is reported once, here).
                sawReset = true
                finish(world, s, reset: false)
                return
            }
            if w == 0 { break }
            upWritten += w
        }
        if upWritten >= upLength && !sentFIN && behaviour != .silent && behaviour != .resetMidUpload {
            sentFIN = true
            world.peerShutdown(s)
        }
    }

    func download(_ world: SimWorld, _ s: SimSocket) {
        if behaviour == .silent {
            // Reads nothing; only a reset from lb ends it (seen without reading).
            if world.hasPendingError(s) || s.state == .closed {
                sawReset = true
                finish(world, s, reset: false)
            }
            return
        }
        var buffer = world.takeReadBuffer()
        defer { world.readBuffer = buffer }
        while !closed {
            let want = behaviour == .slowReader ? world.uniform(1...200) : buffer.count
            switch world.peerRead(s, &buffer, want) {
            case .bytes(let n):
                if !check(world, buffer, n) { return }
                if behaviour == .resetMidDownload && downRead >= downTotal / 2 && downTotal > 0 {
                    finish(world, s, reset: true)
                    return
                }
                if behaviour == .slowReader {
                    pausedUntil = world.clock + world.uniform(100_000, 5_000_000)
                    world.timer(self, after: pausedUntil - world.clock, token: 1)
                    return
                }
            case .end:
                sawEOF = true
                if !decided && !decide() { return }
                if badGateway && downRead != BadGateway.response.count {
                    run.fail("client \(id): clean EOF after \(downRead) bytes of the 502 answer")
                }
                if !badGateway && downRead != downTotal {
                    run.fail("client \(id) (\(behaviour)): clean EOF after \(downRead) of \(downTotal) download bytes: a truncated stream looked complete")
                }
                finishIfDone(world, s)
                return
            case .error:
                sawReset = true
                finish(world, s, reset: false)
                return
            case .wouldBlock:
                finishIfDone(world, s)
                return
            }
        }
    }

    func finishIfDone(_ world: SimWorld, _ s: SimSocket) {
        if sawEOF && (upWritten >= upLength || badGateway) { finish(world, s, reset: false) }
        else if sawEOF && behaviour == .silent { finish(world, s, reset: false) }
    }

    /// Download bytes not yet checked: the first 12 decide between backend data and lb's 502.
    var prefix: [UInt8] = []

    /// Checks download bytes against the stream (or against lb's 502 answer).
    func check(_ world: SimWorld, _ buffer: [UInt8], _ n: Int) -> Bool {
        if !decided {
            prefix.append(contentsOf: buffer[0..<n])
            if prefix.count < 12 { return true }
            return decide()
        }
        return verify(buffer, n)
    }

    /// "HTTP/1.1 502" against the stream's first 12 bytes (which match it with odds of 2^-96).
    func decide() -> Bool {
        decided = true
        let response = BadGateway.response
        badGateway = prefix.count >= 12 ? Array(prefix[0..<12]) == Array(response[0..<12]) : !prefix.isEmpty && prefix.elementsEqual(response.prefix(prefix.count))
        let bytes = prefix
        prefix = []
        return bytes.isEmpty || verify(bytes, bytes.count)
    }

    func verify(_ buffer: [UInt8], _ n: Int) -> Bool {
        if badGateway {
            let response = BadGateway.response
            for i in 0..<n where downRead + i >= response.count || buffer[i] != response[downRead + i] {
                run.fail("client \(id): bad 502 answer at byte \(downRead + i)")
                return false
            }
            downRead += n
            return true
        }
        if downRead + n > downTotal {
            run.fail("client \(id) (\(behaviour)): \(downRead + n) download bytes, more than the \(downTotal) sent (duplicated bytes)")
            return false
        }
        let bad = buffer.withUnsafeBufferPointer { SimStream.firstMismatch($0.baseAddress!, key: keyDown, offset: downRead, count: n) }
        if let bad {
            run.fail("client \(id) (\(behaviour)): download byte \(downRead + bad) is wrong (lost, reordered or duplicated bytes)")
            return false
        }
        downRead += n
        return true
    }
}
