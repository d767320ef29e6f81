// libFuzzer target: the operators' HTTP/1.x request parser (admin API, farm control, fake backends).
// Each input is fed twice: whole, and split at a byte the input itself chooses, since the parser is
// incremental and a request cut anywhere must parse the same. Bodies kept, bounded like the admin server.
import OperatorHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var whole: [HTTPRequestHead] = []
    var wholeFailure: HTTPRequestParser.Failure?
    var p1 = HTTPRequestParser(maxHeadBytes: 8 * 1024, maxBodyBytes: 64 * 1024, keepBodies: true)
    do { try p1.feed(bytes) { whole.append($0) } } catch { wholeFailure = error }

    let cut = size == 0 ? 0 : Int(bytes[0]) % (size + 1)
    var split: [HTTPRequestHead] = []
    var splitFailure: HTTPRequestParser.Failure?
    var p2 = HTTPRequestParser(maxHeadBytes: 8 * 1024, maxBodyBytes: 64 * 1024, keepBodies: true)
    do {
        try p2.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<cut])) { split.append($0) }
        try p2.feed(UnsafeRawBufferPointer(rebasing: bytes[cut...])) { split.append($0) }
    } catch { splitFailure = error }
    // The same requests and the same failure whatever the cut.
    precondition(whole == split && wholeFailure == splitFailure, "parse depends on where the input was cut")
    for r in whole {
        precondition(r.body.count == r.contentLength, "body length differs from Content-Length")
        precondition(!r.method.isEmpty, "empty method accepted")
    }
    return 0
}
