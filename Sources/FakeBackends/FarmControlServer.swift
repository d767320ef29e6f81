import Glibc
import LoadBalancer
import OperatorHTTP

/// A small HTTP API over a farm, so a person (or a script) can break backends mid-run:
///
///     POST /backends/PORT/kill                 close the listener and reset its connections
///     POST /backends/PORT/restart              listen again
///     POST /backends/PORT/fault?kind=KIND      set a fault (kind=none heals)
///     GET  /stats                              totals and per-backend counters, as JSON
///
/// Served by `OperatorHTTP.HTTPServer` (its own thread, keep-alive, bounded requests): this is an
/// operator's tool, not a data path.
public final class FarmControlServer: Sendable {
    /// The bound address (port resolved when 0 was asked).
    public var address: SocketAddress { server.address }
    private let server: HTTPServer

    private init(server: HTTPServer) { self.server = server }

    public static func start(farm: FakeBackendFarm, address: SocketAddress) throws(SystemError) -> FarmControlServer {
        let server = try HTTPServer.start(on: address) { request in
            let answer = handle(method: request.method, target: request.target, farm: farm)
            return HTTPResponse(status: answer.status, contentType: "application/json", body: Array((answer.body + "\n").utf8))
        }
        return FarmControlServer(server: server)
    }

    /// Stops serving and joins the thread. Idempotent.
    public func stop() { server.stop() }

    // MARK: routing (pure apart from the farm calls)

    /// Answers one request: status and JSON body.
    public static func handle(method: String, target: String, farm: FakeBackendFarm) -> (status: Int, body: String) {
        let parts = target.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? ""
        let query = parts.count > 1 ? String(parts[1]) : ""
        let segments = path.split(separator: "/").map(String.init)

        if segments == ["stats"] {
            guard method == "GET" else { return (405, #"{"error":"use GET"}"#) }
            return (200, statsJSON(farm))
        }
        guard segments.count == 3, segments[0] == "backends" else {
            return (404, #"{"error":"no such endpoint"}"#)
        }
        guard let port = UInt16(segments[1]), let address = farm.backend(port: port) else {
            return (404, #"{"error":"no backend on port \#(json(segments[1]))"}"#)
        }
        guard method == "POST" else { return (405, #"{"error":"use POST"}"#) }
        switch segments[2] {
        case "kill":
            farm.kill(address)
            return (200, #"{"backend":"\#(address)","killed":true}"#)
        case "restart":
            do throws(SystemError) {
                try farm.restart(address)
                return (200, #"{"backend":"\#(address)","killed":false}"#)
            } catch {
                return (500, #"{"error":"\#(json(error.description))"}"#)
            }
        case "fault":
            var kind: String?
            for pair in query.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 && kv[0] == "kind" { kind = String(kv[1]) }
            }
            guard let kind else { return (400, #"{"error":"missing kind (one of \#(kindList), none)"}"#) }
            if kind == "none" {
                farm.setFault(address, nil)
            } else if let fault = FaultKind(rawValue: kind) {
                farm.setFault(address, fault)
            } else {
                return (400, #"{"error":"bad kind \#(json(kind)) (one of \#(kindList), none)"}"#)
            }
            let now = farm.faulty.first { $0.address == address }?.fault.rawValue
            return (200, #"{"backend":"\#(address)","fault":\#(now.map { "\"\($0)\"" } ?? "null")}"#)
        default:
            return (404, #"{"error":"no such action \#(json(segments[2]))"}"#)
        }
    }

    private static let kindList = FaultKind.allCases.map(\.rawValue).joined(separator: ", ")

    /// `{"backends":N,"totals":{...},"detail":[...]}`; detail lists backends with traffic, a fault or a kill.
    public static func statsJSON(_ farm: FakeBackendFarm) -> String {
        func counters(_ c: BackendCounters) -> String {
            #""connections":\#(c.connections),"requests":\#(c.requests),"bytesIn":\#(c.bytesIn),"bytesOut":\#(c.bytesOut),"faultsHit":\#(c.faultsHit)"#
        }
        let statuses = farm.statuses
        var text = #"{"backends":\#(statuses.count),"totals":{\#(counters(farm.totals))},"detail":["#
        var first = true
        for s in statuses where !s.counters.isZero || s.fault != nil || s.killed {
            if !first { text += "," }
            first = false
            let fault = s.fault.map { "\"\($0.rawValue)\"" } ?? "null"
            text += #"{"address":"\#(s.address)","port":\#(s.address.port),"fault":\#(fault),"killed":\#(s.killed),\#(counters(s.counters))}"#
        }
        text += "]}"
        return text
    }

    static func json(_ text: String) -> String { JSONWriter.escape(text) }
}
