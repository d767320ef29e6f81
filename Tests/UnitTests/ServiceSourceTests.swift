@testable import LoadBalancer
import Testing

/// `source` per service: the top level (or `--source`) is every service's default, a service's own
/// list replaces it, and a reload that changes it is a settings change applied to new pairs.
@Suite struct ServiceSourceTests {
    static let text = """
    {"source": "127.0.0.2-127.0.0.3",
     "services": [
       {"name": "inherits", "listen": ["127.0.0.1:8001"], "backends": ["127.0.0.1:9000"]},
       {"name": "own", "listen": ["127.0.0.1:8002"], "backends": ["127.0.0.1:9000"], "source": ["127.0.0.4", "::1"]},
       {"name": "none", "listen": ["127.0.0.1:8003"], "backends": ["127.0.0.1:9000"], "source": []}]}
    """

    func hosts(_ c: Configuration, _ name: String) -> [String]? {
        c.effectiveServices.first { $0.name == name }?.settings.sources.map(\.host)
    }

    @Test func aServiceInheritsOrReplacesTheTopLevelSources() throws {
        let c = try ConfigFile.parse(Self.text, file: "lb.json")
        #expect(c.sources.map(\.host) == ["127.0.0.2", "127.0.0.3"])
        #expect(hosts(c, "inherits") == ["127.0.0.2", "127.0.0.3"])
        #expect(hosts(c, "own") == ["127.0.0.4", "::1"])
        #expect(hosts(c, "none") == [])
        // --source given with --config is the top level: every service without its own list takes it.
        let flagged = try ConfigFile.parse(Self.text, file: "lb.json", overrides: ["--source", "127.0.0.9"])
        #expect(hosts(flagged, "inherits") == ["127.0.0.2", "127.0.0.3", "127.0.0.9"])
        #expect(hosts(flagged, "own") == ["127.0.0.4", "::1"])
    }

    @Test func theFlagDescribesTheDefaultService() throws {
        guard case .success(.run(let c, _)) = CommandLineParser.parse(["--source", "127.0.0.2-127.0.0.4"]) else {
            Issue.record("refused"); return
        }
        #expect(hosts(c, "default") == ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    }

    @Test(arguments: [
        ("{\"services\": [{\"name\": \"a\", \"listen\": [\"127.0.0.1:1\"], \"backends\": [], \"source\": \"127.0.0.1:80\"}]}",
         "lb.json: services[0].source: expected an address or an IPv4 range like 127.0.0.2-127.0.0.5"),
        ("{\"services\": [{\"name\": \"a\", \"listen\": [\"127.0.0.1:1\"], \"backends\": [], \"source\": [\"127.0.0.2\", \"127.0.0.2\"]}]}",
         "lb.json: services[0].source[1]: an address is listed twice"),
        ("{\"services\": [{\"name\": \"a\", \"listen\": [\"127.0.0.1:1\"], \"backends\": [], \"source\": 7}]}",
         "lb.json: services[0].source: expected an array of strings, got a number"),
        ("{\"source\": [\"10.0.0.0-10.0.0.255\", \"10.0.1.0\"], \"listen\": [\"127.0.0.1:1\"], \"backends\": []}",
         "lb.json: source[1]: at most 256 source addresses"),
    ])
    func badSourcesAreNamedByTheirPath(_ text: String, _ expected: String) {
        do {
            _ = try ConfigFile.parse(text, file: "lb.json")
            Issue.record("accepted")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func aReloadChangingAServicesSourcesIsASettingsChange() throws {
        let old = try ConfigFile.parse(Self.text, file: "lb.json")
        let new = try ConfigFile.parse(Self.text.replacingOccurrences("\"127.0.0.4\"", "\"127.0.0.5\""), file: "lb.json")
        let change = ConfigChange(old: old, new: new)
        #expect(change.summary == "own: settings")
        #expect(change.needsRestart.isEmpty)
        #expect(change.changedServices.first?.settings.sources.map(\.host) == ["127.0.0.5", "::1"])
    }

    @Test func runSettingsSplitTheSourcesByFamily() throws {
        let c = try ConfigFile.parse(Self.text, file: "lb.json")
        let own = try #require(c.effectiveServices.first { $0.name == "own" })
        let run = ServiceRunSettings(own.settings, workerBufferSize: 16384)
        #expect(run.sourcesV4.map(\.host) == ["127.0.0.4"])
        #expect(run.sourcesV6.map(\.host) == ["::1"])
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
