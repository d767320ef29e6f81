import Glibc
import LoadBalancer
import Synchronization

/// Limits of an `HTTPServer`. The defaults suit an operator's API: small requests, a few clients.
public struct HTTPServerLimits: Sendable {
    /// Request line and headers together.
    public var maxHeadBytes = 8 * 1024
    public var maxBodyBytes = 64 * 1024
    /// Open connections at once; one more is answered 503 and closed.
    public var maxConnections = 64
    /// From a request's first byte to its last: a client slower than this gets 408 (slowloris).
    public var readTimeout: Duration = .seconds(5)
    /// How long a keep-alive connection may sit between requests.
    public var idleTimeout: Duration = .seconds(60)
    /// How long a response may take to be accepted by a slow reader.
    public var writeTimeout: Duration = .seconds(10)
    /// Nice value of the server's thread (0: as the process). The admin server runs at 10 so that,
    /// on busy cores, a scrape waits for the data workers and not the other way round.
    public var threadNice: Int32 = 0

    public init() {}
}

/// A small HTTP/1.1 server (RFC 9112) for operators' endpoints, on its own thread and its own epoll
/// loop, never a data worker's. Keep-alive and pipelining; every request bounded (head, body, time);
/// malformed ones get a 4xx naming what was wrong, then the connection closes.
///
/// The handler runs on the server's thread, one request at a time, and must not block for long.
/// Used by `lb --admin` and by `fakebackends --control`.
public final class HTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequestHead) -> HTTPResponse
    /// Called on the server's thread about every `tickInterval` (sampling rates, for example).
    public typealias Tick = @Sendable () -> Void

    /// The bound address (port resolved when 0 was asked).
    public let address: SocketAddress
    public let limits: HTTPServerLimits
    private let handler: Handler
    private let tick: (interval: UInt64, body: Tick)?
    private let listenerFD: Int32
    private let wakeFD: Int32
    private let thread = Mutex<OSThread?>(nil)
    /// Connections refused at the cap, requests answered 4xx: for tests and the operator.
    public let refusedAtCap = Atomic<Int>(0)
    public let rejectedRequests = Atomic<Int>(0)

    private init(address: SocketAddress, limits: HTTPServerLimits, tick: (UInt64, Tick)?, handler: @escaping Handler, listenerFD: Int32, wakeFD: Int32) {
        self.address = address
        self.tick = tick.map { (interval: $0.0, body: $0.1) }
        self.limits = limits
        self.handler = handler
        self.listenerFD = listenerFD
        self.wakeFD = wakeFD
    }

    deinit { stop() }

    /// Binds `address` and starts serving. Throws the bind error (errno and address) before any thread starts.
    public static func start(
        on address: SocketAddress, limits: HTTPServerLimits = HTTPServerLimits(), tickInterval: Duration = .seconds(1), onTick: Tick? = nil,
        handler: @escaping Handler
    ) throws(SystemError) -> HTTPServer {
        let listener = try Sockets.listen(on: address, backlog: 64, reusePort: false)
        let wake: Int32
        let bound: SocketAddress
        do throws(SystemError) {
            bound = try Sys.localAddress(of: listener)
            wake = try Sys.eventFD()
        } catch {
            Sys.close(listener)
            throw error
        }
        let tick = onTick.map { (max(tickInterval.nanoseconds, 1_000_000), $0) }
        let server = HTTPServer(address: bound, limits: limits, tick: tick, handler: handler, listenerFD: listener, wakeFD: wake)
        do throws(SystemError) {
            let handle = try OSThread.spawn { server.serve() }
            server.thread.withLock { $0 = handle }
        } catch {
            Sys.close(listener)
            Sys.close(wake)
            throw error
        }
        return server
    }

    /// Stops serving, closes every connection and joins the thread. Idempotent.
    public func stop() {
        guard let handle = thread.withLock({ t -> OSThread? in
            let h = t
            t = nil
            return h
        }) else { return }
        Sys.signalEventFD(wakeFD)
        handle.join()
        Sys.close(listenerFD)
        Sys.close(wakeFD)
    }

    // MARK: the loop (the server's own thread)

    private func serve() {
        if limits.threadNice != 0 { Sys.lowerThisThreadPriority(nice: limits.threadNice) }
        guard var loop = try? ServerLoop(listenerFD: listenerFD, wakeFD: wakeFD, limits: limits) else { return }
        loop.run(handler: handler, tick: tick, server: self)
    }
}

/// One connection of the server: plain state in the loop's table.
struct ServerConnection {
    var fd: Int32 = -1
    var generation: UInt32 = 0
    var parser: HTTPRequestParser
    var output: [UInt8] = []
    var outputOffset = 0
    /// Close once `output` is written (Connection: close, or an error answered).
    var closeAfterWrite = false
    /// Output written and our side shut: reading and dropping what the client still sends, so the
    /// close does not reset away the answer it has not read yet.
    var lingering = false
    var deadline: UInt64 = 0
    var wantsOutput = false

