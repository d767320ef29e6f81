import Glibc

/// Plain files, for the operator's side (access log, token file): never used on a data worker.
extension Sys {
    /// Opens (creating, mode 0644) a file for appending, close-on-exec. Each `write` lands at the end
    /// even if another process (logrotate's copytruncate) changed the file.
    public static func openForAppend(_ path: String) throws(SystemError) -> Int32 {
        Int32(try retrying("open") { Int(Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)) })
    }

    /// Reads a whole file of at most `limit` bytes. Throws EFBIG past the limit.
    public static func readFile(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let fd = Int32(try retrying("open") { Int(Glibc.open(path, O_RDONLY | O_CLOEXEC)) })
        defer { close(fd) }
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { chunk.deallocate() }
        while true {
            let n = try retrying("read") { Glibc.read(fd, chunk.baseAddress!, chunk.count) }
            if n == 0 { return out }
            out += chunk[0..<n]
            if out.count > limit { throw SystemError(errno: EFBIG, operation: "read") }
        }
    }

    /// Writes all of `bytes` to a blocking fd (a file or a pipe), retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            offset += try retrying("write") { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }
}
