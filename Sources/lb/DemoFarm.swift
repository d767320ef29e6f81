import LoadBalancer

/// `lb --demo`: an in-process farm of fake backends to balance over (filled in with FakeBackends).
struct DemoFarm {
    let backends: [BackendSpec]
    let summary: String

    static func start(_ settings: DemoSettings) throws -> DemoFarm {
        throw DemoUnavailable()
    }

    func stop() {}
}

struct DemoUnavailable: Error, CustomStringConvertible {
    var description: String { "the demo farm is not built into this binary yet" }
}
