/// A worker's process-wide settings, converted once to the units the loop uses. What a service sets
/// is in `ServiceRunSettings`.
struct WorkerSettings: Sendable {
    /// The worker's scratch buffer and pooled buffers: the largest buffer size of any service at start
    /// (a reload asking for more is reported as needing a restart).
    var bufferSize: Int
    var splice: Bool
    var maxProbesInFlight: Int
    var workerCount: Int
    /// Accepting pauses once an accepted fd reaches `fdLimit - fdReserve`: the reserve keeps health
    /// checks (and the admin interface) working while clients exhaust the process's fds.
    var fdLimit: Int
    var fdReserve: Int
    /// Consecutive full reads before a stream moves to splice.
    var spliceAfterFullReads: UInt8 = 2
    var spliceChunk: Int = 64 * 1024

    /// `workers` is the count actually started (the configuration's, at least 1): probes divide by it.
    init(_ config: Configuration, workers: Int, fdLimit: Int) {
        bufferSize = config.effectiveServices.map(\.settings.bufferSize).max() ?? config.bufferSize
        splice = config.splice
        maxProbesInFlight = config.health.maxInFlight
        workerCount = workers
        self.fdLimit = fdLimit
        fdReserve = min(max(32, fdLimit / 100), fdLimit / 4)
    }
}

/// One service's settings in the loop's units (nanoseconds), looked up per pair through its service
/// index: no allocation and no lock on the hot path.
struct ServiceRunSettings: Sendable, Equatable {
    var pair: PairSettings
    /// At most the worker's `bufferSize`.
    var bufferSize: Int
    var healthMode: HealthCheckMode
    var healthInterval: UInt64
    var healthTimeout: UInt64
    var rise: Int
    var fall: Int
    var panicThreshold: Int?
    var checkOnIdle: Bool
    /// PROXY protocol both ways, the preamble timeout and the server names this service serves.
    var preamble: PreambleSettings
    /// `source` addresses by family, taken in turn; empty: no bind before connect.
    var sourcesV4: [SocketAddress]
    var sourcesV6: [SocketAddress]

    init(_ s: ServiceSettings, workerBufferSize: Int) {
        pair = PairSettings(s)
        bufferSize = min(s.bufferSize, workerBufferSize)
        healthMode = s.health.mode
        healthInterval = s.health.interval.nanoseconds
        healthTimeout = s.health.timeout.nanoseconds
        rise = s.health.rise
        fall = s.health.fall
        panicThreshold = s.panicThreshold
        checkOnIdle = s.checkOnIdle
        preamble = PreambleSettings(s)
        sourcesV4 = s.sources.filter { !$0.isIPv6 }
        sourcesV6 = s.sources.filter { $0.isIPv6 }
    }
}
