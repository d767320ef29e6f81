/// Picks the service for a TLS server name, among the services sharing one listen address: the service
/// naming it exactly, else the one with the longest matching wildcard, else the default (HAProxy's
/// `req.ssl_sni` maps, nginx `ssl_preread` + `map`, Traefik `HostSNI`). Built once per listener from
/// the services' `server_names`; looked up with the lowercased name `ClientHello` extracted, without
/// allocating.
///
/// A wildcard `*.example.com` matches any name ending in `.example.com` with at least one label
/// before it (`a.example.com`, `a.b.example.com`), not `example.com` itself: nginx's rule, so that
/// `*.b.example.com` can be more specific than `*.example.com` and the longer one wins. The name `*`
/// alone makes its target the default: it takes every name nothing else matches, and ClientHellos
/// without a server name.
public struct ServerNameRouter: Sendable, Equatable {
    /// Exact names, sorted by bytes, with their target.
    private var exact: [(name: [UInt8], target: Int)] = []
    /// Wildcard suffixes (`.example.com`, the leading `*` dropped), longest first.
    private var wildcards: [(suffix: [UInt8], target: Int)] = []
    public private(set) var defaultTarget: Int?

    public static func == (a: ServerNameRouter, b: ServerNameRouter) -> Bool {
        a.defaultTarget == b.defaultTarget
            && a.exact.elementsEqual(b.exact) { $0.name == $1.name && $0.target == $1.target }
            && a.wildcards.elementsEqual(b.wildcards) { $0.suffix == $1.suffix && $0.target == $1.target }
    }

    /// `routes`: for each target (a service index), the names it serves; `defaultTarget`: the one that
    /// takes every other name (nil: those connections are closed). Names are checked with
    /// `validate` and compared without case; a name (or wildcard) given twice is refused, naming it.
    /// A route listing `*` is the default (at most one: two are refused).
    public init(routes: [(names: [String], target: Int)], defaultTarget: Int?) throws(ParseFailure) {
        self.defaultTarget = defaultTarget
        var seen: [String: Int] = [:]
        for route in routes {
            for raw in route.names {
                let name: String
                switch Self.validate(raw) {
                case .success(let n): name = n
                case .failure(let f): throw f
                }
                if name == Self.defaultName, let other = seen[name] ?? self.defaultTarget, other != route.target {
                    throw ParseFailure("'*' (the default) already routes elsewhere")
                }
                if let other = seen[name] {
                    throw ParseFailure(other == route.target ? "server name '\(name)' listed twice" : "server name '\(name)' already routes elsewhere")
                }
                seen[name] = route.target
                if name == Self.defaultName {
                    self.defaultTarget = route.target
                    continue
                }
                if name.hasPrefix("*.") {
                    wildcards.append((Array(name.utf8.dropFirst()), route.target))
                } else {
                    exact.append((Array(name.utf8), route.target))
                }
            }
        }
        exact.sort { $0.name.lexicographicallyPrecedes($1.name) }
        wildcards.sort { $0.suffix.count > $1.suffix.count }
    }

    /// A server name as a service may list it: a DNS name (`a.example.com`) or a wildcard whose `*` is
    /// the whole first label (`*.example.com`); letters, digits, `-` and `_` in labels of 1-63 bytes,
    /// 253 bytes at most, no trailing dot; or `*` alone, the default. Returns it lowercased.
    public static func validate(_ text: String) -> Result<String, ParseFailure> {
        if text == defaultName { return .success(text) }
        let lower = String(text.lowercased())
        var body = Substring(lower)
        if body.hasPrefix("*.") { body = body.dropFirst(2) }
        guard !body.isEmpty, lower.utf8.count <= 253 else {
            return .failure(ParseFailure("server name '\(text)' must be 1-253 bytes"))
        }
        for label in body.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63,
                label.utf8.allSatisfy({ c in (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F })
            else {
                return .failure(ParseFailure("server name '\(text)': expected a DNS name like a.example.com or *.example.com"))
            }
        }
        return .success(lower)
    }

    /// The name that makes a route the default: `"server_names": ["*"]`.
    public static let defaultName = "*"

    /// The target for `name` (lowercase bytes, as `ClientHello.serverName` writes them).
    public func route(_ name: UnsafeRawBufferPointer) -> Int? {
        // Binary search over the sorted exact names.
        var low = 0, high = exact.count
        while low < high {
            let mid = (low + high) / 2
            let order = Self.compare(exact[mid].name, name)
            if order == 0 { return exact[mid].target }
            if order < 0 { low = mid + 1 } else { high = mid }
        }
        for w in wildcards where name.count > w.suffix.count {
            let tail = UnsafeRawBufferPointer(rebasing: name[(name.count - w.suffix.count)...])
            if w.suffix.withUnsafeBytes({ $0.elementsEqual(tail) }) { return w.target }
        }
        return defaultTarget
    }

    /// The target for `name`, compared without case.
    public func route(_ name: String) -> Int? {
        var lower = Array(name.utf8)
        for i in lower.indices where lower[i] >= 0x41 && lower[i] <= 0x5A { lower[i] += 0x20 }
        return lower.withUnsafeBytes { route($0) }
    }

    private static func compare(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        for i in 0..<n where a[i] != b[i] { return a[i] < b[i] ? -1 : 1 }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }
}
