import Glibc
import Synchronization

/// Upgrading without a dropped connection: a running `lb` hands its listening sockets to a new one over
/// a Unix socket (`SCM_RIGHTS`, as HAProxy's `expose-fd listeners` and `-x`), the new one serves on the
/// very same sockets, and the old one drains and exits. Closing a SO_REUSEPORT listener would reset
/// the connections waiting in its accept queue; a socket handed over is never closed, so none is lost.
///
/// Both run with `--takeover-socket PATH`. The conversation, one SOCK_SEQPACKET message each:
///
///     new -> old   "lb-takeover 1"
///     old -> new   "listener\t<service>\t<configured address>\t<bound address>"  + its sockets (one per
///                  old worker), once per listen address
///     old -> new   "end"
///     new -> old   "ready"     (the new workers serve; the old one drains and exits)
///
/// A new process that fails before "ready" just closes the connection: the old one keeps serving.
public enum Takeover {
    public static let hello = "lb-takeover 1"
    /// A stuck peer gives up after this long, and the old process keeps serving.
    static let timeoutMilliseconds: Int32 = 10_000

    /// Listening sockets received from the running `lb`, for `LoadBalancer.start`.
    public struct InheritedListener: Sendable {
        public var service: String
        public var configured: SocketAddress
        public var bound: SocketAddress
        public var fds: [Int32]

        /// Whether this socket is what the new configuration asks of `service` at `address`: the same
        /// address (a configured port 0 matches within the same service only).
        func matches(service name: String, configured address: SocketAddress) -> Bool {
            address == configured && (address.port != 0 || name == service)
        }
    }

    /// The new process's side: connected to the old one, listeners received, "ready" not sent yet.
    public final class Session: Sendable {
        let connection: Int32
        public let listeners: [InheritedListener]

        init(connection: Int32, listeners: [InheritedListener]) {
            self.connection = connection
            self.listeners = listeners
        }

        /// Tells the old process the new one serves; it drains and exits.
        public func ready() throws(SystemError) {
            defer { Sys.close(connection) }
            try Sys.send(connection, Array("ready".utf8), passing: [])
        }

        /// Gives up (the new process could not start): the old one keeps serving.
        public func abandon() { Sys.close(connection) }
    }

    /// Asks the `lb` serving at `path` for its listeners. Nil when none serves there (no file, or a
    /// stale one): the caller binds its own. Throws when one answers but the hand-over fails.
    public static func request(from path: String) throws(SystemError) -> Session? {
        let fd: Int32
        do {
            fd = try Sys.unixConnect(path)
        } catch {
            if error.errno == ENOENT || error.errno == ECONNREFUSED { return nil }
            throw error
        }
        var listeners: [InheritedListener] = []
        func closeReceived() { for l in listeners { for f in l.fds { Sys.close(f) } } }
        do throws(SystemError) {
            try Sys.setReceiveTimeout(fd, milliseconds: timeoutMilliseconds)
            try Sys.send(fd, Array(hello.utf8), passing: [])
            while true {
                let (bytes, fds) = try Sys.receive(fd, capacity: 4096)
                let text = String(decoding: bytes, as: UTF8.self)
                if text == "end" { break }
                let fields = text.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard !bytes.isEmpty, fields.count == 4, fields[0] == "listener",
                      case .success(let configured) = ValueParsers.listenAddress(fields[2]),
                      case .success(let bound) = ValueParsers.listenAddress(fields[3])
                else {
                    for f in fds { Sys.close(f) }
                    throw SystemError(errno: EPROTO, operation: bytes.isEmpty ? "takeover: the running lb closed" : "takeover: bad message")
                }
                if let i = listeners.firstIndex(where: { $0.service == fields[1] && $0.configured == configured && $0.bound == bound }) {
                    listeners[i].fds += fds
                } else {
                    listeners.append(InheritedListener(service: fields[1], configured: configured, bound: bound, fds: fds))
                }
            }
        } catch {
            closeReceived()
            Sys.close(fd)
            throw error
        }
        return Session(connection: fd, listeners: listeners)
    }
}

