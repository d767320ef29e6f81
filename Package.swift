// swift-tools-version: 6.0
import PackageDescription

// Toolchain only: no package dependencies. CShim carries the few Linux calls Glibc's module does not export.
let package = Package(
    name: "lb",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lb", targets: ["lb"]),
        .executable(name: "fakebackends", targets: ["fakebackends"]),
        .executable(name: "loadgen", targets: ["loadgen"]),
        .library(name: "LoadBalancer", targets: ["LoadBalancer"]),
        .library(name: "FakeBackends", targets: ["FakeBackends"]),
        .library(name: "LoadGen", targets: ["LoadGen"]),
        .library(name: "OperatorHTTP", targets: ["OperatorHTTP"]),
        .library(name: "Admin", targets: ["Admin"]),
        .library(name: "Simulation", targets: ["Simulation"]),
    ],
    targets: [
        .target(name: "CShim"),
        .target(name: "LoadBalancer", dependencies: ["CShim"]),
        // The HTTP pieces operators' endpoints share (parser, writers, a small server); LoadBalancer stays free of HTTP.
        .target(name: "OperatorHTTP", dependencies: ["LoadBalancer"]),
        .target(name: "Admin", dependencies: ["LoadBalancer", "OperatorHTTP"]),
        .target(name: "FakeBackends", dependencies: ["LoadBalancer", "OperatorHTTP", "CShim"]),
        .target(name: "LoadGen", dependencies: ["LoadBalancer", "OperatorHTTP", "CShim"]),
        // Test support: the simulated kernel, network and peers the real worker runs against (docs/simulation.md).
        // Optimised even in debug builds, without dynamic exclusivity checks (test support only, single
        // threaded per world): `swift test` runs thousands of seeds of it.
        .target(
            name: "Simulation", dependencies: ["LoadBalancer", "CShim"],
            swiftSettings: [.unsafeFlags(["-O", "-enforce-exclusivity=unchecked"])]),
        .executableTarget(name: "lb", dependencies: ["LoadBalancer", "Admin", "FakeBackends"]),
        .executableTarget(name: "fakebackends", dependencies: ["FakeBackends", "OperatorHTTP", "LoadBalancer"]),
        .executableTarget(name: "loadgen", dependencies: ["LoadGen", "LoadBalancer"]),
        .executableTarget(name: "pickbench", dependencies: ["LoadBalancer"]),
        // Real TLS ClientHellos made by ci/make-clienthello-vectors.py, shared by both test targets.
        .target(name: "TestVectors", path: "Tests/TestVectors"),
        .testTarget(name: "UnitTests", dependencies: ["LoadBalancer", "OperatorHTTP", "Admin", "FakeBackends", "LoadGen", "CShim", "Simulation", "TestVectors"]),
        .testTarget(name: "IntegrationTests", dependencies: ["LoadBalancer", "OperatorHTTP", "Admin", "FakeBackends", "LoadGen", "CShim", "TestVectors"]),
    ],
    swiftLanguageModes: [.v6]
)
