import Glibc

extension Worker {
    mutating func registerListeners() throws(SystemError) {
        for (i, l) in listeners.enumerated() where l.watched(in: services) {
            try epoll.add(l.fd, events: EpollEvents.input, data: EventTag.make(EventTag.listener, index: Int32(i), generation: 0))
        }
        listenersRegistered = true
    }

    static func register(_ listeners: [WorkerListener], with epoll: borrowing KernelEpoll<K>) throws(SystemError) {
        for (i, l) in listeners.enumerated() where l.fd >= 0 {
            // Level-triggered: a paused listener re-added later reports the backlog it kept.
            try epoll.add(l.fd, events: EpollEvents.input, data: EventTag.make(EventTag.listener, index: Int32(i), generation: 0))
        }
    }

    /// Why accepting pauses. Kept as values: the text is only built when it is logged (once per 10 s),
    /// not on every attempt while the process is out of fds.
    enum PauseReason {
        case error(Int32)
        case reserveReached(fd: Int32)
    }

    /// Stops polling the listeners for a short back-off; waiting clients stay in the kernel's backlog.
    mutating func pauseListeners(_ reason: PauseReason) {
        guard listenersRegistered else { return }
        for l in listeners where l.fd >= 0 { epoll.remove(l.fd) }
        listenersRegistered = false
        resumeListenersAt = now + 100_000_000
        shared.bump(.acceptPauses)
        if lastPauseLog == 0 || now - lastPauseLog > 10_000_000_000 {
            lastPauseLog = now
            let why: String
            switch reason {
            case .error(let errno): why = SystemError.message(for: errno)
            case .reserveReached(let fd):
                why = "file descriptors nearly exhausted (fd \(fd) of \(settings.fdLimit), \(settings.fdReserve) kept in reserve)"
            }
            log.log("worker \(shared.index): accept paused for 100ms: \(why) (\(Plural.count(activePairs, "pair")) open)")
        }
    }

    /// Ends a pause: first the spare fd must be had again, else the pause goes on.
    mutating func resumeListeners() {
        if spareFD < 0 {
            guard let fd = try? K.eventFD() else {
                resumeListenersAt = now + 100_000_000
                return
            }
            spareFD = fd
        }
        do {
            try registerListeners()
            resumeListenersAt = 0
        } catch {
            // Undo a partial registration and try again after another back-off, rather than never.
            for l in listeners where l.fd >= 0 { epoll.remove(l.fd) }
            resumeListenersAt = now + 100_000_000
        }
    }

    /// A service reached its `--max-conns`: only its listeners stop being polled (other services go on),
    /// and its clients wait in the kernel's backlog. Resumed as soon as one of its pairs closes here, or
    /// within 10 ms for a place freed on another worker.
    mutating func pauseAtLimit(_ service: Int) {
        guard !services[service].pausedAtLimit else { return }
        services[service].pausedAtLimit = true
        limitPausedServices += 1
        if listenersRegistered {
            for l in listeners where l.fd >= 0 && Int(l.service) == service && l.route == nil { epoll.remove(l.fd) }
        }
        limitCheckAt = now &+ 10_000_000
        shared.bump(.acceptPauses)
        if lastPauseLog == 0 || now - lastPauseLog > 10_000_000_000 {
            lastPauseLog = now
            let s = services[service].service
            log.log("worker \(shared.index): service \(s.name): max-conns (\(services[service].admission.maxConns)) reached; "
                + "clients wait in the listen backlog")
        }
    }

    /// Polls again the listeners of services paused at their limit that have room now.
    mutating func resumeServicesWithRoom() {
        limitCheckAt = now &+ 10_000_000
        for i in 0..<serviceCount where services[i].pausedAtLimit {
            guard services[i].admission.hasRoom else { continue }
            services[i].pausedAtLimit = false
            limitPausedServices -= 1
            guard listenersRegistered else { continue }  // a worker-wide pause registers them on resuming
            for (k, l) in listeners.enumerated() where l.fd >= 0 && Int(l.service) == i && l.route == nil {
                do {
                    try epoll.add(l.fd, events: EpollEvents.input, data: EventTag.make(EventTag.listener, index: Int32(k), generation: 0))
                } catch {
                    log.log("worker \(shared.index): cannot watch a listener again: \(error)")
                }
            }
        }
    }

    mutating func closeListeners() {
        for l in listeners where l.fd >= 0 {
            // Removed first: closing does not end the registration while another process holds the
            // socket (a takeover), and the level-triggered listener would keep waking this loop.
            if listenersRegistered { epoll.remove(l.fd) }
            K.close(l.fd)
        }
        listeners.removeAll()
        listenersRegistered = false
        resumeListenersAt = 0
    }

