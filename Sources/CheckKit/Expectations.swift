/// Known outcomes on a given kernel (`--expect FILE`), so CI can stay green on known failures
/// while every *new* failure, and every known failure that starts passing, still shows.
///
/// One entry per line: `<check id or glob> <xfail|skip> <reason>`; lines starting with `#` are comments.
/// `--expect -` reads the file from stdin.
///
///     # kvm_pvm 6.18 on AMD
///     guest-debug/hw_write_watchpoint_lengths/*   xfail  data watchpoints never fire on kvm_pvm
///     some-series/*                                skip   its cap is unmerged
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
    /// For every id known at parse time, the index of the first entry naming it (-1: none), so
    /// `entry(for:)` is a lookup rather than a scan over every entry.
    private var firstEntry: [String: Int] = [:]

    public init(entries: [Entry] = []) { self.entries = entries }

    public static func == (a: Expectations, b: Expectations) -> Bool { a.entries == b.entries }

    /// Parses a file's text; `knownIDs` are every check id, so a pattern that matches none
    /// (a typo, a renamed check) is an error rather than a silent no-op.
    /// Linear in the lines (each distinct pattern is matched against the ids once); CRLF is fine.
    public static func parse(_ text: String, file: String, knownIDs: [String]) throws(ManifestError) -> Expectations {
        let ids = IDIndex(knownIDs)
        var entries: [Entry] = []
        var firstEntry: [String: Int] = [:]
        var seenPatterns: Set<String> = []
        for (i, raw) in textLines(text).enumerated() {
            // Only whole-line comments: a reason may well mention "#GP".
            // Bytes, not Characters: grapheme breaking would be most of the cost of a big file.
            if raw.utf8.first(where: { $0 != 0x20 && $0 != 0x09 }) == UInt8(ascii: "#") { continue }
            let words = raw.utf8.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 }).map(Substring.init)
            if words.isEmpty { continue }
            let n = i + 1
            guard words.count >= 3 else {
                throw ManifestError(file: file, line: n, reason: "expected '<check id or glob> <xfail|skip> <reason>', got \(messageQuoted(String(raw).trimmingCharacters(in: " ")))")
            }
            guard let kind = Kind(rawValue: words[1].lowercased()) else {
                throw ManifestError(file: file, line: n, reason: "unknown outcome \(messageQuoted(String(words[1]))) (use xfail or skip)")
            }
            let pattern = String(words[0])
            let isNew = seenPatterns.insert(pattern).inserted
            if isNew {
                let matched = ids.matching(pattern)
                guard !matched.isEmpty else {
                    throw ManifestError(file: file, line: n, reason: "\(messageQuoted(pattern)) matches no check (see `kvmcheck list`)")
                }
                // A repeated pattern can never be the first entry for an id: only new ones are indexed.
                for id in matched where firstEntry[id] == nil { firstEntry[id] = entries.count }
            }
            entries.append(Entry(pattern: pattern, kind: kind, reason: words[2...].joined(separator: " "), location: "\(file):\(n)"))
        }
        var e = Expectations(entries: entries)
        for id in knownIDs where firstEntry[id] == nil { firstEntry[id] = -1 }
        e.firstEntry = firstEntry
        return e
    }

    /// The first entry naming `id` (exactly, or by glob).
    public func entry(for id: String) -> Entry? {
        if let i = firstEntry[id] { return i >= 0 ? entries[i] : nil }
        return entries.first { Self.matches($0.pattern, id) }
    }

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

/// Check ids sorted, so a glob's literal prefix narrows the ids it can match to a range.
struct IDIndex {
    let exact: Set<String>
    let sorted: [String]

    init(_ ids: [String]) { exact = Set(ids); sorted = exact.sorted() }

    /// The ids `pattern` names, in sorted order.
    func matching(_ pattern: String) -> [String] {
        guard let wildcard = pattern.firstIndex(where: { $0 == "*" || $0 == "?" }) else {
            return exact.contains(pattern) ? [pattern] : []
        }
        let prefix = String(pattern[..<wildcard])
        var lo = 0, hi = sorted.count
        while lo < hi { // first id >= prefix
            let mid = (lo + hi) / 2
            if sorted[mid] < prefix { lo = mid + 1 } else { hi = mid }
        }
        var out: [String] = []
        while lo < sorted.count, sorted[lo].hasPrefix(prefix) {
            if globMatch(pattern, sorted[lo]) { out.append(sorted[lo]) }
            lo += 1
        }
        return out
    }
}
