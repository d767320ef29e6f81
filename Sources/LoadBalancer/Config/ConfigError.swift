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
        // Reasons quote parts of the value ("bad port '...'"): escaped too.
        if let value { return "\(Self.shown(flag)) \(Self.shown(value)): \(Self.escaped(reason))" }
        return "\(Self.shown(flag)): \(Self.escaped(reason))"
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool { s.value < 0x20 || (0x7F...0x9F).contains(s.value) }

    /// Control characters as `\u{..}`, the rest unchanged.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        return text.unicodeScalars.map { isControl($0) ? "\\u{" + String($0.value, radix: 16) + "}" : String($0) }.joined()
    }

    /// The text as given, unless it is empty or holds control characters: then quoted and escaped, so
    /// the refusal stays one line and shows what was there (`lb '': unexpected argument`, found by ci/fuzz cli).
    static func shown(_ text: String) -> String {
        guard text.isEmpty || text.unicodeScalars.contains(where: isControl) else {
            return text
        }
        return "'" + text.unicodeScalars.map { s -> String in
            switch s {
            case "'": return "\\'"
            case "\\": return "\\\\"
            case _ where isControl(s): return "\\u{" + String(s.value, radix: 16) + "}"
            default: return String(s)
            }
        }.joined() + "'"
    }
}
