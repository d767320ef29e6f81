/// A rejected flag or value. `description` is the one line printed after `lb: `, naming what was wrong:
/// `--backend 1.2.3.4:99999: port out of range`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let flag: String
    public let value: String?
    public let reason: String

    public init(flag: String, value: String?, reason: String) {
        self.flag = flag
        self.value = value
        self.reason = reason
    }

    public var description: String {
        if let value { return "\(flag) \(value): \(reason)" }
        return "\(flag): \(reason)"
    }
}
