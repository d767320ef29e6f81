import CShim
import Glibc
import LoadBalancer
import Synchronization

/// State every worker reads; the atomics are the only things written by several threads.
final class RunShared: Sendable {
    /// Tickets handed out: a worker claims one before it starts a request, so `-n` holds exactly.
    let tickets = Atomic<Int>(0)
    /// `-n`, or `Int.max` when only a duration bounds the run.
    let limit: Int
    /// Published by workers once per loop pass, read by the progress line.
    let completed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// Monotonic start of the run and the duration's end (`.max` when none).
    let startNs: UInt64
    let endNs: UInt64
    /// Signalled by each worker as it finishes, so the main thread can wait and still draw progress.
    let doneFD: Int32

    init(limit: Int, startNs: UInt64, endNs: UInt64, doneFD: Int32) {
        self.limit = limit
        self.startNs = startNs
        self.endNs = endNs
        self.doneFD = doneFD
    }

    @inline(__always)
    func claim() -> Bool {
        if limit == .max { return true }
        return tickets.wrappingAdd(1, ordering: .relaxed).oldValue < limit
    }
}

/// Where a connection slot is in its request.
enum Phase: UInt8 {
    /// No request: waiting for a ticket or its scheduled start. The fd may stay open (keep-alive).
    case idle
    case connecting, sending, receiving
}

/// One of a worker's `-c` connections. Plain data in a flat pool; buffers are carved out of one
/// allocation per worker and never move.
struct Slot {
    var fd: Int32 = -1
    /// Bumped when the fd closes: an epoll event carrying an older generation is stale and dropped.
    var generation: UInt32 = 0
    var phase = Phase.idle
    /// When the request counts from (its scheduled start in open-loop mode), monotonic ns.
    var start: UInt64 = 0
    var sent = 0
    var received = 0
    var parser: HTTPResponseParser
    /// Echo payload of `size` bytes (nil in other modes).
    var payload: UnsafeMutablePointer<UInt8>?
}

/// One worker thread: its own epoll, timing wheel and share of the connections.
///
/// Concurrency: a worker is created on the calling thread, handed to exactly one new thread, and read
/// back (its `stats`) only after `pthread_join`, which orders those accesses. Hence `@unchecked Sendable`.
final class LoadWorker: @unchecked Sendable {
    let config: LoadConfiguration
    let shared: RunShared
    let slotCount: Int
    let slots: UnsafeMutablePointer<Slot>
    var epoll: Epoll
    var wheel: TimerWheel
    let storage: UnsafeMutableRawPointer
    let scratch: UnsafeMutableRawPointer
    static let scratchSize = 64 * 1024
    let request: UnsafeRawBufferPointer
    let requestLength: Int

    /// Slots waiting to start a request (closed loop) or idle for the next scheduled start (open loop).
    var ready: [Int32] = []
    var active = 0
    var stopped = false
    var cutOff = false

    // Open-loop pacing: one start every `interval` ns, from `nextStart`.
    let interval: UInt64
    var nextStart: UInt64

    // Counters, merged into a LoadReport at the end. Arrays, not dictionaries, on the hot path.
    var stats = LoadReport()
    var errorCounts = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
    var statusCounts = [Int](repeating: 0, count: 1000)
    var histogram = LatencyHistogram()
    var backendTable = BackendTable()
    var publishedCompleted = 0
    var publishedFailed = 0
    var finishedAt: UInt64 = 0

    static let lineCapacity = 1024
    static let backendCapacity = 256

