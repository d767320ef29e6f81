import LoadBalancer
import OperatorHTTP

/// `lb --admin ADDR`: the admin API (`AdminAPI`) served by an `HTTPServer` on its own thread, never a
/// data worker. Off loopback it refuses to start without a token.
public final class AdminServer: Sendable {
    public let api: AdminAPI
    private let server: HTTPServer

    /// The bound address (port resolved when 0 was asked).
    public var address: SocketAddress { server.address }
    /// The dashboard's URL.
    public var url: String { "http://\(address)/" }

    private init(api: AdminAPI, server: HTTPServer) {
        self.api = api
        self.server = server
    }

    /// Binds `address` and serves `balancer`. Throws a one-line reason: a non-loopback address
    /// without a token, or the bind error.
    public static func start(
        _ balancer: LoadBalancer, on address: SocketAddress, token: AdminToken?, limits: HTTPServerLimits = AdminServer.limits
    ) throws(AdminError) -> AdminServer {
        if !address.isLoopback && token == nil {
            throw AdminError("--admin \(address): not a loopback address, so a token is required (--admin-token-file)")
        }
        let api = AdminAPI(balancer: balancer, token: token)
        do throws(SystemError) {
            let server = try HTTPServer.start(on: address, limits: limits, onTick: { api.tick() }, handler: { api.handle($0) })
            return AdminServer(api: api, server: server)
        } catch {
            throw AdminError("--admin \(address): \(error)")
        }
    }

    public func stop() { server.stop() }

    /// The admin server's defaults: `HTTPServerLimits`' bounds, on a thread at nice 10.
    public static var limits: HTTPServerLimits {
        var l = HTTPServerLimits()
        l.threadNice = 10
        return l
    }
}
