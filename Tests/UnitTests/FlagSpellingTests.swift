import FakeBackends
import LoadBalancer
import LoadGen
import Testing

/// How flags are spelt across lb, fakebackends and loadgen: booleans, `--`, `--version`, durations
/// below the timer resolution, sizes out of range, and `--demo` with `--backend`.
@Suite struct FlagSpellingTests {
    func lb(_ args: [String]) -> Result<ParsedCommand, ConfigError> { CommandLineParser.parse(args) }

    func lbRun(_ args: [String]) throws -> (Configuration, DemoSettings?) {
        guard case .run(let c, let d) = try lb(args).get() else { throw ConfigError(flag: "", value: nil, reason: "not run") }
        return (c, d)
    }

    func lbError(_ args: [String]) -> String? {
        if case .failure(let e) = lb(args) { return e.description }
        return nil
    }

    @Test(arguments: [
        ("--quiet", false), ("--quiet=true", false), ("--quiet=yes", false), ("--quiet=on", false), ("--quiet=ON", false),
        ("--quiet=false", true), ("--quiet=no", true), ("--quiet=off", true),
    ])
    func quietTakesEveryBooleanSpelling(flag: String, logs: Bool) throws {
        #expect(try lbRun([flag]).0.logBackendChanges == logs)
    }

    @Test func booleansRefuseOtherValuesAndNeverTakeTheNextArgument() throws {
        #expect(lbError(["--quiet=maybe"]) == "--quiet maybe: expected true/false, yes/no or on/off")
        #expect(lbError(["--demo=1"]) == "--demo 1: expected true/false, yes/no or on/off")
        // A bare boolean leaves the next argument alone: here it is a stray word.
        #expect(lbError(["--quiet", "no"]) == "no: unexpected argument (see --help)")
        #expect(try lbRun(["--demo=no"]).1 == nil)
        #expect(try lbRun(["--demo=yes"]).1 != nil)
        #expect(try lbRun(["--splice", "false"]).0.splice == false)
        #expect(try lbRun(["--splice=on"]).0.splice == true)
        #expect(lbError(["--version=2"]) == "--version 2: takes no value")
    }

    @Test func doubleDashEndsTheFlags() throws {
        #expect(try lbRun(["--quiet", "--"]).0.logBackendChanges == false)
        #expect(lbError(["--", "--quiet"]) == "--quiet: unexpected argument (see --help)")
        guard case .run(let c, _, _) = try LoadGenCommandLine.parse(["-n", "3", "--", "127.0.0.1:9"]).get() else {
            Issue.record("loadgen: not run"); return
        }
        #expect(c.requests == 3 && c.target.address.port == 9)
        #expect(throws: ConfigError.self) { try LoadGenCommandLine.parse(["--", "127.0.0.1:9", "127.0.0.1:10"]).get() }
        #expect(throws: ConfigError.self) { try FarmCommandLine.parse(["--count", "1", "--", "x"]).get() }
    }

    @Test func everyCommandHasVersion() throws {
        guard case .version = try FarmCommandLine.parse(["--version"]).get() else { Issue.record("fakebackends"); return }
        guard case .version = try LoadGenCommandLine.parse(["--version"]).get() else { Issue.record("loadgen"); return }
        #expect(FarmCommandLine.version == "fakebackends " + CommandLineParser.versionNumber)
        #expect(LoadGenCommandLine.version == "loadgen " + CommandLineParser.versionNumber)
        #expect(CommandLineParser.version == "lb " + CommandLineParser.versionNumber)
    }

    @Test(arguments: [
        (["--idle-timeout", "0.001ms"], "--idle-timeout 0.001ms: shorter than the timer resolution (10ms)"),
        (["--connect-timeout", "9ms"], "--connect-timeout 9ms: shorter than the timer resolution (10ms)"),
        (["--health-interval", "500us"], "--health-interval 500us: shorter than the timer resolution (10ms)"),
        (["--drain-timeout", "1ms"], "--drain-timeout 1ms: shorter than the timer resolution (10ms)"),
        (["--buffer-size", "1g"], "--buffer-size 1g: must be between 1024 and 16777216 bytes (1k to 16m)"),
        (["--buffer-size", "1.5m"], "--buffer-size 1.5m: expected a size like 16384 or 16k"),
        (["--health-check", "udp"], "--health-check udp: expected down, all (or tcp) or http:/PATH"),
    ])
    func refused(args: [String], message: String) {
        #expect(lbError(args) == message)
    }

