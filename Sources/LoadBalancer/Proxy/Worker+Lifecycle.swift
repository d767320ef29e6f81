import Glibc

extension Worker {
    /// Where a pair's events are counted: its service's row, or the worker's own while a listener
    /// that routes by server name has not yet routed it.
    @inline(__always)
    func pairCells(_ p: UnsafeMutablePointer<ConnectionPair>) -> ServiceCells {
        p.pointee.routeID == 0 ? service(p).pointee.cells : shared.unrouted
    }

    /// Carries out a lifecycle decision. Returns false when the pair is gone.
    @discardableResult
    mutating func execute(_ p: UnsafeMutablePointer<ConnectionPair>, _ actions: PairActions) -> Bool {
        let flags = actions.flags
        if flags.isEmpty { return true }
        if flags.contains(.discardBackend) {
            let cells = pairCells(p)
            cells.countConnectFailure(actions.failure)
            if flags.contains(.connect) { cells.bump(.retries) }
        }
        if flags.contains(.markBackendFailed) { backendFailed(p.pointee.backend, of: p, actions.failure) }
        if flags.contains(.reportSilentBackend) { backendSilent(p.pointee.backend, of: p) }
        if flags.contains(.discardBackend) { detachBackend(p, reset: true) }
        if flags.contains(.abort) {
            closePair(p, reset: !K.plantedFaults.contains(.swallowReset))
            return false
        }
        if flags.contains(.close) {
            closePair(p, reset: false)
            return false
        }
        if flags.contains(.armTimer) { timers.schedule(Int32(p - pairs), at: actions.deadline) }
        if flags.contains(.sendBadGateway) {
            pairCells(p).bump(.badGateways)
        }
        if flags.contains(.lingerClient) { return endClient(p, badGateway: flags.contains(.sendBadGateway)) }
        if flags.contains(.connect) { return connectNext(p) }
        if flags.contains(.startForwarding) {
            p.pointee.connectedAt = now
            pairCells(p).observeConnect(nanoseconds: now &- p.pointee.acceptedAt)
            if service(p).pointee.settings.preamble.send != nil || p.pointee.up.hasPending { return startForwardingWithPreamble(p) }
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

    /// Picks a backend and starts a non-blocking connect to it; when every backend is at its limit,
    /// the pair queues (and a newcomer queues behind pairs already waiting).
    private mutating func connectNext(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        let s = service(p)
        if s.pointee.queueHead < s.pointee.queue.count { return enqueue(p) }
        switch pickAndCount(p) {
        case .backend(let id): return connect(p, to: id)
        case .full: return enqueue(p)
        case .none: return execute(p, p.pointee.lifecycle.noBackend(now: now, settings: pairSettings(p)))
        }
    }

    /// A pick, counted on its backend. A backend whose last place another worker took since the pick
    /// is avoided and the pick made once more.
    mutating func pickAndCount(_ p: UnsafeMutablePointer<ConnectionPair>) -> PickResult {
        let s = service(p)
        // Refreshed at the pick, not per loop: a pool change made while this loop slept is seen before
        // any pick it could affect (one relaxed load when nothing changed), and idle services cost nothing.
        s.pointee.view.refresh()
        var avoid = p.pointee.lastBackend
        for _ in 0..<2 {
            let result = s.pointee.view.pick(key: p.pointee.sourceKey, avoid: avoid, now: now)
            guard case .backend(let id) = result else { return result }
            if s.pointee.view.connectionStarted(id) { return result }
            avoid = id
        }
        return .full
    }

    /// Starts a non-blocking connect to `id`, already counted by `connectionStarted`.
    mutating func connect(_ p: UnsafeMutablePointer<ConnectionPair>, to id: BackendID) -> Bool {
        let s = service(p)
        let address = s.pointee.pool.table.addresses[Int(id)]
        guard let fd = backendSocket(family: address.family) else {
            s.pointee.view.connectionEnded(id)
            if K.plantedFaults.contains(.blameLocalFailure) { backendFailed(id, of: p, .refused) }
            // Our own failure (fd exhaustion even after the spare), not the backend's: do not mark it.
            return execute(p, p.pointee.lifecycle.noBackend(now: now, settings: pairSettings(p), reason: .limit))
        }
        // Accepted client sockets inherit both options from the listener; this side pays one call each.
        _ = try? K.setNoDelay(fd)
        _ = try? K.setUrgentInline(fd)
        p.pointee.backendFD = fd
        p.pointee.backend = id
        s.pointee.cells.bump(.connectAttempts)
        let result: Sys.ConnectResult
        do {
            try bindSource(fd, family: address.family, service: s)
            result = try K.connect(fd, to: address)
        } catch {
            return execute(p, p.pointee.lifecycle.connectFailed(ConnectFailure(errno: error.errno), now: now, settings: pairSettings(p)))
        }
        do {
            let tag = EventTag.make(EventTag.backend, index: Int32(p - pairs), generation: p.pointee.generation)
            try epoll.add(fd, events: Self.streamEvents, data: tag)
        } catch {
            return execute(p, p.pointee.lifecycle.connectFailed(.local, now: now, settings: pairSettings(p)))
        }
        if result == .connected {
            return execute(p, p.pointee.lifecycle.connected(now: now, settings: pairSettings(p)))
        }
        return true
    }

    /// A socket for a backend connection. When the process is out of fds, the worker's spare fd is
    /// given up so the client already accepted still gets its backend, and accepting pauses until the
    /// spare can be taken back: a client in the backlog waits there instead of getting a 502.
    private mutating func backendSocket(family: Int32) -> Int32? {
        let err: Int32
        do {
            return try K.socket(family: family)
        } catch {
            guard error.errno == EMFILE || error.errno == ENFILE else { return nil }
            err = error.errno
        }
        pauseListeners(.error(err))
        guard spareFD >= 0 else { return nil }
        K.close(spareFD)
        spareFD = -1
        return try? K.socket(family: family)
    }

    /// Closes the backend side of a pair (a failed attempt, or the pair's end).
    mutating func detachBackend(_ p: UnsafeMutablePointer<ConnectionPair>, reset: Bool) {
        let fd = p.pointee.backendFD
        guard fd >= 0 else { return }
        if reset { _ = try? K.setLingerReset(fd) }
        K.close(fd)
        let id = Int(p.pointee.backend)
        let s = service(p)
        let pool = s.pointee.pool
        if !K.plantedFaults.contains(.leakBackendPlace) { s.pointee.view.connectionEnded(p.pointee.backend) }
        p.pointee.lastBackend = p.pointee.backend
        if p.pointee.bytesUp > 0 { pool.table.bytesToBackend[id].add(p.pointee.bytesUp, ordering: .relaxed) }
        if p.pointee.bytesDown > 0 { pool.table.bytesFromBackend[id].add(p.pointee.bytesDown, ordering: .relaxed) }
        p.pointee.backendFD = -1
        p.pointee.backend = -1
        // The backend-to-client direction belongs to this socket: give back what it holds.
        release(&p.pointee.down)
    }

    mutating func closePair(_ p: UnsafeMutablePointer<ConnectionPair>, reset: Bool) {
        let slot = Int32(p - pairs)
        timers.cancel(K.plantedFaults.contains(.cancelWrongTimer) ? (slot + 1) % Int32(pairCapacity) : slot)
        recordClose(p)
        let up = p.pointee.bytesUp, down = p.pointee.bytesDown
        if p.pointee.clientFD >= 0 {
            if reset { _ = try? K.setLingerReset(p.pointee.clientFD) }
            K.close(p.pointee.clientFD)
            p.pointee.clientFD = -1
        }
        detachBackend(p, reset: reset)
        release(&p.pointee.up)
        release(&p.pointee.down)
        activePairs -= 1
        let cells: ServiceCells
        if p.pointee.routeID == 0 {
            releaseAdmission(p)
            let s = service(p)
            s.pointee.activePairs -= 1
            cells = s.pointee.cells
        } else {
            // Never routed by server name: counted on no service, accepted only now (`startPair`).
            cells = shared.unrouted
            cells.bump(.accepted)
        }
        cells.bump(.activePairs, by: -1)
        cells.bump(.closedPairs)
        if up > 0 { cells.bump(.bytesUp, by: up) }
        if down > 0 { cells.bump(.bytesDown, by: down) }
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
            (try? K.write(fd, raw.baseAddress!, raw.count)) == .done(raw.count)
        }
        guard ok, (try? K.shutdownWrite(fd)) != nil else {
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
                result = try K.receive(fd, scratch, service(p).pointee.settings.bufferSize)
            } catch {
                return execute(p, p.pointee.lifecycle.failed(.client))
            }
            switch result {
            case .wouldBlock:
                return true
            case .done(0):
                return execute(p, p.pointee.lifecycle.directionEnded(upstream: true, now: now, settings: pairSettings(p)))
            case .done:
                continue
            }
        }
    }

