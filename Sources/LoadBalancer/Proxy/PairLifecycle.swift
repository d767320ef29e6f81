/// Settings a pair's lifecycle needs, in nanoseconds: derived once from `Configuration`.
public struct PairSettings: Sendable, Equatable {
    public var connectTimeout: UInt64
    public var idleTimeout: UInt64
    public var finTimeout: UInt64
    /// How long a client that got an error response may keep sending before we close on it.
    public var lingerTimeout: UInt64
    public var retries: Int
    public var onNoBackend: NoBackendAction

    public init(_ config: Configuration) {
        self.init(ServiceSettings(config))
    }

    public init(_ service: ServiceSettings) {
        connectTimeout = service.connectTimeout.nanoseconds
        idleTimeout = service.idleTimeout.nanoseconds
        finTimeout = service.finTimeout.nanoseconds
        lingerTimeout = min(service.finTimeout.nanoseconds, 2_000_000_000)
        retries = service.retries
        onNoBackend = service.onNoBackend
    }
}

/// What the event loop must do after a lifecycle event. A value, not a list: no allocation per event.
public struct PairActions: Equatable, Sendable, CustomStringConvertible {
    public struct Flags: OptionSet, Equatable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// Pick the next backend and start a connect to it.
        public static let connect = Flags(rawValue: 1 << 0)
        /// Tell the pool the current backend failed to connect (`failure` says how).
        public static let markBackendFailed = Flags(rawValue: 1 << 1)
        /// Tell the pool the current backend stayed silent while the client waited.
        public static let reportSilentBackend = Flags(rawValue: 1 << 2)
        /// Start forwarding: flush what the client sent while we were connecting.
        public static let startForwarding = Flags(rawValue: 1 << 3)
        /// Write `HTTP/1.1 502 Bad Gateway` to the client.
        public static let sendBadGateway = Flags(rawValue: 1 << 4)
        /// Shut the client's write side and read (and drop) what it still sends until it finishes or the
        /// timer fires: closing on unread bytes would send a reset that can destroy what we wrote.
        public static let lingerClient = Flags(rawValue: 1 << 9)
        /// Close both sides normally.
        public static let close = Flags(rawValue: 1 << 5)
        /// Close both sides with a reset: something broke, or lb cut streams that may be unfinished (a
        /// timeout, a drain running out); neither peer may take it for a clean end.
        public static let abort = Flags(rawValue: 1 << 6)
        /// (Re)arm the pair's one timer at `deadline`.
        public static let armTimer = Flags(rawValue: 1 << 7)
        /// Close the half-open backend socket of a failed attempt before the next one.
        public static let discardBackend = Flags(rawValue: 1 << 8)
    }

    public var flags: Flags = []
    public var deadline: UInt64 = 0
    public var failure: ConnectFailure = .other

    public init(_ flags: Flags = [], deadline: UInt64 = 0, failure: ConnectFailure = .other) {
        self.flags = flags
        self.deadline = deadline
        self.failure = failure
    }

    public func contains(_ f: Flags) -> Bool { flags.contains(f) }

    public var description: String {
        var parts: [String] = []
        let names: [(Flags, String)] = [
            (.connect, "connect"), (.markBackendFailed, "markBackendFailed(\(failure))"),
            (.reportSilentBackend, "reportSilentBackend"), (.startForwarding, "startForwarding"),
            (.sendBadGateway, "sendBadGateway"), (.close, "close"), (.abort, "abort"),
            (.armTimer, "armTimer(\(deadline))"), (.discardBackend, "discardBackend"), (.lingerClient, "lingerClient"),
        ]
        for (f, n) in names where flags.contains(f) { parts.append(n) }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}

