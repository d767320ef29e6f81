import Glibc

/// The RFC 3339 time stamp that starts every log line (`2026-12-01T09:30:05.123Z`: UTC, milliseconds),
/// left out when stderr is the systemd journal, which stamps each line itself.
public enum LogTimestamp {
    /// Whether log lines on fd 2 carry a stamp, decided once per process.
    public static let enabled: Bool = {
        var st = stat()
        let stderrID: (device: UInt64, inode: UInt64)? = fstat(2, &st) == 0 ? (UInt64(st.st_dev), UInt64(st.st_ino)) : nil
        return shouldStamp(journalStream: getenv("JOURNAL_STREAM").map { String(cString: $0) }, stderr: stderrID)
    }()

    /// False only when `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd for a unit's stdout/stderr) names
    /// the stream stderr actually is: that is systemd.exec(5)'s test, so a variable inherited by a child
    /// whose stderr was redirected elsewhere does not silence the stamps.
    public static func shouldStamp(journalStream: String?, stderr: (device: UInt64, inode: UInt64)?) -> Bool {
        guard let journalStream, let stderr else { return true }
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return true }
        return !(device == stderr.device && inode == stderr.inode)
    }

    /// Now, from the real-time clock.
    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
    }

    /// `seconds` since the Unix epoch (UTC) as RFC 3339 (section 5.6) with milliseconds and `Z`. Pure:
    /// civil date from day number after H. Hinnant, "chrono-compatible low-level date algorithms".
    public static func format(seconds: Int64, nanoseconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):"
            + "\(pad(secondOfDay % 60, 2)).\(pad(nanoseconds / 1_000_000, 3))Z"
    }
}
