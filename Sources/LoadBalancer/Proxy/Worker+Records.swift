extension Worker {
    /// The one place a pair's end is recorded: its close reason and duration in the worker's own
    /// counters, and (when the access log is on) a record in the worker's ring. Called by `closePair`
    /// before the backend is detached; the reason comes from the lifecycle's last decision.
    @inline(__always)
    mutating func recordClose(_ p: UnsafeMutablePointer<ConnectionPair>) {
        var reason = p.pointee.lifecycle.closeReason
        if reason == .none { reason = .drain }  // closed without a lifecycle decision: only shutdown does that
        let cells = pairCells(p)
        cells.countClose(reason)
        cells.observeDuration(nanoseconds: now &- p.pointee.acceptedAt)
        guard let ring = shared.accessLog else { return }
        var record = AccessRecord()
        record.acceptedAt = p.pointee.acceptedAt
        record.closedAt = now
        record.connectedAt = p.pointee.connectedAt
        if let peers { record.client = peers[p - pairs] }
        if p.pointee.backend >= 0 { record.backend = service(p).pointee.pool.table.addresses[Int(p.pointee.backend)] }
        record.listener = p.pointee.listener
        record.service = p.pointee.service
        let attempts = Int(p.pointee.lifecycle.attempts)
        record.retries = UInt8(clamping: max(attempts - 1, 0))
        record.reason = reason
        record.bytesUp = p.pointee.bytesUp
        record.bytesDown = p.pointee.bytesDown
        if !ring.push(record) { shared.bump(.accessLogDropped) }
    }
}
