import FakeBackends
import Glibc
import Testing

/// The built `fakebackends` executable (next to the test bundle): bad flags exit 2 with one line.
@Suite struct FakeBackendsExecutableTests {
    static let binary = Subprocess.product("fakebackends")

    /// Runs the binary with `arguments`; returns its exit status (nil if it did not exit within the
    /// deadline) and stderr.
    func run(_ arguments: [String]) throws -> (status: Int32?, stderr: String) {
        let path = try #require(Self.binary)
        let process = try Subprocess(path, arguments)
        let status = process.waitForExit()
        return (status, process.stderr)
    }

    @Test(.enabled(if: binary != nil, "the fakebackends executable is not built next to the tests"),
          arguments: [
            (["--fail-rate", "2"], "fakebackends: --fail-rate 2: expected a fraction between 0 and 1\n"),
            (["--fault", "boom"], "fakebackends: --fault boom: expected one of refuse, close, reset, hang, slow, drip, die-mid, flap, mixed\n"),
            (["--nope"], "fakebackends: --nope: unknown flag (see --help)\n"),
          ])
    func badFlagExitsTwoWithOneLine(arguments: [String], expected: String) throws {
        let (status, stderr) = try run(arguments)
        #expect(status == 2)
        #expect(stderr == expected)
    }
}
