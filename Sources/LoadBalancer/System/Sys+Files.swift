import Glibc

extension Sys {
    /// The whole content of a small regular file (a config file), read on the calling thread. Refuses
    /// more than `limit` bytes. Errors carry errno and "open PATH" or "read PATH".
    public static func readFile(_ path: String, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        let fd = Int32(try retrying("open") { Int(open(path, O_RDONLY | O_CLOEXEC)) })
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n: Int
            do throws(SystemError) {
                n = try retrying("read") { chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) } }
            } catch {
                throw SystemError(errno: error.errno, operation: "read \(path)")
            }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
            if bytes.count > limit { throw SystemError(errno: EFBIG, operation: "read \(path)") }
        }
    }
}
