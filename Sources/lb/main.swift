import Admin
import CShim
import Glibc
import LoadBalancer

// `lb`: parse flags (exit 2 on any bad one), start the balancer, serve until SIGTERM/SIGINT, drain, exit 0.
// A second signal during the drain closes everything at once. SIGUSR1 reopens the access log (logrotate).

_ = lb_ignore_sigpipe()
let shutdownSignals: [Int32] = [SIGTERM, SIGINT, SIGUSR1]
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

let accessLog: AccessLogWriter?
let admin: AdminServer?
do throws(AdminError) {
    accessLog = try configuration.accessLog.map { settings throws(AdminError) in try AccessLogWriter.start(balancer, settings) }
    let token = try configuration.adminTokenFile.map { path throws(AdminError) in try AdminToken.load(from: path) }
    admin = try configuration.admin.map { address throws(AdminError) in try AdminServer.start(balancer, on: address, token: token) }
} catch {
    balancer.stopNow()
    balancer.wait(timeout: .seconds(5))
    fail(error.description, code: 1)
}

let listeners = balancer.listenAddresses.map(\.description).joined(separator: ", ")
EventLog.writeStderr(
    "lb: listening on \(listeners) with \(balancer.workerCount) worker\(balancer.workerCount == 1 ? "" : "s"), "
        + "\(balancer.pool.count) backends" + (demoFarm.map { " (demo farm: \($0.summary))" } ?? ""))
if let admin { EventLog.writeStderr("lb: admin API and dashboard on \(admin.url)") }

/// Waits for TERM or INT; SIGUSR1 in the meantime reopens the access log.
func waitForShutdownSignal() -> Int32 {
    while true {
        let signal = shutdownSignals.withUnsafeBufferPointer { lb_wait_signals($0.baseAddress, Int32($0.count)) }
        guard signal == SIGUSR1 else { return signal }
        accessLog?.reopen()
    }
}

let first = waitForShutdownSignal()
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
    accessLog?.stop()
    farm?.stop()
    exit(0)
}
waiter?.detach()
_ = waitForShutdownSignal()
EventLog.writeStderr("lb: second signal: closing all connections now")
balancer.stopNow()
balancer.wait(timeout: .seconds(5))
accessLog?.stop()
exit(0)
