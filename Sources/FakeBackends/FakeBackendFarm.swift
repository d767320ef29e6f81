import Glibc
import LoadBalancer
import Synchronization

/// One backend's state as the control API reports it.
public struct BackendStatus: Sendable {
    public var address: SocketAddress
    public var fault: FaultKind?
    public var killed: Bool
    public var counters: BackendCounters
}

/// A farm of fake backends served by a few epoll loops (`FarmConfiguration.loops` threads; backend `i`
/// lives on loop `i % loops`). Tests start one in-process; the `fakebackends` executable wraps one.
///
/// Concurrency: each loop owns its listeners and connections. Control calls (kill, restart, setFault,
/// stop) are queued to the owning loop and wake it through an eventfd; they return once the loop has
/// done them (or after `commandTimeout`). Counters are read under each loop's lock.
public final class FakeBackendFarm: Sendable {
    /// A control call's bound: a loop answers in microseconds unless the machine is badly overloaded.
    public static let commandTimeout: Duration = .seconds(10)

    /// The bound addresses, in configuration order (ports resolved where 0 was asked).
    public let addresses: [SocketAddress]
    /// Addresses of the configuration left out because another socket held the port
    /// (`FarmConfiguration.skipBusyPorts`), in configuration order.
    public let skipped: [SocketAddress]
    public let configuration: FarmConfiguration
    private let loops: [FarmLoop]
    private let index: [SocketAddress: Int]
    /// What the loops were last told, per backend (global index). Writes: control callers, under the lock.
    private let state: Mutex<[(fault: FaultKind?, killed: Bool)]>
    /// Nil once stopped.
    private let threads: Mutex<[OSThread]?>

    private init(addresses: [SocketAddress], skipped: [SocketAddress], configuration: FarmConfiguration, loops: [FarmLoop], plan: [FaultKind?]) {
        self.addresses = addresses
        self.skipped = skipped
        self.configuration = configuration
        self.loops = loops
        var index: [SocketAddress: Int] = [:]
        index.reserveCapacity(addresses.count)
        for (i, a) in addresses.enumerated() { index[a] = i }
        self.index = index
        state = Mutex(plan.map { (fault: $0, killed: false) })
        threads = Mutex([])
    }

    deinit { stop() }

    /// A listener bound to an explicit port. For port 0 the port is first learnt from a throwaway
    /// socket (SO_REUSEPORT lets the real one bind beside it before it closes, so no other socket can
    /// take the port in between). An explicit bind matters: only such a socket keeps its port when
    /// it stops listening (a refusing backend) and can listen again on it.
    static func openListener(_ address: SocketAddress) throws(SystemError) -> (Int32, SocketAddress) {
        var bound = address
        var placeholder: Int32 = -1
        defer { if placeholder >= 0 { Sys.close(placeholder) } }
        if address.port == 0 {
            placeholder = try Sockets.bind(on: address, reusePort: true)
            bound = try Sys.localAddress(of: placeholder)
        }
        let fd = try Sockets.listen(on: bound, backlog: FarmConfiguration.backlog, reusePort: address.port == 0)
        return (fd, bound)
    }

    /// Opens every listener (except `refuse` ones), then starts the loops. Throws, having closed whatever
    /// it opened, when a listener cannot be opened (out of descriptors; a port in use unless
    /// `skipBusyPorts`, which leaves such a port out and lists it in `skipped`). The fault plan is chosen
    /// over the whole configuration, so skipping a port does not change which others are faulty.
    public static func start(_ config: FarmConfiguration) throws(SystemError) -> FakeBackendFarm {
        precondition(config.loops >= 1, "a farm needs at least one loop")
        let fullPlan = FaultPlan.choose(
            count: config.addresses.count, failRate: config.failRate, fault: config.fault, seed: config.seed)

        // Per backend actually opened (busy ports skipped), in configuration order.
        var plan: [FaultKind?] = []
        var opened: [Int32] = []
        var parked: [Int32] = []
        var resolved: [SocketAddress] = []
        var skipped: [SocketAddress] = []
        opened.reserveCapacity(config.addresses.count)
        parked.reserveCapacity(config.addresses.count)
        resolved.reserveCapacity(config.addresses.count)
        func closeOpened() {
            for fd in opened where fd >= 0 { Sys.close(fd) }
            for fd in parked where fd >= 0 { Sys.close(fd) }
        }
        do throws(SystemError) {
            for (i, address) in config.addresses.enumerated() {
                let fd: Int32, bound: SocketAddress
                do throws(SystemError) {
                    (fd, bound) = try openListener(address)
                } catch let error where config.skipBusyPorts && address.port != 0 && error.errno == EADDRINUSE {
                    skipped.append(address)
                    continue
                }
                resolved.append(bound)
                plan.append(fullPlan[i])
                if fullPlan[i] == .refuse {
                    // A refusing backend has no listener, but keeps its port bound (see LoopBackend.parkedFD).
                    do throws(SystemError) {
                        try Sys.unlisten(fd)
                    } catch {
                        Sys.close(fd)
                        throw error
                    }
                    parked.append(fd)
                    opened.append(-1)
                } else {
                    parked.append(-1)
                    opened.append(fd)
                }
            }
        } catch {
            closeOpened()
            throw error
        }
        let count = resolved.count
        let loopCount = max(1, min(config.loops, max(count, 1)))

        let settings = LoopSettings(
            mode: config.mode, delayNanos: config.delay.nanoseconds, flapNanos: max(config.flapPeriod.nanoseconds, 1_000_000),
            dripNanos: config.dripInterval.nanoseconds, seed: config.seed)
        var loops: [FarmLoop] = []
        do throws(SystemError) {
            for l in 0..<loopCount {
                let setup = stride(from: l, to: count, by: loopCount).map { i in
                    LoopBackendSetup(address: resolved[i], listenerFD: opened[i], parkedFD: parked[i], fault: plan[i])
                }
                loops.append(try FarmLoop(settings: settings, setup: setup))
            }
        } catch {
            closeOpened()
            for loop in loops { Sys.close(loop.wakeFD) }
            throw error
        }

        let farm = FakeBackendFarm(addresses: resolved, skipped: skipped, configuration: config, loops: loops, plan: plan)
        // From here the loops own the listeners; a loop that fails to start closes its own.
        var failure: SystemError?
        var failedAt = loops.count
        for (l, loop) in loops.enumerated() {
            do throws(SystemError) {
                let thread = try loop.spawn()
                farm.threads.withLock { $0?.append(thread) }
                loop.ready.wait()
                failure = loop.startError.withLock { $0 }  // a loop that failed has closed its own listeners
            } catch {
                loop.closeSetupDescriptors()
                loop.inbox.withLock { $0.closed = true }
                failure = error
            }
            if failure != nil {
                failedAt = l
                break
            }
        }
        if let failure {
            // Loops never started still own their listeners.
            for loop in loops.dropFirst(failedAt + 1) {
                loop.closeSetupDescriptors()
                loop.inbox.withLock { $0.closed = true }
            }
            farm.stop()
            throw failure
        }
        return farm
    }

