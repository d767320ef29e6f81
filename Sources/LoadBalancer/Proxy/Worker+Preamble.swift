import Glibc

/// The preamble phase: a client that must first say who it is (`--accept-proxy`) or which server it
/// wants (`--server-name`: its TLS ClientHello) is read before a backend is picked, into one pooled buffer, bounded by the buffer's size and `--preamble-timeout`.
/// What follows the header in that buffer is the client's first bytes: they go to the backend once,
/// in the first write (after the PROXY header sent on, when `--proxy-protocol` is set), and the
/// buffer goes back to the pool as soon as they are delivered. Pairs that need no preamble never come
/// here, and pay one compare at accept and one at the start of forwarding.
extension Worker {
    @inline(__always) private static var preambleReadEvents: UInt32 { EpollEvents.input | EpollEvents.readHangup | EpollEvents.hangup | EpollEvents.error }

    /// At accept on `listener`: what this client's preamble must hold (0: nothing, the usual case).
    /// Returns nil when the client is refused: `--accept-proxy` and the peer is not trusted to send a
    /// header. It is closed with a reset at once (spec section 5: only known sources may use the
    /// protocol). A listener that routes by server name has its own preamble settings (the same for
    /// every service on it).
    mutating func preambleNeeds(clientFD fd: Int32, peer: SocketAddress, listener: Int) -> UInt8? {
        let acceptProxy: Bool, sni: UInt8
        if let route = listeners[listener].route {
            acceptProxy = route.acceptProxy
            sni = PreambleNeeds.serverName
        } else {
            acceptProxy = services[Int(listeners[listener].service)].settings.preamble.acceptProxy
            sni = 0
        }
        guard acceptProxy else { return sni }
        let trusted = listeners[listener].route?.trusted ?? services[Int(listeners[listener].service)].settings.preamble.trusted
        guard trusted.containsAddress(peer) else {
            _ = try? K.setLingerReset(fd)
            K.close(fd)
            shared.bump(.proxyUntrusted)
            return nil
        }
        return PreambleNeeds.proxyHeader | sni
    }

    /// An event on the client while its preamble is awaited: read what came, and decide once it is
    /// whole. Returns false when the pair was closed.
    @discardableResult
    mutating func readPreamble(_ p: UnsafeMutablePointer<ConnectionPair>, events: UInt32) -> Bool {
        guard events & Self.preambleReadEvents != 0 else { return true }
        let d = p.pointer(to: \.up)!
        let size = settings.bufferSize
        if d.pointee.buffer == nil {
            d.pointee.buffer = buffers.take()
            // Before routing, the service (and whether it sends a PROXY header) is not known: keep the room.
            let headroom = p.pointee.routeID != 0 ? ProxyProtocol.maxEncodedLength : service(p).pointee.settings.preamble.headroom
            d.pointee.start = Int32(headroom)
            d.pointee.end = d.pointee.start
        }
        let buffer = d.pointee.buffer!
        let hangup = events & (EpollEvents.readHangup | EpollEvents.hangup) != 0
        // Edge-triggered: this FIN or error is reported once, so forwarding must learn of it from here.
        if hangup { d.pointee.sourceHup = true }
        if events & EpollEvents.error != 0 { d.pointee.sourceError = true }
        var ended = false
        var drained = false
        while true {
            let room = size - Int(d.pointee.end)
            if room == 0 { break }
            do {
                switch try K.receive(p.pointee.clientFD, buffer + Int(d.pointee.end), room) {
                case .wouldBlock:
                    drained = true
                case .done(0):
                    ended = true
                case .done(let n):
                    d.pointee.end += Int32(n)
                    // A short read drained the socket, unless a FIN waits behind it: read that too.
                    if n == room || hangup { continue }
                    drained = true
                }
            } catch {
                return execute(p, p.pointee.lifecycle.failed(.client))
            }
            break
        }
        let full = Int(d.pointee.end) == size

        if p.pointee.preamble & PreambleNeeds.proxyHeader != 0 {
            let bytes = UnsafeRawBufferPointer(start: buffer + Int(d.pointee.start), count: Int(d.pointee.end - d.pointee.start))
            switch ProxyProtocol.parse(bytes, ended: ended) {
            case .needMore:
                if full { return rejectPreamble(p) }  // a header larger than the buffer
                return true  // the preamble timer is armed
            case .invalid:
                return rejectPreamble(p)
            case .ok(let header, let consumed):
                d.pointee.start += Int32(consumed)
                // LOCAL, UNKNOWN and unsupported families carry no address: the connection's stand.
                if let source = header.source, let destination = header.destination {
                    peers?[p - pairs] = source
                    locals?[p - pairs] = destination
                }
                p.pointee.preamble &= ~PreambleNeeds.proxyHeader
                // A pair to be routed is admitted by the service it is routed to (`route`).
                guard p.pointee.routeID != 0 || admitProxiedClient(p) else { return false }
            }
        }
        if p.pointee.preamble & PreambleNeeds.serverName != 0 {
            // After the PROXY header, if any: the ClientHello is the client's first bytes. It stays in
            // the buffer (it is for the backend); only its name is copied, into the scratch buffer.
            let bytes = UnsafeRawBufferPointer(start: buffer + Int(d.pointee.start), count: Int(d.pointee.end - d.pointee.start))
            let name = UnsafeMutableRawBufferPointer(start: scratch, count: ClientHello.maxNameLength)
            switch ClientHello.serverName(in: bytes, into: name, ended: ended) {
            case .needMore:
                if full { return rejectPreamble(p) }  // a ClientHello larger than the buffer
                return true
            case .invalid, .notTLS:
                return rejectPreamble(p)
            case .noSNI:
                guard let target = routeTarget(p, name: nil) else { return refuseServerName(p) }
                guard route(p, to: target) else { return false }
            case .ok(let length):
                guard let target = routeTarget(p, name: UnsafeRawBufferPointer(rebasing: name[..<length])) else {
                    return refuseServerName(p)
                }
                guard route(p, to: target) else { return false }
            }
            p.pointee.preamble &= ~PreambleNeeds.serverName
        }
        if p.pointee.preamble != 0 { return true }

        // Whole: what is left in the buffer is the client's first bytes, held until the backend takes them.
        if d.pointee.end == d.pointee.start {
            buffers.give(buffer)
            d.pointee.buffer = nil
            d.pointee.start = 0
            d.pointee.end = 0
        }
        if ended {
            // The client already finished sending: forwarding reads the EOF again (it is sticky) and
            // passes it on after these bytes.
            d.pointee.sourceHup = true
            d.pointee.readable = true
        } else {
            // Stopped by a full buffer, bytes are still in the socket and edge triggering will not
            // report them again: forwarding must read on.
            d.pointee.readable = !drained
        }
        p.pointee.lastActivity = now
        return execute(p, p.pointee.lifecycle.preambleDone(now: now, settings: pairSettings(p)))
    }

