import LoadBalancer
import Testing

@Suite struct ConfigFileTests {
    static let example = """
    {"workers": 2,
     "connect_timeout": "1s",
     "services": [
       {"name": "web", "listen": ["0.0.0.0:8080", "[::]:8080"],
        "backends": ["10.0.0.1:80", "127.0.0.1:8000-8009@2", {"address": "[::1]:9000", "weight": 3}],
        "health_check": "http:/health", "idle_timeout": "5m"},
       {"name": "db", "listen": ["127.0.0.1:5433"], "backends": ["127.0.0.1:5432"]}]}
    """

    func parse(_ text: String, overrides: [String] = []) throws(ConfigError) -> Configuration {
        try ConfigFile.parse(text, file: "lb.json", overrides: overrides)
    }

    func message(_ text: String, overrides: [String] = []) -> String? {
        do {
            _ = try parse(text, overrides: overrides)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func theExampleParses() throws {
        let c = try parse(Self.example)
        #expect(c.workers == 2)
        #expect(c.configFile == "lb.json")
        #expect(c.effectiveServices.map(\.name) == ["web", "db"])
        let web = c.services[0], db = c.services[1]
        #expect(web.listen.map(\.description) == ["0.0.0.0:8080", "[::]:8080"])
        #expect(web.backends.count == 12)
        #expect(web.backends[1].description == "127.0.0.1:8000@2")
        #expect(web.backends[11].description == "[::1]:9000@3")
        #expect(web.settings.health.mode == .http(path: "/health"))
        #expect(web.settings.idleTimeout == .seconds(300))
        #expect(web.settings.connectTimeout == .seconds(1))
        #expect(db.settings.connectTimeout == .seconds(1))  // the top level is every service's default
        #expect(db.settings.idleTimeout == .seconds(60))
        #expect(db.settings.health.mode == .downOnly)
    }

    @Test func flagsOverrideTheTopLevelAndServicesOverrideFlags() throws {
        let text = """
        {"connect_timeout": "2s", "retries": 1, "workers": 3,
         "services": [{"name": "a", "listen": [":1"], "backends": [], "connect_timeout": "4s"},
                      {"name": "b", "listen": [":2"], "backends": []}]}
        """
        let c = try parse(text, overrides: ["--connect-timeout", "3s", "--workers=5", "--config", "lb.json", "--check"])
        #expect(c.workers == 5)
        #expect(c.services[0].settings.connectTimeout == .seconds(4))
        #expect(c.services[1].settings.connectTimeout == .seconds(3))
        #expect(c.services[1].settings.retries == 1)
    }

    @Test func withoutServicesTheTopLevelIsTheDefaultService() throws {
        let c = try parse(#"{"listen": ["127.0.0.1:9000"], "backends": ["127.0.0.1:7000-7001"], "quiet": true, "splice": false}"#)
        #expect(c.services.isEmpty)
        #expect(c.effectiveServices.map(\.name) == ["default"])
        #expect(c.effectiveServices[0].backends.count == 2)
        #expect(!c.logBackendChanges && !c.splice)
    }

    @Test(arguments: [
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": []}, {"name": "b", "listen": ["127.0.0.1:99999"], "backends": []}]}"#,
         "lb.json: services[1].listen[0]: port out of range"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": [], "colour": "red"}]}"#,
         "lb.json: services[0].colour: unknown key (see docs/config.md)"),
        (#"{"frobnicate": 1}"#, "lb.json: frobnicate: unknown key (see docs/config.md)"),
        (#"{"retries": "3"}"#, "lb.json: retries: expected a whole number, got a string"),
        (#"{"retries": 3.5}"#, "lb.json: retries: expected a whole number, got 3.5"),
        (#"{"retries": 1000}"#, "lb.json: retries: must be between 0 and 100"),
        (#"{"idle_timeout": 5}"#, #"lb.json: idle_timeout: expected a duration in a string like "250ms", got a number"#),
        (#"{"idle_timeout": "5"}"#, "lb.json: idle_timeout: expected a duration like 250ms, 2s or 1m"),
        (#"{"splice": "on"}"#, "lb.json: splice: expected true or false, got a string"),
        (#"{"on_no_backend": "shrug"}"#, "lb.json: on_no_backend: expected http502 or close"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": []}, {"name": "a", "listen": [":2"], "backends": []}]}"#,
         "lb.json: services[1].name: service 'a' is already services[0]"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": []}, {"name": "b", "listen": ["0.0.0.0:1"], "backends": []}]}"#,
         "lb.json: services[1].listen[0]: 0.0.0.0:1 already used by service 'a'"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": [], "workers": 2}]}"#,
         "lb.json: services[0].workers: only allowed at the top level"),
        (#"{"services": [{"listen": [":1"], "backends": []}]}"#, #"lb.json: services[0]: missing "name""#),
        (#"{"services": [{"name": "a", "backends": []}]}"#, #"lb.json: services[0]: missing "listen""#),
        (#"{"services": []}"#, "lb.json: services: needs at least one service"),
        (#"{"services": {"name": "a"}}"#, "lb.json: services: expected an array, got an object"),
        (#"{"listen": [":1"], "services": [{"name": "a", "listen": [":2"], "backends": []}]}"#,
         "lb.json: listen: not with services (give each service its own listen)"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": [{"address": "127.0.0.1:9", "weight": 0}]}]}"#,
         "lb.json: services[0].backends[0].weight: weight must be between 1 and 1000"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": [{"adress": "127.0.0.1:9"}]}]}"#,
         "lb.json: services[0].backends[0].adress: unknown key (a backend has address, weight and max_conns)"),
        (#"{"services": [{"name": "a", "listen": [":1"], "backends": [7]}]}"#,
         "lb.json: services[0].backends[0]: expected a string or an object, got a number"),
        (#"{"backends": ["127.0.0.1:9", "127.0.0.1:9"]}"#, "lb.json: backends[1]: backend 127.0.0.1:9 listed twice"),
        (#"{"name": "x"}"#, "lb.json: name: only inside a service"),
        (#"{"retries": 1, "retries": 2}"#, #"lb.json: line 1 column 16: key "retries" given twice"#),
        ("{\"retries\": 1,\n \"workers\" 2}", "lb.json: line 2 column 12: expected ':' after the key"),
        ("[1, 2]", "lb.json: expected a JSON object at the top, got an array"),
        ("", "lb.json: line 1 column 1: unexpected end of file"),
    ])
    func badFilesAreNamedByPath(text: String, expected: String) {
        #expect(message(text) == expected)
    }

    @Test func aBadFlagOnTopOfAFileIsNamedAsAFlag() {
        #expect(message("{}", overrides: ["--retries", "x"]) == "--retries x: not a whole number")
    }

    @Test func listenAndBackendFlagsAreRefusedWithAConfigFile() {
        guard case .failure(let e) = CommandLineParser.parse(["--config", "/nonexistent.json", "--backend", "127.0.0.1:9"]) else {
            Issue.record("expected a failure")
            return
        }
        #expect(e.description == "--backend: not with --config (describe services in the file)")
        guard case .failure(let missing) = CommandLineParser.parse(["--config", "/nonexistent.json"]) else {
            Issue.record("expected a failure")
            return
        }
        #expect(missing.description == "/nonexistent.json: cannot read: No such file or directory")
    }

    @Test func jsonValues() throws {
        let v = try JSONValue.parse(#" {"a": [1, -2.5e3, true, false, null, "x\"\u00e9\n"], "b": {}} "#).get()
        #expect(v == .object([("a", .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null, .string("x\"é\n")])), ("b", .object([]))]))
        #expect(throws: ParseFailure.self) { try JSONValue.parse("[1,]").get() }
        #expect(throws: ParseFailure.self) { try JSONValue.parse("01").get() }
        #expect(throws: ParseFailure.self) { try JSONValue.parse(String(repeating: "[", count: 100)).get() }
        #expect(throws: ParseFailure.self) { try JSONValue.parse("\"\u{1}\"").get() }
    }
}

extension ConfigFileTests {
    @Test func flagsOtherIssuesAddedAreKeysToo() throws {
        let c = try parse("""
            {"admin": "127.0.0.1:9090", "access_log": "-", "access_log_format": "json", "panic_threshold": 20,
             "services": [{"name": "a", "listen": [":1"], "backends": [], "panic_threshold": "off", "check_on_idle": false},
                          {"name": "b", "listen": [":2"], "backends": []}]}
            """)
        #expect(c.admin?.description == "127.0.0.1:9090")
        #expect(c.accessLog?.path == "-" && c.accessLog?.format == .json)
        #expect(c.services[0].settings.panicThreshold == nil && !c.services[0].settings.checkOnIdle)
        #expect(c.services[1].settings.panicThreshold == 20 && c.services[1].settings.checkOnIdle)
        #expect(message(#"{"services": [{"name": "a", "listen": [":1"], "backends": [], "admin": "127.0.0.1:1"}]}"#)
            == "lb.json: services[0].admin: only allowed at the top level")
        #expect(message(#"{"panic_threshold": true}"#) == "lb.json: panic_threshold: expected a whole number or a string, got a boolean")
        #expect(message(#"{"admin": "10.0.0.1:9090"}"#) == "--admin 10.0.0.1:9090: not a loopback address: give --admin-token-file")
    }
}
