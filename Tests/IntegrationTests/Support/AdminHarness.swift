import Admin
import Foundation
import LoadBalancer
import OperatorHTTP

/// A balancer over `backends` with its admin server on 127.0.0.1:0, both always stopped.
func withAdmin<T>(
    backends: [SocketAddress], token: AdminToken? = nil, limits: HTTPServerLimits = HTTPServerLimits(),
    configure: (inout Configuration) -> Void = { _ in },
    _ body: (LoadBalancer, AdminServer, SocketAddress) throws -> T
) throws -> T {
    try withBalancer(backends: backends, configure: configure) { lb, address in
        let admin = try AdminServer.start(lb, on: SocketAddress(host: "127.0.0.1", port: 0)!, token: token, limits: limits)
        defer { admin.stop() }
        return try body(lb, admin, address)
    }
}

struct AdminReply {
    var status: Int
    var head: String
    var body: String

    func header(_ name: String) -> String? {
        for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix(name.lowercased() + ":") {
            return String(line.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) }
}

/// One request on a fresh connection; nil when the server closed without a response.
func adminCall(_ admin: AdminServer, _ method: String, _ path: String, body: String? = nil, token: String? = nil) throws -> AdminReply? {
    let client = try TestClient(admin.address)
    var request = "\(method) \(path) HTTP/1.1\r\nHost: lb\r\n"
    if let token { request += "Authorization: Bearer \(token)\r\n" }
    if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
    request += "\r\n" + (body ?? "")
    client.send(request)
    return readReply(client)
}

func readReply(_ client: TestClient) -> AdminReply? {
    guard let (head, body) = client.readHTTPResponse() else { return nil }
    let status = Int(head.split(separator: " ")[1]) ?? 0
    return AdminReply(status: status, head: head, body: body)
}
