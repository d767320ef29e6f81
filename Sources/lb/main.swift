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

/// A refused command line: one plain line, as any command-line tool prints it.
func fail(_ message: String, code: Int32) -> Never {
    EventLog.writeStderr("lb: " + message)
    exit(code)
}

/// A failure once lb has set out to serve: a log line, time-stamped like the others.
func failRunning(_ message: String, code: Int32) -> Never {
    EventLog.writeLogLine("lb: " + message)
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
        failRunning("--demo: \(error)", code: 1)
    }
} else {
    demoFarm = nil
}

// A backend that is lb's own listen address would be a loop; LoadBalancer.start leaves such backends
// out (and logs them). When that leaves nothing, the configuration is wrong: say so before binding.
if !configuration.backends.isEmpty
    && SelfLoop.partition(configuration.backends, listen: configuration.listen, local: Sys.interfaceAddresses()).kept.isEmpty
{
    let listens = configuration.listen.map(\.description).joined(separator: ", ")
    fail("every --backend is lb's own listen address (\(listens)): that would be a loop", code: 2)
}

let balancer: LoadBalancer
do {
    balancer = try LoadBalancer.start(configuration, log: log)
} catch {
    failRunning("\(error)", code: 1)
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
    failRunning(error.description, code: 1)
}

let listeners = balancer.listenAddresses.map(\.description).joined(separator: ", ")
EventLog.writeLogLine(
    "lb: listening on \(listeners) with \(Plural.count(balancer.workerCount, "worker")), "
        + Plural.count(balancer.pool.count, "backend") + (demoFarm.map { " (demo farm: \($0.summary))" } ?? ""))
if let admin { EventLog.writeLogLine("lb: admin API and dashboard on \(admin.url)") }

/// Waits for TERM or INT; SIGUSR1 in the meantime reopens the access log.
func waitForShutdownSignal() -> Int32 {
    while true {
        let signal = shutdownSignals.withUnsafeBufferPointer { lb_wait_signals($0.baseAddress, Int32($0.count)) }
        guard signal == SIGUSR1 else { return signal }
        accessLog?.reopen()
    }
}

let first = waitForShutdownSignal()
EventLog.writeLogLine("lb: signal \(first): draining open connections for up to \(configuration.drainTimeout)")
balancer.beginDrain()

// Wait for the drain on another thread so a second signal can cut it short.
let drainTimeout = configuration.drainTimeout
let farm = demoFarm
// Should it fail to start, a second signal still ends the drain below.
let waiter = try? OSThread.spawn {
    balancer.wait(timeout: drainTimeout + .seconds(5))
    let c = balancer.counters
    EventLog.writeLogLine("lb: stopped after \(Plural.count(c[.accepted], "connection")) (\(c[.badGateways]) answered 502)")
    accessLog?.stop()
    farm?.stop()
    exit(0)
}
waiter?.detach()
_ = waitForShutdownSignal()
EventLog.writeLogLine("lb: second signal: closing all connections now")
balancer.stopNow()
balancer.wait(timeout: .seconds(5))
accessLog?.stop()
exit(0)