    /// The client a PROXY header named (or the proxy's own connection, for LOCAL and UNKNOWN) is the
    /// client from here on: the balancing key, `--allow`/`--deny` and `--max-conns-per-source` use its
    /// address, as they would a direct client's. A refused one is reset and counted, like at accept.
    /// Also the check a pair routed by server name passes, against its new service's rules.
    private mutating func admitProxiedClient(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        let s = service(p)
        let admission = s.pointee.admission
        guard s.pointee.pool.balancing.algorithm.hashesSource || admission.checksAddress else { return true }
        // `peers` is kept under --accept-proxy: it holds the header's source, or else the peer.
        let client = peers![p - pairs]
        p.pointee.sourceKey = StableHash.sourceKey(client)
        guard admission.checksAddress else { return true }
        if !admission.settings.permits(client) {
            s.pointee.cells.bump(.refused)
            return execute(p, p.pointee.lifecycle.preambleRejected(because: .refused))
        }
        if admission.settings.maxConnsPerSource > 0 {
            guard admission.admitSource(p.pointee.sourceKey) else {
                s.pointee.cells.bump(.refused)
                return execute(p, p.pointee.lifecycle.preambleRejected(because: .refused))
            }
            p.pointee.sourceCounted = true
        }
        return true
    }

    /// The service the pair's listener routes `name` to (nil: no server name in the ClientHello), or
    /// nil when none takes it. The route is found by the listener's id: a reload that gave the
    /// listener other routes applies to pairs still in their preamble; one that closed it (or a
    /// drain) leaves its last route.
    private func routeTarget(_ p: UnsafeMutablePointer<ConnectionPair>, name: UnsafeRawBufferPointer?) -> Int? {
        guard let router = routes[p.pointee.routeID]?.router,
            let target = name.map({ router.route($0) }) ?? router.defaultTarget, target < serviceCount, !services[target].retired
        else { return nil }
        return target
    }

    /// Moves a pair routed by its server name to its service: from here on it is that service's pair,
    /// counted as if accepted on its own listener (its counters, `--max-conns`, allow/deny, the
    /// per-source count, the balancing key), and follows its settings. At the service's max-conns
    /// the client is refused with a reset: a shared listener cannot pause for one service. Returns
    /// false when the pair was closed.
    private mutating func route(_ p: UnsafeMutablePointer<ConnectionPair>, to target: Int) -> Bool {
        let s = services + target
        let admission = s.pointee.admission
        guard admission.reserve() else {
            s.pointee.cells.bump(.refused)
            return execute(p, p.pointee.lifecycle.preambleRejected(because: .refused))
        }
        p.pointee.service = UInt16(target)
        p.pointee.routeID = 0
        shared.unrouted.bump(.activePairs, by: -1)
        s.pointee.activePairs += 1
        s.pointee.cells.bump(.accepted)
        s.pointee.cells.bump(.activePairs)
        // The worker keeps `peers` while it has a routing listener: the client's address (or the
        // one a PROXY header gave) is there, and the routed service's rules judge it.
        return admitProxiedClient(p)
    }