    init(index: Int, slots slotCount: Int, config: LoadConfiguration, shared: RunShared) throws(SystemError) {
        self.config = config
        self.shared = shared
        self.slotCount = slotCount
        epoll = try Epoll(capacity: Int32(min(slotCount + 1, 1024)))
        let tick: Duration = config.timeout < .seconds(2) ? .milliseconds(1) : .milliseconds(10)
        wheel = TimerWheel(tick: tick, slots: 4096, capacity: slotCount, now: MonotonicClock.now())

        // The request, built once.
        var text = ""
        if config.mode == .http {
            text = "GET \(config.target.path) HTTP/1.1\r\nHost: \(config.target.hostHeader)\r\nUser-Agent: loadgen\r\nAccept: */*\r\n"
            if !config.keepAlive { text += "Connection: close\r\n" }
            text += "\r\n"
        }
        let bytes = Array(text.utf8)
        let req = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        req.copyBytes(from: bytes)
        request = UnsafeRawBufferPointer(req)
        requestLength = config.mode == .echo ? config.size : bytes.count

        // One allocation for every slot's buffers: header line, X-Backend value, echo payload.
        let payloadSize = config.mode == .echo ? config.size : 0
        let perSlot = Self.lineCapacity + Self.backendCapacity + payloadSize
        storage = .allocate(byteCount: max(perSlot * slotCount, 1), alignment: 64)
        scratch = .allocate(byteCount: Self.scratchSize, alignment: 64)
        slots = .allocate(capacity: slotCount)
        var rng = SplitMix64(seed: 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1))
        for i in 0..<slotCount {
            let base = (storage + i * perSlot).assumingMemoryBound(to: UInt8.self)
            let parser = HTTPResponseParser(
                line: UnsafeMutableBufferPointer(start: base, count: Self.lineCapacity),
                backend: UnsafeMutableBufferPointer(start: base + Self.lineCapacity, count: Self.backendCapacity))
            var payload: UnsafeMutablePointer<UInt8>?
            if payloadSize > 0 {
                let p = base + Self.lineCapacity + Self.backendCapacity
                rng.fill(p, count: payloadSize)
                payload = p
            }
            (slots + i).initialize(to: Slot(parser: parser, payload: payload))
        }
        ready.reserveCapacity(slotCount)
        for i in (0..<slotCount).reversed() { ready.append(Int32(i)) }

