import Admin
import CShim
import Glibc
import LoadBalancer

// `lb`: parse flags (exit 2 on any bad one), start the balancer, serve until SIGTERM/SIGINT, drain, exit 0.
// A second signal during the drain closes everything at once; SIGHUP reloads the config file. What each
// signal does is `SignalController`'s (in the library, tested in-process); SIGUSR1 reopens the access log.

_ = lb_ignore_sigpipe()
// Blocked before any thread starts, so every worker inherits the mask and only sigwait sees them.
SignalController.blockHandledSignals()
let arguments = Array(CommandLine.arguments.dropFirst())

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

/// A service whose every backend is one of lb's own listen addresses would be a loop; LoadBalancer.start
/// leaves such backends out (and logs them), but one left with none is a wrong configuration: said
/// before binding, by `--check` too.
func refuseSelfLoops(_ configuration: Configuration) {
    let allListen = configuration.effectiveServices.flatMap(\.listen)
    for service in configuration.effectiveServices where !service.backends.isEmpty {
        if SelfLoop.partition(service.backends, listen: allListen, local: Sys.interfaceAddresses()).kept.isEmpty {
            let listens = allListen.map(\.description).joined(separator: ", ")
            let whose = configuration.configFile.map { "\($0): every backend of service \(service.name)" }
                ?? (configuration.effectiveServices.count == 1 ? "every --backend" : "every backend of service \(service.name)")
            fail("\(whose) is lb's own listen address (\(listens)): that would be a loop", code: 2)
        }
    }
}

var configuration: Configuration
var demo: DemoSettings?
switch CommandLineParser.parse(arguments) {
case .failure(let error):
    fail(error.description, code: 2)
case .success(.help):
    print(CommandLineParser.usage)
    exit(0)
case .success(.version):
    print(CommandLineParser.version)
    exit(0)
case .success(.check(let c)):
    // What the start would refuse before binding anything is refused here too.
    refuseSelfLoops(c)
    if let path = c.adminTokenFile {
        do throws(AdminError) { _ = try AdminToken.load(from: path) } catch { fail(error.description, code: 2) }
    }
    let services = c.effectiveServices
    let what = Plural.count(services.count, "service") + " (\(services.map(\.name).joined(separator: ", "))), "
        + Plural.count(services.reduce(0) { $0 + $1.listen.count }, "listen address", plural: "listen addresses") + ", "
        + Plural.count(services.reduce(0) { $0 + $1.backends.count }, "backend")
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
        failRunning("--demo: \(error)", code: 1)
    }
} else {
    demoFarm = nil
}

refuseSelfLoops(configuration)

// Read before anything starts: a bad token file stops lb before it takes any traffic.
let adminToken: AdminToken?
do throws(AdminError) {
    adminToken = try configuration.adminTokenFile.map { path throws(AdminError) in try AdminToken.load(from: path) }
} catch {
    fail(error.description, code: 1)
}

// An upgrade: take the listening sockets of the lb serving at the takeover socket, if one does.
var takeover: Takeover.Session?
if let path = configuration.takeoverSocket {
    // Connecting to a regular file is refused like a socket nobody serves; binding would then replace
    // that file (a mistyped path to lb.json, say). Refuse before anything starts.
    if Sys.namesNonSocket(path) { fail("--takeover-socket \(path): exists and is not a socket (not replacing it)", code: 1) }
    do {
        takeover = try Takeover.request(from: path)
    } catch {
        fail("--takeover-socket \(path): \(error)", code: 1)
    }
}

let balancer: LoadBalancer
do {
    balancer = try LoadBalancer.start(configuration, log: log, inherited: takeover?.listeners ?? [])
} catch {
    takeover?.abandon()
    failRunning("\(error)", code: 1)
}
let accessLog: AccessLogWriter?
let admin: AdminServer?
do throws(AdminError) {
    accessLog = try configuration.accessLog.map { settings throws(AdminError) in try AccessLogWriter.start(balancer, settings) }
    if let address = configuration.admin {
        do throws(AdminError) {
            admin = try AdminServer.start(balancer, on: address, token: adminToken)
        } catch {
            // The demo's default port may be taken: the demo still starts, on a free port, and says so.
            let chosen = CommandLine.arguments.contains { $0 == "--admin" || $0.hasPrefix("--admin=") }
            guard demo != nil, !chosen, let anyPort = SocketAddress(host: "127.0.0.1", port: 0) else { throw error }
            EventLog.writeLogLine("lb: \(error); the demo's admin server takes a free port instead")
            admin = try AdminServer.start(balancer, on: anyPort, token: adminToken)
        }
    } else {
        admin = nil
    }
} catch {
    takeover?.abandon()
    balancer.stopNow()
    balancer.wait(timeout: .seconds(5))
    failRunning(error.description, code: 1)
}

