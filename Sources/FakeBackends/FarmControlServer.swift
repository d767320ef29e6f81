import Glibc
import LoadBalancer
import Synchronization

/// A small HTTP API over a farm, so a person (or a script) can break backends mid-run:
///
///     POST /backends/PORT/kill                 close the listener and reset its connections
///     POST /backends/PORT/restart              listen again
///     POST /backends/PORT/fault?kind=KIND      set a fault (kind=none heals)
///     GET  /stats                              totals and per-backend counters, as JSON
///
/// One thread, one request per connection, one connection at a time, each bounded by
/// `clientTimeout`: this is an operator's tool, not a data path.
public final class FarmControlServer: Sendable {
    public static let clientTimeout: Duration = .seconds(2)

    /// The bound address (port resolved when 0 was asked).
    public let address: SocketAddress
    private let farm: FakeBackendFarm
    private let listenerFD: Int32
    private let wakeFD: Int32
    private let thread: Mutex<OSThread?>

    private init(farm: FakeBackendFarm, address: SocketAddress, listenerFD: Int32, wakeFD: Int32) {
        self.farm = farm
        self.address = address
        self.listenerFD = listenerFD
        self.wakeFD = wakeFD
        thread = Mutex(nil)
    }

    deinit { stop() }

    public static func start(farm: FakeBackendFarm, address: SocketAddress) throws(SystemError) -> FarmControlServer {
        let listener = try Sockets.listen(on: address, backlog: 16, reusePort: false)
        let wake: Int32
        let bound: SocketAddress
        do throws(SystemError) {
            bound = try Sys.localAddress(of: listener)
            wake = try Sys.eventFD()
        } catch {
            Sys.close(listener)
            throw error
        }
        let server = FarmControlServer(farm: farm, address: bound, listenerFD: listener, wakeFD: wake)
        let handle = try OSThread.spawn { server.serve() }
        server.thread.withLock { $0 = handle }
        return server
    }

    /// Stops serving and joins the thread. Idempotent.
    public func stop() {
        guard let handle = thread.withLock({ t -> OSThread? in
            let h = t
            t = nil
            return h
        }) else { return }
        Sys.signalEventFD(wakeFD)
        handle.join()
        Sys.close(listenerFD)
        Sys.close(wakeFD)
    }

    // MARK: serving (the server's own thread)

    private static let wakeToken: UInt64 = 0
    private static let listenerToken: UInt64 = 1
    private static let clientToken: UInt64 = 2

    private func serve() {
        guard let epoll = try? Epoll(capacity: 8),
              (try? epoll.add(wakeFD, events: EpollEvents.input, data: Self.wakeToken)) != nil,
              (try? epoll.add(listenerFD, events: EpollEvents.input, data: Self.listenerToken)) != nil
        else { return }
        while true {
            guard let n = try? epoll.wait(timeoutMs: -1) else { return }
            for i in 0..<n {
                if epoll.events[i].data == Self.wakeToken { return }
                while case .done(let fd)? = try? Sys.accept(listenerFD, peer: nil) {
                    if !serveOne(Int32(fd), epoll) { return }
                }
            }
        }
    }

    /// Reads one request, answers it, closes. False when a stop arrived meanwhile.
    private func serveOne(_ fd: Int32, _ epoll: borrowing Epoll) -> Bool {
        defer { Sys.close(fd) }
        let deadline = MonotonicClock.now() + Self.clientTimeout.nanoseconds
        do {
            try epoll.add(fd, events: EpollEvents.input, data: Self.clientToken)
        } catch {
            return true
        }
        var parser = HTTPRequestParser()
        var request: HTTPRequestHead?
        var malformed = false
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        reading: while request == nil && !malformed {
            let now = MonotonicClock.now()
            guard now < deadline else { return true }
            guard let n = try? epoll.wait(timeoutMs: Int32((deadline - now) / 1_000_000) + 1) else { return true }
            for i in 0..<n where epoll.events[i].data == Self.wakeToken { return false }
            switch try? Sys.receive(fd, buffer, 4096) {
            case .done(let got)? where got > 0:
                do throws(HTTPRequestParser.Failure) {
                    try parser.feed(UnsafeRawBufferPointer(start: buffer, count: got)) { head in
                        if request == nil { request = head }
                    }
                } catch {
                    malformed = true
                }
            case .wouldBlock?: continue reading
            default: return true  // EOF or error before a whole request
            }
        }
        let answer: (status: Int, body: String)
        if let request {
            answer = Self.handle(method: request.method, target: request.target, farm: farm)
        } else {
            answer = (400, #"{"error":"bad request"}"#)
        }
        return send(Self.response(answer.status, answer.body), to: fd, epoll, deadline: deadline)
    }

    private func send(_ bytes: [UInt8], to fd: Int32, _ epoll: borrowing Epoll, deadline: UInt64) -> Bool {
        var offset = 0
        try? epoll.modify(fd, events: EpollEvents.output, data: Self.clientToken)
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { raw in try? Sys.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            switch result {
            case .done(let n)?: offset += n
            case .wouldBlock?:
                let now = MonotonicClock.now()
                guard now < deadline, let n = try? epoll.wait(timeoutMs: Int32((deadline - now) / 1_000_000) + 1) else { return true }
                for i in 0..<n where epoll.events[i].data == Self.wakeToken { return false }
            case nil: return true
            }
        }
        return true
    }

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

    static func response(_ status: Int, _ body: String) -> [UInt8] {
        let reason: String
        switch status {
        case 200: reason = "OK"
        case 400: reason = "Bad Request"
        case 404: reason = "Not Found"
        case 405: reason = "Method Not Allowed"
        default: reason = "Internal Server Error"
        }
        let payload = body + "\n"
        return Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(payload.utf8.count)\r\nConnection: close\r\n\r\n\(payload)".utf8)
    }

    /// Escapes text for a JSON string.
    static func json(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u00" + String(scalar.value, radix: 16).leftPadded(to: 2)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
