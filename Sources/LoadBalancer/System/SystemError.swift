import CShim
import Glibc

/// A failed system call: the errno and what was being done, e.g. `connect 127.0.0.1:8000: Connection refused`.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    public let operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String { "\(operation): \(SystemError.message(for: errno))" }

    public static func message(for errno: Int32) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 128) { buf in
            lb_strerror(errno, buf.baseAddress!, 128)
            return String(cString: buf.baseAddress!)
        }
    }
}

/// Why a backend connection failed, in the words an operator reads in a log line.
public enum ConnectFailure: UInt8, Sendable, CustomStringConvertible {
    case refused, reset, timeout, unreachable, other
    /// Our side ran short (local ports, kernel memory, fds, epoll watches): not the backend's fault.
    case local

    public init(errno: Int32) {
        switch errno {
        case ECONNREFUSED: self = .refused
        case ECONNRESET, EPIPE, ECONNABORTED: self = .reset
        case ETIMEDOUT: self = .timeout
        case ENETUNREACH, EHOSTUNREACH: self = .unreachable
        case EADDRNOTAVAIL, EAGAIN, ENOBUFS, ENOMEM, EMFILE, ENFILE, ENOSPC: self = .local
        default: self = .other
        }
    }

    /// Whether the failure counts against the backend's health.
    public var blamesBackend: Bool { self != .local }

    public var description: String {
        switch self {
        case .refused: "connection refused"
        case .reset: "connection reset"
        case .timeout: "connect timeout"
        case .unreachable: "unreachable"
        case .other: "connect error"
        case .local: "no local resources"
        }
    }
}
