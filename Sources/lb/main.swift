import CShim
import Glibc
import LoadBalancer

// `lb`: parse flags (exit 2 on any bad one), start the balancer, serve until SIGTERM/SIGINT, drain, exit 0.
// A second signal during the drain closes everything at once.

_ = lb_ignore_sigpipe()
let shutdownSignals: [Int32] = [SIGTERM, SIGINT]
// Blocked before any thread starts, so every worker inherits the mask and only sigwait sees them.
_ = shutdownSignals.withUnsafeBufferPointer { lb_block_signals($0.baseAddress, Int32($0.count)) }

func fail(_ message: String, code: Int32) -> Never {
    EventLog.writeStderr("lb: " + message)
    exit(code)
}

var configuration: Configuration
var demo: DemoSettings?
switch CommandLineParser.parse(Array(CommandLine.arguments.dropFirst())) {
case .failure(let error):
    fail(error.description, code: 2)
case .success(.help):
    print(CommandLineParser.usage)
    exit(0)
case .success(.version):
    print(CommandLineParser.version)
    exit(0)
case .success(.check(let c)):
    let services = c.effectiveServices
    let what = "\(services.count) service\(services.count == 1 ? "" : "s") (\(services.map(\.name).joined(separator: ", "))), "
        + "\(services.reduce(0) { $0 + $1.listen.count }) listen addresses, \(services.reduce(0) { $0 + $1.backends.count }) backends"
    print("lb: \(c.configFile ?? "flags"): ok: " + what)
    exit(0)
case .success(.run(let c, let d)):
    configuration = c
    demo = d
}

let log = EventLog(echoToStderr: configuration.logBackendChanges)
let demoFarm: DemoFarm?
if let demo {
    do {
        let farm = try DemoFarm.start(demo)
        configuration.backends = farm.backends
        demoFarm = farm
    } catch {
        fail("--demo: \(error)", code: 1)
    }
} else {
    demoFarm = nil
}

let balancer: LoadBalancer
do {
    balancer = try LoadBalancer.start(configuration, log: log)
} catch {
    fail("\(error)", code: 1)
}

let services = balancer.services
let listeners: String
if services.count == 1 && services[0].name == "default" {
    listeners = balancer.listenAddresses.map(\.description).joined(separator: ", ")
} else {
    listeners = services.flatMap { s in balancer.listenAddresses(of: s.name).map { "\($0) (\(s.name))" } }.joined(separator: ", ")
}
EventLog.writeStderr(
    "lb: listening on \(listeners) with \(balancer.workerCount) worker\(balancer.workerCount == 1 ? "" : "s"), "
        + (services.count == 1 ? "" : "\(services.count) services, ")
        + "\(services.reduce(0) { $0 + $1.pool.count }) backends" + (demoFarm.map { " (demo farm: \($0.summary))" } ?? ""))

let first = shutdownSignals.withUnsafeBufferPointer { lb_wait_signals($0.baseAddress, Int32($0.count)) }
EventLog.writeStderr("lb: signal \(first): draining open connections for up to \(configuration.drainTimeout)")
balancer.beginDrain()

// Wait for the drain on another thread so a second signal can cut it short.
let drainTimeout = configuration.drainTimeout
let farm = demoFarm
// Should it fail to start, a second signal still ends the drain below.
let waiter = try? OSThread.spawn {
    balancer.wait(timeout: drainTimeout + .seconds(5))
    let c = balancer.counters
    EventLog.writeStderr("lb: stopped after \(c[.accepted]) connections (\(c[.badGateways]) answered 502)")
    farm?.stop()
    exit(0)
}
waiter?.detach()
_ = shutdownSignals.withUnsafeBufferPointer { lb_wait_signals($0.baseAddress, Int32($0.count)) }
EventLog.writeStderr("lb: second signal: closing all connections now")
balancer.stopNow()
balancer.wait(timeout: .seconds(5))
exit(0)
