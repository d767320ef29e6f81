/// An incremental HTTP/1.x response parser: feed it bytes as they arrive, in any split.
///
/// It reads the status line and headers a byte at a time (responses to a load generator are small),
/// skips bodies in bulk by `Content-Length` or chunk size, and reads to end-of-stream when neither is
/// given. It keeps only what the report needs: the status code, `X-Backend`, and whether the server
/// will close. The two capture buffers are borrowed from the owner (one allocation per connection
/// slot); the parser never allocates.
public struct HTTPResponseParser {
    public enum Outcome: Equatable, Sendable {
        case needMore
        /// The response is complete; bytes after it (none, unless the server pipelines) are unread.
        case complete
        /// Not HTTP, or a malformed length: the connection cannot be trusted further.
        case invalid
    }

    enum State: UInt8 {
        case statusLine, headerLine, body, chunkSize, chunkData, chunkDataEnd, trailer, untilClose, done, invalid
    }

    var state = State.statusLine
    let line: UnsafeMutablePointer<UInt8>
    let lineCapacity: Int
    var lineLength = 0
    let backendBuffer: UnsafeMutablePointer<UInt8>
    let backendCapacity: Int

    public private(set) var status = 0
    public private(set) var backendLength = 0
    /// True when the response says the connection ends after it (`Connection: close`, HTTP/1.0
    /// without keep-alive, or a body delimited by the close).
    public private(set) var closesConnection = false
    var http10 = false
    var keepAliveHeader = false
    var contentLength = -1
    var chunked = false
    var remaining = 0

    public init(line: UnsafeMutableBufferPointer<UInt8>, backend: UnsafeMutableBufferPointer<UInt8>) {
        self.line = line.baseAddress!
        lineCapacity = line.count
        backendBuffer = backend.baseAddress!
        backendCapacity = backend.count
    }

    /// Ready for the next response on the same connection.
    public mutating func reset() {
        state = .statusLine
        lineLength = 0
        status = 0
        backendLength = 0
        closesConnection = false
        http10 = false
        keepAliveHeader = false
        contentLength = -1
        chunked = false
        remaining = 0
    }

    /// The `X-Backend` header's value (empty when absent).
    public var backend: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: backendBuffer, count: backendLength)
    }

    /// Consumes bytes from `buffer`; returns how many were used and the outcome so far.
    public mutating func feed(_ buffer: UnsafeRawBufferPointer) -> (consumed: Int, outcome: Outcome) {
        guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return (0, outcome)
        }
        let n = buffer.count
        var i = 0
        while i < n {
            switch state {
            case .done, .invalid:
                return (i, outcome)
            case .body, .chunkData:
                let take = Swift.min(remaining, n - i)
                remaining -= take
                i += take
                if remaining == 0 { state = state == .body ? .done : .chunkDataEnd }
            case .untilClose:
                i = n
            case .statusLine, .headerLine, .chunkSize, .chunkDataEnd, .trailer:
                let byte = base[i]
                i += 1
                if byte == UInt8(ascii: "\n") {
                    if lineLength > 0 && line[lineLength - 1] == UInt8(ascii: "\r") { lineLength -= 1 }
                    endOfLine()
                    lineLength = 0
                } else if lineLength < lineCapacity {
                    line[lineLength] = byte
                    lineLength += 1
                }
            }
        }
        return (i, outcome)
    }

    var outcome: Outcome {
        switch state {
        case .done: .complete
        case .invalid: .invalid
        default: .needMore
        }
    }

    /// The peer closed the stream: complete if the body runs to the close, otherwise a short read.
    public mutating func endOfStream() -> Bool {
        if state == .untilClose { state = .done; closesConnection = true }
        return state == .done
    }

    // MARK: lines

    private mutating func endOfLine() {
        let text = UnsafeBufferPointer(start: line, count: lineLength)
        switch state {
        case .statusLine:
            // "HTTP/1.1 200 Reason"
            guard lineLength >= 12, Self.hasPrefix(text, "HTTP/1."), text[8] == UInt8(ascii: " "),
                  let code = Self.decimal(UnsafeBufferPointer(rebasing: text[9..<12])), code >= 100
            else { state = .invalid; return }
            status = code
            http10 = text[7] == UInt8(ascii: "0")
            state = .headerLine
        case .headerLine:
            if lineLength == 0 { endOfHeaders(); return }
            guard let colon = text.firstIndex(of: UInt8(ascii: ":")) else { return }  // tolerate junk
            let name = UnsafeBufferPointer(rebasing: text[0..<colon])
            var start = colon + 1
            var end = lineLength
            while start < end && (text[start] == 0x20 || text[start] == 0x09) { start += 1 }
            while end > start && (text[end - 1] == 0x20 || text[end - 1] == 0x09) { end -= 1 }
            let value = UnsafeBufferPointer(rebasing: text[start..<end])
            if Self.equalsLowercase(name, "content-length") {
                guard let length = Self.decimal(value) else { state = .invalid; return }
                contentLength = length
            } else if Self.equalsLowercase(name, "transfer-encoding") {
                if Self.containsLowercase(value, "chunked") { chunked = true }
            } else if Self.equalsLowercase(name, "connection") {
                if Self.containsLowercase(value, "close") { closesConnection = true }
                if Self.containsLowercase(value, "keep-alive") { keepAliveHeader = true }
            } else if Self.equalsLowercase(name, "x-backend") {
                let count = Swift.min(value.count, backendCapacity)
                if count > 0 { backendBuffer.update(from: value.baseAddress!, count: count) }
                backendLength = count
            }
        case .chunkSize:
            var size = 0
            var digits = 0
            for byte in text {
                guard let d = Self.hexDigit(byte) else { break }  // stops at ';' extensions too
                guard size < (1 << 40) else { state = .invalid; return }
                size = size << 4 | d
                digits += 1
            }
            guard digits > 0 else { state = .invalid; return }
            if size == 0 { state = .trailer } else { remaining = size; state = .chunkData }
        case .chunkDataEnd:
            state = lineLength == 0 ? .chunkSize : .invalid
        case .trailer:
            if lineLength == 0 { state = .done }
        default:
            break
        }
    }

    private mutating func endOfHeaders() {
        if http10 && !keepAliveHeader { closesConnection = true }
        if status < 200 {  // 1xx interim response: the real one follows
            let keep = closesConnection
            reset()
            closesConnection = keep
            return
        }
        if status == 204 || status == 304 {
            state = .done
        } else if chunked {
            state = .chunkSize
        } else if contentLength >= 0 {
            remaining = contentLength
            state = contentLength == 0 ? .done : .body
        } else {
            state = .untilClose
            closesConnection = true
        }
    }

    // MARK: byte helpers

    static func hasPrefix(_ text: UnsafeBufferPointer<UInt8>, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard text.count >= count else { return false }
        let p = prefix.utf8Start
        for j in 0..<count where text[j] != p[j] { return false }
        return true
    }

    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    static func equalsLowercase(_ text: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard text.count == count else { return false }
        let p = word.utf8Start
        for j in 0..<count where lower(text[j]) != p[j] { return false }
        return true
    }

    static func containsLowercase(_ text: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard text.count >= count else { return false }
        let p = word.utf8Start
        outer: for start in 0...(text.count - count) {
            for j in 0..<count where lower(text[start + j]) != p[j] { continue outer }
            return true
        }
        return false
    }

    static func decimal(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !text.isEmpty, text.count <= 15 else { return nil }
        var n = 0
        for byte in text {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            n = n * 10 + Int(byte - 0x30)
        }
        return n
    }

    static func hexDigit(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }
}
