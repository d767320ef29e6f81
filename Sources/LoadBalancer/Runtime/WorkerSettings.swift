/// A worker's view of the configuration, converted once to the units the loop uses.
struct WorkerSettings: Sendable {
    var pair: PairSettings
    var bufferSize: Int
    var splice: Bool
    var healthMode: HealthCheckMode
    var healthInterval: UInt64
    var healthTimeout: UInt64
    var rise: Int
    var fall: Int
    var maxProbesInFlight: Int
    var panicThreshold: Int?
    var checkOnIdle: Bool
    var workerCount: Int
    /// Accepting pauses once an accepted fd reaches `fdLimit - fdReserve`: the reserve keeps health
    /// checks (and the admin interface) working while clients exhaust the process's fds.
    var fdLimit: Int
    var fdReserve: Int
    /// Consecutive full reads before a stream moves to splice.
    var spliceAfterFullReads: UInt8 = 2
    var spliceChunk: Int = 64 * 1024
    var preamble: PreambleSettings

    /// `workers` is the count actually started (the configuration's, at least 1): probes divide by it.
    init(_ config: Configuration, workers: Int, fdLimit: Int) {
        pair = PairSettings(config)
        bufferSize = config.bufferSize
        splice = config.splice
        healthMode = config.health.mode
        healthInterval = config.health.interval.nanoseconds
        healthTimeout = config.health.timeout.nanoseconds
        rise = config.health.rise
        fall = config.health.fall
        maxProbesInFlight = config.health.maxInFlight
        panicThreshold = config.panicThreshold
        checkOnIdle = config.checkOnIdle
        workerCount = workers
        self.fdLimit = fdLimit
        fdReserve = min(max(32, fdLimit / 100), fdLimit / 4)
        preamble = PreambleSettings(config)
    }
}
