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
        var added: [RunningService] = []
        do throws(SystemError) {
            // Bind first: if any address cannot be had, nothing has changed yet.
            for i in running.indices {
                guard let c = change.changedServices.first(where: { $0.name == running[i].service.name }) else { continue }
                for address in c.addedListeners {
                    running[i].listeners.append(try open(address, backlog: c.settings.backlog, service: running[i].service.index))
                }
            }
            for sc in change.addedServices {
                let pool = BackendPool(withoutLoops(sc.backends, service: sc.name), headroom: Self.headroom(for: sc, in: new), balancing: sc.settings.balancing)
                let admission = Admission(sc.settings.admission, fdLimit: workerSettings.fdLimit, fdReserve: workerSettings.fdReserve)
                let service = Service(name: sc.name, index: serviceNames.count, pool: pool, admission: admission, workerCount: workerCount)
                serviceNames.append(sc.name)
                var listeners: [RunningListener] = []
                for address in sc.listen { listeners.append(try open(address, backlog: sc.settings.backlog, service: service.index)) }
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
            for w in 0..<workerCount {
                perWorker[w].retired.append((r.service.index, deadline))
                perWorker[w].closeListeners += r.listeners.map(\.id)
            }
        }
        running.removeAll { change.removedServices.contains($0.service.name) }
        for c in change.changedServices {
            guard let i = running.firstIndex(where: { $0.service.name == c.name }) else { continue }
            let pool = running[i].service.pool
            for refused in pool.update(adding: withoutLoops(c.addedBackends, service: c.name), removing: c.removedBackends, reweighting: c.reweighted) { log.log("reload: \(c.name): \(refused)") }
            let gone = running[i].listeners.filter { c.removedListeners.contains($0.configured) }
            running[i].listeners.removeAll { c.removedListeners.contains($0.configured) }
            for w in 0..<workerCount {
                perWorker[w].closeListeners += gone.map(\.id)
                if c.settingsChanged {
                    perWorker[w].changed.append((running[i].service.index, ServiceRunSettings(c.settings, workerBufferSize: workerSettings.bufferSize)))
                }
            }
        }
        // Listener and service order follows the new configuration.
        let order = change.result.effectiveServices
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
}
