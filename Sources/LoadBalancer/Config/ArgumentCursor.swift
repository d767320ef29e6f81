/// Walks a command line one flag at a time, for `lb`, `fakebackends` and `loadgen` alike. Splits
/// `--flag=value`, fetches a flag's value (inline or the next argument), and turns a refused value into
/// a `ConfigError` naming the flag and the value. A lone `--` ends the flags: `next()` returns nil there,
/// and `operands()` gives what follows, taken as is (a target that starts with `-`, for instance).
///
///     var args = ArgumentCursor(arguments)
///     while let flag = args.next() {
///         switch flag {
///         case "--workers": workers = try args.integer(for: flag, in: 1...256)
///         ...
///         }
///     }
public struct ArgumentCursor {
    private let arguments: [String]
    /// The argument `next()` returns next.
    private var index = 0
    /// The `=value` of the flag `next()` returned last, if it had one.
    private var inline: String?
    /// Set once `next()` has met `--`.
    public private(set) var flagsEnded = false

    public init(_ arguments: [String]) {
        self.arguments = arguments
    }

    /// The next argument; for `--flag=value`, just `--flag` (the value is what `value(for:)` returns).
    /// Nil when none are left.
    public mutating func next() -> String? {
        guard !flagsEnded, index < arguments.count else { return nil }
        var flag = arguments[index]
        index += 1
        inline = nil
        if flag == "--" {
            flagsEnded = true
            return nil
        }
        if flag.hasPrefix("--"), let eq = flag.firstIndex(of: "=") {
            inline = String(flag[flag.index(after: eq)...])
            flag = String(flag[..<eq])
        }
        return flag
    }

    /// The arguments after `--` (empty when there was none), consumed.
    public mutating func operands() -> [String] {
        guard flagsEnded else { return [] }
        defer { index = arguments.count }
        return Array(arguments[index...])
    }

    /// A flag that is on when given bare (`--quiet`); `--quiet=VALUE` takes `true/false`, `yes/no` or
    /// `on/off` and refuses anything else. A bare boolean never takes the next argument as its value.
    public mutating func boolean(for flag: String) throws(ConfigError) -> Bool {
        guard let text = inline else { return true }
        return try Self.check(flag, text, ValueParsers.boolean(text))
    }

    /// Refuses `--flag=value` for a flag that takes no value (`--help`, `--version`).
    public func noValue(for flag: String) throws(ConfigError) {
        if let inline { throw ConfigError(flag: flag, value: inline, reason: "takes no value") }
    }

    /// The current flag's value: its `=value`, or else the next argument. A next argument that is itself
    /// a flag (`--listen --check`) is not taken: the value was forgotten, and naming the flag as a bad
    /// value would hide that (`--flag=--value` still passes such a value).
    public mutating func value(for flag: String) throws(ConfigError) -> String {
        if let inline { return inline }
        guard index < arguments.count else { throw ConfigError(flag: flag, value: nil, reason: "needs a value") }
        if arguments[index].hasPrefix("--") {
            throw ConfigError(flag: flag, value: nil, reason: "needs a value (\(arguments[index]) is the next flag)")
        }
        index += 1
        return arguments[index - 1]
    }

    /// The current flag's value run through `parse`.
    public mutating func value<T>(for flag: String, _ parse: (String) -> Result<T, ParseFailure>) throws(ConfigError) -> T {
        let text = try value(for: flag)
        return try Self.check(flag, text, parse(text))
    }

    /// The current flag's value run through `convert`; `reason` when that gives nil. Assign the result
    /// to a non-optional: into an optional, `T` becomes optional too and a nil from `convert` passes.
    public mutating func value<T>(for flag: String, else reason: @autoclosure () -> String,
                                  _ convert: (String) -> T?) throws(ConfigError) -> T {
        let text = try value(for: flag)
        guard let v = convert(text) else { throw ConfigError(flag: flag, value: text, reason: reason()) }
        return v
    }

    /// A whole number in `range`.
    public mutating func integer(for flag: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        try value(for: flag) { ValueParsers.integer($0, in: range) }
    }

    /// A byte size (`16384`, `16k`, `1m`) in `range`.
    public mutating func byteSize(for flag: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        try value(for: flag) { ValueParsers.byteSize($0, in: range) }
    }

    /// A duration (`250ms`, `2s`): zero, or at least `resolution`, the tick of the timers that will
    /// measure it (10 ms: `TimerWheel` in lb and the farm). A shorter one would silently mean a tick,
    /// so it is refused rather than rounded.
    public mutating func duration(for flag: String, resolution: Duration = .milliseconds(10)) throws(ConfigError) -> Duration {
        let text = try value(for: flag)
        let d = try Self.check(flag, text, ValueParsers.duration(text))
        if d > .zero && d < resolution { throw Self.belowResolution(flag, text, resolution) }
        return d
    }

    /// A duration of at least `resolution` (see `duration(for:resolution:)`).
    public mutating func positiveDuration(for flag: String, resolution: Duration = .milliseconds(10)) throws(ConfigError) -> Duration {
        let text = try value(for: flag)
        let d = try Self.check(flag, text, ValueParsers.duration(text))
        guard d > .zero else { throw ConfigError(flag: flag, value: text, reason: "must be more than zero") }
        if d < resolution { throw Self.belowResolution(flag, text, resolution) }
        return d
    }

    private static func belowResolution(_ flag: String, _ text: String, _ resolution: Duration) -> ConfigError {
        let ms = resolution.components.seconds * 1000 + resolution.components.attoseconds / 1_000_000_000_000_000
        return ConfigError(flag: flag, value: text, reason: "shorter than the timer resolution (\(ms)ms)")
    }

    /// A fraction from 0 to 1.
    public mutating func fraction(for flag: String) throws(ConfigError) -> Double {
        try value(for: flag, else: "expected a fraction between 0 and 1") { text in
            Double(text).flatMap { $0.isFinite && $0 >= 0 && $0 <= 1 ? $0 : nil }
        }
    }

    /// A seed: any unsigned 64-bit number.
    public mutating func seed(for flag: String) throws(ConfigError) -> UInt64 {
        try value(for: flag, else: "not a whole number") { UInt64($0) }
    }

    /// `result`'s value, or a `ConfigError` naming `flag`, `text` and the parser's reason.
    public static func check<T>(_ flag: String, _ text: String, _ result: Result<T, ParseFailure>) throws(ConfigError) -> T {
        switch result {
        case .success(let v): return v
        case .failure(let f): throw ConfigError(flag: flag, value: text, reason: f.reason)
        }
    }

    /// The refusal of an argument no case matched: an unknown flag, or a stray word.
    public static func unrecognized(_ flag: String) -> ConfigError {
        if flag.hasPrefix("-") { return ConfigError(flag: flag, value: nil, reason: "unknown flag (see --help)") }
        return ConfigError(flag: flag, value: nil, reason: "unexpected argument (see --help)")
    }
}
