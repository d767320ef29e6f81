import Glibc

extension Worker {
    /// Walks this worker's share of each service's pool and starts the probes that are due.
    mutating func runProbeSchedule() {
        startRequestedChecks()
        for i in 0..<serviceCount where !services[i].retired {
            runProbeSchedule(services + i)
        }
    }

    private mutating func runProbeSchedule(_ svc: UnsafeMutablePointer<WorkerService>) {
        let pool = svc.pointee.pool
        if svc.pointee.walk.idle(pool: pool) || svc.pointee.walk.nextStepAt > now {
            if svc.pointee.walk.nextStepAt < now { svc.pointee.walk.nextStepAt = now }
            return
        }
        svc.pointee.view.refresh()
        let members = svc.pointee.view.members
        if prober.workerIndex >= members.count {
            // No share here (fewer backends than workers): look again an interval later, not every tick.
            svc.pointee.walk.nextStepAt = now + svc.pointee.walk.interval
            return
        }
        let step = svc.pointee.walk.step(members: members.count, workerIndex: prober.workerIndex, workerCount: prober.workerCount)
        if now - svc.pointee.walk.nextStepAt > svc.pointee.walk.interval { svc.pointee.walk.nextStepAt = now }  // fell behind: no burst
        var budget = (members.count + prober.workerCount - 1) / prober.workerCount
        while svc.pointee.walk.nextStepAt <= now && budget > 0 {
            if svc.pointee.walk.cursor >= members.count { svc.pointee.walk.cursor = prober.workerIndex }
            let id = members[svc.pointee.walk.cursor]
            if needsProbe(id, svc) && !svc.pointee.walk.probing[Int(id)] {
                if prober.inFlight >= prober.capacity { break }  // at the cap: same backend next time
                startProbe(id, svc)
            }
            svc.pointee.walk.cursor += prober.workerCount
            svc.pointee.walk.nextStepAt += step
            budget -= 1
        }
    }

    /// Checks asked for by idle timeouts, started before the walk (one per backend at a time: a probe
    /// already in flight answers for it).
    private mutating func startRequestedChecks() {
        while prober.requestedCount > 0 && prober.inFlight < prober.capacity, let (service, id) = prober.nextRequest() {
            guard Int(service) < serviceCount else { continue }
            let svc = services + Int(service)
            guard !svc.pointee.retired, Int(id) < svc.pointee.walk.probingCapacity, !svc.pointee.walk.probing[Int(id)],
                  svc.pointee.pool.table.isActive(id) else { continue }
            startProbe(id, svc, confirm: true)
        }
    }

    private func needsProbe(_ id: BackendID, _ svc: UnsafeMutablePointer<WorkerService>) -> Bool {
        guard Int(id) < svc.pointee.walk.probingCapacity else { return false }
        let table = svc.pointee.pool.table
        let admin = table.admin[Int(id)].load(ordering: .relaxed)
        if admin == AdminState.removed.rawValue || admin == AdminState.disabled.rawValue { return false }
        if svc.pointee.walk.downOnly { return !table.healthState(id).isUp }
        return true
    }

