import CShim
import Glibc
import Synchronization

/// A built executable of this package (they sit next to the test bundle), run as a child process whose
/// stderr is collected as it comes. Only processes started here are signalled, by their PID.
final class Subprocess: Sendable {
    let pid: pid_t
    private final class Output: Sendable { let bytes = Mutex<[UInt8]>([]) }
    private let output = Output()
    /// Taken by the one join (after `waitForExit` saw the exit, or in `deinit`): a pthread joined twice is
    /// undefined behaviour, which AddressSanitizer reports ("Joining already joined thread").
    private let reader: Mutex<OSThread?>

    /// The path of a product built beside the tests, or nil.
    static func product(_ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let candidate = String(exe[..<slash]) + "/" + name
        return access(candidate, X_OK) == 0 ? candidate : nil
    }

    /// Starts `/bin/bash -c 'ulimit -n LIMIT; PREAMBLE; exec PATH ARGS'` (the limit only when given).
    init(_ path: String, _ arguments: [String], fileLimit: Int? = nil, preamble: String = "") throws {
        var fds: [Int32] = [-1, -1]
        // Close-on-exec from the start (pipe2), so a child spawned meanwhile by a parallel test cannot
        // inherit the write end and keep our reader from ever seeing EOF (the child's own stderr is a
        // dup2 of the write end, which clears the flag on fd 2). Glibc's Swift module has no pipe2; the
        // shim's one also sets O_NONBLOCK, cleared here (the child's stderr and our reader block).
        // Clearing it late races with nothing: only the flag other threads' spawns see had to be atomic.
        guard lb_pipe2(&fds) == 0 else { throw SystemError(errno: errno, operation: "pipe2") }
        for fd in fds {
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
                let e = errno
                close(fds[0])
                close(fds[1])
                throw SystemError(errno: e, operation: "fcntl F_SETFL")
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let quoted = ([path] + arguments).map { "'" + $0 + "'" }.joined(separator: " ")
        let script = (fileLimit.map { "ulimit -n \($0); " } ?? "") + preamble + "exec " + quoted
        let words: [String] = ["/bin/bash", "-c", script]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/bash", &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw SystemError(errno: rc, operation: "posix_spawn \(path)")
        }
        self.pid = pid
        let readFD = fds[0]
        let sink = output
        reader = Mutex(OSThread.start {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(readFD, $0.baseAddress, 4096) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                sink.bytes.withLock { $0 += chunk[..<n] }
            }
            close(readFD)
        })
    }

    private func joinReader() {
        reader.withLock { t -> OSThread? in
            let taken = t
            t = nil
            return taken
        }?.join()
    }

    var stderr: String { output.bytes.withLock { String(decoding: $0, as: UTF8.self) } }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for the exit (polling, bounded); returns the exit status, or nil if still running.
    func waitForExit(timeout: Duration = .seconds(20)) -> Int32? {
        var status: Int32 = 0
        var exited: Int32? = nil
        _ = eventually(timeout: timeout) {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { exited = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F) }
            return r == pid
        }
        if exited != nil { joinReader() }
        return exited
    }

    /// CPU seconds (user + system) the process has used so far.
    var cpuSeconds: Double {
        guard let f = fopen("/proc/\(pid)/stat", "r") else { return 0 }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 1024)
        guard fgets(&buf, 1024, f) != nil else { return 0 }
        let text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    deinit {
        if waitpid(pid, nil, WNOHANG) == 0 {
            kill(pid, SIGKILL)
            waitpid(pid, nil, 0)
        }
        joinReader()
    }
}

import LoadBalancer
