import Glibc

/// The data path: per event, read from one side and write straight on to the other through the
/// worker's scratch buffer. Only a short write's leftover is kept (in a pooled buffer), and while a
/// direction holds leftovers its source is not read: that is the backpressure, and it costs no syscall.
extension Worker {
    @inline(__always) private static var readableEvents: UInt32 {
        EpollEvents.input | EpollEvents.priority | EpollEvents.readHangup | EpollEvents.hangup | EpollEvents.error
    }
    @inline(__always) private static var hangupEvents: UInt32 { EpollEvents.readHangup | EpollEvents.hangup }

    @inline(__always)
    private static func note(_ events: UInt32, on d: inout Direction) {
        d.readable = true
        if events & hangupEvents != 0 { d.sourceHup = true }
        if events & EpollEvents.error != 0 { d.sourceError = true }
        if events & EpollEvents.priority != 0 { d.urgent = true }
    }

    mutating func handlePairEvent(index: Int32, generation: UInt32, events: UInt32, fromBackend: Bool) {
        guard Int(index) < pairCapacity else { return }
        let p = pairs + Int(index)
        guard p.pointee.inUse, p.pointee.generation == generation else { return }  // stale: slot reused
        let readable = events & Self.readableEvents != 0

        switch p.pointee.lifecycle.phase {
        case .preamble:
            if !fromBackend { readPreamble(p, events: events) }

        case .connecting:
            if fromBackend {
                if events & (EpollEvents.error | EpollEvents.hangup) != 0 {
                    // Only the failure path asks why: EPOLLERR alone already says the connect failed.
                    let err = (try? K.socketError(p.pointee.backendFD)) ?? ECONNREFUSED
                    let failure = ConnectFailure(errno: err == 0 ? ECONNREFUSED : err)
                    execute(p, p.pointee.lifecycle.connectFailed(failure, now: now, settings: pairSettings(p)))
                } else if events & EpollEvents.output != 0 {
                    if readable { Self.note(events, on: &p.pointee.down) }
                    execute(p, p.pointee.lifecycle.connected(now: now, settings: pairSettings(p)))
                }
            } else {
                // The client's bytes wait in its socket until a backend accepts (no copy, no buffer).
                if events & EpollEvents.error != 0 {
                    execute(p, p.pointee.lifecycle.failed(.client))
                    return
                }
                if readable { Self.note(events, on: &p.pointee.up) }
            }

        case .forwarding:
            // Output first: draining a full destination may let its source be read in the same pass.
            if fromBackend {
                if events & EpollEvents.output != 0 && p.pointee.up.hasPending {
                    guard flush(p, upstream: true) else { return }
                }
                if readable {
                    Self.note(events, on: &p.pointee.down)
                    _ = pump(p, upstream: false)
                }
            } else {
                if events & EpollEvents.output != 0 && p.pointee.down.hasPending {
                    guard flush(p, upstream: false) else { return }
                }
                if readable {
                    Self.note(events, on: &p.pointee.up)
                    _ = pump(p, upstream: true)
                }
            }

        case .lingering:
            if !fromBackend && readable { _ = discardClientInput(p) }

        case .closed:
            break
        }
    }

    @inline(__always)
    private func direction(_ p: UnsafeMutablePointer<ConnectionPair>, upstream: Bool) -> UnsafeMutablePointer<Direction> {
        upstream ? p.pointer(to: \.up)! : p.pointer(to: \.down)!
    }