    // MARK: lookup

    private func locate(_ address: SocketAddress) -> (loop: FarmLoop, local: Int32, global: Int)? {
        guard let i = index[address] else { return nil }
        return (loops[i % loops.count], Int32(i / loops.count), i)
    }

    /// The first backend listening on `port` (the control API names backends by port).
    public func backend(port: UInt16) -> SocketAddress? {
        addresses.first { $0.port == port }
    }

    // MARK: control

    /// Closes the backend's listener and resets its open connections, as if its process had crashed.
    /// Returns once done. Unknown addresses are ignored.
    public func kill(_ address: SocketAddress) {
        guard let at = locate(address) else { return }
        state.withLock { $0[at.global].killed = true }
        _ = perform(at.loop) { .kill(at.local, $0) }
    }

    /// Listens again on the same port. The backend serves healthily unless a fault is set (a `refuse`
    /// backend stays closed). Returns once listening.
    public func restart(_ address: SocketAddress) throws(SystemError) {
        guard let at = locate(address) else {
            throw SystemError(errno: ENOENT, operation: "restart \(address): not in the farm")
        }
        state.withLock { $0[at.global].killed = false }
        if let error = perform(at.loop, { .restart(at.local, $0) }) { throw error }
    }

    /// Sets the backend's fault (nil heals it) for connections accepted from now on; `mixed` picks a
    /// concrete kind from the farm's seed. A `refuse` closes the listener at once; healing reopens it.
    public func setFault(_ address: SocketAddress, _ fault: FaultKind?) {
        guard let at = locate(address) else { return }
        var concrete = fault
        if let fault {
            var rng = SplitMix64(seed: configuration.seed ^ UInt64(at.global) &* 0x9E37_79B9_7F4A_7C15)
            concrete = FaultPlan.resolve(fault, &rng)
        }
        state.withLock { $0[at.global].fault = concrete }
        _ = perform(at.loop) { .setFault(at.local, concrete, $0) }
    }

    private func perform(_ loop: FarmLoop, _ make: (Completion) -> LoopCommand) -> SystemError? {
        let done = Completion()
        guard loop.send(make(done)) else { return nil }  // stopped: nothing is listening anyway
        return done.wait(timeout: Self.commandTimeout)
    }

    // MARK: observation

    public func counters(_ address: SocketAddress) -> BackendCounters {
        guard let at = locate(address) else { return BackendCounters() }
        return at.loop.counters.withLock { $0[Int(at.local)] }
    }

    public var totals: BackendCounters {
        loops.reduce(BackendCounters()) { sum, loop in loop.counters.withLock { $0.reduce(sum, +) } }
    }

    /// Each faulty backend and its concrete fault (as last set), in address order.
    public var faulty: [(address: SocketAddress, fault: FaultKind)] {
        let faults = state.withLock { $0.map(\.fault) }
        return faults.enumerated().compactMap { i, f in f.map { (addresses[i], $0) } }
    }

    /// Every backend's fault, killed flag and counters, in address order.
    public var statuses: [BackendStatus] {
        let control = state.withLock { $0 }
        var all: [BackendCounters] = Array(repeating: BackendCounters(), count: addresses.count)
        for (l, loop) in loops.enumerated() {
            loop.counters.withLock { local in
                for (k, c) in local.enumerated() { all[k * loops.count + l] = c }
            }
        }
        return addresses.indices.map { i in
            BackendStatus(address: addresses[i], fault: control[i].fault, killed: control[i].killed, counters: all[i])
        }
    }

    // MARK: stop

    /// Closes every listener and connection and joins the loop threads. Idempotent; counters stay readable.
    public func stop() {
        guard let started = threads.withLock({ t -> [OSThread]? in
            let s = t
            t = nil
            return s
        }) else { return }
        for loop in loops { _ = loop.send(.stop) }
        for thread in started { thread.join() }
        for loop in loops { Sys.close(loop.wakeFD) }
    }
}
