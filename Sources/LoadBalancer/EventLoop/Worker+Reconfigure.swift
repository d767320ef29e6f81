/// Applying a reload on the worker's own thread: services join the table, settings change for new
/// pairs (open pairs keep the deadlines they have armed), removed services stop accepting and drain.
extension Worker {
    mutating func apply(_ change: WorkerReconfiguration) {
        for (service, runSettings) in change.added {
            addService(service, runSettings)
        }
        for (index, runSettings) in change.changed where index < serviceCount {
            services[index].settings = runSettings
            services[index].walk.apply(runSettings)
            services[index].view.panicThreshold = runSettings.panicThreshold
            keepAddresses(for: runSettings)
        }
        for id in change.closeListeners {
            guard let i = listeners.firstIndex(where: { $0.id == id && $0.fd >= 0 }) else { continue }
            if listenersRegistered { epoll.remove(listeners[i].fd) }
            K.close(listeners[i].fd)
            listeners[i].fd = -1
        }
        for (index, deadline) in change.retired where index < serviceCount {
            services[index].retired = true
            services[index].retireDeadline = deadline
            if services[index].activePairs > 0 { noteRetireDeadline(deadline) }
        }
        for var l in change.openListeners {
            if draining {
                K.close(l.fd)
                continue
            }
            let slot = listeners.firstIndex(where: { $0.fd < 0 }) ?? listeners.count
            if slot == listeners.count { listeners.append(l) } else { listeners[slot] = l }
            l = listeners[slot]
            // A paused worker, or a service paused at its limit, registers it on resuming.
            guard listenersRegistered && l.watched(in: services) else { continue }
            do {
                try epoll.add(l.fd, events: EpollEvents.input, data: EventTag.make(EventTag.listener, index: Int32(slot), generation: 0))
            } catch {
                log.log("worker \(shared.index): cannot watch a new listener: \(error)")
            }
        }
        for role in change.listenerRoles { setRole(role) }
        // Trailing closed slots go, so the table does not grow with every reload.
        while let last = listeners.last, last.fd < 0 { listeners.removeLast() }
        pruneRoutes()
    }

    /// Forgets the routes of closed listeners once no pair waits on them (a walk over the pair
    /// table: only on reloads, and only when a routing listener was closed).
    private mutating func pruneRoutes() {
        var stale = Set(routes.keys)
        for l in listeners where l.fd >= 0 { stale.remove(l.id) }
        guard !stale.isEmpty else { return }
        for i in 0..<pairCapacity where pairs[i].inUse && pairs[i].routeID != 0 { stale.remove(pairs[i].routeID) }
        for id in stale { routes[id] = nil }
    }

    /// A kept listener's owner and route as the reload left them; it is polled or not as its new
    /// role says (a listener with a route is not paused by its owner's max-conns).
    private mutating func setRole(_ role: (id: UInt32, service: UInt16, route: ListenerRoute?)) {
        guard let i = listeners.firstIndex(where: { $0.id == role.id && $0.fd >= 0 }), Int(role.service) < serviceCount else { return }
        let wasWatched = listeners[i].watched(in: services)
        listeners[i].service = role.service
        listeners[i].route = role.route
        routes[role.id] = role.route
        if role.route != nil && peers == nil { peers = Self.addressTable(pairCapacity) }
        let watched = listeners[i].watched(in: services)
        guard listenersRegistered, watched != wasWatched else { return }
        if watched {
            do {
                try epoll.add(listeners[i].fd, events: EpollEvents.input, data: EventTag.make(EventTag.listener, index: Int32(i), generation: 0))
            } catch {
                log.log("worker \(shared.index): cannot watch a listener again: \(error)")
            }
        } else {
            epoll.remove(listeners[i].fd)
        }
    }

    private mutating func addService(_ service: Service, _ runSettings: ServiceRunSettings) {
        precondition(service.index == serviceCount, "services are added in index order")
        if serviceCount == serviceCapacity {
            let grown = UnsafeMutablePointer<WorkerService>.allocate(capacity: serviceCapacity * 2)
            grown.moveInitialize(from: services, count: serviceCount)
            services.deallocate()
            services = grown
            serviceCapacity *= 2
        }
        (services + serviceCount).initialize(to: WorkerService(service: service, settings: runSettings, workerIndex: shared.index, now: now))
        keepAddresses(for: runSettings)
        serviceCount += 1
    }

    /// A service added or changed by a reload may be the first to need the client's address (or the
    /// local one a PROXY header names): the tables are made then, for every slot.
    private mutating func keepAddresses(for runSettings: ServiceRunSettings) {
        if runSettings.preamble.needsPeers && peers == nil { peers = Self.addressTable(pairCapacity) }
        if runSettings.preamble.needsLocals && locals == nil { locals = Self.addressTable(pairCapacity) }
    }

    private mutating func noteRetireDeadline(_ deadline: UInt64) {
        if nextRetireDeadline == 0 || deadline < nextRetireDeadline { nextRetireDeadline = deadline }
    }

    /// Closes the pairs of retired services whose drain time is up; rare (a reload removed a service
    /// and its pairs outlived the drain timeout), so a walk over the pair table is fine.
    mutating func closeRetiredPairs() {
        nextRetireDeadline = 0
        for i in 0..<pairCapacity where pairs[i].inUse {
            let s = Int(pairs[i].service)
            guard services[s].retired else { continue }
            if services[s].retireDeadline <= now {
                let p = pairs + i
                _ = p.pointee.lifecycle.drainExpired()
                closePair(p, reset: false)
            } else {
                noteRetireDeadline(services[s].retireDeadline)
            }
        }
    }
}