    /// Moves bytes from a direction's source to its destination until the source is drained, the
    /// destination is full, or the stream ends. Returns false when the pair was closed.
    mutating func pump(_ p: UnsafeMutablePointer<ConnectionPair>, upstream: Bool) -> Bool {
        let d = direction(p, upstream: upstream)
        if (d.pointee.hasPending && !K.plantedFaults.contains(.readPastLeftover)) || d.pointee.sourceEOF { return true }
        let src = upstream ? p.pointee.clientFD : p.pointee.backendFD
        let dst = upstream ? p.pointee.backendFD : p.pointee.clientFD
        let size = services[Int(p.pointee.service)].settings.bufferSize
        while true {
            if d.pointee.pipeRead >= 0 {
                // splice cannot read past an urgent mark (it returns EAGAIN there, or 0 once the FIN is
                // in): urgent data goes through recv, which keeps the byte in the stream (SO_OOBINLINE).
                if !d.pointee.urgent { return spliceStream(p, d, src: src, dst: dst, upstream: upstream) }
                returnPipe(d)
            }
            let n: Int
            do {
                switch try K.receive(src, scratch, size) {
                case .wouldBlock:
                    d.pointee.readable = false
                    d.pointee.fullReads = 0
                    d.pointee.urgent = false
                    return true
                case .done(let count): n = count
                }
            } catch {
                return execute(p, p.pointee.lifecycle.failed(upstream ? .client : .backend))
            }
            if n == 0 { return sourceEnded(p, d, upstream: upstream) }
            noteTraffic(p, upstream: upstream, bytes: n)
            let written: Int
            do {
                switch try K.write(dst, scratch, n) {
                case .wouldBlock: written = 0
                case .done(let w): written = w
                }
            } catch {
                return execute(p, p.pointee.lifecycle.failed(upstream ? .backend : .client))
            }
            if written < n {
                if !K.plantedFaults.contains(.dropLeftover) { keep(d, scratch + written, n - written) }
                return true
            }
            if n < size {
                // A short read drained the socket; with edge triggering the next byte brings a new event.
                // Except at an urgent mark, where a read stops early with bytes still queued behind it:
                // then only EAGAIN says the socket is drained.
                d.pointee.fullReads = 0
                if d.pointee.urgent { continue }
                if !d.pointee.sourceHup {
                    d.pointee.readable = false
                    return true
                }
                // The peer had already sent its FIN when epoll reported it, and nothing follows a FIN:
                // this short read took the last bytes, so the stream has ended without another read
                // returning 0. An error pending (a reset) is read out instead, to be passed on.
                if !d.pointee.sourceError { return sourceEnded(p, d, upstream: upstream) }
            } else if settings.splice && !d.pointee.urgent {
                d.pointee.fullReads &+= 1
                if d.pointee.fullReads >= settings.spliceAfterFullReads, let pipe = pipes.take() {
                    d.pointee.pipeRead = pipe.read
                    d.pointee.pipeWrite = pipe.write
                    shared.bump(.spliceSwitches)
                }
            }
        }
    }

    /// Bulk streams: bytes go source → pipe → destination inside the kernel, in larger chunks, without
    /// a copy through user space. The pipe goes back to the pool as soon as it is empty and the source
    /// has paused, so idle pairs hold none.
    ///
    /// A short splice does not mean the source is drained: a pipe has 16 slots, one per socket buffer
    /// fragment, so small segments (or sendfile's page fragments) fill it with fewer bytes than asked
    /// for. With edge-triggered epoll only EAGAIN says the socket is empty; stopping earlier left bytes
    /// in the socket with no event to come for them.
    private mutating func spliceStream(
        _ p: UnsafeMutablePointer<ConnectionPair>, _ d: UnsafeMutablePointer<Direction>, src: Int32, dst: Int32, upstream: Bool
    ) -> Bool {
        let chunk = settings.spliceChunk
        while true {
            let n: Int
            do {
                switch try K.splice(from: src, to: d.pointee.pipeWrite, count: chunk) {
                case .wouldBlock:
                    d.pointee.readable = false
                    returnPipe(d)
                    return true
                case .done(let count): n = count
                }
            } catch {
                return execute(p, p.pointee.lifecycle.failed(upstream ? .client : .backend))
            }
            if n == 0 {
                // The end of the stream, or an urgent mark with the FIN behind it, which splice cannot
                // pass: one recv tells them apart (it returns 0 again only at the real end).
                returnPipe(d)
                return pump(p, upstream: upstream)
            }
            noteTraffic(p, upstream: upstream, bytes: n)
            d.pointee.piped += Int32(n)
            guard drainPipe(p, d, dst: dst) else { return false }
            if d.pointee.piped > 0 { return true }  // destination full: wait for its EPOLLOUT
        }
    }

    /// pipe → destination. Returns false when the pair was closed.
    private mutating func drainPipe(_ p: UnsafeMutablePointer<ConnectionPair>, _ d: UnsafeMutablePointer<Direction>, dst: Int32) -> Bool {
        while d.pointee.piped > 0 {
            do {
                switch try K.splice(from: d.pointee.pipeRead, to: dst, count: Int(d.pointee.piped)) {
                case .wouldBlock: return true
                case .done(let w):
                    if w == 0 { return true }
                    d.pointee.piped -= Int32(w)
                }
            } catch {
                return execute(p, p.pointee.lifecycle.failed(dst == p.pointee.clientFD ? .client : .backend))
            }
        }
        return true
    }

