import GuestKit

/// Which checks a run includes.
public struct Selection: Sendable, Equatable {
    /// Suite names; empty = all.
    public var suites: [String] = []
    /// Glob patterns (`*`, `?`) matched against check ids; empty = all.
    public var filters: [String] = []
    /// Glob patterns of check ids to leave out (kselftest_harness's `-T`), applied last.
    public var excludes: [String] = []
    public var levels: [GuestCPL] = GuestCPL.allCases

    public init(suites: [String] = [], filters: [String] = [], excludes: [String] = [], levels: [GuestCPL] = GuestCPL.allCases) {
        self.suites = suites; self.filters = filters; self.excludes = excludes; self.levels = levels
    }
}

public enum SelectionError: Error, Equatable, CustomStringConvertible {
    case unknownSuite(String, known: [String])
    case nothingMatches(String)

    public var description: String {
        switch self {
        case .unknownSuite(let name, let known): return "unknown suite \(messageQuoted(name)) (known: \(known.joined(separator: ", ")))"
        case .nothingMatches(let what): return "no check matches \(what)"
        }
    }
}

extension Suite {
    /// Every instance of every check, at every level it supports.
    public var instances: [CheckInstance] {
        checks.flatMap { check -> [CheckInstance] in
            switch check.levels {
            case .both: return GuestCPL.allCases.map { CheckInstance(suite: self, check: check, cpl: $0) }
            case .only(let cpl): return [CheckInstance(suite: self, check: check, cpl: cpl)]
            case .notApplicable: return [CheckInstance(suite: self, check: check, cpl: nil)]
            }
        }
    }
}

/// Resolves a selection against the registered suites, keeping suite order.
public func select(_ selection: Selection, from suites: [Suite]) throws(SelectionError) -> [(Suite, [CheckInstance])] {
    for name in selection.suites where !suites.contains(where: { $0.name == name }) {
        throw .unknownSuite(name, known: suites.map(\.name))
    }
    let chosen = selection.suites.isEmpty ? suites : suites.filter { selection.suites.contains($0.name) }
    let picked = chosen.map { suite in
        (suite, suite.instances.filter { instance in
            (instance.cpl.map { selection.levels.contains($0) } ?? true)
                && (selection.filters.isEmpty || selection.filters.contains { globMatch($0, instance.id) })
                && !selection.excludes.contains { globMatch($0, instance.id) }
        })
    }.filter { !$0.1.isEmpty }
    if picked.isEmpty {
        throw .nothingMatches(selection.filters.isEmpty ? "the selection" : "filter \(messageQuoted(selection.filters.joined(separator: ",")))")
    }
    return picked
}

/// Shell-style glob: `*` any run, `?` one character.  A pattern without wildcards matches as a substring.
public func globMatch(_ pattern: String, _ text: String) -> Bool {
    // Unicode scalars, not Characters: as exact for ids and far cheaper than grapheme breaking.
    let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
    if !p.contains("*") && !p.contains("?") { return text.contains(pattern) }
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) { pi += 1; ti += 1 }
        else if pi < p.count && p[pi] == "*" { star = pi; mark = ti; pi += 1 }
        else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
        else { return false }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}