if let takeover {
    do {
        try takeover.ready()
        let count = takeover.listeners.reduce(0) { $0 + $1.fds.count }
        EventLog.writeLogLine("lb: took over \(count) listening sockets from the running lb, which now drains")
    } catch {
        EventLog.writeLogLine("lb: takeover: \(error) (both processes serve until the old one is stopped)")
    }
}

let services = balancer.services
let listeners: String
if services.count == 1 && services[0].name == "default" {
    listeners = balancer.listenAddresses.map(\.description).joined(separator: ", ")
} else {
    listeners = services.flatMap { s in balancer.listenAddresses(of: s.name).map { "\($0) (\(s.name))" } }.joined(separator: ", ")
}
EventLog.writeLogLine(
    "lb: listening on \(listeners) with \(Plural.count(balancer.workerCount, "worker")), "
        + (services.count == 1 ? "" : "\(services.count) services, ")
        + Plural.count(services.reduce(0) { $0 + $1.pool.count }, "backend") + (demoFarm.map { " (demo farm: \($0.summary))" } ?? ""))
if let admin { EventLog.writeLogLine("lb: admin API and dashboard on \(admin.url)") }

let notifier = SystemdNotifier.fromEnvironment()
let reloadSource: (@Sendable () throws(ConfigError) -> Configuration)?
if let path = configuration.configFile {
    let flags = arguments
    reloadSource = { () throws(ConfigError) -> Configuration in try ConfigFile.load(path, overrides: flags) }
} else {
    reloadSource = nil
}
let reopenLogs: (@Sendable () -> Void)?
if let writer = accessLog { reopenLogs = { writer.reopen() } } else { reopenLogs = nil }
let controller = SignalController(balancer: balancer, reloadSource: reloadSource, reopenLogs: reopenLogs) { state in
    if let error = notifier.notify(state) { EventLog.writeLogLine("lb: sd_notify: \(error)") }
}
// After a takeover this process is the service's main one now (systemd needs NotifyAccess=all to hear it).
let readyState = takeover == nil ? "READY=1" : "MAINPID=\(getpid())\nREADY=1"
if let error = notifier.notify(readyState) { EventLog.writeLogLine("lb: sd_notify: \(error)") }

// Serve our sockets to the next upgrade; once handed over, drain as on SIGTERM.
var takeoverServer: TakeoverServer?
if let path = configuration.takeoverSocket {
    do {
        takeoverServer = try TakeoverServer.start(path: path, balancer: balancer) { _ = kill(getpid(), SIGTERM) }
    } catch {
        EventLog.writeLogLine("lb: --takeover-socket \(path): \(error); serving without it")
    }
}

let farm = demoFarm
while true {
    switch controller.handle(SignalController.waitForSignal()) {
    case .keepServing:
        continue
    case .draining:
        // No hand-over once draining (the listeners are closing); after one, this is a no-op.
        takeoverServer?.stop()
        takeoverServer = nil
        // Wait for the drain on another thread, so a second signal can cut it short.
        let drainTimeout = balancer.configuration.drainTimeout
        let waiter = try? OSThread.spawn {
            balancer.wait(timeout: drainTimeout + .seconds(5))
            let c = balancer.counters
            EventLog.writeLogLine("lb: stopped after \(Plural.count(c[.accepted], "connection")) (\(c[.badGateways]) answered 502)")
            accessLog?.stop()
            farm?.stop()
            exit(0)
        }
        waiter?.detach()  // should it fail to start, a second signal still ends the drain below
    case .stopNow:
        balancer.stopNow()
        balancer.wait(timeout: .seconds(5))
        accessLog?.stop()
        exit(0)
    }
}
