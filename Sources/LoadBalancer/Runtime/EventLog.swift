import Glibc
import Synchronization

/// Operator-facing log lines (start-up, backend state changes, fd exhaustion): kept in a bounded ring
/// for the library API and tests (without time stamps), and echoed to stderr unless quiet (with one,
/// see `writeLogLine`). Rare by design: never per request.
public final class EventLog: Sendable {
    private let lines = Mutex<[String]>([])
    private let events = Mutex<(next: Int, list: [BackendEvent])>((1, []))
    /// Backend events kept for `backendEvents` (the admin API's `/api/events`).
    public static let eventCapacity = 512
    private let capacity: Int
    private let echo: Bool

    public init(echoToStderr: Bool = true, capacity: Int = 4096) {
        self.echo = echoToStderr
        self.capacity = capacity
    }

    public func log(_ line: String) {
        lines.withLock { l in
            if l.count >= capacity { l.removeFirst(l.count / 2) }
            l.append(line)
        }
        if echo { EventLog.writeLogLine("lb: " + line) }
    }

    /// Writes one log line to fd 2, after an RFC 3339 time stamp unless stderr is the systemd journal
    /// (`LogTimestamp`): `2026-12-01T09:30:05.123Z lb: backend 127.0.0.1:20007 down: ...`.
    public static func writeLogLine(_ line: String) {
        writeStderr(LogTimestamp.enabled ? LogTimestamp.now() + " " + line : line)
    }

    /// Like `log`, but always written to stderr, quiet or not: lines an operator asked for (a reload's
    /// outcome, an answer to a signal).
    public func announce(_ line: String) {
        lines.withLock { l in
            if l.count >= capacity { l.removeFirst(l.count / 2) }
            l.append(line)
        }
        EventLog.writeLogLine("lb: " + line)
    }

    /// A backend changed state (`up`, `down`, `drain`, `disabled`, `enabled`, `added`, `removed`):
    /// logged as `backend ADDR STATE: CAUSE` and kept as a structured event.
    /// `service`: the backend's service, kept with the event (the line names it in `cause` when
    /// there are several).
    public func backendChanged(_ address: SocketAddress, _ state: String, _ cause: String, service: String? = nil) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let time = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        events.withLock { e in
            if e.list.count >= Self.eventCapacity { e.list.removeFirst(e.list.count / 4) }
            e.list.append(BackendEvent(sequence: e.next, unixTime: time, address: address, state: state, cause: cause, service: service))
            e.next += 1
        }
        log("backend \(address) \(state): \(cause)")
    }

    /// The backend events kept so far, oldest first; `sequence` grows by one per event.
    public var backendEvents: [BackendEvent] { events.withLock { $0.list } }

    /// The lines kept so far, oldest first.
    public var recent: [String] { lines.withLock { $0 } }

    /// Writes one line to fd 2 (Swift 6: the `stderr` global is not concurrency-safe), ending it with a
    /// newline if it has none; `newline: false` writes the text as it is (a progress line redrawn in place).
    public static func writeStderr(_ line: String, newline: Bool = true) {
        var text = line
        if newline && !text.hasSuffix("\n") { text += "\n" }
        text.withUTF8 { buf in
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(2, buf.baseAddress! + offset, buf.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}

/// One backend state change, as `/api/events` reports it.
public struct BackendEvent: Sendable, Equatable {
    public var sequence: Int
    /// Seconds since the Unix epoch.
    public var unixTime: Double
    public var address: SocketAddress
    public var state: String
    public var cause: String
    /// The service the backend belongs to (nil: the caller did not say).
    public var service: String? = nil
}
