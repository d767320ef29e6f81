import Glibc

extension Sys {
    /// Lowers the calling thread's scheduling priority. On Linux the nice value is per thread, and
    /// setpriority(2) with PRIO_PROCESS and id 0 sets the calling thread's alone. For operator threads (admin server, access-log writer): when the cores are
    /// busy, the data workers get them first. Best effort: an error is ignored.
    public static func lowerThisThreadPriority(nice: Int32) {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice)
    }
}
