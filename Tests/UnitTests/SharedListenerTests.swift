@testable import LoadBalancer
import Testing

/// Services sharing a listen address by TLS server name: which configurations are valid (and how a
/// mistake is named), who owns each address, and the route a shared listener follows.
@Suite struct SharedListenerTests {
    static func service(
        _ name: String, _ listen: [String], names: [String], _ configure: (inout ServiceSettings) -> Void = { _ in }
    ) -> ServiceConfiguration {
        var settings = ServiceSettings(Configuration())
        settings.serverNames = names
        configure(&settings)
        return ServiceConfiguration(
            name: name, listen: listen.map { try! ValueParsers.listenAddress($0).get() },
            backends: [BackendSpec(address: SocketAddress(host: "127.0.0.1", port: 9000)!)], settings: settings)
    }

    static func check(_ services: [ServiceConfiguration]) -> String? {
        var c = Configuration()
        c.services = services
        do {
            try c.validate(origin: .file("lb.json", serviceList: true))
            return nil
        } catch {
            return error.description
        }
    }

    static let three = [
        service("a", ["127.0.0.1:8443"], names: ["a.example.com"]),
        service("b", ["127.0.0.1:8443", "127.0.0.1:9443"], names: ["*.b.example"]),
        service("c", ["127.0.0.1:8443"], names: ["*"]),
    ]

    @Test func servicesWithNamesShareAnAddress() {
        #expect(Self.check(Self.three) == nil)
        // Without a default too.
        #expect(Self.check(Array(Self.three.prefix(2))) == nil)
    }

    @Test(arguments: [
        ([service("a", ["127.0.0.1:8443"], names: ["a.example.com"]), service("b", ["127.0.0.1:8443"], names: [])],
         "lb.json: services[1].listen[0]: 127.0.0.1:8443 is shared with service 'a': each service on a shared address needs server_names (\"*\" for the default)"),
        ([service("a", ["127.0.0.1:1", "127.0.0.1:8443"], names: []), service("b", ["127.0.0.1:8443"], names: ["*"])],
         "lb.json: services[0].listen[1]: 127.0.0.1:8443 is shared with service 'b': each service on a shared address needs server_names (\"*\" for the default)"),
        ([service("a", ["127.0.0.1:8443"], names: ["*"]), service("b", ["127.0.0.1:8443"], names: ["x.org", "*"])],
         "lb.json: services[1].server_names[1]: '*' (the default) on 127.0.0.1:8443 is already service 'a's"),
        ([service("a", ["127.0.0.1:8443"], names: ["*.x.org"]), service("b", ["127.0.0.1:8443"], names: ["y.org", "*.X.org"])],
         "lb.json: services[1].server_names[1]: server name '*.x.org' on 127.0.0.1:8443 is already service 'a's"),
        ([service("a", ["127.0.0.1:8443"], names: ["x.org"]), service("b", ["127.0.0.1:8443"], names: ["y.org"]) { $0.acceptProxy = true }],
         "lb.json: services[1].accept_proxy: must be the same as service 'a's: both listen on 127.0.0.1:8443, whose preamble is read before the service is known"),
        ([service("a", ["127.0.0.1:8443"], names: ["x.org"]), service("b", ["127.0.0.1:8443"], names: ["y.org"]) { $0.preambleTimeout = .seconds(1) }],
         "lb.json: services[1].preamble_timeout: must be the same as service 'a's: both listen on 127.0.0.1:8443, whose preamble is read before the service is known"),
        // A wildcard address still overlaps a specific one, names or not: the kernel would choose.
        ([service("a", ["127.0.0.1:8443"], names: ["x.org"]), service("b", ["0.0.0.0:8443"], names: ["y.org"])],
         "lb.json: services[1].listen[0]: 0.0.0.0:8443 overlaps 127.0.0.1:8443 of service 'a'"),
        // One service listing an address twice is still a mistake.
        ([service("a", ["127.0.0.1:8443", "127.0.0.1:8443"], names: ["x.org"])],
         "lb.json: services[0].listen[1]: 127.0.0.1:8443 already used by this service"),
    ])
    func sharingMistakesAreNamedByPath(services: [ServiceConfiguration], message: String) {
        #expect(Self.check(services) == message)
    }

    /// The same through a config file: the file and JSON path, as every config error.
    @Test func configFileErrorsNameTheFileAndPath() {
        func text(_ second: String) -> String {
            """
            {"services": [
              {"name": "a", "listen": ["127.0.0.1:8443"], "backends": ["127.0.0.1:9000"], "server_names": ["a.example.com", "*"]},
              {"name": "b", "listen": ["127.0.0.1:8443"], "backends": ["127.0.0.1:9001"], "server_names": [\(second)]}
            ]}
            """
        }
        #expect(throws: ConfigError.self) { try ConfigFile.parse(text("\"*\""), file: "sni.json") }
        do { _ = try ConfigFile.parse(text("\"*\""), file: "sni.json") } catch {
            #expect(error.description == "sni.json: services[1].server_names[0]: '*' (the default) on 127.0.0.1:8443 is already service 'a's")
        }
        #expect(throws: Never.self) { try ConfigFile.parse(text("\"*.b.example\""), file: "sni.json") }
    }

    @Test func theFirstServiceListingAnAddressOwnsIt() {
        var c = Configuration()
        c.services = Self.three + [Self.service("d", ["127.0.0.1:0"], names: []), Self.service("e", ["127.0.0.1:0"], names: [])]
        #expect(c.listenMembers == [[[0, 1, 2]], [[0, 1, 2], [1]], [[0, 1, 2]], [[3]], [[4]]])
    }

    @Test func aSharedListenerRoutesExactThenLongestWildcardThenDefault() throws {
        let members = Self.three.enumerated().map { (settings: $0.element.settings, index: $0.offset + 5) }
        let route = try #require(ListenerRoute(members: members))
        #expect(route.router.route("a.example.com") == 5)
        #expect(route.router.route("shop.b.example") == 6)
        #expect(route.router.route("B.example") == 7)  // a wildcard does not match its own suffix
        #expect(route.router.route("api.example.org") == 7)
        #expect(route.router.defaultTarget == 7)  // no server name at all
        #expect(route.timeout == 3_000_000_000 && !route.acceptProxy)
        // No default: an unknown name routes nowhere.
        let noDefault = try #require(ListenerRoute(members: Array(members.prefix(2))))
        #expect(noDefault.router.route("api.example.org") == nil && noDefault.router.defaultTarget == nil)
        // No service listing names: no route, pairs belong to the listener's service from accept.
        #expect(ListenerRoute(members: [(Self.service("x", [":1"], names: []).settings, 0)]) == nil)
    }

    @Test func starIsTheDefault() throws {
        #expect(try ServerNameRouter.validate("*").get() == "*")
        let r = try ServerNameRouter(routes: [(names: ["a.org"], target: 0), (names: ["*"], target: 1)], defaultTarget: nil)
        #expect(r.route("a.org") == 0 && r.route("b.org") == 1 && r.defaultTarget == 1)
        #expect(throws: ParseFailure("'*' (the default) already routes elsewhere")) {
            try ServerNameRouter(routes: [(names: ["*"], target: 0), (names: ["*"], target: 1)], defaultTarget: nil)
        }
        #expect(throws: ParseFailure("server name '*' listed twice")) {
            try ServerNameRouter(routes: [(names: ["*", "*"], target: 0)], defaultTarget: nil)
        }
    }
}
