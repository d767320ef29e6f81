import Glibc

extension Worker {
    /// Carries out a lifecycle decision. Returns false when the pair is gone.
    @discardableResult
    mutating func execute(_ p: UnsafeMutablePointer<ConnectionPair>, _ actions: PairActions) -> Bool {
        let flags = actions.flags
        if flags.isEmpty { return true }
        if flags.contains(.discardBackend) {
            shared.countConnectFailure(actions.failure)
            if flags.contains(.connect) { shared.bump(.retries) }
        }
        if flags.contains(.markBackendFailed) { backendFailed(p.pointee.backend, actions.failure) }
        if flags.contains(.reportSilentBackend) { backendSilent(p.pointee.backend) }
        if flags.contains(.discardBackend) { detachBackend(p, reset: true) }
        if flags.contains(.abort) {
            closePair(p, reset: true)
            return false
        }
        if flags.contains(.close) {
            closePair(p, reset: false)
            return false
        }
        if flags.contains(.armTimer) { timers.schedule(Int32(p - pairs), at: actions.deadline) }
        if flags.contains(.sendBadGateway) { shared.bump(.badGateways) }
        if flags.contains(.lingerClient) { return endClient(p, badGateway: flags.contains(.sendBadGateway)) }
        if flags.contains(.connect) { return connectNext(p) }
        if flags.contains(.startForwarding) {
            p.pointee.connectedAt = now
            shared.observeConnect(nanoseconds: now &- p.pointee.acceptedAt)
            if settings.preamble.send != nil || p.pointee.up.hasPending { return startForwardingWithPreamble(p) }
            // Bytes the client sent while we connected are still in its socket: read them now.
            if p.pointee.up.readable || p.pointee.up.sourceHup {
                guard pump(p, upstream: true) else { return false }
            }
            if p.pointee.down.readable || p.pointee.down.sourceHup {
                return pump(p, upstream: false)
            }
        }
        return true
    }

    /// Picks a backend and starts a non-blocking connect to it.
    private mutating func connectNext(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        guard let id = view.pick(from: pool) else {
            return execute(p, p.pointee.lifecycle.noBackend(now: now, settings: settings.pair))
        }
        let address = pool.table.addresses[Int(id)]
        guard let fd = backendSocket(family: address.family) else {
            // Our own failure (fd exhaustion even after the spare), not the backend's: do not mark it.
            return execute(p, p.pointee.lifecycle.noBackend(now: now, settings: settings.pair, reason: .limit))
        }
        // Accepted client sockets inherit both options from the listener; this side pays one call each.
        _ = try? Sys.setNoDelay(fd)
        _ = try? Sys.setUrgentInline(fd)
        p.pointee.backendFD = fd
        p.pointee.backend = id
        shared.bump(.connectAttempts)
        pool.table.activeConnections[Int(id)].add(1, ordering: .relaxed)
        pool.table.totalConnections[Int(id)].add(1, ordering: .relaxed)
        let result: Sys.ConnectResult
        do {
            result = try Sys.connect(fd, to: address)
        } catch {
            return execute(p, p.pointee.lifecycle.connectFailed(ConnectFailure(errno: error.errno), now: now, settings: settings.pair))
        }
        do {
            let tag = EventTag.make(EventTag.backend, index: Int32(p - pairs), generation: p.pointee.generation)
            try epoll.add(fd, events: Self.streamEvents, data: tag)
        } catch {
            return execute(p, p.pointee.lifecycle.connectFailed(.local, now: now, settings: settings.pair))
        }
        if result == .connected {
            return execute(p, p.pointee.lifecycle.connected(now: now, settings: settings.pair))
        }
        return true
    }

    /// A socket for a backend connection. When the process is out of fds, the worker's spare fd is
    /// given up so the client already accepted still gets its backend, and accepting pauses until the
    /// spare can be taken back: a client in the backlog waits there instead of getting a 502.
    private mutating func backendSocket(family: Int32) -> Int32? {
        let err: Int32
        do {
            return try Sys.socket(family: family)
        } catch {
            guard error.errno == EMFILE || error.errno == ENFILE else { return nil }
            err = error.errno
        }
        pauseListeners(.error(err))
        guard spareFD >= 0 else { return nil }
        Sys.close(spareFD)
        spareFD = -1
        return try? Sys.socket(family: family)
    }