    private mutating func refuseServerName(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        shared.bump(.serverNameRefused)
        return execute(p, p.pointee.lifecycle.preambleRejected(unroutable: true))
    }

    private mutating func rejectPreamble(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        shared.bump(.preambleRejected)
        return execute(p, p.pointee.lifecycle.preambleRejected())
    }

    /// The backend connected and there is a preamble's worth of bytes to deliver or a PROXY header to
    /// send: one buffer holds the header then the client's first bytes, and one write sends both.
    /// The buffer goes back to the pool once written (by `flush`). Returns false when the pair closed.
    mutating func startForwardingWithPreamble(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        let d = p.pointer(to: \.up)!
        // Client bytes read during the preamble are delivered now: count them as forwarded.
        if d.pointee.end > d.pointee.start {
            p.pointee.bytesUp &+= Int(d.pointee.end - d.pointee.start)
            p.pointee.clientWaiting = true
        }
        if let version = service(p).pointee.settings.preamble.send {
            // `peers` is kept whenever a header is sent; the local address only under --accept-proxy.
            let client = peers![p - pairs]
            var local = locals?[p - pairs] ?? SocketAddress()
            if local.family == 0 {
                guard let address = try? K.localAddress(of: p.pointee.clientFD) else {
                    return execute(p, p.pointee.lifecycle.failed(.client))
                }
                local = address
            }
            let room = ProxyProtocol.maxEncodedLength
            if d.pointee.buffer == nil {
                d.pointee.buffer = buffers.take()
                d.pointee.start = Int32(room)
                d.pointee.end = Int32(room)
                // The client's first bytes are probably waiting in its socket: read them behind the
                // header so that both leave in one write.
                if (d.pointee.readable || d.pointee.sourceHup) && !d.pointee.sourceEOF {
                    guard readBehindHeader(p, d) else { return false }
                }
            }
            let header = UnsafeMutableRawBufferPointer(start: scratch, count: room)
            let h = ProxyProtocol.encode(version, source: client, destination: local, into: header)
            // The headroom kept at the front of a preamble buffer (or a consumed header) holds it.
            precondition(h > 0 && Int(d.pointee.start) >= h)
            d.pointee.start -= Int32(h)
            (d.pointee.buffer! + Int(d.pointee.start)).copyMemory(from: scratch, byteCount: h)
        }
        guard flush(p, upstream: true) else { return false }
        if p.pointee.down.readable || p.pointee.down.sourceHup { return pump(p, upstream: false) }
        return true
    }

    /// One read of the client's waiting bytes into the buffer after the header's room.
    private mutating func readBehindHeader(_ p: UnsafeMutablePointer<ConnectionPair>, _ d: UnsafeMutablePointer<Direction>) -> Bool {
        let room = settings.bufferSize - Int(d.pointee.end)
        let n: Int
        do {
            switch try K.receive(p.pointee.clientFD, d.pointee.buffer! + Int(d.pointee.end), room) {
            case .wouldBlock:
                d.pointee.readable = false
                return true
            case .done(let count): n = count
            }
        } catch {
            return execute(p, p.pointee.lifecycle.failed(.client))
        }
        if n == 0 {
            d.pointee.sourceEOF = true
            d.pointee.readable = false
            return true
        }
        d.pointee.end += Int32(n)
        p.pointee.bytesUp &+= n
        p.pointee.lastActivity = now
        p.pointee.clientWaiting = true
        if n < room {
            // As in pump: a short read drained the socket; with a FIN seen, it took the last bytes.
            if !d.pointee.sourceHup {
                d.pointee.readable = false
            } else if !d.pointee.sourceError {
                d.pointee.sourceEOF = true
                d.pointee.readable = false
            }
        }
        return true
    }

    /// An HTTP health check's request, preceded by the PROXY header when `--proxy-protocol` is set:
    /// v2 sends `LOCAL` (the spec's choice for health checks: the connection is the proxy's own); v1
    /// has no such command and sends a TCP4/TCP6 line of the probe's own addresses, as section 2.1
    /// asks ("a getsockname()/getpeername() pair"). Composed in the scratch buffer: one write.
    /// TCP checks send nothing: they end with a reset inside their connect, so no header could be read.
    mutating func writeProbeRequest(_ fd: Int32, request: [UInt8], backend: SocketAddress, preamble: PreambleSettings) -> Bool {
        var count = 0
        if let version = preamble.send {
            let out = UnsafeMutableRawBufferPointer(start: scratch, count: ProxyProtocol.maxEncodedLength)
            switch version {
            case .v2:
                count = ProxyProtocol.encodeLocal(into: out)
            case .v1:
                guard let local = try? K.localAddress(of: fd) else { return false }
                count = ProxyProtocol.encode(.v1, source: local, destination: backend, into: out)
            }
        }
        guard count + request.count <= settings.bufferSize else { return false }
        request.withUnsafeBytes { raw in (scratch + count).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        return (try? K.write(fd, scratch, count + request.count)) == .done(count + request.count)
    }
}
