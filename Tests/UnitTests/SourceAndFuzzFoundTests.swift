import LoadBalancer
import Testing

/// `--source` parsing, and inputs found while fuzzing (ci/fuzz), each kept as a test.
@Suite struct SourceAndFuzzFoundTests {
    @Test func sourceForms() throws {
        #expect(try ValueParsers.sourceAddresses("127.0.0.2").get().map(\.description) == ["127.0.0.2:0"])
        #expect(try ValueParsers.sourceAddresses("10.0.0.254-10.0.1.1").get().map(\.host) == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"])
        #expect(try ValueParsers.sourceAddresses("::1").get().map(\.host) == ["::1"])
        #expect(try ValueParsers.sourceAddresses("10.0.0.0-10.0.0.255").get().count == 256)
    }

    @Test(arguments: ["", "-", "127.0.0.2-", "-127.0.0.2", "127.0.0.5-127.0.0.2", "10.0.0.0-10.0.1.0", "::1-::2",
                      "127.0.0.1:80", "[::1]", "host", "127.0.0.1-127.0.0.2-127.0.0.3"])
    func badSources(_ text: String) {
        guard case .failure = ValueParsers.sourceAddresses(text) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    @Test func sourceFlag() throws {
        guard case .success(.run(let config, _)) = CommandLineParser.parse(["--source", "127.0.0.2-127.0.0.3", "--source=::1"]) else {
            Issue.record("refused"); return
        }
        #expect(config.sources.map(\.host) == ["127.0.0.2", "127.0.0.3", "::1"])
        guard case .failure(let e) = CommandLineParser.parse(["--source", "127.0.0.2", "--source", "127.0.0.2"]) else {
            Issue.record("accepted a repeated source"); return
        }
        #expect(e.description == "--source: an address is listed twice")
    }

    /// inet_pton reads a C string, so a host with a NUL byte was read up to the NUL (seen in review while writing the
    /// values fuzz target, which now checks it).
    @Test(arguments: ["127.0.0.1\u{0}junk", "::1\u{0}", "\u{0}"])
    func hostsWithANulAreRefused(_ host: String) {
        #expect(SocketAddress(host: host, port: 80) == nil)
        guard case .failure = ValueParsers.listenAddress(host + ":80") else { Issue.record("accepted"); return }
    }

    /// An empty argument was refused as ": unexpected argument", naming nothing (ci/fuzz cli); a value
    /// with a newline made the refusal two lines.
    @Test func refusalsNameEmptyAndControlCharacterArgumentsOnOneLine() {
        let input = "--admin\n127.0.0.1:9090\n--admin-token-file\n/tmp/t\0\0\0\0ccess-log\n-"
        let args = input.split(separator: "\n", omittingEmptySubsequences: false).flatMap { $0.split(separator: "\0", omittingEmptySubsequences: false) }.map(String.init)
        guard case .failure(let e) = CommandLineParser.parse(args) else { Issue.record("accepted"); return }
        #expect(e.description == "'': unexpected argument (see --help)")
        guard case .failure(let v) = CommandLineParser.parse(["--listen", "a\nb"]) else { Issue.record("accepted"); return }
        #expect(v.description == "--listen 'a\\u{a}b': expected HOST:PORT")
        // The reason quotes the port as given (ci/fuzz cli): escaped as well.
        guard case .failure(let p) = CommandLineParser.parse(["--listen", "127.0.0.1:8080\u{1a}x"]) else { Issue.record("accepted"); return }
        #expect(p.description == "--listen '127.0.0.1:8080\\u{1a}x': bad port '8080\\u{1a}x'")
    }
}

/// Inputs ci/fuzz json and ci/fuzz config found, each kept as a test.
@Suite struct ConfigFuzzFoundTests {
    static func isOnePrintableLine(_ text: String) -> Bool {
        !text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    /// A backslash before a control byte quoted that byte in the message: a NUL or newline there
    /// broke the line (ci/fuzz json).
    @Test func aBadEscapeIsNamedByItsByte() {
        guard case .failure(let f) = JSONValue.parse("\"\\\u{0}\"") else { Issue.record("accepted"); return }
        #expect(f.reason == "line 1 column 4: bad escape (byte 0x0)")
        guard case .failure(let n) = JSONValue.parse("{\"a\\\n\": 1}") else { Issue.record("accepted"); return }
        #expect(Self.isOnePrintableLine(n.reason))
        guard case .failure(let x) = JSONValue.parse("\"\\x\"") else { Issue.record("accepted"); return }
        #expect(x.reason == "line 1 column 4: bad escape '\\x'")
    }

    /// A key given twice was quoted as decoded, so an escaped newline in it broke the line.
    @Test func aRepeatedKeyIsQuotedWithEscapes() {
        guard case .failure(let f) = JSONValue.parse("{\"a\\n\\u0000\\\"\": 1, \"a\\n\\u0000\\\"\": 2}") else { Issue.record("accepted"); return }
        #expect(f.reason == "line 1 column 20: key \"a\\u000a\\u0000\\\"\" given twice")
    }
}
