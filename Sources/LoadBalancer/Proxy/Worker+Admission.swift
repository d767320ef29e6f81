import Glibc

/// Admission: who is refused at accept, the service-wide pair limit, and the queue of pairs waiting
/// for a backend place when every backend is at its limit (HAProxy's `maxconn` + `timeout queue`).
///
/// The queue is per worker and FIFO within it (a pair stays on the worker that accepted it); workers
/// look for a freed place after every event batch and at least every `queuePollMs` while pairs wait.
extension Worker {
    static let queuePollMs: Int32 = 5

    /// Allow/deny and the per-source limit for a just-accepted client. False: refused with a reset
    /// (SO_LINGER 0, so the client sees ECONNRESET at once) and counted; the fd is closed.
    mutating func admitClient(fd: Int32, peer: SocketAddress, key: UInt64) -> Bool {
        if !admission.settings.permits(peer) {
            refuse(fd)
            return false
        }
        if admission.settings.maxConnsPerSource > 0 && !admission.admitSource(key) {
            refuse(fd)
            return false
        }
        return true
    }

    private mutating func refuse(_ fd: Int32) {
        // Counted before the close: whoever sees the reset sees the count.
        shared.bump(.refused)
        admission.release()
        _ = try? Sys.setLingerReset(fd)
        Sys.close(fd)
    }

    /// At a pair's close: its place in the service, and its source's count.
    mutating func releaseAdmission(_ p: UnsafeMutablePointer<ConnectionPair>) {
        admission.release()
        if p.pointee.sourceCounted {
            admission.releaseSource(p.pointee.sourceKey)
            p.pointee.sourceCounted = false
        }
        if p.pointee.queued {
            p.pointee.queued = false
            shared.bump(.queueLength, by: -1)
        }
        // A place is free: a worker paused at --max-conns resumes at its next loop turn.
        if pausedAtLimit && !draining { resumeListenersAt = now }
    }

    /// Puts a pair at the back of the queue, with `queueTimeout` to wait. A zero timeout means no
    /// queue: the pair gets the on-no-backend answer at once.
    mutating func enqueue(_ p: UnsafeMutablePointer<ConnectionPair>) -> Bool {
        if admission.queueTimeout == 0 || draining {
            return execute(p, p.pointee.lifecycle.noBackend(now: now, settings: settings.pair))
        }
        let index = Int32(p - pairs)
        if queueHead > 0 && queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
        queue.append(UInt64(UInt32(bitPattern: index)) | UInt64(p.pointee.generation) << 32)
        p.pointee.queued = true
        timers.schedule(index, at: now &+ admission.queueTimeout)
        shared.bump(.queued)
        shared.bump(.queueLength)
        return true
    }

    /// Serves waiting pairs in order while backends have places.
    mutating func serveQueue() {
        while queueHead < queue.count {
            let entry = queue[queueHead]
            let index = Int(UInt32(truncatingIfNeeded: entry))
            let generation = UInt32(truncatingIfNeeded: entry >> 32)
            let p = pairs + index
            guard index < pairCapacity, p.pointee.inUse, p.pointee.generation == generation, p.pointee.queued else {
                queueHead += 1  // timed out or closed while it waited
                continue
            }
            let result = pickAndCount(p)
            if result == .full { break }
            queueHead += 1
            p.pointee.queued = false
            shared.bump(.queueLength, by: -1)
            switch result {
            case .backend(let id):
                timers.schedule(Int32(index), at: now &+ settings.pair.connectTimeout)
                _ = connect(p, to: id)
            default:
                _ = execute(p, p.pointee.lifecycle.noBackend(now: now, settings: settings.pair))
            }
        }
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        } else if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
    }

    /// A queued pair waited `queueTimeout`: it gets the on-no-backend answer.
    mutating func queueTimedOut(_ p: UnsafeMutablePointer<ConnectionPair>) {
        p.pointee.queued = false
        shared.bump(.queueLength, by: -1)
        shared.bump(.queueTimeouts)
        _ = execute(p, p.pointee.lifecycle.noBackend(now: now, settings: settings.pair, reason: .queueTimeout))
    }
}