/// The old process's side: serves hand-overs at a path on its own thread. One successful hand-over
/// ends it (the process then drains); a new process that goes away early changes nothing.
public final class TakeoverServer: Sendable {
    public let path: String
    private let listenFD: Int32
    private let inode: UInt64?
    private let thread: Mutex<OSThread?>
    private let handedOver = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    /// Binds `path` (atomically replacing what is there: the previous process's socket, or a stale
    /// one) and starts serving. `onHandedOver` runs once the new process is ready, on the server's
    /// thread: `lb` drains then. Throws `ENOTSOCK` when `path` names something that is not a socket
    /// (a mistyped path to a config file, say): that is never replaced.
    public static func start(
        path: String, balancer: LoadBalancer, onHandedOver: @escaping @Sendable () -> Void
    ) throws(SystemError) -> TakeoverServer {
        if Sys.namesNonSocket(path) { throw SystemError(errno: ENOTSOCK, operation: "replace \(path)") }
        // Bound under a temporary name, then renamed over `path`: at no moment does `path` name nothing
        // or something not yet listening.
        let temporary = path + ".\(getpid()).tmp"
        try? Sys.unlink(temporary)
        let fd = try Sys.unixListen(temporary)
        do throws(SystemError) {
            try Sys.rename(temporary, to: path)
        } catch {
            Sys.close(fd)
            try? Sys.unlink(temporary)
            throw error
        }
        let server = TakeoverServer(path: path, listenFD: fd, inode: Sys.inode(path))
        let t = try OSThread.spawn { server.serve(balancer: balancer, onHandedOver: onHandedOver) }
        server.thread.withLock { $0 = t }
        return server
    }

    private init(path: String, listenFD: Int32, inode: UInt64?) {
        self.path = path
        self.listenFD = listenFD
        self.inode = inode
        self.thread = Mutex(nil)
    }

    /// Stops serving; removes `path` unless a new process has put its own socket there.
    public func stop() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        Sys.shutdownBoth(listenFD)
        if let t = thread.withLock({ $0.take() }) { t.join() }
        Sys.close(listenFD)
        if !handedOver.load(ordering: .acquiring), let inode, Sys.inode(path) == inode { try? Sys.unlink(path) }
    }

    private func serve(balancer: LoadBalancer, onHandedOver: @Sendable () -> Void) {
        while !stopped.load(ordering: .acquiring) {
            let connection: Int32
            do {
                connection = try Sys.unixAccept(listenFD)
            } catch {
                if error.errno == ECONNABORTED || error.errno == EMFILE || error.errno == ENFILE { usleep(10_000); continue }
                return  // shut down by stop()
            }
            let done = handOver(connection, balancer: balancer)
            Sys.close(connection)
            if done {
                handedOver.store(true, ordering: .releasing)
                onHandedOver()
                return
            }
        }
    }

    /// One conversation. Returns true when the new process said "ready".
    private func handOver(_ connection: Int32, balancer: LoadBalancer) -> Bool {
        let log = balancer.log
        do throws(SystemError) {
            // Listening sockets go only to a process of the same user (or root): the socket file's
            // permissions are the first guard, this the second.
            let uid = try Sys.peerUID(connection)
            guard uid == geteuid() || uid == 0 else {
                log.announce("takeover: refused a connection from uid \(uid)")
                return false
            }
            try Sys.setReceiveTimeout(connection, milliseconds: Takeover.timeoutMilliseconds)
            let (hello, stray) = try Sys.receive(connection, capacity: 256)
            for f in stray { Sys.close(f) }
            guard String(decoding: hello, as: UTF8.self) == Takeover.hello else {
                log.announce("takeover: ignored a connection that did not say \"\(Takeover.hello)\"")
                return false
            }
            guard let exported = balancer.exportListeners() else {
                log.announce("takeover: workers did not hand over their listeners in time; still serving")
                return false
            }
            defer { for (_, fds) in exported { for f in fds { Sys.close(f) } } }
            for (listener, fds) in exported {
                let head = "listener\t\(listener.service)\t\(listener.configured)\t\(listener.bound)"
                var rest = fds[...]
                repeat {
                    let chunk = rest.prefix(Sys.maxPassedFDs)
                    rest = rest.dropFirst(chunk.count)
                    try Sys.send(connection, Array(head.utf8), passing: Array(chunk))
                } while !rest.isEmpty
            }
            try Sys.send(connection, Array("end".utf8), passing: [])
            let (answer, more) = try Sys.receive(connection, capacity: 64)
            for f in more { Sys.close(f) }
            guard String(decoding: answer, as: UTF8.self) == "ready" else {
                log.announce("takeover: the new lb went away before it was ready; still serving")
                return false
            }
            log.announce("takeover: listening sockets handed to the new lb; draining")
            return true
        } catch {
            log.announce("takeover: \(error); still serving")
            return false
        }
    }
}
