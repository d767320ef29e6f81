import CShim
import Glibc
import LoadBalancer

/// Runs a load test: `threads` workers, each an epoll loop over its share of the connections.
///
/// The run always ends: `-n` tickets run out, or `duration` passes (requests then in flight are cut
/// off), and every request is bounded by `timeout`. An unreachable target gives a report full of
/// `refused`, never a throw or a hang. `run` throws only when the process cannot set up its workers
/// (no epoll, say).
public enum LoadGenerator {
    public static func run(_ config: LoadConfiguration) throws -> LoadReport {
        let concurrency = max(1, config.concurrency)
        let threads = max(1, min(config.threads, concurrency))
        let limit = config.requests.map { max(0, $0) } ?? .max
        let start = MonotonicClock.now()
        let end = config.duration.map { start &+ $0.nanoseconds } ?? .max
        let doneFD = try Sys.eventFD()
        defer { Sys.close(doneFD) }
        let shared = RunShared(limit: config.requests == nil && config.duration == nil ? 1 : limit,
                               startNs: start, endNs: end, doneFD: doneFD)

        var workers: [LoadWorker] = []
        for i in 0..<threads {
            let share = concurrency / threads + (i < concurrency % threads ? 1 : 0)
            workers.append(try LoadWorker(index: i, slots: share, config: config, shared: shared))
        }
        var handles: [OSThread] = []
        for worker in workers {
            do {
                handles.append(try OSThread.spawn {
                    worker.run()
                    Sys.signalEventFD(shared.doneFD)
                })
            } catch {
                // Workers already running would signal doneFD after it is closed: stop here instead.
                preconditionFailure("\(error)")
            }
        }

        if config.progress {
            Progress.follow(shared: shared, threads: threads)
        }
        for handle in handles { handle.join() }

        var report = LoadReport()
        report.mode = config.mode
        report.target = config.mode == .http ? config.target.description : config.target.address.description
        report.concurrency = concurrency
        report.threads = threads
        report.keepAlive = config.keepAlive
        var finished = start
        for worker in workers {
            report.merge(worker.stats)
            finished = max(finished, worker.finishedAt)
        }
        report.elapsed = .nanoseconds(Int64(finished - start))
        return report
    }
}

/// Draws `  1234 done  5 failed  12345 req/s  2.1s` on stderr while workers run, then clears it.
/// Written to fd 2 with write(2): Swift 6 does not allow the global `stderr` across threads.
enum Progress {
    static func follow(shared: RunShared, threads: Int) {
        guard let poll = try? Epoll(capacity: 4) else { return }
        guard (try? poll.add(shared.doneFD, events: EpollEvents.input, data: 0)) != nil else { return }
        var finished = 0
        var last = 0
        var lastTime = shared.startNs
        while finished < threads {
            let n = (try? poll.wait(timeoutMs: 250)) ?? 0
            if n > 0 {
                var value: UInt64 = 0
                _ = withUnsafeMutableBytes(of: &value) { Glibc.read(shared.doneFD, $0.baseAddress, 8) }
                finished += Int(value)
                if finished >= threads { break }
                continue
            }
            let now = MonotonicClock.now()
            let done = shared.completed.load(ordering: .relaxed)
            let failed = shared.failed.load(ordering: .relaxed)
            let rate = now > lastTime ? Double(done - last) * 1e9 / Double(now - lastTime) : 0
            last = done
            lastTime = now
            let seconds = Double(now - shared.startNs) / 1e9
            EventLog.writeStderr("\r  \(done) done  \(failed) failed  \(fixed(rate, 0)) req/s  \(fixed(seconds, 1))s \u{1B}[K", newline: false)
        }
        EventLog.writeStderr("\r\u{1B}[K", newline: false)
    }
}
