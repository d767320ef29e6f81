import Glibc
import LoadBalancer
import OperatorHTTP
import Synchronization

/// Writes the access log (`--access-log PATH|-`): one thread drains every worker's ring of closed-pair
/// records about ten times a second, formats the lines (text or JSON, docs/admin.md) and writes each
/// batch with one `write`. Workers never wait for it: a full ring drops records, counted in
/// `lb_access_log_dropped_total`. `reopen()` (SIGUSR1, after logrotate moved the file) makes the next
/// batch go to a freshly opened file of the same path.
public final class AccessLogWriter: Sendable {
    public let settings: AccessLogSettings
    private let balancer: LoadBalancer
    private let wakeFD: Int32
    private let stopping = Atomic<Bool>(false)
    private let reopenAsked = Atomic<Bool>(false)
    private let thread = Mutex<OSThread?>(nil)
    /// Lines written so far, and write errors (the log goes on; the error is reported once).
    public let written = Atomic<Int>(0)

    private init(settings: AccessLogSettings, balancer: LoadBalancer, wakeFD: Int32) {
        self.settings = settings
        self.balancer = balancer
        self.wakeFD = wakeFD
    }

    /// Opens the file (or standard output for `-`) and starts the thread. Throws a one-line reason.
    public static func start(_ balancer: LoadBalancer, _ settings: AccessLogSettings) throws(AdminError) -> AccessLogWriter {
        let fd: Int32
        do throws(SystemError) {
            fd = settings.path == "-" ? 1 : try Sys.openForAppend(settings.path)
        } catch {
            throw AdminError("--access-log \(settings.path): \(error)")
        }
        let wake: Int32
        do throws(SystemError) { wake = try Sys.eventFD() } catch {
            if fd != 1 { Sys.close(fd) }
            throw AdminError("--access-log: \(error)")
        }
        let writer = AccessLogWriter(settings: settings, balancer: balancer, wakeFD: wake)
        do throws(SystemError) {
            let t = try OSThread.spawn { writer.run(fd: fd) }
            writer.thread.withLock { $0 = t }
        } catch {
            if fd != 1 { Sys.close(fd) }
            Sys.close(wake)
            throw AdminError("--access-log: \(error)")
        }
        return writer
    }

    /// Reopens the file before the next batch (logrotate's postrotate `kill -USR1`). Safe from any thread.
    public func reopen() {
        reopenAsked.store(true, ordering: .releasing)
        Sys.signalEventFD(wakeFD)
    }

    /// Writes what is left in the rings, closes the file and joins the thread. Idempotent.
    public func stop() {
        guard let t = thread.withLock({ t -> OSThread? in
            let h = t
            t = nil
            return h
        }) else { return }
        stopping.store(true, ordering: .releasing)
        Sys.signalEventFD(wakeFD)
        t.join()
        Sys.close(wakeFD)
    }

    private func run(fd initial: Int32) {
        Sys.lowerThisThreadPriority(nice: 10)  // workers first when the cores are busy; the rings absorb the wait
        var fd = initial
        var formatter = AccessLineFormatter(format: settings.format, listeners: balancer.listenAddresses)
        var batch: [UInt8] = []
        batch.reserveCapacity(256 * 1024)
        var reportedError = false
        var records: [AccessRecord] = []
        let epoll = try? Epoll(capacity: 4)
        _ = try? epoll?.add(wakeFD, events: EpollEvents.input, data: 0)
        while true {
            let last = stopping.load(ordering: .acquiring)
            if reopenAsked.exchange(false, ordering: .acquiringAndReleasing), settings.path != "-" {
                do throws(SystemError) {
                    let fresh = try Sys.openForAppend(settings.path)
                    Sys.close(fd)
                    fd = fresh
                    reportedError = false
                } catch {
                    EventLog.writeStderr("lb: --access-log \(settings.path): reopen failed, still writing to the old file: \(error)")
                }
            }
            formatter.refreshClock()
            // Each ring is in order; merged by close time so the file reads in order within a batch.
            records.removeAll(keepingCapacity: true)
            for ring in balancer.accessLogRings {
                _ = ring.drain(limit: 65_536) { record in records.append(copy record) }
            }
            if balancer.accessLogRings.count > 1 { records.sort { $0.closedAt < $1.closedAt } }
            for record in records {
                formatter.append(record, to: &batch)
                if batch.count >= 192 * 1024 { flush(&batch, fd, &reportedError) }
            }
            flush(&batch, fd, &reportedError)
            let lines = records.count
            written.add(lines, ordering: .relaxed)
            if last { break }
            if lines == 0 {
                _ = try? epoll?.wait(timeoutMs: 100)
                Sys.drainEventFD(wakeFD)
            }
        }
        if fd != 1 { Sys.close(fd) }
    }

    private func flush(_ batch: inout [UInt8], _ fd: Int32, _ reportedError: inout Bool) {
        guard !batch.isEmpty else { return }
        let result: Result<Void, SystemError> = batch.withUnsafeBytes { raw in
            Result { () throws(SystemError) in try Sys.writeAll(fd, raw) }
        }
        if case .failure(let error) = result {
            if !reportedError {
                reportedError = true
                EventLog.writeStderr("lb: --access-log \(settings.path): \(error); lines are lost until it works again")
            }
        }
        batch.removeAll(keepingCapacity: true)
    }
}

