import Glibc

extension Worker {
    mutating func registerListeners() throws(SystemError) {
        try Self.register(listeners, with: epoll)
        listenersRegistered = true
    }

    static func register(_ listeners: [Int32], with epoll: borrowing Epoll) throws(SystemError) {
        for (i, fd) in listeners.enumerated() {
            // Level-triggered: a paused listener re-added later reports the backlog it kept.
            try epoll.add(fd, events: EpollEvents.input, data: EventTag.make(EventTag.listener, index: Int32(i), generation: 0))
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
        for fd in listeners { epoll.remove(fd) }
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
            log.log("worker \(shared.index): accept paused for 100ms: \(why) (\(activePairs) pairs open)")
        }
    }

    /// Ends a pause: first the spare fd must be had again, else the pause goes on.
    mutating func resumeListeners() {
        if spareFD < 0 {
            guard let fd = try? Sys.eventFD() else {
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
            for fd in listeners { epoll.remove(fd) }
            resumeListenersAt = now + 100_000_000
        }
    }

    mutating func closeListeners() {
        for fd in listeners { Sys.close(fd) }
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
        let lfd = listeners[listener]
        // The client's address is asked for only when something reads it (see `peers`).
        var peer = SocketAddress()
        let wantsPeer = peers != nil
        for _ in 0..<Self.acceptsPerEvent {
            let result: IOResult
            do {
                result = wantsPeer ? try Sys.accept(lfd, peer: &peer) : try Sys.accept(lfd, peer: nil)
            } catch {
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
            guard case .done(let raw) = result else { return }
            let fd = Int32(raw)
            guard let needs = preambleNeeds(clientFD: fd, peer: peer) else { continue }
            startPair(clientFD: fd, listener: listener, peer: peer, preamble: needs)
            if Int(fd) >= settings.fdLimit - settings.fdReserve {
                pauseListeners(.reserveReached(fd: fd))
                return
            }
        }
    }

    private mutating func startPair(clientFD fd: Int32, listener: Int, peer: SocketAddress, preamble: UInt8) {
        let index = allocatePair()
        let p = pairs + Int(index)
        p.pointee.clientFD = fd
        p.pointee.preamble = preamble
        p.pointee.lastActivity = now
        p.pointee.acceptedAt = now
        p.pointee.listener = UInt16(truncatingIfNeeded: listener)
        peers?[Int(index)] = peer
        locals?[Int(index)] = SocketAddress()
        do {
            try epoll.add(fd, events: Self.streamEvents, data: EventTag.make(EventTag.client, index: index, generation: p.pointee.generation))
        } catch {
            Sys.close(fd)
            p.pointee.clientFD = -1
            freePair(p)
            return
        }
        activePairs += 1
        shared.bump(.accepted)
        shared.bump(.activePairs)
        if preamble != 0 {
            _ = execute(p, p.pointee.lifecycle.acceptedAwaitingPreamble(now: now, timeout: settings.preamble.timeout))
            return
        }
        _ = execute(p, p.pointee.lifecycle.accepted(now: now, settings: settings.pair))
    }

    static let acceptsPerEvent = 64

    /// Stream sockets are registered once, edge-triggered for both directions, and never modified:
    /// backpressure is "do not read", which costs no epoll_ctl.
    static let streamEvents: UInt32 =
        EpollEvents.input | EpollEvents.priority | EpollEvents.output | EpollEvents.readHangup | EpollEvents.edgeTriggered
}
