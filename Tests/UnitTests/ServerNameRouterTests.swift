import LoadBalancer
import Testing

@Suite struct ServerNameRouterTests {
    static let router = try! ServerNameRouter(
        routes: [
            (names: ["a.example.com", "*.example.com"], target: 0),
            (names: ["*.b.example.com", "Exact.B.Example.com"], target: 1),
            (names: ["*.c.b.example.com", "other.org"], target: 2),
        ], defaultTarget: 9)

    @Test(arguments: [
        ("a.example.com", 0),
        ("A.EXAMPLE.com", 0),
        ("x.example.com", 0),  // wildcard
        ("x.y.example.com", 0),  // wildcard, several labels
        ("x.b.example.com", 1),  // the longer wildcard wins
        ("exact.b.example.com", 1),
        ("c.b.example.com", 1),  // *.c.b.example.com needs a label before c
        ("z.c.b.example.com", 2),
        ("other.org", 2),
        ("example.com", 9),  // a wildcard does not match its own suffix
        ("b.example.org", 9),
        ("xexample.com", 9),
        ("", 9),
    ] as [(String, Int)])
    func routes(name: String, target: Int) {
        #expect(Self.router.route(name) == target)
    }

    @Test func exactBeatsWildcard() throws {
        let r = try ServerNameRouter(routes: [(names: ["*.example.com"], target: 0), (names: ["www.example.com"], target: 1)], defaultTarget: nil)
        #expect(r.route("www.example.com") == 1)
        #expect(r.route("ww.example.com") == 0)
        #expect(r.route("nomatch.net") == nil)
        #expect(r.defaultTarget == nil)
    }

    @Test func manyExactNames() throws {
        let names = (0..<500).map { "host\($0).example.net" }
        let r = try ServerNameRouter(routes: names.enumerated().map { (names: [$0.element], target: $0.offset) }, defaultTarget: nil)
        for (i, n) in names.enumerated() { #expect(r.route(n) == i) }
        #expect(r.route("host500.example.net") == nil)
        #expect(r.route("host1.example.ne") == nil)
    }

    @Test(arguments: ["", "**", "*.", "a..b", ".a", "a.", "a b", "a*.b", "*.*.b", "é.com", String(repeating: "a", count: 64) + ".com",
                      String(repeating: "a.", count: 127) + "a"])
    func invalidNames(name: String) {
        #expect(throws: ParseFailure.self) { try ServerNameRouter.validate(name).get() }
    }

    @Test func validNames() throws {
        #expect(try ServerNameRouter.validate("A.Example.COM").get() == "a.example.com")
        #expect(try ServerNameRouter.validate("*.x_y.example").get() == "*.x_y.example")
        #expect(try ServerNameRouter.validate("localhost").get() == "localhost")
    }

    @Test func duplicates() {
        #expect(throws: ParseFailure("server name 'a.com' already routes elsewhere")) {
            try ServerNameRouter(routes: [(names: ["a.com"], target: 0), (names: ["A.com"], target: 1)], defaultTarget: nil)
        }
        #expect(throws: ParseFailure("server name '*.a.com' listed twice")) {
            try ServerNameRouter(routes: [(names: ["*.a.com", "*.A.com"], target: 0)], defaultTarget: nil)
        }
    }
}
