import LoadBalancer

/// One TCP endpoint in the simulated kernel, on either side: the balancer's (reached through an fd)
/// or a simulated peer's (held directly by a `SimActor`). The fields mirror what Linux's `tcp_sock`
/// keeps that a proxy can observe: the receive queue, the send queue (bytes in flight stay in it until
/// they are delivered, as a retransmit queue does), `sk_shutdown`, `sk_err`, `SOCK_DONE`,
/// `SOCK_NOSPACE` and the TCP state.
public final class SimSocket {
    public enum State: UInt8 {
        /// Made by socket(), never connected (or disconnected again): TCP_CLOSE before a connect.
        case fresh
        case synSent
        case established
        case listening
        /// TCP_CLOSE after a connection: reset, refused, or both FINs exchanged.
        case closed
    }

    public let id: Int
    public internal(set) var state: State = .fresh
    public internal(set) var family: Int32
    public internal(set) var local = SocketAddress()
    public internal(set) var remote = SocketAddress()
    /// bind(2) gave it a source address: a connect keeps that host and picks only the port.
    var bound = false
    /// The other end of the connection (nil while unconnected).
    var peer: SimSocket?

    var rcv: ByteRing
    var snd: ByteRing
    /// Bytes at the front of `snd` already sent and not yet delivered.
    var inFlight = 0
    /// When the last segment sent from here arrives: segments of one direction arrive in order.
    var lastArrival: UInt64 = 0
    /// Bumped when the send queue is purged (a reset, a disconnect): segments still in the network
    /// from before are dropped on arrival.
    var epoch = 0

    /// shutdown(SHUT_WR) or close() asked for a FIN after the queued bytes.
    var finQueued = false
    var finSent = false
    /// SEND_SHUTDOWN / RCV_SHUTDOWN bits of sk_shutdown.
    var sendShutdown = false
    var receiveShutdown = false
    /// SOCK_DONE: the peer's FIN arrived (a recv with nothing queued returns 0 from then on).
    var finReceived = false
    /// sk_err: the pending error, reported once by recv, send, splice or SO_ERROR.
    var error: Int32 = 0
    /// SOCK_NOSPACE: a writer found the send queue full, so freed space wakes it.
    var noSpace = false
    var lingerReset = false
    /// The owner let go of it (close): it lives on only to send what it holds and its FIN.
    var orphaned = false
    /// Gone for good: reset, refused, or closed with nothing left to say.
    var dead = false

    // Listener
    var acceptQueue: [SimSocket] = []
    var acceptHead = 0
    var backlog = 0

    /// Who hears about changes: an fd of the balancer (through epoll) or an actor.
    var fd: Int32 = -1
    /// Unowned: the run keeps its actors alive for as long as the world runs.
    unowned(unsafe) var actor: SimActor?
    /// epoll registrations watching this socket.
    var watchers: [SimEpoll.Item] = []

    // Accounting for the properties
    /// Bytes this endpoint's owner wrote (accepted by send) and read.
    public internal(set) var bytesWritten = 0
    public internal(set) var bytesRead = 0
    /// It sent a reset (abortive close) / received one.
    public internal(set) var sentReset = false
    public internal(set) var gotReset = false
    /// Virtual time of the last byte moved through it by its owner (read or written).
    public internal(set) var lastActivity: UInt64 = 0

    init(id: Int, family: Int32, receiveCapacity: Int, sendCapacity: Int) {
        self.id = id
        self.family = family
        rcv = ByteRing(capacity: receiveCapacity)
        snd = ByteRing(capacity: sendCapacity)
    }

    var pendingAccepts: Int { acceptQueue.count - acceptHead }

    /// Bytes written but not yet sent.
    var unsent: Int { snd.count - inFlight }

    /// The receive window the peer may still fill: free queue space less what is already on its way.
    func window(inFlightTowards n: Int) -> Int { rcv.capacity - rcv.count - n }

    /// tcp_poll(): the readiness mask, computed from the state now (as epoll does at wait time).
    var pollMask: UInt32 {
        if state == .listening { return pendingAccepts > 0 ? EpollEvents.input : 0 }
        var mask: UInt32 = 0
        if (sendShutdown && receiveShutdown) || state == .closed || state == .fresh { mask |= EpollEvents.hangup }
        if receiveShutdown { mask |= EpollEvents.input | EpollEvents.readHangup }
        if state != .synSent {
            if !rcv.isEmpty { mask |= EpollEvents.input }
            if !sendShutdown {
                if writable { mask |= EpollEvents.output }
            } else {
                mask |= EpollEvents.output
            }
        }
        if error != 0 { mask |= EpollEvents.error }
        return mask
    }

    /// __sk_stream_is_writeable: free space at least half of what is queued (and some space at all).
    var writable: Bool { snd.free > 0 && snd.free >= snd.count / 2 }
}
