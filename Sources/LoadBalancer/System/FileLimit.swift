import Glibc

/// RLIMIT_NOFILE: a proxy holds two fds per pair, so it raises its soft limit to the hard one at start.
public enum FileLimit {
    /// Raises the soft limit to the hard limit and returns the new soft limit.
    @discardableResult
    public static func raiseToHard() -> Int {
        var lim = rlimit()
        guard getrlimit(resourceNoFile, &lim) == 0 else { return 1024 }
        if lim.rlim_cur < lim.rlim_max {
            var raised = lim
            raised.rlim_cur = lim.rlim_max
            if setrlimit(resourceNoFile, &raised) == 0 { lim = raised }
        }
        return lim.rlim_cur == rlim_t.max ? Int(Int32.max) : Int(lim.rlim_cur)
    }

    public static var current: Int {
        var lim = rlimit()
        guard getrlimit(resourceNoFile, &lim) == 0 else { return 1024 }
        return lim.rlim_cur == rlim_t.max ? Int(Int32.max) : Int(lim.rlim_cur)
    }

    /// Glibc imports RLIMIT_* as an enum; convert once.
    static var resourceNoFile: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }

    /// How many fds this process has open now (counts /proc/self/fd). For tests and diagnostics.
    public static func openDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while readdir(dir) != nil { n += 1 }
        return n - 3  // ".", ".." and the directory's own fd
    }
}
