import FakeBackends
import Glibc
import Testing

/// The built `fakebackends` executable (next to the test bundle): bad flags exit 2 with one line.
@Suite struct FakeBackendsExecutableTests {
    static let binary: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let candidate = String(exe[..<slash]) + "/fakebackends"
        return access(candidate, X_OK) == 0 ? candidate : nil
    }()

    /// Runs the binary with `arguments`; returns its exit status and stderr.
    func run(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let path = try #require(Self.binary)
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        try #require(rc == 0)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, 4096) }
            if n <= 0 { break }
            output += chunk[..<n]
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let exited = status & 0x7F == 0
        return (exited ? (status >> 8) & 0xFF : -1, String(decoding: output, as: UTF8.self))
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