    private mutating func startProbe(_ id: BackendID, _ svc: UnsafeMutablePointer<WorkerService>, confirm: Bool = false) {
        guard let slot = prober.allocate() else { return }
        svc.pointee.cells.bump(.probesStarted)
        let address = svc.pointee.pool.table.addresses[Int(id)]
        let s = prober.slots + Int(slot)
        s.pointee.backend = id
        s.pointee.service = UInt16(svc - services)
        s.pointee.confirm = confirm
        svc.pointee.walk.probing[Int(id)] = true
        let tcp = svc.pointee.walk.httpRequest.isEmpty
        var fd = tcp ? takeReusableProbeSocket(v6: address.isIPv6) : -1
        if fd < 0 {
            do {
                fd = try K.socket(family: address.family)
            } catch {
                abandonProbe(slot)  // out of fds even in the reserve: not the backend's fault
                return
            }
            // Close with a reset: thousands of probes a second must not fill TIME_WAIT.
            _ = try? K.setLingerReset(fd)
        }
        s.pointee.fd = fd
        do {
            var state = try K.connect(fd, to: address)
            if state == .inProgress && tcp {
                // On loopback the whole handshake (or the refusal) happens inside the first call: asking
                // again settles most TCP probes without an epoll registration and a wake-up.
                state = try K.connect(fd, to: address)
            }
            if state == .connected, tcp {
                keepProbeSocket(slot, v6: address.isIPv6)
                finishProbe(slot, ok: true, failure: .other)
                return
            }
        } catch {
            if tcp { keepProbeSocket(slot, v6: address.isIPv6) }
            let failure = ConnectFailure(errno: error.errno)
            if failure.blamesBackend { finishProbe(slot, ok: false, failure: failure) } else { abandonProbe(slot) }
            return
        }
        do {
            let tag = EventTag.make(EventTag.probe, index: slot, generation: s.pointee.generation)
            try epoll.add(fd, events: Self.streamEvents, data: tag)
        } catch {
            abandonProbe(slot)  // out of epoll watches or memory: ours, not the backend's
            return
        }
        prober.wheel.schedule(slot, at: now + svc.pointee.walk.timeout)
    }

    /// Gives up a probe that failed on our side: no health event, the walk tries again next round.
    private mutating func abandonProbe(_ slot: Int32) {
        let s = prober.slots + Int(slot)
        if s.pointee.fd >= 0 { K.close(s.pointee.fd) }
        services[Int(s.pointee.service)].walk.probing[Int(s.pointee.backend)] = false
        prober.free(slot)
    }

    private mutating func takeReusableProbeSocket(v6: Bool) -> Int32 {
        let fd = v6 ? prober.reusable.v6 : prober.reusable.v4
        if v6 { prober.reusable.v6 = -1 } else { prober.reusable.v4 = -1 }
        return fd
    }

    /// A TCP probe settled inside its connect call: drop the connection (a reset) and keep the socket
    /// for the next probe of that family, instead of closing it.
    private mutating func keepProbeSocket(_ slot: Int32, v6: Bool) {
        let s = prober.slots + Int(slot)
        let fd = s.pointee.fd
        guard fd >= 0, (v6 ? prober.reusable.v6 : prober.reusable.v4) < 0, (try? K.disconnect(fd)) != nil else { return }
        if v6 { prober.reusable.v6 = fd } else { prober.reusable.v4 = fd }
        s.pointee.fd = -1  // finishProbe must not close it
    }

    mutating func handleProbeEvent(index: Int32, generation: UInt32, events: UInt32) {
        guard Int(index) < prober.capacity else { return }
        let s = prober.slots + Int(index)
        guard s.pointee.inUse, s.pointee.generation == generation else { return }
        if events & (EpollEvents.error | EpollEvents.hangup) != 0 && s.pointee.headLength == 0 && !s.pointee.requestSent {
            let err = (try? K.socketError(s.pointee.fd)) ?? ECONNREFUSED
            finishProbe(index, ok: false, failure: ConnectFailure(errno: err == 0 ? ECONNREFUSED : err))
            return
        }
        let svc = services + Int(s.pointee.service)
        if svc.pointee.walk.httpRequest.isEmpty {
            if events & EpollEvents.output != 0 { finishProbe(index, ok: true, failure: .other) }
            return
        }
        if !s.pointee.requestSent && events & EpollEvents.output != 0 {
            let sent = writeProbeRequest(s.pointee.fd, request: svc.pointee.walk.httpRequest,
                                         backend: svc.pointee.pool.table.addresses[Int(s.pointee.backend)],
                                         preamble: svc.pointee.settings.preamble)
            guard sent else { finishProbe(index, ok: false, failure: .reset); return }
            s.pointee.requestSent = true
        }
        if s.pointee.requestSent && events & (EpollEvents.input | EpollEvents.readHangup | EpollEvents.hangup | EpollEvents.error) != 0 {
            readProbeAnswer(index)
        }
    }

