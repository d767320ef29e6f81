/// Why a pair ended, as the lifecycle decided it: what the access log prints and `/metrics` counts.
/// Modelled on HAProxy's tcplog termination states (doc/configuration.txt, "Session state at
/// disconnection"): a two-letter `code` says who ended it and how, `name` says it in words.
public enum CloseReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Still open.
    case none = 0
    /// Both directions ended cleanly; the client sent its FIN first.
    case clientClosed
    /// Both directions ended cleanly; the backend sent its FIN first.
    case backendClosed
    /// The client reset the connection or an error hit its socket.
    case clientReset
    /// The backend reset the connection or an error hit its socket.
    case backendReset
    /// No byte moved either way for the idle timeout.
    case idleTimeout
    /// One direction had ended and the other stayed open past the FIN timeout.
    case finTimeout
    /// Every connect attempt failed (retries spent).
    case connectFailed
    /// No backend was available to try.
    case noBackend
    /// The drain deadline (shutdown) closed it.
    case drain
    /// lb itself ran short (fds, local ports, memory).
    case limit
    /// Every backend was at its connection limit for the whole queue timeout.
    case queueTimeout
    /// The client did not finish its preamble (PROXY header) within `--preamble-timeout`.
    case preambleTimeout
    /// The client's preamble was refused: a malformed, truncated or oversized PROXY header or TLS
    /// ClientHello, or bytes that are not TLS where a ClientHello was expected.
    case badPreamble
    /// A TLS ClientHello without a server name, or naming one no service serves (and no default).
    case unknownServerName
    /// The client address a PROXY header gave is denied (`--allow`/`--deny`) or past
    /// `--max-conns-per-source`; or a pair routed by server name met its service's allow/deny,
    /// per-source limit or `max_conns`. (Refused at accept, before a pair exists, it leaves no record.)
    case refused

    /// `client_closed`, `backend_reset`, ...: a word to grep for.
    public var name: String {
        switch self {
        case .none: "open"
        case .clientClosed: "client_closed"
        case .backendClosed: "backend_closed"
        case .clientReset: "client_reset"
        case .backendReset: "backend_reset"
        case .idleTimeout: "idle_timeout"
        case .finTimeout: "fin_timeout"
        case .connectFailed: "connect_failed"
        case .noBackend: "no_backend"
        case .drain: "drain"
        case .limit: "limit"
        case .queueTimeout: "queue_timeout"
        case .preambleTimeout: "preamble_timeout"
        case .badPreamble: "bad_preamble"
        case .unknownServerName: "unknown_server_name"
        case .refused: "refused"
        }
    }

    /// HAProxy-style: the first letter says who ended the pair (C client, S server/backend, L lb
    /// itself, K killed by shutdown, R resources), the second in what way (- clean close, R reset,
    /// I idle timeout, F FIN timeout, C connect, N no backend, D drain, T preamble timeout, P bad
    /// preamble, S server name nobody serves; LQ queue timeout, LR refused by an address rule).
    public var code: String {
        switch self {
        case .none: "--"
        case .clientClosed: "C-"
        case .backendClosed: "S-"
        case .clientReset: "CR"
        case .backendReset: "SR"
        case .idleTimeout: "LI"
        case .finTimeout: "LF"
        case .connectFailed: "SC"
        case .noBackend: "LN"
        case .drain: "KD"
        case .limit: "RC"
        case .queueTimeout: "LQ"
        case .preambleTimeout: "CT"
        case .badPreamble: "CP"
        case .unknownServerName: "CS"
        case .refused: "LR"
        }
    }

    public var description: String { name }
}

/// Which socket of a pair an error came from.
public enum PairSide: Sendable {
    case client, backend
}
