import Glibc

/// sd_notify(3) without libsystemd: one datagram per state change to the Unix socket named by
/// `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Without the variable it does
/// nothing, so `lb` behaves the same outside systemd. States lb sends: `READY=1` once listening,
/// `RELOADING=1` / `READY=1` around a reload, `STOPPING=1` when draining begins.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(socketPath: String?) {
        self.socketPath = (socketPath?.isEmpty ?? true) ? nil : socketPath
    }

    /// Reads `$NOTIFY_SOCKET`.
    public static func fromEnvironment() -> SystemdNotifier {
        SystemdNotifier(socketPath: getenv("NOTIFY_SOCKET").map { String(cString: $0) })
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). Best effort: a supervisor that went away
    /// must not stop the balancer; the error is returned for the caller to log.
    @discardableResult
    public func notify(_ state: String) -> SystemError? {
        guard let socketPath else { return nil }
        do {
            try Sys.sendDatagram(toUnixPath: socketPath, Array(state.utf8))
            return nil
        } catch {
            return error
        }
    }
}