    init(fd: Int32, generation: UInt32, limits: HTTPServerLimits) {
        self.fd = fd
        self.generation = generation
        parser = HTTPRequestParser(maxHeadBytes: limits.maxHeadBytes, maxBodyBytes: limits.maxBodyBytes, keepBodies: true)
    }
}

struct ServerLoop: ~Copyable {
    static let wakeTag: UInt64 = 0
    static let listenerTag: UInt64 = 1
    let epoll: Epoll
    let listenerFD: Int32
    let wakeFD: Int32
    let limits: HTTPServerLimits
    var slots: [ServerConnection?]
    var generations: [UInt32]
    var open = 0
    let buffer: UnsafeMutableRawPointer
    let bufferSize = 16 * 1024

    init(listenerFD: Int32, wakeFD: Int32, limits: HTTPServerLimits) throws(SystemError) {
        let epoll = try Epoll(capacity: 64)
        try epoll.add(wakeFD, events: EpollEvents.input, data: Self.wakeTag)
        try epoll.add(listenerFD, events: EpollEvents.input, data: Self.listenerTag)
        self.epoll = epoll
        self.listenerFD = listenerFD
        self.wakeFD = wakeFD
        self.limits = limits
        slots = Array(repeating: nil, count: limits.maxConnections)
        generations = Array(repeating: 0, count: limits.maxConnections)
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit {
        for case let c? in slots { Sys.close(c.fd) }
        buffer.deallocate()
    }

    static func tag(_ slot: Int, _ generation: UInt32) -> UInt64 { 2 | UInt64(slot) << 2 | UInt64(generation) << 32 }

    mutating func run(handler: HTTPServer.Handler, tick: (interval: UInt64, body: HTTPServer.Tick)?, server: HTTPServer) {
        var nextTick = MonotonicClock.now() + (tick?.interval ?? 0)
        while true {
            var now = MonotonicClock.now()
            if let tick, now >= nextTick {
                tick.body()
                now = MonotonicClock.now()
                nextTick = max(nextTick + tick.interval, now - tick.interval / 2)
            }
            var nearest: UInt64 = tick == nil ? .max : nextTick
            for case let c? in slots { nearest = min(nearest, c.deadline) }
            let timeout: Int32 = nearest == .max ? -1 : (nearest <= now ? 0 : Int32(min((nearest - now) / 1_000_000 + 1, 60_000)))
            guard let n = try? epoll.wait(timeoutMs: timeout) else { return }
            for i in 0..<n {
                let event = epoll.events[i]
                switch event.data {
                case Self.wakeTag: return
                case Self.listenerTag: acceptAll(server: server)
                default:
                    let slot = Int((event.data >> 2) & 0x3FFF_FFFF)
                    let generation = UInt32(truncatingIfNeeded: event.data >> 32)
                    guard slot < slots.count, let c = slots[slot], c.generation == generation else { continue }
                    handleEvent(slot, event.events, handler: handler, server: server)
                }
            }
            expire(server: server)
        }
    }

    private mutating func acceptAll(server: HTTPServer) {
        while true {
            guard case .done(let raw)? = try? Sys.accept(listenerFD, peer: nil) else { return }
            let fd = Int32(raw)
            guard let slot = slots.firstIndex(where: { $0 == nil }) else {
                // At the cap: say so in one write (it fits any socket buffer) and close.
                server.refusedAtCap.add(1, ordering: .relaxed)
                let bytes = HTTPResponse(status: 503, text: "too many admin connections (\(limits.maxConnections))").serialized(keepAlive: false)
                bytes.withUnsafeBytes { raw in _ = try? Sys.write(fd, raw.baseAddress!, raw.count) }
                _ = try? Sys.shutdownWrite(fd)
                Sys.close(fd)
                continue
            }
            generations[slot] &+= 1
            var c = ServerConnection(fd: fd, generation: generations[slot], limits: limits)
            c.deadline = MonotonicClock.now() + limits.idleTimeout.nanoseconds
            do {
                try epoll.add(fd, events: EpollEvents.input | EpollEvents.readHangup, data: Self.tag(slot, c.generation))
            } catch {
                Sys.close(fd)
                continue
            }
            slots[slot] = c
            open += 1
        }
    }

    private mutating func close(_ slot: Int) {
        guard let c = slots[slot] else { return }
        epoll.remove(c.fd)
        Sys.close(c.fd)
        slots[slot] = nil
        open -= 1
    }

    private mutating func handleEvent(_ slot: Int, _ events: UInt32, handler: HTTPServer.Handler, server: HTTPServer) {
        if events & EpollEvents.output != 0 {
            guard flush(slot) else { return }
        }
        if events & (EpollEvents.input | EpollEvents.readHangup | EpollEvents.hangup | EpollEvents.error) != 0 {
            readAndAnswer(slot, handler: handler, server: server)
        }
    }

    /// Reads what is there, answers every complete request. While output waits, reading pauses
    /// (backpressure: a client that does not read its answers cannot make the server grow).
    private mutating func readAndAnswer(_ slot: Int, handler: HTTPServer.Handler, server: HTTPServer) {
        guard var c = slots[slot] else { return }
        if c.outputOffset < c.output.count { return }
        let result: IOResult
        do {
            result = try Sys.receive(c.fd, buffer, bufferSize)
        } catch {
            close(slot)
            return
        }
        guard case .done(let n) = result else { return }
        if n == 0 {
            // The client finished. A half-received request can never complete: drop the connection.
            close(slot)
            return
        }
        if c.lingering { return }
        let wasIdle = c.parser.isIdle
        var requests: [HTTPRequestHead] = []
        var failure: HTTPRequestParser.Failure?
        do throws(HTTPRequestParser.Failure) {
            try c.parser.feed(UnsafeRawBufferPointer(start: buffer, count: n)) { requests.append($0) }
        } catch {
            failure = error
        }
        let now = MonotonicClock.now()
        for request in requests where !c.closeAfterWrite {
            var response = handler(request)
            if request.method == "HEAD" && response.status == 405 { response = HTTPResponse(status: 405, text: "method not allowed") }
            c.output += response.serialized(keepAlive: request.keepAlive, head: request.method == "HEAD")
            if !request.keepAlive { c.closeAfterWrite = true }
        }
        if let failure, !c.closeAfterWrite {
            server.rejectedRequests.add(1, ordering: .relaxed)
            c.output += HTTPResponse.jsonError(failure.status, failure.description).serialized(keepAlive: false)
            c.closeAfterWrite = true
        }
        if c.closeAfterWrite || !c.output.isEmpty {
            c.deadline = now + limits.writeTimeout.nanoseconds
        } else if wasIdle && !c.parser.isIdle {
            c.deadline = now + limits.readTimeout.nanoseconds  // a request began: it has this long to finish
        } else if c.parser.isIdle {
            c.deadline = now + limits.idleTimeout.nanoseconds
        }
        slots[slot] = c
        _ = flush(slot)
    }

    /// Writes pending output. Returns false when the connection was closed.
    private mutating func flush(_ slot: Int) -> Bool {
        guard var c = slots[slot] else { return false }
        while c.outputOffset < c.output.count {
            let result = c.output.withUnsafeBytes { raw in
                try? Sys.write(c.fd, raw.baseAddress! + c.outputOffset, raw.count - c.outputOffset)
            }
            switch result {
            case .done(let w)?: c.outputOffset += w
            case .wouldBlock?:
                if !c.wantsOutput {
                    c.wantsOutput = true
                    // Output only: the epoll is level-triggered, and input is not read while output waits.
                    try? epoll.modify(c.fd, events: EpollEvents.output, data: Self.tag(slot, c.generation))
                }
                slots[slot] = c
                return true
            case nil:
                close(slot)
                return false
            }
        }
        c.output.removeAll(keepingCapacity: c.output.capacity <= 64 * 1024)
        c.outputOffset = 0
        if c.wantsOutput {
            c.wantsOutput = false
            try? epoll.modify(c.fd, events: EpollEvents.input | EpollEvents.readHangup, data: Self.tag(slot, c.generation))
        }
        let now = MonotonicClock.now()
        if c.closeAfterWrite && !c.lingering {
            guard (try? Sys.shutdownWrite(c.fd)) != nil else {
                close(slot)
                return false
            }
            c.lingering = true
            c.deadline = now + 1_000_000_000
        } else if !c.closeAfterWrite {
            c.deadline = c.parser.isIdle ? now + limits.idleTimeout.nanoseconds : c.deadline
        }
        slots[slot] = c
        return true
    }

    /// Closes what overstayed: an unfinished request gets 408 first (and closes after it).
    private mutating func expire(server: HTTPServer) {
        let now = MonotonicClock.now()
        for slot in slots.indices {
            guard var c = slots[slot], c.deadline <= now else { continue }
            if !c.parser.isIdle && !c.closeAfterWrite && c.output.isEmpty {
                server.rejectedRequests.add(1, ordering: .relaxed)
                c.output = HTTPResponse.jsonError(408, "request not received within \(limits.readTimeout)").serialized(keepAlive: false)
                c.closeAfterWrite = true
                c.deadline = now + limits.writeTimeout.nanoseconds
                slots[slot] = c
                _ = flush(slot)
            } else {
                close(slot)
            }
        }
    }
}