    /// Closes the backend side of a pair (a failed attempt, or the pair's end).
    mutating func detachBackend(_ p: UnsafeMutablePointer<ConnectionPair>, reset: Bool) {
        let fd = p.pointee.backendFD
        guard fd >= 0 else { return }
        if reset { _ = try? Sys.setLingerReset(fd) }
        Sys.close(fd)
        let id = Int(p.pointee.backend)
        pool.table.activeConnections[id].subtract(1, ordering: .relaxed)
        if p.pointee.bytesUp > 0 { pool.table.bytesToBackend[id].add(p.pointee.bytesUp, ordering: .relaxed) }
        if p.pointee.bytesDown > 0 { pool.table.bytesFromBackend[id].add(p.pointee.bytesDown, ordering: .relaxed) }
        p.pointee.backendFD = -1
        p.pointee.backend = -1
        // The backend-to-client direction belongs to this socket: give back what it holds.
        release(&p.pointee.down)
    }

    mutating func closePair(_ p: UnsafeMutablePointer<ConnectionPair>, reset: Bool) {
        timers.cancel(Int32(p - pairs))
        recordClose(p)
        let up = p.pointee.bytesUp, down = p.pointee.bytesDown
        if p.pointee.clientFD >= 0 {
            if reset { _ = try? Sys.setLingerReset(p.pointee.clientFD) }
            Sys.close(p.pointee.clientFD)
            p.pointee.clientFD = -1
        }
        detachBackend(p, reset: reset)
        release(&p.pointee.up)
        release(&p.pointee.down)
        activePairs -= 1
        shared.bump(.activePairs, by: -1)
        shared.bump(.closedPairs)
        if up > 0 { shared.bump(.bytesUp, by: up) }
        if down > 0 { shared.bump(.bytesDown, by: down) }
        freePair(p)
    }

    mutating func release(_ d: inout Direction) {
        if let b = d.buffer { buffers.give(b) }
        if d.pipeRead >= 0 { pipes.give((d.pipeRead, d.pipeWrite), empty: d.piped == 0) }
        d = Direction()
    }

    /// Writes the 502 response (when asked), shuts the client's write side, and lingers: the client's
    /// request may still be unread, and closing on unread bytes would send a reset that can destroy
    /// the response.
    private mutating func endClient(_ p: UnsafeMutablePointer<ConnectionPair>, badGateway: Bool) -> Bool {
        let fd = p.pointee.clientFD
        let ok: Bool = !badGateway || BadGateway.response.withUnsafeBytes { raw in
            (try? Sys.write(fd, raw.baseAddress!, raw.count)) == .done(raw.count)
        }
        guard ok, (try? Sys.shutdownWrite(fd)) != nil else {
            return execute(p, p.pointee.lifecycle.failed(.client))
        }
        return discardClientInput(p)
    }

    /// In the lingering phase: read and drop what the client sends until it finishes.
    mutating func discardClientInput(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        let fd = p.pointee.clientFD
        while true {
            let result: IOResult
            do {
                result = try Sys.receive(fd, scratch, settings.bufferSize)
            } catch {
                return execute(p, p.pointee.lifecycle.failed(.client))
            }
            switch result {
            case .wouldBlock:
                return true
            case .done(0):
                return execute(p, p.pointee.lifecycle.directionEnded(upstream: true, now: now, settings: settings.pair))
            case .done:
                continue
            }
        }
    }

    // MARK: health reports from traffic

    private mutating func backendFailed(_ id: BackendID, _ failure: ConnectFailure) {
        guard id >= 0 else { return }
        pool.table.failedConnects[Int(id)].add(1, ordering: .relaxed)
        shared.bump(.connectFailures)
        let (transition, state) = pool.apply(.connectFailed(failure), to: id, rise: settings.rise, fall: settings.fall)
        if transition == .wentDown {
            // A failed connect marks down at once: the count is the failures that really happened.
            log.backendChanged(pool.table.addresses[Int(id)], "down", "connect failed: \(failure) (\(state.failStreak) in a row)")
        }
    }

    /// The pair idled out while its client waited for an answer. A silent backend may be hung, or may
    /// speak a protocol that goes quiet by design (a log sink, a blocking pop, a long poll): a health
    /// check of it decides, and the timeout alone counts for nothing.
    private mutating func backendSilent(_ id: BackendID) {
        guard id >= 0, settings.checkOnIdle else { return }
        prober.request(id)
    }

    /// The backend answered: clear a run of silent timeouts. Reads the health word first so the
    /// common case (no streak) costs one relaxed load and no write to a shared line.
    @inline(__always)
    mutating func backendAnswered(_ id: BackendID) {
        if pool.table.health[Int(id)].load(ordering: .relaxed) & 0xFF00 != 0 {
            _ = pool.apply(.answered, to: id, rise: settings.rise, fall: settings.fall)
        }
    }
}