    private mutating func returnPipe(_ d: UnsafeMutablePointer<Direction>) {
        guard d.pointee.pipeRead >= 0, d.pointee.piped == 0 else { return }
        pipes.give((d.pointee.pipeRead, d.pointee.pipeWrite), empty: true)
        d.pointee.pipeRead = -1
        d.pointee.pipeWrite = -1
        d.pointee.fullReads = 0
    }

    @inline(__always)
    private mutating func noteTraffic(_ p: UnsafeMutablePointer<ConnectionPair>, upstream: Bool, bytes: Int) {
        p.pointee.lastActivity = now
        if upstream {
            p.pointee.bytesUp &+= bytes
            p.pointee.clientWaiting = true
        } else {
            if p.pointee.clientWaiting || p.pointee.bytesDown == 0 { backendAnswered(p.pointee.backend, of: p) }
            p.pointee.bytesDown &+= bytes
            p.pointee.clientWaiting = false
        }
    }

    /// Copies a short write's leftover into a pooled buffer (the direction holds none at this point).
    @inline(__always)
    private mutating func keep(_ d: UnsafeMutablePointer<Direction>, _ bytes: UnsafeMutableRawPointer, _ count: Int) {
        let buffer = d.pointee.buffer ?? buffers.take()
        buffer.copyMemory(from: bytes, byteCount: count)
        d.pointee.buffer = buffer
        d.pointee.start = 0
        d.pointee.end = Int32(count)
    }

    /// The destination became writable: deliver what is kept, then go back to reading the source.
    mutating func flush(_ p: UnsafeMutablePointer<ConnectionPair>, upstream: Bool) -> Bool {
        let d = direction(p, upstream: upstream)
        let dst = upstream ? p.pointee.backendFD : p.pointee.clientFD
        if d.pointee.end > d.pointee.start, let buffer = d.pointee.buffer {
            let count = Int(d.pointee.end - d.pointee.start)
            do {
                switch try K.write(dst, buffer + Int(d.pointee.start), count) {
                case .wouldBlock: return true
                case .done(let w):
                    d.pointee.start += Int32(w)
                    if w < count { return true }
                }
            } catch {
                return execute(p, p.pointee.lifecycle.failed(upstream ? .backend : .client))
            }
            buffers.give(buffer)
            d.pointee.buffer = nil
            d.pointee.start = 0
            d.pointee.end = 0
        }
        if d.pointee.piped > 0 {
            guard drainPipe(p, d, dst: dst) else { return false }
            if d.pointee.piped > 0 { return true }
        }
        if d.pointee.sourceEOF {
            returnPipe(d)
            return endDirectionIfDrained(p, upstream: upstream)
        }
        if d.pointee.readable || d.pointee.sourceHup || d.pointee.pipeRead >= 0 {
            return pump(p, upstream: upstream)
        }
        return true
    }

    /// The source sent its last byte: no more reads, the pipe (if any) goes back once empty, and the
    /// destination hears of it as soon as what is pending is delivered.
    @inline(__always)
    private mutating func sourceEnded(_ p: UnsafeMutablePointer<ConnectionPair>, _ d: UnsafeMutablePointer<Direction>, upstream: Bool) -> Bool {
        d.pointee.sourceEOF = true
        d.pointee.readable = false
        returnPipe(d)
        return endDirectionIfDrained(p, upstream: upstream)
    }

    /// EOF read and every byte delivered: tell the destination (shutdown) and the lifecycle.
    private mutating func endDirectionIfDrained(_ p: UnsafeMutablePointer<ConnectionPair>, upstream: Bool) -> Bool {
        let d = direction(p, upstream: upstream)
        guard d.pointee.sourceEOF, !d.pointee.hasPending, !d.pointee.shutdownSent else { return true }
        d.pointee.shutdownSent = true
        let otherEnded = upstream ? p.pointee.down.shutdownSent : p.pointee.up.shutdownSent
        if !otherEnded {
            // When the other direction has ended too the pair closes now: close says it all.
            let dst = upstream ? p.pointee.backendFD : p.pointee.clientFD
            do { try K.shutdownWrite(dst) } catch { return execute(p, p.pointee.lifecycle.failed(upstream ? .backend : .client)) }
        }
        if K.plantedFaults.contains(.closeOnHalfClose) {
            closePair(p, reset: false)
            return false
        }
        return execute(p, p.pointee.lifecycle.directionEnded(upstream: upstream, now: now, lastActivity: p.pointee.lastActivity, settings: pairSettings(p)))
    }
}
