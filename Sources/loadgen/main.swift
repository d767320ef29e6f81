import CShim
import Glibc
import LoadBalancer
import LoadGen

// A thin shell over the LoadGen library: parse, run, print, exit (0 all good, 1 failures, 2 usage).
lb_ignore_sigpipe()

func fail(_ line: String, code: Int32) -> Never {
    EventLog.writeStderr("loadgen: " + line)
    exit(code)
}

switch LoadGenCommandLine.parse(Array(CommandLine.arguments.dropFirst())) {
case .failure(let error):
    fail(error.description, code: 2)
case .success(.help):
    print(LoadGenCommandLine.usage)
case .success(.version):
    print(LoadGenCommandLine.version)
case .success(.run(var config, let json, let allowErrors)):
    let limit = FileLimit.raiseToHard()
    if config.concurrency + 64 > limit {
        fail("-c \(config.concurrency): more than the open-file limit allows (\(limit))", code: 2)
    }
    config.progress = isatty(2) == 1
    let report: LoadReport
    do {
        report = try LoadGenerator.run(config)
    } catch {
        fail("\(error)", code: 1)
    }
    print(json ? report.json() : report.text(), terminator: json ? "\n" : "")
    exit(report.failed > 0 && !allowErrors ? 1 : 0)
}