/// The lifecycle of one client connection and its backend connection, as a pure state machine:
/// events in, actions out, time passed in. The event loop owns the sockets and the bytes; this owns
/// every decision about connecting, retrying, half-close, timeouts and closing.
///
///     preamble --header/ClientHello read--> connecting   (only pairs that need one; timeout or bad bytes: abort)
///     connecting --connected--> forwarding --both directions ended--> closed
///         |  \--failed, retries left--> connecting (next backend)
///         \--failed, none left / no backend--> lingering (502 sent, or not) --client done or timeout--> closed
///     forwarding --one direction ended--> half-closed (fin timeout armed)
///     any --reset or error--> closed (abort)
///     connecting/forwarding --idle, FIN or drain timeout--> closed (abort: the streams may be cut short)
public struct PairLifecycle: Equatable, Sendable {
    public enum Phase: UInt8, Sendable {
        /// Waiting for the client's first bytes (a PROXY header, a TLS ClientHello) before a backend is
        /// picked, bounded by the preamble timeout. Pairs that need neither never enter it.
        case preamble
        case connecting
        case forwarding
        /// An error response was sent; waiting for the client to finish sending so the close is clean.
        case lingering
        case closed
    }

    public private(set) var phase: Phase = .connecting
    /// Connect attempts made so far (the first plus retries).
    public private(set) var attempts: UInt8 = 0
    /// Client-to-backend bytes have all been delivered and the backend told (shutdown).
    public private(set) var upstreamEnded = false
    /// Backend-to-client likewise.
    public private(set) var downstreamEnded = false
    /// When the first direction ended (0 while both flow). The FIN timeout runs from the later of this
    /// and the last byte moved: it bounds a half-closed pair's silence, not its life, as HAProxy's
    /// `timeout client-fin` / `server-fin` do. A download after the client's FIN is never cut mid-flow.
    public private(set) var halfClosedAt: UInt64 = 0
    /// Why the pair ended (`.none` while it is open): set by every transition to `closed` or `lingering`.
    public private(set) var closeReason: CloseReason = .none
    /// The client-to-backend direction ended before the other one.
    private var upstreamEndedFirst = false

    public init() {}

    public var isHalfClosed: Bool { upstreamEnded != downstreamEnded }

    /// A client was accepted: find it a backend.
    public mutating func accepted(now: UInt64, settings: PairSettings) -> PairActions {
        attempts = 1
        return PairActions([.connect, .armTimer], deadline: now &+ settings.connectTimeout)
    }

    /// A client was accepted that must first send its preamble: wait for it, at most `timeout` ns.
    public mutating func acceptedAwaitingPreamble(now: UInt64, timeout: UInt64) -> PairActions {
        phase = .preamble
        return PairActions(.armTimer, deadline: now &+ timeout)
    }

    /// The preamble was read and accepted: find the client a backend, as `accepted` does.
    public mutating func preambleDone(now: UInt64, settings: PairSettings) -> PairActions {
        guard phase == .preamble else { return PairActions() }
        phase = .connecting
        return accepted(now: now, settings: settings)
    }

    /// The preamble was refused (malformed, truncated, too large): a reset.
    /// `unroutable`: a well-formed preamble asking for a server name nobody serves (or none).
    public mutating func preambleRejected(unroutable: Bool = false) -> PairActions {
        preambleRejected(because: unroutable ? .unknownServerName : .badPreamble)
    }

    /// The preamble ended the pair: closed with a reset, for `reason`.
    public mutating func preambleRejected(because reason: CloseReason) -> PairActions {
        guard phase == .preamble else { return PairActions() }
        phase = .closed
        closeReason = reason
        return PairActions(.abort)
    }

    /// The current backend's connect completed.
    public mutating func connected(now: UInt64, settings: PairSettings) -> PairActions {
        guard phase == .connecting else { return PairActions() }
        phase = .forwarding
        return PairActions([.startForwarding, .armTimer], deadline: now &+ settings.idleTimeout)
    }

    /// The current backend refused, reset or did not answer in time.
    public mutating func connectFailed(_ failure: ConnectFailure, now: UInt64, settings: PairSettings) -> PairActions {
        guard phase == .connecting else { return PairActions() }
        var actions = PairActions(failure.blamesBackend ? [.markBackendFailed, .discardBackend] : [.discardBackend], failure: failure)
        if Int(attempts) <= settings.retries {
            attempts += 1
            actions.flags.formUnion([.connect, .armTimer])
            actions.deadline = now &+ settings.connectTimeout
            return actions
        }
        let end = noBackend(now: now, settings: settings, reason: failure == .local ? .limit : .connectFailed)
        actions.flags.formUnion(end.flags)
        actions.deadline = end.deadline
        return actions
    }

