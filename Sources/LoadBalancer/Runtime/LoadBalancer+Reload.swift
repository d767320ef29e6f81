/// Reloading a running balancer: the configuration changes while traffic flows, and no open pair is cut.
extension LoadBalancer {
    /// Applies `new` (already validated): works out the `ConfigChange`, opens the listeners it adds
    /// (a bind failure changes nothing and is thrown), updates kept pools in one step each (kept
    /// backends keep their health and counters; removed ones stop taking new pairs and their open
    /// pairs finish), and hands each worker its share through its mailbox: new services, new settings
    /// (for new pairs; open pairs keep theirs), listeners to open and close, services to retire (their
    /// pairs may finish until `drain_timeout`). Returns the change; `summary` is the line to log.
    public func reload(to new: Configuration) throws(SystemError) -> ConfigChange {
        try reloading.withLock { _ throws(SystemError) in try reloadLocked(to: new) }
    }

    private func reloadLocked(to new: Configuration) throws(SystemError) -> ConfigChange {
        let old = state.withLock { $0 }
        let change = ConfigChange(old: old.configuration, new: new, workerBufferSize: workerSettings.bufferSize)
        let workerCount = workers.count
        var nextID = old.nextListenerID
        var perWorker = [WorkerReconfiguration](repeating: WorkerReconfiguration(), count: workerCount)
        var opened: [[Int32]] = []

        /// Opens one address for every worker; returns its record and adds the fds to the commands.
        func open(_ address: SocketAddress, backlog: Int32, service: Int) throws(SystemError) -> RunningListener {
            let (fds, bound) = try Self.openListener(address, backlog: backlog, workers: workerCount)
            opened.append(fds)
            for w in 0..<workerCount { perWorker[w].openListeners.append(WorkerListener(fd: fds[w], service: UInt16(service), id: nextID)) }
            defer { nextID += 1 }
            return RunningListener(configured: address, bound: bound, id: nextID)
        }

        // As at start: a backend that is one of lb's own listeners (old or new) would be a loop.
        let ownListen = new.effectiveServices.flatMap(\.listen) + old.services.flatMap { $0.listeners.map(\.bound) }
        let local = Sys.interfaceAddresses()
        func withoutLoops(_ backends: [BackendSpec], service: String) -> [BackendSpec] {
            let (kept, looped) = SelfLoop.partition(backends, listen: ownListen, local: local)
            if !looped.isEmpty {
                log.log("reload: \(service): left out \(Plural.count(looped.count, "backend")) that would loop back to lb's own listener: "
                    + looped.prefix(10).map(\.description).joined(separator: ", ") + (looped.count > 10 ? ", ..." : ""))
            }
            return kept
        }
        var running = old.services
        var serviceNames = old.serviceNames
        // A shared address keeps its one socket as long as some service lists it: it is opened by its
        // first service when no socket has it yet, and otherwise moves to that service (`settle`).
        let order = change.result.effectiveServices
        let newMembers = Configuration.listenMembers(order)
        let heldBefore = Set(old.services.flatMap { $0.listeners.map(\.configured) }.filter { $0.port != 0 })
        func stillListed(_ a: SocketAddress) -> Bool { a.port != 0 && order.contains { $0.listen.contains(a) } }
        func opens(_ a: SocketAddress, service name: String) -> Bool {
            guard a.port != 0 else { return true }
            guard !heldBefore.contains(a), let s = order.firstIndex(where: { $0.name == name }), let k = order[s].listen.firstIndex(of: a) else {
                return false
            }
            return newMembers[s][k][0] == s
        }
        // Sockets of removed addresses or services that another service still lists: kept, re-homed.
        var orphans: [RunningListener] = []
        var added: [RunningService] = []
        do throws(SystemError) {
            // Bind first: if any address cannot be had, nothing has changed yet.
            for i in running.indices {
                guard let c = change.changedServices.first(where: { $0.name == running[i].service.name }) else { continue }
                for address in c.addedListeners where opens(address, service: c.name) {
                    running[i].listeners.append(try open(address, backlog: c.settings.backlog, service: running[i].service.index))
                }
            }
            for sc in change.addedServices {
                let pool = BackendPool(withoutLoops(sc.backends, service: sc.name), headroom: Self.headroom(for: sc, in: new), balancing: sc.settings.balancing)
                let admission = Admission(sc.settings.admission, fdLimit: workerSettings.fdLimit, fdReserve: workerSettings.fdReserve)
                let service = Service(name: sc.name, index: serviceNames.count, pool: pool, admission: admission, workerCount: workerCount)
                serviceNames.append(sc.name)
                var listeners: [RunningListener] = []
                for address in sc.listen where opens(address, service: sc.name) {
                    listeners.append(try open(address, backlog: sc.settings.backlog, service: service.index))
                }
                added.append(RunningService(service: service, config: sc, listeners: listeners))
                let runSettings = ServiceRunSettings(sc.settings, workerBufferSize: workerSettings.bufferSize)
                for w in 0..<workerCount { perWorker[w].added.append((service, runSettings)) }
            }
            running += added
        } catch {
            for fds in opened { for fd in fds { Sys.close(fd) } }
            throw error
        }

        // Nothing can fail from here on.
        let deadline = MonotonicClock.now() &+ new.drainTimeout.nanoseconds
        for name in change.removedServices {
            guard let r = running.first(where: { $0.service.name == name }) else { continue }
            orphans += r.listeners.filter { stillListed($0.configured) }
            let closing = r.listeners.filter { !stillListed($0.configured) }.map(\.id)
            for w in 0..<workerCount {
                perWorker[w].retired.append((r.service.index, deadline))
                perWorker[w].closeListeners += closing
            }
        }
        running.removeAll { change.removedServices.contains($0.service.name) }
        for c in change.changedServices {
            guard let i = running.firstIndex(where: { $0.service.name == c.name }) else { continue }
            let pool = running[i].service.pool
            for refused in pool.update(adding: withoutLoops(c.addedBackends, service: c.name), removing: c.removedBackends, reweighting: c.reweighted) { log.log("reload: \(c.name): \(refused)") }
            let removed = running[i].listeners.filter { c.removedListeners.contains($0.configured) }
            running[i].listeners.removeAll { c.removedListeners.contains($0.configured) }
            orphans += removed.filter { stillListed($0.configured) }
            let gone = removed.filter { !stillListed($0.configured) }
            for w in 0..<workerCount {
                perWorker[w].closeListeners += gone.map(\.id)
                if c.settingsChanged {
                    perWorker[w].changed.append((running[i].service.index, ServiceRunSettings(c.settings, workerBufferSize: workerSettings.bufferSize)))
                }
            }
        }
        for id in settle(&running, orphans: orphans, order: order) {
            for w in 0..<workerCount { perWorker[w].closeListeners.append(id) }
        }
        // Listener and service order follows the new configuration.
        running.sort { a, b in
            (order.firstIndex { $0.name == a.service.name } ?? 0) < (order.firstIndex { $0.name == b.service.name } ?? 0)
        }
        for i in running.indices {
            guard let sc = order.first(where: { $0.name == running[i].service.name }) else { continue }
            running[i].config = sc
            running[i].listeners.sort { a, b in
                (sc.listen.firstIndex(of: a.configured) ?? 0) < (sc.listen.firstIndex(of: b.configured) ?? 0)
            }
        }
        // Every listener's owner and route, as the new configuration has them.
        let indexByName = Dictionary(running.map { ($0.service.name, $0.service.index) }, uniquingKeysWith: { a, _ in a })
        for r in running {
            guard let s = order.firstIndex(where: { $0.name == r.service.name }) else { continue }
            for l in r.listeners {
                let k = order[s].listen.firstIndex(of: l.configured) ?? 0
                let route = ListenerRoute(members: newMembers[s][k].map { (order[$0].settings, indexByName[order[$0].name] ?? 0) })
                for w in 0..<workerCount { perWorker[w].listenerRoles.append((l.id, UInt16(r.service.index), route)) }
            }
        }
        state.withLock { st in
            st.configuration = change.result
            st.services = running
            st.serviceNames = serviceNames
            st.everyService += added.map(\.service)
            st.nextListenerID = nextID
        }
        for (w, shared) in workers.enumerated() where !perWorker[w].isEmpty {
            shared.send(.reconfigure(perWorker[w]))
        }
        return change
    }

    /// Gives each shared address's socket to the service that now lists it first (from another
    /// service's list or from `orphans`); returns the ids of sockets no service lists any more (none
    /// when the reload was consistent), to be closed.
    private func settle(_ running: inout [RunningService], orphans: [RunningListener], order: [ServiceConfiguration]) -> [UInt32] {
        var pool = orphans
        for i in running.indices {
            pool += running[i].listeners.filter { $0.configured.port != 0 }
            running[i].listeners.removeAll { $0.configured.port != 0 }
        }
        var claimed = Set<SocketAddress>()
        for sc in order {
            guard let i = running.firstIndex(where: { $0.service.name == sc.name }) else { continue }
            for a in sc.listen where a.port != 0 && claimed.insert(a).inserted {
                guard let k = pool.firstIndex(where: { $0.configured == a }) else { continue }
                running[i].listeners.append(pool.remove(at: k))
            }
        }
        return pool.map(\.id)
    }
}
