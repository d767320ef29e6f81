import LoadBalancer
import Testing

@Suite struct ServiceValidationTests {
    static func service(_ name: String, _ listen: [String], _ backends: [String] = ["127.0.0.1:9000"]) -> ServiceConfiguration {
        ServiceConfiguration(
            name: name, listen: listen.map { try! ValueParsers.listenAddress($0).get() },
            backends: backends.flatMap { try! ValueParsers.backends($0).get() }, settings: ServiceSettings(Configuration()))
    }

    static func check(_ services: [ServiceConfiguration], origin: ConfigOrigin = .file("lb.json", serviceList: true)) -> String? {
        var c = Configuration()
        c.services = services
        do {
            try c.validate(origin: origin)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func flagsDescribeOneServiceNamedDefault() throws {
        let c = Configuration()
        #expect(c.effectiveServices.count == 1)
        #expect(c.effectiveServices[0].name == "default")
        #expect(c.effectiveServices[0].listen == c.listen)
        #expect(c.effectiveServices[0].settings == ServiceSettings(c))
        try c.validate()
    }

    @Test func distinctServicesAreValid() {
        #expect(Self.check([Self.service("web", ["0.0.0.0:80", "[::]:80"]), Self.service("db", ["127.0.0.1:5433"])]) == nil)
        // Port 0 picks a port per listener: never a collision.
        #expect(Self.check([Self.service("a", ["127.0.0.1:0"]), Self.service("b", ["127.0.0.1:0"])]) == nil)
        // The same backend in two services is two backends.
        #expect(Self.check([Self.service("a", [":1"], ["127.0.0.1:9"]), Self.service("b", [":2"], ["127.0.0.1:9"])]) == nil)
    }

    @Test(arguments: [
        ([service("web", [":80"]), service("web", [":81"])], "lb.json: services[1].name: service 'web' is already services[0]"),
        ([service("web", [":80"]), service("api", ["0.0.0.0:80"])], "lb.json: services[1].listen[0]: 0.0.0.0:80 already used by service 'web'"),
        ([service("web", ["127.0.0.1:80"]), service("api", ["0.0.0.0:80"])],
         "lb.json: services[1].listen[0]: 0.0.0.0:80 overlaps 127.0.0.1:80 of service 'web'"),
        ([service("web", ["127.0.0.1:80", "127.0.0.1:80"])], "lb.json: services[0].listen[1]: 127.0.0.1:80 already used by this service"),
        ([service("we b", [":80"])], "lb.json: services[0].name: a name is 1-64 of A-Z a-z 0-9 _ . -"),
        ([service("web", [])], "lb.json: services[0].listen: a service needs at least one listen address"),
        ([service("web", [":80"], ["127.0.0.1:9", "127.0.0.1:8-9"])], "lb.json: services[0].backends[2]: backend 127.0.0.1:9 listed twice"),
    ])
    func mistakesAreNamedByPath(services: [ServiceConfiguration], message: String) {
        #expect(Self.check(services) == message)
    }

    @Test func differentFamiliesOnOnePortDoNotCollide() {
        #expect(Self.check([Self.service("v4", ["0.0.0.0:80"]), Self.service("v6", ["[::]:80"])]) == nil)
    }

    @Test func topLevelServiceIsNamedWithoutServicesPrefix() {
        var c = Configuration()
        c.listen = []
        #expect(throws: ConfigError.self) { try c.validate(origin: .file("lb.json", serviceList: false)) }
        do { try c.validate(origin: .file("lb.json", serviceList: false)) } catch {
            #expect(error.description == "lb.json: listen: a service needs at least one listen address")
        }
    }
}