    @Test func durationsAtTheResolutionAndZeroDrainAreKept() throws {
        let (c, _) = try lbRun(["--idle-timeout", "10ms", "--drain-timeout", "0s", "--health-check", "tcp"])
        #expect(c.idleTimeout == .milliseconds(10) && c.drainTimeout == .zero && c.health.mode == .all)
        #expect(throws: ConfigError.self) { try FarmCommandLine.parse(["--delay", "5ms"]).get() }
        #expect(throws: ConfigError.self) { try LoadGenCommandLine.parse(["--timeout", "0.5ms", "127.0.0.1:9"]).get() }
    }

    @Test func demoRefusesBackendAndChecksItsFarmOverHTTP() throws {
        #expect(lbError(["--demo", "--backend", "127.0.0.1:9"])
            == "--backend: cannot be combined with --demo (the demo balances over its own farm)")
        let (c, demo) = try lbRun(["--demo"])
        #expect(demo != nil)
        #expect(c.health.mode == .http(path: "/health"))
        #expect(c.health.interval == .milliseconds(500) && c.health.timeout == .milliseconds(250))
        let (own, _) = try lbRun(["--demo", "--health-check", "down", "--health-interval", "3s"])
        #expect(own.health.mode == .downOnly && own.health.interval == .seconds(3))
        // Without --demo the defaults stay as documented.
        #expect(try lbRun([]).0.health.mode == .downOnly)
    }

    @Test func fakebackendsSkipsBusyPortsUnlessToldOtherwise() throws {
        guard case .run(let o) = try FarmCommandLine.parse(["--count", "3"]).get() else { Issue.record("not run"); return }
        #expect(o.farm.skipBusyPorts)
        guard case .run(let strict) = try FarmCommandLine.parse(["--count", "3", "--require-all"]).get() else { Issue.record("not run"); return }
        #expect(!strict.farm.skipBusyPorts)
    }
}

@Suite struct LogLineTests {
    @Test(arguments: [
        (Int64(0), Int64(0), "1970-01-01T00:00:00.000Z"),
        (Int64(951_782_400), Int64(999_999_999), "2000-02-29T00:00:00.999Z"),  // a leap day in a century leap year
        (Int64(1_796_083_805), Int64(123_000_000), "2026-12-01T00:10:05.123Z"),
        (Int64(4_107_542_399), Int64(5_000_000), "2100-02-28T23:59:59.005Z"),  // 2100 is not a leap year
        (Int64(-1), Int64(0), "1969-12-31T23:59:59.000Z"),
    ])
    func rfc3339(seconds: Int64, nanos: Int64, text: String) {
        #expect(LogTimestamp.format(seconds: seconds, nanoseconds: nanos) == text)
    }

    @Test func journalStreamSilencesStampsOnlyWhenItIsStderr() {
        #expect(LogTimestamp.shouldStamp(journalStream: nil, stderr: (8, 1234)))
        #expect(!LogTimestamp.shouldStamp(journalStream: "8:1234", stderr: (8, 1234)))
        #expect(LogTimestamp.shouldStamp(journalStream: "8:9999", stderr: (8, 1234)))
        #expect(LogTimestamp.shouldStamp(journalStream: "garbage", stderr: (8, 1234)))
        #expect(LogTimestamp.shouldStamp(journalStream: "8:1234", stderr: nil))
    }

    @Test func plurals() {
        #expect(Plural.count(0, "backend") == "0 backends")
        #expect(Plural.count(1, "backend") == "1 backend")
        #expect(Plural.count(2, "connection") == "2 connections")
        #expect(Plural.count(1, "busy port") == "1 busy port")
    }
}