/// Turns records into lines. Wall time comes from the monotonic close time plus an offset read once
/// per batch, so a worker never reads a second clock for the log.
struct AccessLineFormatter {
    let format: AccessLogSettings.Format
    let listeners: [String]
    var listenerNames: [SocketAddress]
    /// Wall ns minus monotonic ns, as of the last `refreshClock`.
    var offset: Int64 = 0
    private var addressCache: [SocketAddress: [UInt8]] = [:]
    private var timeCache: (second: Int64, text: [UInt8]) = (-1, [])

    init(format: AccessLogSettings.Format, listeners: [SocketAddress]) {
        self.format = format
        self.listeners = listeners.map(\.description)
        listenerNames = listeners
        refreshClock()
    }

    mutating func refreshClock() {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let wall = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        offset = wall - Int64(bitPattern: MonotonicClock.now())
    }

    private mutating func address(_ a: SocketAddress) -> [UInt8] {
        if a.family == 0 { return Array("-".utf8) }
        if let cached = addressCache[a] { return cached }
        if addressCache.count > 50_000 { addressCache.removeAll(keepingCapacity: true) }
        let text = Array(a.description.utf8)
        addressCache[a] = text
        return text
    }

    /// `2026-12-01T00:31:02.123Z` (UTC, milliseconds).
    private mutating func appendTime(_ wallNanos: Int64, to out: inout [UInt8]) {
        let second = wallNanos / 1_000_000_000
        if second != timeCache.second {
            var t = time_t(second)
            var parts = tm()
            gmtime_r(&t, &parts)
            func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
            let text = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            timeCache = (second, Array(text.utf8))
        }
        out += timeCache.text
        let ms = Int((wallNanos / 1_000_000) % 1000)
        out.append(UInt8(48 + ms / 100))
        out.append(UInt8(48 + ms / 10 % 10))
        out.append(UInt8(48 + ms % 10))
        out.append(UInt8(ascii: "Z"))
    }

    /// Milliseconds with three decimals (`12.345`), or `-` when absent.
    private static func appendMillis(_ seconds: Double?, to out: inout [UInt8]) {
        guard let seconds else { out.append(UInt8(ascii: "-")); return }
        let micros = Int((seconds * 1e6).rounded())
        JSONWriter.appendDecimal(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        let frac = micros % 1000
        out.append(UInt8(48 + frac / 100))
        out.append(UInt8(48 + frac / 10 % 10))
        out.append(UInt8(48 + frac % 10))
    }

    mutating func append(_ r: borrowing AccessRecord, to out: inout [UInt8]) {
        let wall = Int64(bitPattern: r.closedAt) &+ offset
        let listener = Int(r.listener) < listeners.count ? listeners[Int(r.listener)] : "-"
        let client = address(r.client)
        let backend = address(r.backend)
        let connect: Double? = r.connectSeconds
        switch format {
        case .text:
            // TIME CLIENT LISTENER SERVICE BACKEND connect=MS duration=MS up=BYTES down=BYTES retries=N CODE CAUSE
            appendTime(wall, to: &out)
            out.append(32); out += client
            out.append(32); out += listener.utf8
            out.append(32); out += AdminAPI.defaultService.utf8
            out.append(32); out += backend
            out += " connect_ms=".utf8; Self.appendMillis(connect, to: &out)
            out += " duration_ms=".utf8; Self.appendMillis(r.durationSeconds, to: &out)
            out += " bytes_up=".utf8; JSONWriter.appendDecimal(r.bytesUp, to: &out)
            out += " bytes_down=".utf8; JSONWriter.appendDecimal(r.bytesDown, to: &out)
            out += " retries=".utf8; JSONWriter.appendDecimal(Int(r.retries), to: &out)
            out.append(32); out += r.reason.code.utf8
            out.append(32); out += r.reason.name.utf8
            out.append(10)
        case .json:
            var time: [UInt8] = []
            appendTime(wall, to: &time)
            let hasBackend = r.hasBackend, duration = r.durationSeconds, up = r.bytesUp, down = r.bytesDown
            let retries = Int(r.retries), reason = r.reason
            var w = JSONWriter(reserving: 320)
            w.object { w in
                w.field("time", String(decoding: time, as: UTF8.self))
                w.field("client", String(decoding: client, as: UTF8.self))
                w.field("listener", listener)
                w.field("service", AdminAPI.defaultService)
                w.field("backend", hasBackend ? String(decoding: backend, as: UTF8.self) : nil)
                w.key("connect_ms")
                if let connect { w.double((connect * 1e6).rounded() / 1000) } else { w.null() }
                w.field("duration_ms", (duration * 1e6).rounded() / 1000)
                w.field("bytes_up", up)
                w.field("bytes_down", down)
                w.field("retries", retries)
                w.field("termination", reason.code)
                w.field("cause", reason.name)
            }
            out += w.bytes
            out.append(10)
        }
    }
}