    /// Reads the answer: its status line must say "HTTP/1.x 2xx", and the backend must then finish it
    /// with a clean close (we asked for `Connection: close`). A reset or a stall before the end is a
    /// failure: a backend that dies half-way through an answer is not healthy.
    private mutating func readProbeAnswer(_ index: Int32) {
        let s = prober.slots + Int(index)
        while true {
            let have = Int(s.pointee.headLength)
            let result: IOResult
            do {
                if have < 12 {
                    result = try withUnsafeMutableBytes(of: &s.pointee.head) { raw in
                        try K.receive(s.pointee.fd, raw.baseAddress! + have, 12 - have)
                    }
                } else {
                    result = try K.receive(s.pointee.fd, scratch, settings.bufferSize)  // the rest is dropped
                }
            } catch {
                finishProbe(index, ok: false, failure: .reset)
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .done(0):
                let ok = have == 12 && withUnsafeBytes(of: s.pointee.head) { raw in
                    raw.starts(with: "HTTP/1.".utf8) && raw[9] == UInt8(ascii: "2")
                }
                finishProbe(index, ok: ok, failure: .reset, httpStatus: have == 12 && !ok)
                return
            case .done(let n):
                if have < 12 { s.pointee.headLength += Int8(n) }
            }
        }
    }

    mutating func expireProbes() {
        while let slot = prober.wheel.popExpired(now: now) {
            if prober.slots[Int(slot)].inUse { finishProbe(slot, ok: false, failure: .timeout, timedOut: true) }
        }
    }

    private mutating func finishProbe(_ slot: Int32, ok: Bool, failure: ConnectFailure, httpStatus: Bool = false, timedOut: Bool = false) {
        let s = prober.slots + Int(slot)
        let id = s.pointee.backend
        let confirm = s.pointee.confirm
        // An HTTP probe that timed out after sending its request had connected: the answer is what failed.
        let answerMissing = timedOut && s.pointee.requestSent
        if s.pointee.fd >= 0 { K.close(s.pointee.fd) }
        if !timedOut { prober.wheel.cancel(slot) }
        let svc = services + Int(s.pointee.service)
        svc.pointee.walk.probing[Int(id)] = false
        prober.free(slot)
        if !ok { svc.pointee.cells.bump(.probesFailed) }
        let event: HealthEvent = ok ? .probeSucceeded : .probeFailed(failure)
        let settings = svc.pointee.settings
        let (transition, state) = svc.pointee.pool.apply(event, to: id, rise: settings.rise, fall: settings.fall)
        switch transition {
        case .wentUp:
            backendChanged(id, svc, "up", "health check passed (\(settings.rise)/\(settings.rise))")
        case .wentDown:
            let why =
                httpStatus ? "health check got a non-2xx answer"
                : answerMissing ? "health check got no answer in time" : "health check failed: \(failure)"
            let after = confirm ? " after an idle timeout" : ""
            backendChanged(id, svc, "down", "\(why)\(after) (\(state.failStreak)/\(settings.fall))")
        case .none:
            // A failed confirmation of an idle timeout asks again at once: `fall` failures in a row, or
            // one pass, settle it, with no traffic needed.
            if confirm && !ok && state.isUp { prober.request(id, service: UInt16(svc - services)) }
        }
    }

    mutating func closeAllProbes() {
        if prober.reusable.v4 >= 0 { K.close(prober.reusable.v4) }
        if prober.reusable.v6 >= 0 { K.close(prober.reusable.v6) }
        prober.reusable = (-1, -1)
        for i in 0..<prober.capacity where prober.slots[i].inUse {
            let s = prober.slots + i
            if s.pointee.fd >= 0 { K.close(s.pointee.fd) }
            prober.wheel.cancel(Int32(i))
            services[Int(s.pointee.service)].walk.probing[Int(s.pointee.backend)] = false
            prober.free(Int32(i))
        }
    }
}
