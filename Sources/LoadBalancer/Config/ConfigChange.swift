/// What a reload changes, worked out from the running configuration and the new one without touching
/// anything (pure; tested without sockets). `LoadBalancer.reload` carries it out: pool operations,
/// new settings for new pairs, listeners opened and closed, services added and retired. What cannot
/// change without a restart is listed in `needsRestart` and left as it was.
public struct ConfigChange: Sendable, Equatable {
    /// A service present before and after, and what changed in it.
    public struct ServiceChange: Sendable, Equatable {
        public var name: String
        public var addedBackends: [BackendSpec] = []
        public var removedBackends: [SocketAddress] = []
        /// Kept backends whose weight changed: kept with their health and counters and their old weight
        /// (a restart applies the new one; listed in `needsRestart`).
        public var reweighted: [BackendSpec] = []
        public var addedListeners: [SocketAddress] = []
        public var removedListeners: [SocketAddress] = []
        /// The settings new pairs, probes and listeners of this service follow from now on.
        public var settings: ServiceSettings
        public var settingsChanged = false

        public var isEmpty: Bool {
            addedBackends.isEmpty && removedBackends.isEmpty && reweighted.isEmpty && addedListeners.isEmpty
                && removedListeners.isEmpty && !settingsChanged
        }
    }

    public var addedServices: [ServiceConfiguration] = []
    public var removedServices: [String] = []
    /// Kept services with at least one change, in the new configuration's order.
    public var changedServices: [ServiceChange] = []
    /// Process-wide settings that change now ("drain_timeout 10s -> 5s").
    public var globalChanges: [String] = []
    /// Settings that only a restart changes ("workers 2 -> 4"); the running values are kept.
    public var needsRestart: [String] = []
    /// The configuration that runs after the reload: the new one, with what needs a restart as it was.
    public var result: Configuration