    /// No backend can be tried (none available, retries spent, or a local failure such as fd exhaustion).
    /// `reason` is what the access log will say: `.noBackend`, `.connectFailed` or `.limit`.
    public mutating func noBackend(now: UInt64, settings: PairSettings, reason: CloseReason = .noBackend) -> PairActions {
        guard phase == .connecting else { return PairActions() }
        phase = .lingering
        closeReason = reason
        switch settings.onNoBackend {
        case .http502:
            return PairActions([.sendBadGateway, .lingerClient, .armTimer], deadline: now &+ settings.lingerTimeout)
        case .close:
            return PairActions([.lingerClient, .armTimer], deadline: now &+ settings.lingerTimeout)
        }
    }

    /// One direction finished: its source sent EOF, every byte was delivered, and the destination
    /// was shut for writing. `upstream` is client-to-backend. `lastActivity` is when bytes last moved
    /// (default `now`): the timer is armed for the earlier of the idle and FIN deadlines, so an end
    /// seen long after the last byte never pushes the idle deadline back.
    public mutating func directionEnded(upstream: Bool, now: UInt64, lastActivity: UInt64? = nil, settings: PairSettings) -> PairActions {
        switch phase {
        case .lingering:
            // The client finished sending after our error response: close cleanly now.
            if upstream { phase = .closed; return PairActions(.close) }
            return PairActions()
        case .closed, .connecting, .preamble:
            return PairActions()
        case .forwarding:
            if !upstreamEnded && !downstreamEnded { upstreamEndedFirst = upstream }
            if upstream { upstreamEnded = true } else { downstreamEnded = true }
            if upstreamEnded && downstreamEnded {
                phase = .closed
                closeReason = upstreamEndedFirst ? .clientClosed : .backendClosed
                return PairActions(.close)
            }
            if halfClosedAt == 0 { halfClosedAt = max(now, 1) }
            let last = min(lastActivity ?? now, now)
            return PairActions(.armTimer, deadline: min(last &+ settings.idleTimeout, now &+ settings.finTimeout))
        }
    }

    /// A reset or error on `side`'s socket. A pair already answered (lingering) keeps the reason it
    /// had: the reset only ends what was already decided.
    public mutating func failed(_ side: PairSide) -> PairActions {
        if phase == .closed { return PairActions() }
        if phase != .lingering { closeReason = side == .client ? .clientReset : .backendReset }
        phase = .closed
        return PairActions(.abort)
    }

    /// The pair's timer fired. `lastActivity` is when bytes last moved either way; `clientWaiting` is
    /// true when the last bytes moved were the client's, delivered to the backend, with no answer since.
    public mutating func timerFired(now: UInt64, lastActivity: UInt64, clientWaiting: Bool, settings: PairSettings) -> PairActions {
        switch phase {
        case .preamble:
            // Too slow to say who it is or where it goes: a reset, like any refused preamble.
            phase = .closed
            closeReason = .preambleTimeout
            return PairActions(.abort)
        case .connecting:
            return connectFailed(.timeout, now: now, settings: settings)
        case .lingering:
            phase = .closed
            return PairActions(.close)
        case .closed:
            return PairActions()
        case .forwarding:
            let idleDeadline = lastActivity &+ settings.idleTimeout
            var deadline = idleDeadline
            if halfClosedAt != 0 { deadline = min(deadline, max(halfClosedAt, lastActivity) &+ settings.finTimeout) }
            if now < deadline { return PairActions(.armTimer, deadline: deadline) }
            phase = .closed
            closeReason = now >= idleDeadline ? .idleTimeout : .finTimeout
            // Either stream may be unfinished: a reset both ways, never a FIN that looks like a clean end.
            var actions = PairActions(.abort)
            if now >= idleDeadline && clientWaiting { actions.flags.insert(.reportSilentBackend) }
            return actions
        }
    }

    /// Shutdown's drain deadline passed: close whatever is left. A pair still connecting or forwarding
    /// is cut (a reset both ways); one lingering after its error response has said all it had to.
    public mutating func drainExpired() -> PairActions {
        switch phase {
        case .closed: return PairActions()
        case .lingering:
            phase = .closed
            return PairActions(.close)
        case .connecting, .forwarding, .preamble:
            phase = .closed
            closeReason = .drain
            return PairActions(.abort)
        }
    }
}
