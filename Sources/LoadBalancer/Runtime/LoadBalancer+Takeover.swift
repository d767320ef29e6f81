import Glibc

extension LoadBalancer {
    /// What a takeover sends for one listen address.
    struct ExportedListener: Sendable {
        var service: String
        var configured: SocketAddress
        var bound: SocketAddress
    }

    /// Duplicates of every worker's open listeners, grouped by listen address; nil when the workers
    /// did not all answer within 5 s (the duplicates already made are closed). The caller closes them.
    func exportListeners() -> [(ExportedListener, [Int32])]? {
        // Not in the middle of a reload: its commands are queued before this one in every mailbox, so
        // the workers' listeners and `state` agree.
        reloading.withLock { _ in exportListenersLocked() }
    }

    private func exportListenersLocked() -> [(ExportedListener, [Int32])]? {
        let export = ListenerExport()
        for w in workers { w.send(.exportListeners(export)) }
        let deadline = MonotonicClock.now() &+ 5_000_000_000
        var delay: UInt32 = 500
        while export.delivered.withLock({ $0.count }) < workers.count {
            if MonotonicClock.now() >= deadline {
                // A late worker may still deliver: close what is there now and whatever comes later.
                let partial = export.delivered.withLock { d in let all = d; d = [:]; return all }
                for (_, list) in partial { for l in list { Sys.close(l.fd) } }
                return nil
            }
            usleep(delay)
            delay = min(delay * 2, 20_000)
        }
        let delivered = export.delivered.withLock { $0 }
        let running = state.withLock { $0.services }
        var out: [(ExportedListener, [Int32])] = []
        var claimed = Set<UInt32>()
        for r in running {
            for l in r.listeners {
                let fds = (0..<workers.count).flatMap { w in (delivered[w] ?? []).filter { $0.id == l.id }.map(\.fd) }
                claimed.insert(l.id)
                if !fds.isEmpty { out.append((ExportedListener(service: r.service.name, configured: l.configured, bound: l.bound), fds)) }
            }
        }
        // Listeners of services a reload retired meanwhile: not ours to hand over.
        for (_, list) in delivered { for l in list where !claimed.contains(l.id) { Sys.close(l.fd) } }
        return out
    }
}