    /// `workerBufferSize`: the buffers the workers were started with (a service asking for more
    /// needs a restart to get it).
    public init(old: Configuration, new: Configuration, workerBufferSize: Int = .max) {
        var result = new
        self.result = new
        func restart(_ what: String, _ old: String, _ new: String) { needsRestart.append("\(what) \(old) -> \(new)") }
        if old.workers != new.workers { restart("workers", "\(old.workers)", "\(new.workers)"); result.workers = old.workers }
        if old.splice != new.splice { restart("splice", old.splice ? "on" : "off", new.splice ? "on" : "off"); result.splice = old.splice }
        if old.health.maxInFlight != new.health.maxInFlight {
            restart("health_max_inflight", "\(old.health.maxInFlight)", "\(new.health.maxInFlight)")
            result.health.maxInFlight = old.health.maxInFlight
        }
        if old.logBackendChanges != new.logBackendChanges {
            restart("quiet", old.logBackendChanges ? "false" : "true", new.logBackendChanges ? "false" : "true")
            result.logBackendChanges = old.logBackendChanges
        }
        if old.drainTimeout != new.drainTimeout { globalChanges.append("drain_timeout \(old.drainTimeout) -> \(new.drainTimeout)") }
        if old.admin != new.admin {
            restart("admin", old.admin?.description ?? "off", new.admin?.description ?? "off")
            result.admin = old.admin
        }
        if old.adminTokenFile != new.adminTokenFile {
            restart("admin_token_file", old.adminTokenFile ?? "none", new.adminTokenFile ?? "none")
            result.adminTokenFile = old.adminTokenFile
        }
        if old.accessLog != new.accessLog {
            func text(_ a: AccessLogSettings?) -> String { a.map { "\($0.path) (\($0.format.rawValue))" } ?? "off" }
            restart("access_log", text(old.accessLog), text(new.accessLog))
            result.accessLog = old.accessLog
        }
        if old.takeoverSocket != new.takeoverSocket {
            restart("takeover_socket", old.takeoverSocket ?? "none", new.takeoverSocket ?? "none")
            result.takeoverSocket = old.takeoverSocket
        }
        self.result = result

        let before = old.effectiveServices, after = new.effectiveServices
        let beforeByName = Dictionary(before.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let afterNames = Set(after.map(\.name))
        removedServices = before.map(\.name).filter { !afterNames.contains($0) }
        for service in after {
            guard let was = beforeByName[service.name] else {
                addedServices.append(service)
                if service.settings.bufferSize > workerBufferSize {
                    needsRestart.append("\(service.name): buffer_size \(service.settings.bufferSize) (workers hold \(workerBufferSize))")
                }
                continue
            }
            var change = ServiceChange(name: service.name, settings: service.settings)
            let oldBackends = Dictionary(was.backends.map { ($0.address, $0.weight) }, uniquingKeysWith: { a, _ in a })
            let newAddresses = Set(service.backends.map(\.address))
            for spec in service.backends {
                if let weight = oldBackends[spec.address] {
                    if weight != spec.weight { change.reweighted.append(spec) }
                } else {
                    change.addedBackends.append(spec)
                }
            }
            change.removedBackends = was.backends.map(\.address).filter { !newAddresses.contains($0) }
            change.addedListeners = service.listen.filter { !was.listen.contains($0) }
            change.removedListeners = was.listen.filter { !service.listen.contains($0) }
            change.settingsChanged = was.settings != service.settings
            // The pool and the admission state are built with these: kept as they run until a restart,
            // and the resulting configuration says so (the next reload diffs against what runs).
            if was.settings.balancing != service.settings.balancing {
                needsRestart.append("\(service.name): balance, slow_start or backend_max_conns")
                Self.keep(service.name, in: &result) { $0.balancing = was.settings.balancing }
            }
            if was.settings.admission != service.settings.admission {
                needsRestart.append("\(service.name): max_conns, queue_timeout, allow, deny or max_conns_per_source")
                Self.keep(service.name, in: &result) { $0.admission = was.settings.admission }
            }
            if was.settings.backlog != service.settings.backlog && service.listen.contains(where: { was.listen.contains($0) }) {
                needsRestart.append("\(service.name): backlog \(was.settings.backlog) -> \(service.settings.backlog) for kept listeners")
            }
            if service.settings.bufferSize > workerBufferSize && was.settings.bufferSize != service.settings.bufferSize {
                needsRestart.append("\(service.name): buffer_size \(service.settings.bufferSize) (workers hold \(workerBufferSize))")
            }
            if !change.isEmpty { changedServices.append(change) }
        }
        self.result = result
    }

    /// Changes one service's settings in `config`: a file's service, or the flags' `default` one.
    private static func keep(_ name: String, in config: inout Configuration, _ change: (inout ServiceSettings) -> Void) {
        if let i = config.services.firstIndex(where: { $0.name == name }) {
            change(&config.services[i].settings)
        } else if config.services.isEmpty {
            var settings = ServiceSettings(config)
            change(&settings)
            config.balancing = settings.balancing
            config.admission = settings.admission
        }
    }

    public var isEmpty: Bool {
        addedServices.isEmpty && removedServices.isEmpty && changedServices.isEmpty && needsRestart.isEmpty && globalChanges.isEmpty
    }

    /// One line: `+1 service, web: +2 -1 backends, settings`; `no changes` when there are none.
    public var summary: String {
        var parts: [String] = []
        func count(_ n: Int, _ what: String) -> String { "\(n) \(what)\(n == 1 ? "" : "s")" }
        if !addedServices.isEmpty {
            parts.append("+" + count(addedServices.count, "service") + " (\(addedServices.map(\.name).joined(separator: ", ")))")
        }
        if !removedServices.isEmpty {
            parts.append("-" + count(removedServices.count, "service") + " (\(removedServices.joined(separator: ", ")))")
        }
        for c in changedServices {
            var items: [String] = []
            if !c.addedBackends.isEmpty || !c.removedBackends.isEmpty {
                items.append("+\(c.addedBackends.count) -\(c.removedBackends.count) backends")
            }
            if !c.addedListeners.isEmpty || !c.removedListeners.isEmpty {
                items.append("+\(c.addedListeners.count) -\(c.removedListeners.count) listeners")
            }
            if !c.reweighted.isEmpty { items.append("\(c.reweighted.count) reweighted") }
            if c.settingsChanged { items.append("settings") }
            parts.append("\(c.name): " + items.joined(separator: ", "))
        }
        parts += globalChanges
        if !needsRestart.isEmpty { parts.append("needs a restart: " + needsRestart.joined(separator: "; ")) }
        return parts.isEmpty ? "no changes" : parts.joined(separator: ", ")
    }
}
