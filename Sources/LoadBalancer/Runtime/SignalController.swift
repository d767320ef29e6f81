import CShim
import Glibc
import Synchronization

/// What `lb` does on each signal, as a library type so it is tested in-process (by calling `handle`)
/// and the executable only waits for signals and acts on the outcome.
///
/// - TERM, INT: drain (close the listeners, let open pairs finish for `drain_timeout`); a second one
///   closes everything now.
/// - HUP: reload the config file; without one, one line and nothing changes. A file that fails to
///   read, parse or validate, or an address that cannot be bound, changes nothing: one line says why.
/// - USR1: reopen the access log (logrotate); without one, one line and nothing changes.
/// - USR2: one line, nothing changes.
/// No signal a supervisor habitually sends kills a serving lb (HUP, USR1 and USR2 end a process by
/// default).
public final class SignalController: Sendable {
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2]

    public enum Outcome: Equatable, Sendable {
        case keepServing
        /// Draining began: wait for the workers, then exit.
        case draining
        /// Close everything now and exit.
        case stopNow
    }

    let balancer: LoadBalancer
    /// Reads the configuration again (the file, with the command line's flags on top); nil when lb
    /// runs from flags only.
    let reloadSource: (@Sendable () throws(ConfigError) -> Configuration)?
    /// Told of state changes: sd_notify's "READY=1", "RELOADING=1", "STOPPING=1".
    let notify: @Sendable (String) -> Void
    /// Reopens the access log; nil when there is none.
    let reopenLogs: (@Sendable () -> Void)?
    private let draining = Atomic<Bool>(false)

    public init(
        balancer: LoadBalancer, reloadSource: (@Sendable () throws(ConfigError) -> Configuration)?,
        reopenLogs: (@Sendable () -> Void)? = nil, notify: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.balancer = balancer
        self.reloadSource = reloadSource
        self.reopenLogs = reopenLogs
        self.notify = notify
    }

    /// Blocks the handled signals in the calling thread, before any other thread starts, so every
    /// thread inherits the mask and only `waitForSignal` sees them.
    public static func blockHandledSignals() {
        _ = handled.withUnsafeBufferPointer { lb_block_signals($0.baseAddress, Int32($0.count)) }
    }

    /// Waits for the next handled signal (sigwait).
    public static func waitForSignal() -> Int32 {
        handled.withUnsafeBufferPointer { lb_wait_signals($0.baseAddress, Int32($0.count)) }
    }

    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        default: "signal \(signal)"
        }
    }

    public func handle(_ signal: Int32) -> Outcome {
        let log = balancer.log
        switch signal {
        case SIGTERM, SIGINT:
            if draining.exchange(true, ordering: .acquiringAndReleasing) {
                log.announce("second signal: closing all connections now")
                return .stopNow
            }
            notify("STOPPING=1")
            log.announce("\(Self.name(signal)): draining open connections for up to \(balancer.configuration.drainTimeout)")
            balancer.beginDrain()
            return .draining
        case SIGHUP:
            if draining.load(ordering: .acquiring) {
                log.announce("SIGHUP: draining, nothing reloaded")
            } else if let reloadSource {
                reload(reloadSource)
            } else {
                log.announce("SIGHUP: no config file to reload (started with flags only); nothing changed")
            }
            return .keepServing
        case SIGUSR1:
            if let reopenLogs {
                reopenLogs()
            } else {
                log.announce("SIGUSR1: no access log to reopen; nothing changed")
            }
            return .keepServing
        default:
            log.announce("\(Self.name(signal)): ignored; nothing changed")
            return .keepServing
        }
    }

    private func reload(_ source: @Sendable () throws(ConfigError) -> Configuration) {
        let log = balancer.log
        notify("RELOADING=1\nMONOTONIC_USEC=\(MonotonicClock.now() / 1000)")
        defer { notify("READY=1") }
        let config: Configuration
        do {
            config = try source()
        } catch {
            log.announce("reload failed, the running configuration is kept: \(error)")
            return
        }
        do {
            let change = try balancer.reload(to: config)
            log.announce("reload: " + change.summary)
        } catch {
            log.announce("reload failed, the running configuration is kept: \(error)")
        }
    }
}
