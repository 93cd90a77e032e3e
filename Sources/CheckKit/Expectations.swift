/// Known outcomes on a given kernel (`--expect FILE`), so CI can stay green on known failures
/// while every *new* failure, and every known failure that starts passing, still shows.
///
/// One entry per line: `<check id or glob> <xfail|skip> <reason>`; lines starting with `#` are comments.
///
///     # kvm_pvm 6.18 on AMD
///     guest-debug/hw_write_watchpoint_lengths/*   xfail  data watchpoints never fire on kvm_pvm
///     debug-cr3/*                                  skip   cap unmerged
public struct Expectations: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable { case xfail, skip }

    public struct Entry: Sendable, Equatable {
        public let pattern: String
        public let kind: Kind
        public let reason: String
        /// Where it was written, for messages.
        public let location: String
    }

    public let entries: [Entry]

    public init(entries: [Entry] = []) { self.entries = entries }

    /// Parses a file's text; `knownIDs` are every check id, so a pattern that matches none
    /// (a typo, a renamed check) is an error rather than a silent no-op.
    public static func parse(_ text: String, file: String, knownIDs: [String]) throws(ManifestError) -> Expectations {
        var entries: [Entry] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // Only whole-line comments: a reason may well mention "#GP".
            let line = raw.drop { $0 == " " || $0 == "\t" }.hasPrefix("#") ? "" : String(raw)
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if words.isEmpty { continue }
            let n = i + 1
            guard words.count >= 3 else {
                throw ManifestError(file: file, line: n, reason: "expected '<check id or glob> <xfail|skip> <reason>', got '\(line.trimmingCharacters(in: " "))'")
            }
            guard let kind = Kind(rawValue: words[1].lowercased()) else {
                throw ManifestError(file: file, line: n, reason: "unknown outcome '\(words[1])' (use xfail or skip)")
            }
            guard knownIDs.contains(where: { matches(words[0], $0) }) else {
                throw ManifestError(file: file, line: n, reason: "'\(words[0])' matches no check (see `kvmcheck list`)")
            }
            entries.append(Entry(pattern: words[0], kind: kind, reason: words[2...].joined(separator: " "), location: "\(file):\(n)"))
        }
        return Expectations(entries: entries)
    }

    /// The first entry naming `id` (exactly, or by glob).
    public func entry(for id: String) -> Entry? { entries.first { Self.matches($0.pattern, id) } }

    /// A pattern without wildcards names one check exactly; with `*`/`?` it is a glob over ids.
    static func matches(_ pattern: String, _ id: String) -> Bool {
        pattern.contains("*") || pattern.contains("?") ? globMatch(pattern, id) : pattern == id
    }

    /// What the result becomes under this expectation.
    public func apply(to result: CheckResult) -> CheckResult {
        guard let e = entry(for: result.id) else { return result }
        var r = result
        switch (e.kind, result.verdict) {
        case (.xfail, .fail), (.xfail, .timeout), (.xfail, .crash):
            r.expectation = .expectedFailure(e.reason)
        case (.xfail, .pass):
            r.expectation = .unexpectedPass(e.reason)
        case (.skip, .skip):
            r.expectation = .expectedSkip(e.reason)
        default:
            break // an expected skip that ran, or an xfail that skipped: reported as it is
        }
        return r
    }
}

/// How an expectation changed a result's meaning.
public enum ExpectationOutcome: Sendable, Equatable {
    /// Failed as the expectations file says: reported, but does not fail the run.
    case expectedFailure(String)
    /// Listed as failing but passed: fails the run (kselftest counts XPASS as a failure),
    /// so the file gets updated.
    case unexpectedPass(String)
    case expectedSkip(String)
}
