import CShim
import FakeBackends
import Glibc
import LoadBalancer

// `fakebackends`: a thin shell over FakeBackends. Parse, check the descriptor limit before opening
// anything, start the farm (and the control API), wait for SIGINT/SIGTERM, stop, print a summary.

func fail(_ message: String, exitCode: Int32) -> Never {
    fflush(nil)  // what stdout already holds comes first
    EventLog.writeStderr("fakebackends: \(message)")
    exit(exitCode)
}

let options: FarmOptions
switch FarmCommandLine.parse(Array(CommandLine.arguments.dropFirst())) {
case .success(.help):
    print(FarmCommandLine.usage)
    exit(0)
case .success(.version):
    print(FarmCommandLine.version)
    exit(0)
case .success(.run(let parsed)):
    options = parsed
case .failure(let error):
    fail(error.description, exitCode: 2)
}

lb_ignore_sigpipe()
// Blocked before any thread starts, so every thread inherits the mask and only sigwait sees them.
let stopSignals: [Int32] = [SIGINT, SIGTERM]
lb_block_signals(stopSignals, Int32(stopSignals.count))

let asked = options.farm.addresses.count
let limit = FileLimit.raiseToHard()
if limit < options.descriptorsNeeded {
    fail("\(Plural.count(asked, "backend")) need about \(options.descriptorsNeeded) open files but RLIMIT_NOFILE allows \(limit); "
        + "raise the hard limit (ulimit -Hn) or ask for fewer with --count", exitCode: 1)
}

let startedAt = MonotonicClock.now()
let farm: FakeBackendFarm
do {
    farm = try FakeBackendFarm.start(options.farm)
} catch {
    fail("\(error)", exitCode: 1)
}
let startMillis = (MonotonicClock.now() - startedAt) / 1_000_000
let count = farm.addresses.count
print("fakebackends: \(Plural.count(count, "\(options.farm.mode.rawValue) backend")) on \(FarmCommandLine.describe(farm.addresses)), "
    + "\(Plural.count(options.farm.loops, "loop")), started in \(startMillis) ms")
if !farm.skipped.isEmpty {
    print("fakebackends: skipped \(Plural.count(farm.skipped.count, "busy port")) (held by another socket): "
        + FarmCommandLine.describe(farm.skipped) + " (--require-all makes that an error)")
}

let faulty = farm.faulty
let faultyLines = faulty.map { "\($0.address) \($0.fault.rawValue)\n" }.joined()
if let path = options.faultyFile {
    guard let file = fopen(path, "w") else { fail("--faulty-file \(path): \(SystemError.message(for: errno))", exitCode: 1) }
    fputs(faultyLines, file)
    fclose(file)
    print("fakebackends: \(Plural.count(faulty.count, "faulty backend")) written to \(path)")
} else if !faulty.isEmpty {
    print("fakebackends: \(Plural.count(faulty.count, "faulty backend")):")
    for line in faultyLines.split(separator: "\n") { print("faulty \(line)") }
}

var control: FarmControlServer?
if let address = options.control {
    do {
        control = try FarmControlServer.start(farm: farm, address: address)
        print("fakebackends: control API on http://\(control!.address)")
    } catch {
        farm.stop()
        fail("--control \(address): \(error)", exitCode: 1)
    }
}
fflush(nil)

let signal = lb_wait_signals(stopSignals, Int32(stopSignals.count))
control?.stop()
farm.stop()
let t = farm.totals
let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
print("fakebackends: \(name): closed \(Plural.count(count, "backend")); connections \(t.connections), requests \(t.requests), "
    + "bytes in \(t.bytesIn), bytes out \(t.bytesOut), faults hit \(t.faultsHit)")
exit(0)
