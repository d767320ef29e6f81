import Glibc

/// Admission: who is refused at accept, the service-wide pair limit, and the queue of pairs waiting
/// for a backend place when every backend is at its limit (HAProxy's `maxconn` + `timeout queue`).
///
/// Each service has its own queue on each worker, FIFO within it (a pair stays on the worker that
/// accepted it); workers look for a freed place after every event batch and at least every
/// `queuePollMs` while pairs wait.
extension Worker {
    @inline(__always) static var queuePollMs: Int32 { 5 }

    /// Allow/deny and the per-source limit for a just-accepted client. False: refused with a reset
    /// (SO_LINGER 0, so the client sees ECONNRESET at once) and counted; the fd is closed.
    mutating func admitClient(fd: Int32, peer: SocketAddress, key: UInt64, service: UInt16, admission: Admission) -> Bool {
        if !admission.settings.permits(peer) {
            refuse(fd, service, admission)
            return false
        }
        if admission.settings.maxConnsPerSource > 0 && !admission.admitSource(key) {
            refuse(fd, service, admission)
            return false
        }
        return true
    }

    private mutating func refuse(_ fd: Int32, _ service: UInt16, _ admission: Admission) {
        // Counted before the close: whoever sees the reset sees the count.
        services[Int(service)].cells.bump(.refused)
        admission.release()
        _ = try? K.setLingerReset(fd)
        K.close(fd)
    }

    /// At a pair's close: its place in the service, and its source's count.
    mutating func releaseAdmission(_ p: UnsafeMutablePointer<ConnectionPair>) {
        let s = service(p)
        let admission = s.pointee.admission
        if !K.plantedFaults.contains(.leakAdmission) { admission.release() }
        if p.pointee.sourceCounted {
            admission.releaseSource(p.pointee.sourceKey)
            p.pointee.sourceCounted = false
        }
        if p.pointee.queued {
            p.pointee.queued = false
            queuedPairs -= 1
            s.pointee.cells.bump(.queueLength, by: -1)
        }
        // A place is free: a service paused at --max-conns resumes at this loop's next turn.
        if s.pointee.pausedAtLimit { limitCheckAt = now }
    }

    /// Puts a pair at the back of the queue, with `queueTimeout` to wait. A zero timeout means no
    /// queue: the pair gets the on-no-backend answer at once.
    mutating func enqueue(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        let s = service(p)
        let queueTimeout = s.pointee.admission.queueTimeout
        if queueTimeout == 0 || draining {
            return execute(p, p.pointee.lifecycle.noBackend(now: now, settings: pairSettings(p)))
        }
        let index = Int32(p - pairs)
        if s.pointee.queueHead > 0 && s.pointee.queueHead == s.pointee.queue.count {
            s.pointee.queue.removeAll(keepingCapacity: true)
            s.pointee.queueHead = 0
        }
        s.pointee.queue.append(UInt64(UInt32(bitPattern: index)) | UInt64(p.pointee.generation) << 32)
        p.pointee.queued = true
        queuedPairs += 1
        timers.schedule(index, at: now &+ queueTimeout)
        s.pointee.cells.bump(.queued)
        s.pointee.cells.bump(.queueLength)
        return true
    }

    /// Serves every service's waiting pairs, each queue in order while its backends have places.
    mutating func serveQueues() {
        for i in 0..<serviceCount where services[i].queueHead < services[i].queue.count {
            serveQueue(services + i)
        }
    }

    private mutating func serveQueue(_ s: UnsafeMutablePointer<WorkerService>) {
        while s.pointee.queueHead < s.pointee.queue.count {
            let entry = s.pointee.queue[s.pointee.queueHead]
            let index = Int(UInt32(truncatingIfNeeded: entry))
            let generation = UInt32(truncatingIfNeeded: entry >> 32)
            let p = pairs + index
            guard index < pairCapacity, p.pointee.inUse, p.pointee.generation == generation, p.pointee.queued else {
                s.pointee.queueHead += 1  // timed out or closed while it waited
                continue
            }
            let result = pickAndCount(p)
            if result == .full { break }
            s.pointee.queueHead += 1
            p.pointee.queued = false
            queuedPairs -= 1
            s.pointee.cells.bump(.queueLength, by: -1)
            switch result {
            case .backend(let id):
                timers.schedule(Int32(index), at: now &+ pairSettings(p).connectTimeout)
                _ = connect(p, to: id)
            default:
                _ = execute(p, p.pointee.lifecycle.noBackend(now: now, settings: pairSettings(p)))
            }
        }
        if s.pointee.queueHead == s.pointee.queue.count {
            s.pointee.queue.removeAll(keepingCapacity: true)
            s.pointee.queueHead = 0
        } else if s.pointee.queueHead > 4096 && s.pointee.queueHead * 2 > s.pointee.queue.count {
            s.pointee.queue.removeFirst(s.pointee.queueHead)
            s.pointee.queueHead = 0
        }
    }

    /// A queued pair waited `queueTimeout`: it gets the on-no-backend answer.
    mutating func queueTimedOut(_ p: UnsafeMutablePointer<ConnectionPair>) {
        p.pointee.queued = false
        queuedPairs -= 1
        let cells = service(p).pointee.cells
        cells.bump(.queueLength, by: -1)
        cells.bump(.queueTimeouts)
        _ = execute(p, p.pointee.lifecycle.noBackend(now: now, settings: pairSettings(p), reason: .queueTimeout))
    }
}