    // MARK: health reports from traffic

    private mutating func backendFailed(_ id: BackendID, of p: UnsafeMutablePointer<ConnectionPair>, _ failure: ConnectFailure) {
        guard id >= 0 else { return }
        let s = service(p)
        let pool = s.pointee.pool, settings = s.pointee.settings
        pool.table.failedConnects[Int(id)].add(1, ordering: .relaxed)
        s.pointee.cells.bump(.connectFailures)
        let (transition, state) = pool.apply(.connectFailed(failure), to: id, rise: settings.rise, fall: settings.fall)
        if transition == .wentDown {
            // A failed connect marks down at once: the count is the failures that really happened.
            backendChanged(id, s, "down", "connect failed: \(failure) (\(state.failStreak) in a row)")
        }
    }

    /// The pair idled out while its client waited for an answer. A silent backend may be hung, or may
    /// speak a protocol that goes quiet by design (a log sink, a blocking pop, a long poll): a health
    /// check of it decides, and the timeout alone counts for nothing.
    private mutating func backendSilent(_ id: BackendID, of p: UnsafeMutablePointer<ConnectionPair>) {
        guard id >= 0, service(p).pointee.settings.checkOnIdle else { return }
        prober.request(id, service: p.pointee.service)
    }

    /// The backend answered: clear a run of silent timeouts. Reads the health word first so the
    /// common case (no streak) costs one relaxed load and no write to a shared line.
    @inline(__always)
    mutating func backendAnswered(_ id: BackendID, of p: UnsafeMutablePointer<ConnectionPair>) {
        let s = service(p)
        if s.pointee.pool.table.health[Int(id)].load(ordering: .relaxed) & 0xFF00 != 0 {
            _ = s.pointee.pool.apply(.answered, to: id, rise: s.pointee.settings.rise, fall: s.pointee.settings.fall)
        }
    }

    /// Logs a backend's state change (and keeps it as an event). With more than the one `default`
    /// service the cause names the service: the same address in two services is two backends.
    func backendChanged(_ id: BackendID, _ s: UnsafeMutablePointer<WorkerService>, _ state: String, _ cause: String) {
        let address = s.pointee.pool.table.addresses[Int(id)]
        let plain = serviceCount == 1 && s.pointee.service.name == "default"
        log.backendChanged(address, state, plain ? cause : "\(cause), service \(s.pointee.service.name)", service: s.pointee.service.name)
    }
}
