import Foundation
import LoadBalancer
import OperatorHTTP
import Testing

/// The pure parts of OperatorHTTP: request parsing bounds, the JSON and Prometheus writers.
@Suite struct OperatorHTTPTests {
    func parse(_ text: String, _ parser: inout HTTPRequestParser) throws(HTTPRequestParser.Failure) -> [HTTPRequestHead] {
        var out: [HTTPRequestHead] = []
        let bytes = Array(text.utf8)
        var failure: HTTPRequestParser.Failure?
        bytes.withUnsafeBytes { raw in
            do throws(HTTPRequestParser.Failure) { try parser.feed(raw) { out.append($0) } } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }

    @Test func keepsBodiesAndHeadersWhenAsked() throws {
        var p = HTTPRequestParser(maxHeadBytes: 8192, maxBodyBytes: 100, keepBodies: true)
        let r = try parse("POST /api/backends HTTP/1.1\r\nAuthorization: Bearer x\r\nContent-Length: 5\r\n\r\nhello", &p)
        #expect(r.count == 1)
        #expect(r[0].body == Array("hello".utf8))
        #expect(r[0].header("AUTHORIZATION") == "Bearer x")
    }

    @Test(arguments: [
        ("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
        ("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n", 431),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET /\r\n\r\n", 400),
        ("get / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400),
    ])
    func refusesWithTheRightStatus(request: String, status: Int) {
        var p = HTTPRequestParser(maxHeadBytes: 8192, maxBodyBytes: 100, keepBodies: true)
        do {
            _ = try parse(request, &p)
            Issue.record("accepted")
        } catch {
            #expect(error.status == status)
        }
    }

    @Test func jsonWriterEscapesAndSeparates() {
        var w = JSONWriter()
        w.object { w in
            w.field("text", "a\"b\\c\nd\u{1}é")
            w.field("n", -42)
            w.field("x", 1.5)
            w.field("nan", Double.nan)
            w.field("none", nil as String?)
            w.key("list")
            w.array { w in w.int(1); w.bool(true); w.object { _ in } }
        }
        #expect(w.text == #"{"text":"a\"b\\c\nd\u0001é","n":-42,"x":1.5,"nan":null,"none":null,"list":[1,true,{}]}"#)
        let parsed = try? JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any]
        #expect(parsed?["text"] as? String == "a\"b\\c\nd\u{1}é")
        #expect(JSONWriter.escape("x\"y") == #"x\"y"#)
    }

    @Test func prometheusTextFormat() {
        var w = PrometheusWriter()
        let labels = PrometheusWriter.labels(["service": "a\"b\\c\nd"])
        w.family("lb_x_total", .counter, help: "Line one\\two\nthree")
        w.sample("lb_x_total", labels, 7)
        w.family("lb_h_seconds", .histogram, help: "H.")
        w.histogram("lb_h_seconds", bounds: [0.5, 1], counts: [1, 2, 3], sum: 4.25)
        #expect(w.text == """
            # HELP lb_x_total Line one\\\\two\\nthree
            # TYPE lb_x_total counter
            lb_x_total{service="a\\"b\\\\c\\nd"} 7
            # HELP lb_h_seconds H.
            # TYPE lb_h_seconds histogram
            lb_h_seconds_bucket{le="0.5"} 1
            lb_h_seconds_bucket{le="1"} 3
            lb_h_seconds_bucket{le="+Inf"} 6
            lb_h_seconds_sum 4.25
            lb_h_seconds_count 6

            """)
    }
}