    /// Accepts until EAGAIN, at most `acceptsPerEvent` at a time so a connection storm cannot starve the
    /// pairs' events; the listener is level-triggered, so what is left is reported again next time.
    /// (Accepting one per wake-up, nginx's default, measured worse here: 17.0 syscalls per proxied
    /// connection against 16.4, the saved EAGAIN costing more epoll_waits.)
    mutating func acceptConnections(listener: Int) {
        guard listener < listeners.count, listenersRegistered else { return }
        let lfd = listeners[listener].fd
        let service = listeners[listener].service
        // Access-log records name the listener by its position in `LoadBalancer.listenAddresses` as
        // started: ids are handed out in that order from 1 (listeners a reload adds come after, and
        // print as "-").
        let position = Int(listeners[listener].id) - 1
        guard lfd >= 0 else { return }
        // A listener that routes by server name counts its pairs on no service until they are routed
        // (`Worker.route`): no place is reserved and no address rule applies here.
        let routeID = listeners[listener].route != nil ? listeners[listener].id : 0
        let routed = routeID != 0
        let routeTimeout = listeners[listener].route?.timeout ?? 0
        let admission = services[Int(service)].admission
        // The client's address is asked for only when something uses it: the access log, a hashing
        // algorithm (its key) or an address rule. accept4 fills it in place: no allocation.
        var peer = SocketAddress()
        let wantsPeer = peers != nil || services[Int(service)].pool.balancing.algorithm.hashesSource || admission.checksAddress
        for _ in 0..<Self.acceptsPerEvent {
            // The place is taken before the accept, so the limit holds across workers and a client
            // past it stays in the backlog instead of being accepted and closed.
            guard routed || admission.reserve() else {
                pauseAtLimit(Int(service))
                return
            }
            let result: IOResult
            do {
                result = wantsPeer ? try K.accept(lfd, peer: &peer) : try K.accept(lfd, peer: nil)
            } catch {
                if !routed { admission.release() }
                switch error.errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    pauseListeners(.error(error.errno))
                    return
                case ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                    continue  // that one client is gone; the next may be fine
                default:
                    log.log("worker \(shared.index): \(error)")
                    return
                }
            }
            guard case .done(let raw) = result else {
                if !routed { admission.release() }
                return
            }
            let fd = Int32(raw)
            guard let needs = preambleNeeds(clientFD: fd, peer: peer, listener: listener) else {
                if !routed { admission.release() }
                continue
            }
            // Under --accept-proxy the peer is the proxy: the address rules and the balancing key wait
            // for the header's client address (`admitProxiedClient`).
            let proxied = needs & PreambleNeeds.proxyHeader != 0
            let key = wantsPeer && !proxied ? StableHash.sourceKey(peer) : 0
            if !routed && !proxied && admission.checksAddress && !admitClient(fd: fd, peer: peer, key: key, service: service, admission: admission) { continue }
            startPair(clientFD: fd, service: service, listener: position, peer: peer, sourceKey: key,
                      sourceCounted: !routed && !proxied && admission.settings.maxConnsPerSource > 0, preamble: needs,
                      routeID: routeID, routeTimeout: routeTimeout)
            if Int(fd) >= settings.fdLimit - settings.fdReserve {
                pauseListeners(.reserveReached(fd: fd))
                return
            }
        }
    }

    private mutating func startPair(
        clientFD fd: Int32, service: UInt16, listener: Int, peer: SocketAddress, sourceKey: UInt64, sourceCounted: Bool,
        preamble: UInt8, routeID: UInt32, routeTimeout: UInt64
    ) {
        let index = allocatePair()
        let p = pairs + Int(index)
        p.pointee.clientFD = fd
        p.pointee.service = service
        p.pointee.preamble = preamble
        p.pointee.lastActivity = now
        p.pointee.sourceKey = sourceKey
        p.pointee.sourceCounted = sourceCounted
        p.pointee.acceptedAt = now
        p.pointee.listener = UInt16(truncatingIfNeeded: listener)
        p.pointee.routeID = routeID
        peers?[Int(index)] = peer
        locals?[Int(index)] = SocketAddress()
        do {
            try epoll.add(fd, events: Self.streamEvents, data: EventTag.make(EventTag.client, index: index, generation: p.pointee.generation))
        } catch {
            K.close(fd)
            p.pointee.clientFD = -1
            if routeID == 0 {
                let admission = services[Int(service)].admission
                admission.release()
                if sourceCounted { admission.releaseSource(sourceKey) }
            }
            freePair(p)
            return
        }
        activePairs += 1
        let s = self.service(p)
        if routeID != 0 {
            // Counted as accepted once routed (by its service), or at its close if it never is.
            shared.unrouted.bump(.activePairs)
            _ = execute(p, p.pointee.lifecycle.acceptedAwaitingPreamble(now: now, timeout: routeTimeout))
            return
        }
        s.pointee.activePairs += 1
        s.pointee.cells.bump(.accepted)
        s.pointee.cells.bump(.activePairs)
        if preamble != 0 {
            _ = execute(p, p.pointee.lifecycle.acceptedAwaitingPreamble(now: now, timeout: s.pointee.settings.preamble.timeout))
            return
        }
        _ = execute(p, p.pointee.lifecycle.accepted(now: now, settings: s.pointee.settings.pair))
    }

    static var acceptsPerEvent: Int { 64 }

    /// Stream sockets are registered once, edge-triggered for both directions, and never modified:
    /// backpressure is "do not read", which costs no epoll_ctl.
    @inline(__always) static var streamEvents: UInt32 {
        EpollEvents.input | EpollEvents.priority | EpollEvents.output | EpollEvents.readHangup | EpollEvents.edgeTriggered
    }
}