        if let rate = config.rate, rate > 0 {
            let mine = rate * Double(slotCount) / Double(max(config.concurrency, 1))
            interval = UInt64(max(1, (1e9 / mine).rounded()))
        } else {
            interval = 0
        }
        nextStart = shared.startNs
    }

    deinit {
        for i in 0..<slotCount where slots[i].fd >= 0 { Sys.close(slots[i].fd) }
        slots.deinitialize(count: slotCount)
        slots.deallocate()
        storage.deallocate()
        scratch.deallocate()
        request.deallocate()
    }

    // MARK: the loop

    func run() {
        var now = MonotonicClock.now()
        while true {
            if now >= shared.endNs { stopped = true; cutOff = true }
            if !cutOff { startRequests(now: now) }
            if cutOff || (stopped && active == 0) { break }

            var timeout = wheel.millisecondsUntilNext(now: now)
            if !ready.isEmpty && !stopped {
                // Open loop: wake for the next scheduled start. Closed loop: slots are waiting now.
                let wait: Int32 = interval == 0 ? 0 : Self.millis(from: now, to: nextStart)
                timeout = timeout < 0 ? wait : min(timeout, wait)
            }
            if shared.endNs != .max {
                let wait = Self.millis(from: now, to: shared.endNs)
                timeout = timeout < 0 ? wait : min(timeout, wait)
            }
            let n: Int
            do throws(SystemError) {
                n = try epoll.wait(timeoutMs: timeout)
            } catch {
                // epoll_wait fails only on programming errors (EBADF, EINVAL): end the run, do not spin.
                break
            }
            for e in 0..<n {
                let event = epoll.events[e]
                let id = Int(truncatingIfNeeded: event.data & 0xFFFF_FFFF)
                let generation = UInt32(truncatingIfNeeded: event.data >> 32)
                guard id < slotCount, slots[id].generation == generation, slots[id].fd >= 0 else { continue }
                if slots[id].phase == .idle {
                    idleEvent(id)
                } else {
                    drive(id, events: event.events)
                }
            }
            now = MonotonicClock.now()
            while let id = wheel.popExpired(now: now) {
                if slots[Int(id)].phase != .idle { finish(Int(id), .timeout, now: now) }
            }
            publish()
        }
        // Cut off or done: close every connection still open; in-flight requests are not counted.
        for i in 0..<slotCount where slots[i].fd >= 0 { closeSlot(i) }
        finishedAt = MonotonicClock.now()
        publish()
        collect()
    }

    static func millis(from now: UInt64, to deadline: UInt64) -> Int32 {
        if deadline <= now { return 0 }
        return Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
    }

    /// Hands tickets to waiting slots: all of them in closed loop, by the schedule in open loop.
    private func startRequests(now: UInt64) {
        if stopped {
            // No more work: close idle keep-alive connections so the server sees a clean end.
            while let id = ready.popLast() { if slots[Int(id)].fd >= 0 { closeSlot(Int(id)) } }
            return
        }
        if interval == 0 {
            // Only the slots waiting now: one that fails at once (refused) waits for the next pass,
            // so an unreachable target cannot keep this loop from reading the clock.
            var budget = ready.count
            while budget > 0, let id = ready.popLast() {
                budget -= 1
                guard shared.claim() else { stopped = true; ready.append(id); return }
                startRequest(Int(id), start: now, now: now)
            }
        } else {
            while nextStart <= now, !ready.isEmpty {
                guard shared.claim() else { stopped = true; return }
                let id = ready.removeLast()
                startRequest(Int(id), start: nextStart, now: now)
                nextStart += interval
            }
        }
    }

    // MARK: one request

    private func startRequest(_ id: Int, start: UInt64, now: UInt64) {
        stats.requested += 1
        active += 1
        slots[id].start = start
        slots[id].sent = 0
        slots[id].received = 0
        slots[id].parser.reset()
        // The timeout counts from the actual start: a request queued behind a busy schedule is late,
        // and that shows in its latency, but it is not cut short for it.
        wheel.schedule(Int32(id), at: now + config.timeout.nanoseconds)
        if slots[id].fd >= 0 {
            slots[id].phase = .sending
            drive(id, events: EpollEvents.output)
            return
        }
        let fd: Int32
        do throws(SystemError) {
            fd = try Sys.socket(family: config.target.address.family)
        } catch {
            finish(id, LoadErrorKind(errno: error.errno), now: now)
            return
        }
        slots[id].fd = fd
        slots[id].generation &+= 1
        do throws(SystemError) {
            if config.mode != .connect { try Sys.setNoDelay(fd) }
            let result = try Sys.connect(fd, to: config.target.address)
            let data = UInt64(slots[id].generation) << 32 | UInt64(id)
            try epoll.add(fd, events: EpollEvents.input | EpollEvents.output | EpollEvents.readHangup | EpollEvents.edgeTriggered, data: data)
            if result == .connected {
                connected(id, now: now)
            } else {
                slots[id].phase = .connecting
            }
        } catch {
            finish(id, LoadErrorKind(errno: error.errno), now: now)
        }
    }

    private func connected(_ id: Int, now: UInt64) {
        stats.connections += 1
        if config.mode == .connect {
            finish(id, nil, now: now)
            return
        }
        slots[id].phase = .sending
        drive(id, events: EpollEvents.output)
    }

    /// Moves a request on as far as the socket allows, after an event (edge-triggered: every read and
    /// write is tried until it would block, or the request ends).
    private func drive(_ id: Int, events: UInt32) {
        let fd = slots[id].fd
        if slots[id].phase == .connecting {
            if events & (EpollEvents.error | EpollEvents.hangup) != 0 {
                let err = (try? Sys.socketError(fd)) ?? 0
                finish(id, err == 0 ? .other : LoadErrorKind(errno: err), now: MonotonicClock.now())
                return
            }
            guard events & EpollEvents.output != 0 else { return }
            connected(id, now: MonotonicClock.now())
            return  // `connected` drives the next phase itself
        }
        if slots[id].phase == .sending {
            let source = config.mode == .echo ? UnsafeRawPointer(slots[id].payload!) : request.baseAddress!
            while slots[id].sent < requestLength {
                do throws(SystemError) {
                    switch try Sys.write(fd, source + slots[id].sent, requestLength - slots[id].sent) {
                    case .done(let n):
                        slots[id].sent += n
                        stats.bytesSent += n
                    case .wouldBlock:
                        break
                    }
                } catch {
                    finish(id, LoadErrorKind(errno: error.errno), now: MonotonicClock.now())
                    return
                }
                if slots[id].sent < requestLength { break }  // would block: wait for EPOLLOUT
            }
            if slots[id].sent == requestLength { slots[id].phase = .receiving }
            // Echo reads while it still sends: a large payload would otherwise fill both directions.
            if slots[id].phase == .sending && config.mode != .echo { return }
        }
        // Read only when epoll said so. Edge-triggered, every readable edge is read until EAGAIN or the
        // end of the response, so nothing is missed; reading straight after a send would almost always
        // be a wasted EAGAIN syscall per request.
        if events & (EpollEvents.input | EpollEvents.error | EpollEvents.hangup | EpollEvents.readHangup) != 0 {
            receive(id)
        }
    }

    private func receive(_ id: Int) {
        let fd = slots[id].fd
        while true {
            let n: Int
            do throws(SystemError) {
                switch try Sys.receive(fd, scratch, Self.scratchSize) {
                case .done(let count): n = count
                case .wouldBlock: return
                }
            } catch {
                finish(id, LoadErrorKind(errno: error.errno), now: MonotonicClock.now())
                return
            }
            if n == 0 {
                endOfStream(id)
                return
            }
            stats.bytesReceived += n
            if config.mode == .echo {
                let start = slots[id].received
                guard start + n <= config.size,
                      memcmp(scratch, slots[id].payload! + start, n) == 0
                else {
                    finish(id, .mismatch, now: MonotonicClock.now())
                    return
                }
                slots[id].received += n
                if slots[id].received == config.size && slots[id].sent == config.size {
                    finish(id, nil, now: MonotonicClock.now())
                    return
                }
            } else {
                slots[id].received += n
                let (_, outcome) = slots[id].parser.feed(UnsafeRawBufferPointer(start: scratch, count: n))
                switch outcome {
                case .needMore: continue
                case .complete:
                    responseComplete(id)
                    return
                case .invalid:
                    finish(id, .other, now: MonotonicClock.now())
                    return
                }
            }
        }
    }

    private func endOfStream(_ id: Int) {
        if config.mode == .http && slots[id].parser.endOfStream() {
            responseComplete(id)
        } else {
            finish(id, .shortRead, now: MonotonicClock.now())
        }
    }

    private func responseComplete(_ id: Int) {
        let status = slots[id].parser.status
        statusCounts[min(status, statusCounts.count - 1)] += 1
        let backend = slots[id].parser.backend
        if !backend.isEmpty { backendTable.count(backend) }
        finish(id, (200..<300).contains(status) ? nil : .status, now: MonotonicClock.now(),
               keep: !slots[id].parser.closesConnection)
    }

    /// Ends the request: records it, then either keeps the connection (keep-alive, clean success) or
    /// closes it, and queues the slot for its next request.
    private func finish(_ id: Int, _ error: LoadErrorKind?, now: UInt64, keep: Bool = true) {
        let latency = now >= slots[id].start ? now - slots[id].start : 0
        histogram.record(latency)
        stats.completed += 1
        if let error {
            errorCounts[error.index] += 1
        } else {
            stats.succeeded += 1
        }
        active -= 1
        wheel.cancel(Int32(id))
        slots[id].phase = .idle
        let reusable = config.keepAlive && config.mode != .connect && keep
            && (error == nil || error == .status)
        if !reusable && slots[id].fd >= 0 { closeSlot(id) }
        ready.append(Int32(id))
    }

    /// An event on a kept-alive connection between requests: the server closed it, or sent junk.
    private func idleEvent(_ id: Int) {
        switch try? Sys.receive(slots[id].fd, scratch, Self.scratchSize) {
        case .wouldBlock?: return
        default: closeSlot(id)  // EOF, error, or unasked-for bytes: start afresh next time
        }
    }

    private func closeSlot(_ id: Int) {
        Sys.close(slots[id].fd)  // closing also removes it from the epoll set
        slots[id].fd = -1
        slots[id].generation &+= 1
        if slots[id].phase != .idle {
            wheel.cancel(Int32(id))
            slots[id].phase = .idle
            active -= 1
        }
    }

    private func publish() {
        let failed = stats.completed - stats.succeeded
        if stats.completed != publishedCompleted {
            shared.completed.wrappingAdd(stats.completed - publishedCompleted, ordering: .relaxed)
            publishedCompleted = stats.completed
        }
        if failed != publishedFailed {
            shared.failed.wrappingAdd(failed - publishedFailed, ordering: .relaxed)
            publishedFailed = failed
        }
    }

    /// Turns the hot-path arrays into the report's dictionaries.
    private func collect() {
        for kind in LoadErrorKind.allCases where errorCounts[kind.index] > 0 {
            stats.errors[kind] = errorCounts[kind.index]
        }
        for (code, n) in statusCounts.enumerated() where n > 0 { stats.statusCodes[code] = n }
        stats.latency = histogram
        stats.backends = backendTable.dictionary()
    }
}

/// X-Backend values seen by one worker, counted without building a String per response: a 64-bit
/// FNV-1a hash finds the entry and the bytes are compared to confirm it.
struct BackendTable {
    var index: [UInt64: Int] = [:]
    var names: [[UInt8]] = []
    var counts: [Int] = []
    var overflow: [String: Int] = [:]  // hash collisions, in practice never

    mutating func count(_ value: UnsafeBufferPointer<UInt8>) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in value { hash = (hash ^ UInt64(b)) &* 0x100_0000_01B3 }
        if let i = index[hash] {
            if names[i].elementsEqual(value) { counts[i] += 1 } else { overflow[String(decoding: value, as: UTF8.self), default: 0] += 1 }
            return
        }
        index[hash] = names.count
        names.append(Array(value))
        counts.append(1)
    }

    func dictionary() -> [String: Int] {
        var d = overflow
        for (i, name) in names.enumerated() { d[String(decoding: name, as: UTF8.self), default: 0] += counts[i] }
        return d
    }
}
