/// A count with its noun, in the singular for exactly one: `Plural.count(1, "backend")` is
/// `1 backend`, `Plural.count(3, "backend")` is `3 backends`. For operator-facing lines of lb,
/// fakebackends and loadgen; `plural` is for nouns that do not just take an `s`.
public enum Plural {
    public static func count(_ n: some BinaryInteger, _ noun: String, plural: String? = nil) -> String {
        "\(n) " + (n == 1 ? noun : plural ?? noun + "s")
    }
}
